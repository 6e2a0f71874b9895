/* fuzz_redact.c - the redactor (src/util/redact.c) over any text, e.g. a
 * command line or an error body: it must never read past the text or keep
 * a secret-named value. */
#include <stdlib.h>

#include "fuzz.h"
#include "mfs/util/redact.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_cstr(data, size);
	struct mfs_buf out = MFS_BUF_INIT;
	mfs_redact_text(&out, text);
	mfs_secret_name(text);
	mfs_buf_release(&out);
	free(text);
	return 0;
}
