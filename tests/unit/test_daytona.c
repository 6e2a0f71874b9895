/*
 * Unit tests of the Daytona backend's parsers of peer input that need no
 * server (the wire is tested against tests/emulators/daytona in pytest).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../backends/daytona/daytona.h"

/* A huge Retry-After once overflowed a signed multiplication (UBSan abort
 * in `make asan`, a negative wait elsewhere): it saturates at the cap. */
static void retry_after_saturates(void **state)
{
	(void)state;
	assert_int_equal(dt_retry_after_s("99999999999999999999999999999999"), RETRY_AFTER_MAX_S);
	assert_int_equal(dt_retry_after_s("9223372036854775808"), RETRY_AFTER_MAX_S);
	assert_int_equal(dt_retry_after_s("601"), RETRY_AFTER_MAX_S);
	assert_int_equal(dt_retry_after_s("600"), 600);
}

static void retry_after_plain(void **state)
{
	(void)state;
	assert_int_equal(dt_retry_after_s("3"), 3);
	assert_int_equal(dt_retry_after_s(" 12 "), 12);
	assert_int_equal(dt_retry_after_s("0"), 0);
}

/* Not a delta-seconds value: the caller's own backoff applies. */
static void retry_after_rejects(void **state)
{
	(void)state;
	assert_int_equal(dt_retry_after_s(NULL), -1);
	assert_int_equal(dt_retry_after_s(""), -1);
	assert_int_equal(dt_retry_after_s("-5"), -1);
	assert_int_equal(dt_retry_after_s("12abc"), -1);
	assert_int_equal(dt_retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT"), -1);
}

static bool exit_code_of(const char *body, int *code)
{
	struct mfs_http_resp resp;
	mfs_http_resp_init(&resp);
	resp.status = 200;
	mfs_buf_adds(&resp.body, body);
	bool exited = dt_answer_exit_code(&resp, code);
	mfs_http_resp_release(&resp);
	return exited;
}

static void exit_code_in_range(void **state)
{
	(void)state;
	int code = -7;
	assert_false(exit_code_of("{\"id\":\"c\",\"command\":\"sh x\"}", &code));
	assert_false(exit_code_of("{\"exitCode\":\"0\"}", &code));
	assert_true(exit_code_of("{\"exitCode\":0}", &code));
	assert_int_equal(code, 0);
	assert_true(exit_code_of("{\"exitCode\":137}", &code));
	assert_int_equal(code, 137);
}

/* The daemon reports a shell's $? (0-255).  Anything else once became the
 * int it truncates to: 256 or 2^32 read as 0, a failed step as success.
 * Now it is an unknown failure (negative, which exec.c reports as 255). */
static void exit_code_out_of_range_is_a_failure(void **state)
{
	(void)state;
	static const char *const bodies[] = {
		"{\"exitCode\":256}", "{\"exitCode\":4294967296}", "{\"exitCode\":-1}",
		"{\"exitCode\":-4294967296}", "{\"exitCode\":9223372036854775807}",
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(*bodies); i++) {
		int code = 0;
		assert_true(exit_code_of(bodies[i], &code));
		assert_true(code < 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(retry_after_saturates),
		cmocka_unit_test(retry_after_plain),
		cmocka_unit_test(retry_after_rejects),
		cmocka_unit_test(exit_code_in_range),
		cmocka_unit_test(exit_code_out_of_range_is_a_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
