/* The relay's path rule (src/relay/contain.c): a task's archive, written by
 * the step's code, may only touch that task's metadata in the launcher. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <sys/stat.h>

#include "mfs/relay/contain.h"

static const struct mfs_task_ids ids = { "Flow", "17", "start", "4" };

static enum mfs_member_verdict v(const char *name, mode_t type, bool link, const char **rel)
{
	const char *why, *r;
	enum mfs_member_verdict out = mfs_relay_member(&ids, name, type, link, rel ? rel : &r, &why);
	assert_non_null(why);
	if (out == MFS_MEMBER_REFUSE)
		assert_true(strlen(why) > 0);
	return out;
}

static void own_files_are_applied(void **state)
{
	(void)state;
	const char *rel;
	assert_int_equal(v(".metaflow/Flow/17/start/4/_meta/sysmeta_attempt_1.json", S_IFREG, false,
			   &rel), MFS_MEMBER_TASK);
	assert_string_equal(rel, "Flow/17/start/4/_meta/sysmeta_attempt_1.json");
	assert_int_equal(v("./.metaflow/Flow/17/start/4/_meta/0_artifact_x.json", S_IFREG, false, &rel),
			 MFS_MEMBER_TASK);
	assert_string_equal(rel, "Flow/17/start/4/_meta/0_artifact_x.json");
	/* An absolute DATASTORE_SYSROOT_LOCAL: tar drops the leading slash. */
	assert_int_equal(v("home/u/.metaflow/Flow/17/start/4/_meta/_self.json", S_IFREG, false, NULL),
			 MFS_MEMBER_TASK);
}

static void run_records_are_created_once(void **state)
{
	(void)state;
	assert_int_equal(v(".metaflow/Flow/_meta/_self.json", S_IFREG, false, NULL), MFS_MEMBER_ONCE);
	assert_int_equal(v(".metaflow/Flow/17/_meta/_self.json", S_IFREG, false, NULL), MFS_MEMBER_ONCE);
	assert_int_equal(v(".metaflow/Flow/17/start/_meta/_self.json", S_IFREG, false, NULL),
			 MFS_MEMBER_ONCE);
	assert_int_equal(v(".metaflow/Flow/17/_meta/other.json", S_IFREG, false, NULL),
			 MFS_MEMBER_REFUSE);
}

static void directories_and_manifest_are_skipped(void **state)
{
	(void)state;
	const char *dirs[] = { ".metaflow", ".metaflow/", "./", "home/u", ".metaflow/Flow",
			       ".metaflow/Flow/17/", ".metaflow/Flow/17/start/4/_meta", NULL };
	for (const char **d = dirs; *d; d++)
		assert_int_equal(v(*d, S_IFDIR, false, NULL), MFS_MEMBER_SKIP);
	assert_int_equal(v(".metaflow/Flow/conda.manifest", S_IFREG, false, NULL), MFS_MEMBER_SKIP);
}

static void other_tasks_runs_and_flows_are_refused(void **state)
{
	(void)state;
	const char *files[] = {
		".metaflow/Flow/17/start/5/_meta/sysmeta_x.json",   /* other task */
		".metaflow/Flow/17/end/4/_meta/sysmeta_x.json",     /* other step */
		".metaflow/Flow/18/_meta/_self.json",               /* other run */
		".metaflow/Other/_meta/_self.json",                 /* other flow */
		".metaflow/Flow/data/ab/abcdef",                    /* the datastore */
		".metaflow/Flow/latest_run",
		".metaflow/Flow/17/start/4/0.data.json",
		".metaflow/Flow/17/start/4/_meta/x.pkl",
		".metaflow/Flow/17/start/4/_meta/.hidden.json",
		".metaflow/Flow/17/start/4/_meta/sub/x.json",
		".metaflow/config.json",
		".metaflow",
		"elsewhere.json",
		NULL,
	};
	for (const char **f = files; *f; f++)
		assert_int_equal(v(*f, S_IFREG, false, NULL), MFS_MEMBER_REFUSE);
	assert_int_equal(v(".metaflow/Flow/17/start/5", S_IFDIR, false, NULL), MFS_MEMBER_REFUSE);
	assert_int_equal(v(".metaflow/Flow/data", S_IFDIR, false, NULL), MFS_MEMBER_REFUSE);
}

static void hostile_shapes_are_refused(void **state)
{
	(void)state;
	const char *own = ".metaflow/Flow/17/start/4/_meta/x.json";
	assert_int_equal(v(".metaflow/Flow/17/start/4/_meta/../../../../../x.json", S_IFREG, false,
			   NULL), MFS_MEMBER_REFUSE);
	assert_int_equal(v(".metaflow/Flow/17/./start/4/_meta/x.json", S_IFREG, false, NULL),
			 MFS_MEMBER_REFUSE);
	assert_int_equal(v(".metaflow//Flow/17/start/4/_meta/x.json", S_IFREG, false, NULL),
			 MFS_MEMBER_REFUSE);
	assert_int_equal(v("/.metaflow/Flow/17/start/4/_meta/x.json", S_IFREG, false, NULL),
			 MFS_MEMBER_REFUSE);
	assert_int_equal(v("../.metaflow/Flow/17/start/4/_meta/x.json", S_IFREG, false, NULL),
			 MFS_MEMBER_REFUSE);
	assert_int_equal(v(own, S_IFREG, true, NULL), MFS_MEMBER_REFUSE);  /* hard link */
	assert_int_equal(v(own, S_IFLNK, true, NULL), MFS_MEMBER_REFUSE);  /* symlink */
	assert_int_equal(v(own, S_IFCHR, false, NULL), MFS_MEMBER_REFUSE);
	assert_int_equal(v(own, S_IFBLK, false, NULL), MFS_MEMBER_REFUSE);
	assert_int_equal(v(own, S_IFIFO, false, NULL), MFS_MEMBER_REFUSE);
	assert_int_equal(v("", S_IFREG, false, NULL), MFS_MEMBER_REFUSE);
	assert_int_equal(v(".metaflow/Flow/17/start/4/_meta/x.json/a/b/c/d", S_IFREG, false, NULL),
			 MFS_MEMBER_REFUSE);
	/* A name that only starts like this task's. */
	assert_int_equal(v(".metaflow/Flow/17/start/40/_meta/x.json", S_IFREG, false, NULL),
			 MFS_MEMBER_REFUSE);
	assert_int_equal(v(".metaflow/Flowx/17/start/4/_meta/x.json", S_IFREG, false, NULL),
			 MFS_MEMBER_REFUSE);
	const char *why = NULL, *rel;
	assert_int_equal(mfs_relay_member(&ids, NULL, S_IFREG, false, &rel, &why), MFS_MEMBER_REFUSE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(own_files_are_applied),
		cmocka_unit_test(run_records_are_created_once),
		cmocka_unit_test(directories_and_manifest_are_skipped),
		cmocka_unit_test(other_tasks_runs_and_flows_are_refused),
		cmocka_unit_test(hostile_shapes_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
