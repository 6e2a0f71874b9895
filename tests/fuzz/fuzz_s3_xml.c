/* fuzz_s3_xml.c - S3 answers read as XML (src/net/s3.c): error documents,
 * listings and multipart answers, every tag the client looks for. */
#include <stdlib.h>

#include "fuzz.h"
#include "mfs/net/s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const tags[] = {
		"Code", "Message", "Key", "Contents", "Size", "IsTruncated",
		"NextContinuationToken", "UploadId", "ETag", "Region", NULL,
	};
	char *xml = fuzz_cstr(data, size);
	struct mfs_buf out = MFS_BUF_INIT;
	for (const char *const *t = tags; *t; t++) {
		size_t pos = 0;
		/* Each hit moves pos forward, so this ends; bounded anyway. */
		for (int i = 0; i < 10000 && mfs_s3_xml_next(xml, &pos, *t, &out); i++)
			;
	}
	mfs_buf_release(&out);
	free(xml);
	return 0;
}
