/* fuzz_e2b_stream.c - E2B's Connect stream (backends/e2b/stream.c, reached
 * through the backend's private internal.h, unchanged): envelopes split at
 * an input-chosen point, as libcurl may split them.  The same bytes also go
 * through the create answer's envdVersion parser. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "../../backends/e2b/internal.h"
#include "mfs/util/clock.h"

static void sink(void *ctx, enum mfs_stream stream, const char *data, size_t len)
{
	(void)stream;
	(void)data;
	*(size_t *)ctx += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t got = 0;
	struct mfs_io io = { sink, &got };
	struct e2b_stream st;
	memset(&st, 0, sizeof(st));
	st.io = &io;
	st.began_ms = (long)mfs_now_ms();
	st.idle_ms = LONG_MAX / 2; /* never "stalled": only the bytes matter */
	size_t cut = size ? data[0] % (size + 1) : 0;
	if (e2b_stream_feed(&st, (const char *)data, cut))
		e2b_stream_feed(&st, (const char *)data + cut, size - cut);
	e2b_stream_release(&st);
	char *text = fuzz_cstr(data, size);
	int v[3];
	e2b_parse_version(text, v);
	e2b_version_at_least(v, 0, 5, 7);
	free(text);
	return 0;
}
