/* Unit tests for buf.c: shell quoting is what keeps user arguments intact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "mfs/util/buf.h"

static void quoting_keeps_words_intact(void **state)
{
	(void)state;
	struct mfs_buf b = MFS_BUF_INIT;
	const char *argv[] = { "echo", "a b", "it's", "$HOME", "", "x=1", NULL };
	mfs_buf_add_argv_quoted(&b, argv);
	assert_string_equal(b.data, "echo 'a b' 'it'\\''s' '$HOME' '' x=1");
	mfs_buf_release(&b);
}

static void kvlist_set_replaces(void **state)
{
	(void)state;
	struct mfs_kvlist kv = MFS_KVLIST_INIT;
	mfs_kvlist_set(&kv, "A", "1");
	mfs_kvlist_set(&kv, "B", "2");
	mfs_kvlist_set(&kv, "A", "3");
	assert_int_equal(kv.n, 2);
	assert_string_equal(mfs_kvlist_get(&kv, "A"), "3");
	assert_true(mfs_kvlist_remove(&kv, "A"));
	assert_null(mfs_kvlist_get(&kv, "A"));
	assert_string_equal(kv.items[0].key, "B");
	mfs_kvlist_release(&kv);
}

static void addf_grows(void **state)
{
	(void)state;
	struct mfs_buf b = MFS_BUF_INIT;
	for (int i = 0; i < 1000; i++)
		mfs_buf_addf(&b, "%d,", i);
	assert_true(b.len > 3000);
	assert_memory_equal(b.data + b.len - 4, "999,", 4);
	mfs_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(quoting_keeps_words_intact),
		cmocka_unit_test(kvlist_set_replaces),
		cmocka_unit_test(addf_grows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
