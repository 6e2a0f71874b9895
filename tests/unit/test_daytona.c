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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(retry_after_saturates),
		cmocka_unit_test(retry_after_plain),
		cmocka_unit_test(retry_after_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
