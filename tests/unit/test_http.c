/* Unit tests for the pure parts of http.c: encoding decides whether S3 keys
 * round-trip and SigV4 matches; log-safe URLs decide whether secrets leak. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "mfs/net/http.h"

static void check_enc(const char *in, bool keep_slash, const char *want)
{
	struct mfs_buf b = MFS_BUF_INIT;
	mfs_http_urlencode(&b, in, keep_slash);
	assert_string_equal(b.data ? b.data : "", want);
	mfs_buf_release(&b);
}

static void urlencode_keeps_only_unreserved(void **state)
{
	(void)state;
	check_enc("AZaz09-_.~", false, "AZaz09-_.~");
	check_enc("a b+c", false, "a%20b%2Bc");
	check_enc("dir/file name", true, "dir/file%20name");
	check_enc("dir/file", false, "dir%2Ffile");
	check_enc("é", false, "%C3%A9");
	check_enc("!'()*=&?#%", false, "%21%27%28%29%2A%3D%26%3F%23%25");
	check_enc("", false, "");
}

static void check_log(const char *in, const char *want)
{
	struct mfs_buf b = MFS_BUF_INIT;
	mfs_http_url_for_log(&b, in);
	assert_string_equal(b.data, want);
	mfs_buf_release(&b);
}

static void url_for_log_drops_credentials_and_query(void **state)
{
	(void)state;
	check_log("https://h.example/a/b?X-Amz-Signature=abc", "https://h.example/a/b");
	check_log("http://user:s3cret@127.0.0.1:9000/x#frag", "http://127.0.0.1:9000/x");
	check_log("http://h:1?token=t", "http://h:1");
	check_log("https://h/p%20q", "https://h/p%20q");
}

static void status_fail_maps_codes_and_names_request(void **state)
{
	(void)state;
	struct mfs_http_req req = { .method = "POST", .url = "http://k:s@h/flows/F?x=secret" };
	struct mfs_http_resp resp;
	struct mfs_err err;

	mfs_http_resp_init(&resp);
	resp.status = 403;
	mfs_buf_adds(&resp.body, "\nforbidden here\nsecond line");
	assert_int_equal(mfs_http_status_fail(&err, &req, &resp), MFS_ERR_AUTH);
	assert_string_equal(err.msg, "POST http://h/flows/F: HTTP 403: forbidden here");
	resp.status = 404;
	assert_int_equal(mfs_http_status_fail(&err, &req, &resp), MFS_ERR_NOTFOUND);
	resp.status = 500;
	mfs_buf_reset(&resp.body);
	assert_int_equal(mfs_http_status_fail(&err, &req, &resp), MFS_ERR_BACKEND);
	assert_string_equal(err.msg, "POST http://h/flows/F: HTTP 500");
	mfs_http_resp_release(&resp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(urlencode_keeps_only_unreserved),
		cmocka_unit_test(url_for_log_drops_credentials_and_query),
		cmocka_unit_test(status_fail_maps_codes_and_names_request),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
