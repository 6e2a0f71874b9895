/* Unit tests for the lazy loader (src/util/lazy_lib.c): a missing library
 * or symbol is an error the caller gets back, never an exit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "../../src/util/lazy_lib.h"
#include "mfs/util/lazy.h"

static void missing_library_is_an_error(void **state)
{
	(void)state;
#if MFS_LAZY
	void *slot = NULL;
	const struct mfs_lazy_sym syms[] = { { "nothing", &slot }, { NULL, NULL } };
	char why[256] = "";
	assert_int_equal(mfs_lazy_load("libmfs-no-such-lib.so.9", syms, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "cannot load libmfs-no-such-lib.so.9"));
	assert_null(slot);
#endif
}

static void missing_symbol_is_an_error(void **state)
{
	(void)state;
#if MFS_LAZY
	void *a = NULL, *b = NULL;
	const struct mfs_lazy_sym syms[] = {
		{ "jansson_version_str", &a }, { "json_no_such_function", &b }, { NULL, NULL },
	};
	char why[256] = "";
	assert_int_equal(mfs_lazy_load("libjansson.so.4", syms, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "lacks json_no_such_function"));
#endif
}

static void installed_libraries_load(void **state)
{
	(void)state;
	struct mfs_err err = { MFS_OK, "" };
	assert_int_equal(mfs_need_archive(&err), MFS_OK);
	assert_int_equal(mfs_need_archive(&err), MFS_OK); /* once, then cached */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(missing_library_is_an_error),
		cmocka_unit_test(missing_symbol_is_an_error),
		cmocka_unit_test(installed_libraries_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
