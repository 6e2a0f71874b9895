/* Unit tests for the pure parts of http.c: encoding decides whether S3 keys
 * round-trip and SigV4 matches; log-safe URLs decide whether secrets leak. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* A peer's Retry-After is capped at 60 s whatever it says: a huge number
 * once wrapped to a negative wait (signed overflow, an abort under UBSan). */
static void retry_after_is_capped_and_never_overflows(void **state)
{
	(void)state;
	long long now = 1700000000;
	assert_int_equal(mfs_http_retry_after_ms(NULL, now), -1);
	assert_int_equal(mfs_http_retry_after_ms("", now), -1);
	assert_int_equal(mfs_http_retry_after_ms("soon", now), -1);
	assert_int_equal(mfs_http_retry_after_ms("-5", now), -1);
	assert_int_equal(mfs_http_retry_after_ms("0", now), 0);
	assert_int_equal(mfs_http_retry_after_ms("7", now), 7000);
	assert_int_equal(mfs_http_retry_after_ms("60", now), 60000);
	assert_int_equal(mfs_http_retry_after_ms("61", now), 60000);
	assert_int_equal(mfs_http_retry_after_ms("9223372036854775", now), 60000);
	assert_int_equal(mfs_http_retry_after_ms("9223372036854775807", now), 60000);
	assert_int_equal(mfs_http_retry_after_ms("99999999999999999999999", now), 60000);
	/* HTTP-dates: past -> 0, near future -> the delta, far future -> cap. */
	assert_int_equal(mfs_http_retry_after_ms("Tue, 14 Nov 2023 22:13:20 GMT", now), 0);
	assert_int_equal(mfs_http_retry_after_ms("Tue, 14 Nov 2023 22:13:25 GMT", now), 5000);
	assert_int_equal(mfs_http_retry_after_ms("Fri, 31 Dec 9999 23:59:59 GMT", now), 60000);
}

/* Header lines as libcurl hands them: not NUL-terminated, status line
 * restarts the set, names lower-cased, values trimmed. */
static void header_lines_are_parsed_within_their_length(void **state)
{
	(void)state;
	struct mfs_http_resp resp;
	long status = -1;
	mfs_http_resp_init(&resp);
	mfs_http_take_header(&resp, &status, "X-Old: 1\r\n", 10);
	mfs_http_take_header(&resp, &status, "HTTP/1.1 503 Busy\r\n", 19);
	assert_int_equal(status, 503);
	assert_null(mfs_http_header(&resp, "x-old"));
	mfs_http_take_header(&resp, &status, "Retry-After:  7 \r\n", 18);
	assert_string_equal(mfs_http_header(&resp, "retry-after"), "7");
	/* "HTTP/1.1 2" then bytes the line does not own: never read. */
	mfs_http_take_header(&resp, &status, "HTTP/1.1 2004", 10);
	assert_int_equal(status, 0);
	mfs_http_take_header(&resp, &status, "HTTP/2 20x\r\n", 12);
	assert_int_equal(status, 0);
	mfs_http_resp_release(&resp);
}

/* libcurl sends a header line as given: a newline in a key made the rest of
 * the line a header of its own (or ended the head early). */
static void header_with_a_line_break_is_refused_by_name(void **state)
{
	(void)state;
	struct mfs_strv h = MFS_STRV_INIT;
	struct mfs_err err = { MFS_OK, "" };
	mfs_strv_push(&h, "Accept: application/json");
	mfs_strv_push(&h, "X-Tab: a\tb");
	assert_int_equal(mfs_http_check_headers(&h, "GET http://h/x", &err), MFS_OK);
	const char *bad[] = { "Authorization: Bearer s3cr3t\r\nX-Evil: 1",
			      "Authorization: Bearer s3cr3t\n", "X-Key: s3cr3t\x7f",
			      "X-Key: s3cr3t\x01" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct mfs_strv one = MFS_STRV_INIT;
		mfs_strv_push(&one, "Accept: application/json");
		mfs_strv_push(&one, bad[i]);
		assert_int_equal(mfs_http_check_headers(&one, "GET http://h/x", &err),
				 MFS_ERR_CONFIG);
		assert_non_null(strstr(err.msg, bad[i][0] == 'A' ? "Authorization" : "X-Key"));
		assert_null(strstr(err.msg, "s3cr3t"));
		mfs_strv_release(&one);
	}
	/* mfs_http_do refuses it before any connection (none is listening). */
	mfs_strv_push(&h, "Authorization: Bearer s3cr3t\n");
	struct mfs_http_req req = { .method = "GET", .url = "http://127.0.0.1:9/x",
				    .headers = &h };
	struct mfs_http_resp resp;
	mfs_http_resp_init(&resp);
	assert_int_equal(mfs_http_do(&req, &resp, &err), MFS_ERR_CONFIG);
	assert_int_equal(resp.attempts, 0);
	mfs_http_resp_release(&resp);
	mfs_strv_release(&h);
}

/* A provider's answer names the toolbox URL: a file:// one once made
 * libcurl read a launcher file as if it were the answer. */
static void only_http_and_https_are_spoken(void **state)
{
	(void)state;
	char dir[] = "/tmp/mfs-http-test-XXXXXX", path[64];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/secret", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("s3cr3t\n", f);
	fclose(f);
	char url[96];
	snprintf(url, sizeof(url), "file://%s", path);
	struct mfs_http_req req = { .method = "GET", .url = url };
	struct mfs_http_resp resp;
	struct mfs_err err = { MFS_OK, "" };
	mfs_http_resp_init(&resp);
	assert_int_equal(mfs_http_do(&req, &resp, &err), MFS_ERR_HTTP);
	assert_int_equal(resp.body.len, 0);
	assert_null(strstr(err.msg, "s3cr3t"));
	mfs_http_resp_release(&resp);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(urlencode_keeps_only_unreserved),
		cmocka_unit_test(url_for_log_drops_credentials_and_query),
		cmocka_unit_test(status_fail_maps_codes_and_names_request),
		cmocka_unit_test(retry_after_is_capped_and_never_overflows),
		cmocka_unit_test(header_lines_are_parsed_within_their_length),
		cmocka_unit_test(header_with_a_line_break_is_refused_by_name),
		cmocka_unit_test(only_http_and_https_are_spoken),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
