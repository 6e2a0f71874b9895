/* Unit tests for json.c: a listing's labels, as both remote backends read them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "mfs/util/json.h"

static void kvlist_keeps_only_string_labels(void **state)
{
	(void)state;
	json_t *row = json_loads("{\"labels\": {\"mfsandbox\": \"1\", \"n\": 3, \"x\": null,"
				 " \"flow\": \"F\", \"o\": {\"a\": \"b\"}}}", 0, NULL);
	struct mfs_kvlist kv = MFS_KVLIST_INIT;
	mfs_json_kvlist(json_object_get(row, "labels"), &kv);
	assert_int_equal(kv.n, 2);
	assert_string_equal(mfs_kvlist_get(&kv, "mfsandbox"), "1");
	assert_string_equal(mfs_kvlist_get(&kv, "flow"), "F");
	assert_null(mfs_kvlist_get(&kv, "n"));
	mfs_kvlist_release(&kv);
	json_decref(row);
}

static void kvlist_of_a_non_object_adds_nothing(void **state)
{
	(void)state;
	json_t *arr = json_loads("[\"a\", \"b\"]", 0, NULL);
	struct mfs_kvlist kv = MFS_KVLIST_INIT;
	mfs_json_kvlist(NULL, &kv);
	mfs_json_kvlist(arr, &kv);
	assert_int_equal(kv.n, 0);
	mfs_kvlist_release(&kv);
	json_decref(arr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(kvlist_keeps_only_string_labels),
		cmocka_unit_test(kvlist_of_a_non_object_adds_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
