/* Unit tests for step.c: which argv is a Metaflow step command, what we read
 * from it, and rewriting a top-level option without touching anything else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "mfs/core/step.h"

static void parses_runtime_shape(void **state)
{
	(void)state;
	const char *argv[] = {
		"/usr/bin/python3", "-u", "flows/hello_flow.py", "--quiet", "--metadata", "service",
		"--environment", "local", "--datastore", "s3", "--datastore-root", "s3://b/p",
		"--event-logger", "nullSidecarLogger", "--monitor", "nullSidecarMonitor",
		"--with", "retry", "--with", "sandbox:cpu=2", "--config-value", "cfg", "kv.cfg",
		"step", "start", "--run-id", "1700", "--task-id", "3", "--input-paths", "1700/_parameters/1",
		"--retry-count", "2", "--max-user-code-retries", "3", "--namespace", "user:me", NULL,
	};
	struct mfs_step st;
	assert_true(mfs_step_parse(argv, &st));
	assert_string_equal(st.flow_file, "flows/hello_flow.py");
	assert_string_equal(st.flow_name, "hello_flow");
	assert_string_equal(st.step, "start");
	assert_string_equal(st.run_id, "1700");
	assert_string_equal(st.task_id, "3");
	assert_int_equal(st.attempt, 2);
	assert_string_equal(st.metadata, "service");
	assert_string_equal(st.datastore, "s3");
	assert_string_equal(st.datastore_root, "s3://b/p");
	assert_int_equal(st.file_index, 2);
	assert_string_equal(argv[st.step_index], "step");
	mfs_step_release(&st);
}

static void parses_equals_form_and_defaults(void **state)
{
	(void)state;
	const char *argv[] = {
		"python", "flow.py", "--metadata=local", "--datastore=local", "--no-pylint",
		"step", "end", "--run-id=9", "--task-id=10", NULL,
	};
	struct mfs_step st;
	assert_true(mfs_step_parse(argv, &st));
	assert_string_equal(st.flow_name, "flow");
	assert_string_equal(st.metadata, "local");
	assert_string_equal(st.datastore, "local");
	assert_null(st.datastore_root);
	assert_string_equal(st.run_id, "9");
	assert_string_equal(st.task_id, "10");
	assert_int_equal(st.attempt, 0);
	mfs_step_release(&st);
}

static void rejects_other_commands(void **state)
{
	(void)state;
	const char *not_python[] = { "bash", "flow.py", "step", "a", "--run-id", "1", "--task-id", "2", NULL };
	const char *dash_c[] = { "python3", "-c", "print(1)", "step", NULL };
	const char *dash_m[] = { "python3", "-m", "flow", "step", "a", "--run-id", "1", "--task-id", "2", NULL };
	const char *run_cmd[] = { "python3", "flow.py", "run", NULL };
	const char *no_task[] = { "python3", "flow.py", "step", "a", "--run-id", "1", NULL };
	const char *no_name[] = { "python3", "flow.py", "step", "--run-id", "1", "--task-id", "2", NULL };
	const char *not_py[] = { "python3", "flow.txt", "step", "a", "--run-id", "1", "--task-id", "2", NULL };
	const char *bad_retry[] = { "python3", "f.py", "step", "a", "--run-id", "1", "--task-id", "2",
				    "--retry-count", "x", NULL };
	const char *only_python[] = { "python3", NULL };
	const char *const *cases[] = { not_python, dash_c, dash_m, run_cmd, no_task, no_name, not_py,
				       bad_retry, only_python };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mfs_step st;
		assert_false(mfs_step_parse(cases[i], &st));
		assert_null(st.step);
		assert_null(st.flow_name);
	}
	struct mfs_step st;
	assert_false(mfs_step_parse(NULL, &st));
}

static void unknown_top_level_option_with_value(void **state)
{
	(void)state;
	/* @project adds --branch NAME and --production: neither hides "step". */
	const char *argv[] = { "python3.11", "-X", "utf8", "my.flow.py", "--branch", "dev", "--production",
			       "--some-new-flag", "step", "s", "--run-id", "r", "--task-id", "t", NULL };
	struct mfs_step st;
	assert_true(mfs_step_parse(argv, &st));
	assert_string_equal(st.flow_name, "my.flow");
	assert_string_equal(st.step, "s");
	mfs_step_release(&st);
}

