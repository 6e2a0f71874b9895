/* Unit tests for buf.c: shell quoting is what keeps user arguments intact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
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

/* Past the size where the hash index takes over: set, replace, get and
 * remove keep the insertion order and find every key. */
static void kvlist_large_keeps_order_and_finds_every_key(void **state)
{
	(void)state;
	struct mfs_kvlist kv = MFS_KVLIST_INIT;
	char key[32], val[32];
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "K%d", i);
		snprintf(val, sizeof(val), "v%d", i);
		mfs_kvlist_set(&kv, key, val);
	}
	for (int i = 0; i < 5000; i += 2) {
		snprintf(key, sizeof(key), "K%d", i);
		mfs_kvlist_set(&kv, key, "again");
	}
	assert_int_equal(kv.n, 5000);
	assert_true(mfs_kvlist_remove(&kv, "K0"));
	assert_false(mfs_kvlist_remove(&kv, "K0"));
	assert_int_equal(kv.n, 4999);
	for (int i = 1; i < 5000; i++) {
		snprintf(key, sizeof(key), "K%d", i);
		snprintf(val, sizeof(val), "v%d", i);
		assert_string_equal(kv.items[i - 1].key, key);
		assert_string_equal(mfs_kvlist_get(&kv, key), i % 2 ? val : "again");
	}
	assert_null(mfs_kvlist_get(&kv, "K5000"));
	mfs_kvlist_set(&kv, "K0", "back");
	assert_string_equal(kv.items[4999].key, "K0");
	assert_string_equal(mfs_kvlist_get(&kv, "K0"), "back");
	mfs_kvlist_release(&kv);
}

/* The RFC 4648 test vectors: every padding case, and bytes above 0x7f. */
static void base64_matches_rfc4648(void **state)
{
	(void)state;
	const char *in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	const char *want[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		struct mfs_buf b = MFS_BUF_INIT;
		mfs_buf_add_base64(&b, in[i], strlen(in[i]));
		assert_string_equal(b.data ? b.data : "", want[i]);
		mfs_buf_release(&b);
	}
	struct mfs_buf b = MFS_BUF_INIT;
	mfs_buf_add_base64(&b, "\xff\xfe\x00", 3);
	assert_string_equal(b.data, "//4A");
	mfs_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(quoting_keeps_words_intact),
		cmocka_unit_test(kvlist_set_replaces),
		cmocka_unit_test(kvlist_large_keeps_order_and_finds_every_key),
		cmocka_unit_test(addf_grows),
		cmocka_unit_test(base64_matches_rfc4648),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
