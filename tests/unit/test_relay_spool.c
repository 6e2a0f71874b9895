/* A relay that failed keeps its spec in the spool (src/relay/spool.c) for
 * `mfsandbox relay replay`: what it keeps, and what it cannot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/relay/relay_int.h"
#include "mfs/util/file.h"

struct spool_fixture {
	char dir[64];
	struct mfs_relay_spec spec;
	struct relay r;
};

static int setup(void **state)
{
	struct spool_fixture *f = calloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/mfs-spool-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->spec = (struct mfs_relay_spec){ .flow = "F", .run_id = "7", .step = "s",
					   .task_id = "3", .attempt = 1, .ds_type = "local",
					   .ds_root = "/data/.metaflow", .metadata = "service",
					   .service_url = "http://127.0.0.1:1" };
	f->r = (struct relay){ .spec = &f->spec, .lock_fd = -1 };
	mfs_buf_adds(&f->r.entry, f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct spool_fixture *f = *state;
	char path[128];
	snprintf(path, sizeof(path), "%s/spec.json", f->dir);
	unlink(path);
	rmdir(f->dir);
	mfs_buf_release(&f->r.entry);
	free(f);
	return 0;
}

static json_t *saved(struct spool_fixture *f)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/spec.json", f->dir);
	return json_load_file(path, 0, NULL);
}

static void spec_keeps_every_field(void **state)
{
	struct spool_fixture *f = *state;
	struct mfs_err err = { 0 };
	assert_int_equal(relay_spool_save_spec(&f->r, &err), MFS_OK);
	json_t *j = saved(f);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "run_id")), "7");
	assert_int_equal(json_integer_value(json_object_get(j, "attempt")), 1);
	assert_string_equal(json_string_value(json_object_get(j, "service_url")),
			    "http://127.0.0.1:1");
	assert_null(json_object_get(j, "local_root"));
	json_decref(j);
}

/* A datastore root is a path, any bytes; the spool's JSON holds only UTF-8.
 * It crashed the launcher (strlen of the NULL text) before. */
static void spec_not_utf8_is_an_error_not_a_crash(void **state)
{
	struct spool_fixture *f = *state;
	struct mfs_err err = { 0 };
	f->spec.ds_root = "/data/\xff/.metaflow";
	assert_int_equal(relay_spool_save_spec(&f->r, &err), MFS_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "not UTF-8"));
	assert_null(saved(f));
}

/* The service URL once vanished from the kept spec without a word. */
static void service_url_not_utf8_is_not_dropped(void **state)
{
	struct spool_fixture *f = *state;
	struct mfs_err err = { 0 };
	f->spec.service_url = "http://h\xfe/";
	assert_int_equal(relay_spool_save_spec(&f->r, &err), MFS_ERR_CONFIG);
	assert_null(saved(f));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(spec_keeps_every_field, setup, teardown),
		cmocka_unit_test_setup_teardown(spec_not_utf8_is_an_error_not_a_crash, setup,
						teardown),
		cmocka_unit_test_setup_teardown(service_url_not_utf8_is_not_dropped, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
