/* fuzz_http.c - what a server's answer feeds the HTTP client
 * (src/net/http.c): header lines as libcurl hands them, Retry-After, the
 * one-line error built from the status and body, and URLs made safe to log. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "mfs/net/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mfs_http_resp resp;
	long status = 0;
	mfs_http_resp_init(&resp);
	/* Lines keep their "\n", and are not NUL-terminated: as from libcurl. */
	const uint8_t *p = data, *end = data + size;
	while (p < end) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		char *line = mfs_xmalloc(n ? n : 1);
		memcpy(line, p, n);
		mfs_http_take_header(&resp, &status, line, n);
		free(line);
		p += n;
	}
	resp.status = status;
	long wait = mfs_http_retry_after_ms(mfs_http_header(&resp, "retry-after"), 1700000000LL);
	if (wait > 60000)
		abort();
	mfs_buf_add(&resp.body, data, size);
	char *url = fuzz_cstr(data, size);
	struct mfs_http_req req = { .method = "GET", .url = url };
	struct mfs_err err = { MFS_OK, "" };
	mfs_http_status_fail(&err, &req, &resp);
	struct mfs_buf out = MFS_BUF_INIT;
	mfs_http_url_for_log(&out, url);
	mfs_http_urlencode(&out, url, true);
	mfs_buf_release(&out);
	free(url);
	mfs_http_resp_release(&resp);
	return 0;
}