static void set_option_rewrites_in_place(void **state)
{
	(void)state;
	const char *argv[] = { "python", "f.py", "--metadata", "service", "--datastore=s3", "step", "start",
			       "--run-id", "1", "--task-id", "2", "--tag", "--metadata", NULL };
	struct mfs_strv sv = MFS_STRV_INIT;
	struct mfs_step st;
	struct mfs_err err;
	mfs_strv_pushv(&sv, argv);
	assert_true(mfs_step_parse((const char *const *)sv.v, &st));
	mfs_step_set_flow_name(&st, "HelloFlow");
	assert_int_equal(mfs_step_set_option(&sv, &st, "metadata", "local", &err), MFS_OK);
	assert_int_equal(mfs_step_set_option(&sv, &st, "datastore", "local", &err), MFS_OK);
	assert_int_equal(sv.n, 13);
	assert_string_equal(sv.v[3], "local");
	assert_string_equal(sv.v[4], "--datastore=local");
	/* after the step word nothing changes, even a look-alike */
	assert_string_equal(sv.v[12], "--metadata");
	assert_string_equal(st.metadata, "local");
	assert_string_equal(st.flow_name, "HelloFlow");
	mfs_step_release(&st);
	mfs_strv_release(&sv);
}

static void set_option_inserts_before_step(void **state)
{
	(void)state;
	const char *argv[] = { "python", "f.py", "--quiet", "step", "start", "--run-id", "1", "--task-id",
			       "2", NULL };
	const char *want[] = { "python", "f.py", "--quiet", "--metadata", "local", "step", "start",
			       "--run-id", "1", "--task-id", "2", NULL };
	struct mfs_strv sv = MFS_STRV_INIT;
	struct mfs_step st;
	struct mfs_err err;
	mfs_strv_pushv(&sv, argv);
	assert_true(mfs_step_parse((const char *const *)sv.v, &st));
	assert_int_equal(mfs_step_set_option(&sv, &st, "metadata", "local", &err), MFS_OK);
	assert_int_equal(sv.n, 11);
	for (size_t i = 0; want[i]; i++)
		assert_string_equal(sv.v[i], want[i]);
	assert_null(sv.v[11]);
	assert_int_equal(st.step_index, 5);
	assert_string_equal(st.metadata, "local");
	mfs_step_release(&st);
	mfs_strv_release(&sv);
}

static void set_option_refuses_non_step(void **state)
{
	(void)state;
	const char *argv[] = { "echo", "hi", NULL };
	struct mfs_strv sv = MFS_STRV_INIT;
	struct mfs_step st;
	struct mfs_err err;
	mfs_strv_pushv(&sv, argv);
	assert_false(mfs_step_parse((const char *const *)sv.v, &st));
	assert_int_equal(mfs_step_set_option(&sv, &st, "metadata", "local", &err), MFS_ERR_USAGE);
	assert_non_null(strstr(err.msg, "not a Metaflow step"));
	assert_string_equal(sv.v[1], "hi");
	mfs_strv_release(&sv);
}

static void pathspec_text(void **state)
{
	(void)state;
	const char *argv[] = { "python", "a/b/Flow.py", "step", "join", "--run-id", "r1", "--task-id",
			       "t9", NULL };
	struct mfs_step st;
	struct mfs_buf b = MFS_BUF_INIT;
	assert_true(mfs_step_parse(argv, &st));
	mfs_step_pathspec(&st, &b);
	assert_string_equal(b.data, "Flow/r1/join/t9");
	mfs_buf_release(&b);
	mfs_step_release(&st);
}

struct visit {
	struct mfs_buf seen;
};

static void record(void *ctx, bool top, const char *name, size_t nlen, size_t idx, size_t vidx,
		   const char *value)
{
	struct visit *v = ctx;
	mfs_buf_addf(&v->seen, "%s%.*s@%zu/%zu=%s;", top ? "" : "step:", (int)nlen, name, idx, vidx,
		     value);
}

/* Every option with a value, top-level and the step's, in order; flags of
 * Metaflow and @project do not swallow the next word. */
static void visits_options_with_values(void **state)
{
	(void)state;
	const char *argv[] = {
		"python", "flow.py", "--not-quiet", "--no-force-rebuild-environments", "--production",
		"--branch", "b1", "--config", "c", "f.json", "--datastore=local", "step", "s",
		"--run-id", "1", "--task-id=2", "--input-paths-filename", "in", NULL,
	};
	struct mfs_step st;
	struct visit v = { MFS_BUF_INIT };
	assert_true(mfs_step_parse(argv, &st));
	assert_string_equal(st.datastore, "local");
	mfs_step_each_option(argv, &st, record, &v);
	assert_string_equal(v.seen.data,
			    "branch@5/6=b1;config@7/9=f.json;datastore@10/10=local;"
			    "step:run-id@13/14=1;step:task-id@15/15=2;step:input-paths-filename@16/17=in;");
	mfs_buf_release(&v.seen);
	mfs_step_release(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_runtime_shape),
		cmocka_unit_test(parses_equals_form_and_defaults),
		cmocka_unit_test(rejects_other_commands),
		cmocka_unit_test(unknown_top_level_option_with_value),
		cmocka_unit_test(set_option_rewrites_in_place),
		cmocka_unit_test(set_option_inserts_before_step),
		cmocka_unit_test(set_option_refuses_non_step),
		cmocka_unit_test(pathspec_text),
		cmocka_unit_test(visits_options_with_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
