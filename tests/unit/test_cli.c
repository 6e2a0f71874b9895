/* Unit tests for the command line: every flag lands in the job, every bad
 * input is one MFS_ERR_USAGE line naming the flag (exit 202), error codes
 * map to the documented exit statuses, the registry finds its rows, and
 * secrets are redacted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mfs/cli/cli.h"
#include "mfs/util/redact.h"
#include "mfs/core/registry.h"

static enum mfs_code parse(struct mfs_job *job, struct mfs_err *err, const char *const *args)
{
	char *argv[64];
	int argc = 0;
	argv[argc++] = (char *)"run";
	for (size_t i = 0; args[i]; i++)
		argv[argc++] = (char *)args[i];
	argv[argc] = NULL;
	bool help = false;
	struct mfs_run_opts opts;
	mfs_job_init(job);
	mfs_run_opts_init(&opts);
	mfs_err_clear(err);
	enum mfs_code rc = mfs_cli_parse_run(argc, argv, job, &opts, &help, err);
	mfs_run_opts_release(&opts);
	return rc;
}

static int setup(void **state)
{
	(void)state;
	unsetenv("METAFLOW_SANDBOX_BACKEND");
	return 0;
}

static void every_flag_lands_in_the_job(void **state)
{
	(void)state;
	struct mfs_job job;
	struct mfs_err err;
	setenv("MFS_TEST_SECRET_TOKEN", "from-env", 1);
	const char *args[] = {
		"--backend", "local", "--cpu", "1.5", "--memory=2048", "--disk", "10", "--gpu", "1",
		"--image", "python:3.11", "--network", "none", "--timeout", "60", "--env", "A=1",
		"--env", "B=x=y", "--env", "MFS_TEST_SECRET_TOKEN", "--upload", "in.csv:data/in.csv",
		"--code", "src", "--keep", "--dry-run", "--quiet", "--ro-bind", "/etc:/in/etc",
		"--bind", "/tmp", "--ro-bind", "/usr:/tmp", "--", "echo", "--not-ours", "a b", NULL,
	};
	assert_int_equal(parse(&job, &err, args), MFS_OK);
	assert_string_equal(job.ops->name, "local");
	assert_true(job.cpu == 1.5);
	assert_int_equal(job.memory_mb, 2048);
	assert_int_equal(job.disk_gb, 10);
	assert_string_equal(job.gpu, "1");
	assert_string_equal(job.image, "python:3.11");
	assert_string_equal(job.network, "none");
	assert_int_equal(job.timeout_s, 60);
	assert_string_equal(mfs_kvlist_get(&job.env, "A"), "1");
	assert_string_equal(mfs_kvlist_get(&job.env, "B"), "x=y");
	assert_string_equal(mfs_kvlist_get(&job.env, "MFS_TEST_SECRET_TOKEN"), "from-env");
	assert_string_equal(mfs_kvlist_get(&job.uploads, "data/in.csv"), "in.csv");
	assert_string_equal(job.code_path, "src");
	assert_true(job.keep && job.dry_run && job.quiet);
	/* key DEST, value HOST; a DEST named again moves to the later flag's list */
	assert_int_equal(job.ro_binds.n, 2);
	assert_string_equal(mfs_kvlist_get(&job.ro_binds, "/in/etc"), "/etc");
	assert_string_equal(mfs_kvlist_get(&job.ro_binds, "/tmp"), "/usr");
	assert_int_equal(job.rw_binds.n, 0);
	assert_int_equal(job.argv.n, 3);
	assert_string_equal(job.argv.v[1], "--not-ours");
	assert_string_equal(job.argv.v[2], "a b");
	assert_false(job.is_step);
	mfs_job_release(&job);
}

static void command_options_are_not_parsed(void **state)
{
	(void)state;
	struct mfs_job job;
	struct mfs_err err;
	/* without "--" the first word ends our options */
	const char *args[] = { "--backend", "local", "python3", "flow.py", "step", "start",
			       "--run-id", "1", "--task-id", "2", "--cpu", "9", NULL };
	assert_int_equal(parse(&job, &err, args), MFS_OK);
	assert_true(job.cpu == 0);
	assert_int_equal(job.argv.n, 10);
	assert_true(job.is_step);
	assert_string_equal(job.step.step, "start");
	mfs_job_release(&job);
}

static void backend_from_environment(void **state)
{
	(void)state;
	struct mfs_job job;
	struct mfs_err err;
	const char *args[] = { "true", NULL };
	setenv("METAFLOW_SANDBOX_BACKEND", "e2b", 1);
	assert_int_equal(parse(&job, &err, args), MFS_OK);
	assert_string_equal(job.ops->name, "e2b");
	mfs_job_release(&job);
	const char *flag_wins[] = { "--backend", "local", "true", NULL };
	assert_int_equal(parse(&job, &err, flag_wins), MFS_OK);
	assert_string_equal(job.ops->name, "local");
	mfs_job_release(&job);
	setenv("METAFLOW_SANDBOX_BACKEND", "nope", 1);
	assert_int_equal(parse(&job, &err, args), MFS_ERR_USAGE);
	assert_non_null(strstr(err.msg, "METAFLOW_SANDBOX_BACKEND 'nope' is not a backend (one of: local, daytona, e2b)"));
	mfs_job_release(&job);
	unsetenv("METAFLOW_SANDBOX_BACKEND");
}

struct bad_case {
	const char *args[8];
	const char *expect; /* substring of the one-line message */
};

static void bad_input_is_one_usage_line(void **state)
{
	(void)state;
	static const struct bad_case cases[] = {
		{ { "true" }, "no backend chosen: pass --backend NAME or set METAFLOW_SANDBOX_BACKEND (one of: local, daytona, e2b)" },
		{ { "--backend", "nope", "true" }, "--backend 'nope' is not a backend (one of: local, daytona, e2b)" },
		{ { "--backend", "local" }, "no command given" },
		{ { "--backend", "local", "--" }, "no command given" },
		{ { "--bogus", "true" }, "unknown option --bogus" },
		{ { "--bogus=SECRETVALUE", "true" }, "unknown option --bogus (" },
		{ { "-x", "true" }, "unknown option -x" },
		{ { "--backend" }, "option --backend needs a value" },
		{ { "--cpu", "0", "true" }, "--cpu '0'" },
		{ { "--cpu", "two", "true" }, "--cpu 'two'" },
		{ { "--cpu", "nan", "true" }, "--cpu 'nan'" },
		{ { "--memory", "1.5", "true" }, "--memory '1.5': expected a whole number of MB" },
		{ { "--memory", "-5", "true" }, "--memory '-5'" },
		{ { "--memory", "", "true" }, "--memory ''" },
		{ { "--disk", "99999999999", "true" }, "--disk '99999999999'" },
		{ { "--timeout", "10s", "true" }, "--timeout '10s': expected a whole number of seconds" },
		{ { "--timeout", "0", "true" }, "--timeout '0'" },
		{ { "--network", "bridge", "true" }, "--network 'bridge': expected host or none" },
		{ { "--env", "=x", "true" }, "--env: '' is not a variable name" },
		{ { "--env", "1A=x", "true" }, "--env: '1A' is not a variable name" },
		{ { "--env", "A-B=x", "true" }, "--env: 'A-B' is not a variable name" },
		{ { "--env", "MFS_SURELY_UNSET_VAR", "true" }, "--env: MFS_SURELY_UNSET_VAR has no value and is not set" },
		{ { "--env-file", "/nonexistent/envfile", "true" }, "--env-file /nonexistent/envfile: No such file" },
		{ { "--upload", "nocolon", "true" }, "--upload 'nocolon': expected LOCAL:REMOTE" },
		{ { "--upload", ":remote", "true" }, "--upload ':remote': expected LOCAL:REMOTE" },
		{ { "--upload", "local:", "true" }, "--upload 'local:': expected LOCAL:REMOTE" },
		{ { "--code", "", "true" }, "--code needs" },
		{ { "--ro-bind", "etc", "true" }, "--ro-bind 'etc': expected HOST[:DEST]" },
		{ { "--bind", "/etc:", "true" }, "--bind '/etc:': expected HOST[:DEST]" },
		{ { "--bind", "/etc/./x", "true" }, "without . or .." },
		{ { "--ro-bind", "/nonexistent/mfs:/x", "true" }, "--ro-bind /nonexistent/mfs: No such file" },
		{ { "--gpu", "", "true" }, "--gpu needs a value" },
		{ { "--image", "", "true" }, "--image needs a value" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mfs_job job;
		struct mfs_err err;
		enum mfs_code rc = parse(&job, &err, cases[i].args);
		if (rc != MFS_ERR_USAGE || !strstr(err.msg, cases[i].expect))
			fail_msg("case %zu (%s): rc=%d msg='%s', want '%s'", i, cases[i].args[0], rc, err.msg,
				 cases[i].expect);
		assert_null(strchr(err.msg, '\n'));
		assert_null(strstr(err.msg, "SECRETVALUE"));
		assert_int_equal(mfs_exit_for(rc, 0, 0), 202);
		mfs_job_release(&job);
	}
}

static void help_flag(void **state)
{
	(void)state;
	char *argv[] = { (char *)"run", (char *)"--cpu", (char *)"2", (char *)"--help", NULL };
	struct mfs_job job;
	struct mfs_err err;
	bool help = false;
	struct mfs_run_opts opts;
	mfs_job_init(&job);
	mfs_run_opts_init(&opts);
	assert_int_equal(mfs_cli_parse_run(4, argv, &job, &opts, &help, &err), MFS_OK);
	assert_true(help);
	mfs_job_release(&job);
	mfs_run_opts_release(&opts);
}

static char *write_temp(const char *text)
{
	char *path = strdup("/tmp/mfs-test-env-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void env_file_format(void **state)
{
	(void)state;
	setenv("MFS_TEST_FROM_HOST", "host value", 1);
	char *path = write_temp("# comment\n\n  A=1\r\nexport B=\"two words\"\nC='single'\nD=\"unbalanced\n"
				"E=\nF=a=b\nMFS_TEST_FROM_HOST\n");
	struct mfs_kvlist env = MFS_KVLIST_INIT;
	struct mfs_err err;
	assert_int_equal(mfs_cli_read_env_file(path, &env, &err), MFS_OK);
	assert_string_equal(mfs_kvlist_get(&env, "A"), "1");
	assert_string_equal(mfs_kvlist_get(&env, "B"), "two words");
	assert_string_equal(mfs_kvlist_get(&env, "C"), "single");
	assert_string_equal(mfs_kvlist_get(&env, "D"), "\"unbalanced");
	assert_string_equal(mfs_kvlist_get(&env, "E"), "");
	assert_string_equal(mfs_kvlist_get(&env, "F"), "a=b");
	assert_string_equal(mfs_kvlist_get(&env, "MFS_TEST_FROM_HOST"), "host value");
	assert_int_equal(env.n, 7);
	mfs_kvlist_release(&env);
	unlink(path);
	free(path);

	path = write_temp("OK=1\nbad line=SECRETVALUE\n");
	assert_int_equal(mfs_cli_read_env_file(path, &env, &err), MFS_ERR_USAGE);
	assert_non_null(strstr(err.msg, ":2: 'bad line' is not a variable name"));
	assert_null(strstr(err.msg, "SECRETVALUE"));
	mfs_kvlist_release(&env);
	unlink(path);
	free(path);
}

static void env_order_later_wins(void **state)
{
	(void)state;
	char *path = write_temp("A=file\nB=file\n");
	struct mfs_job job;
	struct mfs_err err;
	const char *args[] = { "--backend", "local", "--env", "A=flag", "--env-file", path, "--env", "B=flag",
			       "true", NULL };
	assert_int_equal(parse(&job, &err, args), MFS_OK);
	assert_string_equal(mfs_kvlist_get(&job.env, "A"), "file");
	assert_string_equal(mfs_kvlist_get(&job.env, "B"), "flag");
	mfs_job_release(&job);
	unlink(path);
	free(path);
}

static void exit_code_mapping(void **state)
{
	(void)state;
	assert_int_equal(mfs_exit_for(MFS_OK, 0, 0), 0);
	assert_int_equal(mfs_exit_for(MFS_OK, 1, 0), 1);
	assert_int_equal(mfs_exit_for(MFS_OK, 137, 0), 137);
	assert_int_equal(mfs_exit_for(MFS_ERR_USAGE, 0, 0), 202);
	assert_int_equal(mfs_exit_for(MFS_ERR_CONFIG, 0, 0), 202);
	assert_int_equal(mfs_exit_for(MFS_ERR_AUTH, 0, 0), 202);
	assert_int_equal(mfs_exit_for(MFS_ERR_UNSUPPORTED, 0, 0), 202);
	assert_int_equal(mfs_exit_for(MFS_ERR_BACKEND, 0, 0), 203);
	assert_int_equal(mfs_exit_for(MFS_ERR_HTTP, 0, 0), 203);
	assert_int_equal(mfs_exit_for(MFS_ERR_IO, 0, 0), 203);
	assert_int_equal(mfs_exit_for(MFS_ERR_NOTFOUND, 0, 0), 203);
	assert_int_equal(mfs_exit_for(MFS_ERR_PROTOCOL, 0, 0), 203);
	assert_int_equal(mfs_exit_for(MFS_ERR_NOMEM, 0, 0), 203);
	assert_int_equal(mfs_exit_for(MFS_ERR_TIMEOUT, 0, 0), 204);
	assert_int_equal(mfs_exit_for(MFS_ERR_CANCELLED, 0, SIGINT), 130);
	assert_int_equal(mfs_exit_for(MFS_ERR_CANCELLED, 0, SIGTERM), 143);
	assert_int_equal(mfs_exit_for(MFS_ERR_CANCELLED, 0, SIGHUP), 129);
	assert_int_equal(mfs_exit_for(MFS_ERR_CANCELLED, 0, 0), 143);
}

static void registry_lookups(void **state)
{
	(void)state;
	struct mfs_buf names = MFS_BUF_INIT;
	assert_int_equal(mfs_backend_count(), 3);
	for (size_t i = 0; i < mfs_backend_count(); i++) {
		const struct mfs_backend_ops *ops = mfs_backend_at(i);
		assert_ptr_equal(mfs_backend_find(ops->name), ops);
		assert_non_null(ops->probe);
		assert_non_null(ops->create);
		assert_non_null(ops->destroy);
		assert_non_null(ops->release);
	}
	assert_null(mfs_backend_at(3));
	assert_null(mfs_backend_find("Local"));
	assert_null(mfs_backend_find(""));
	assert_null(mfs_backend_find(NULL));
	mfs_backend_names(&names);
	assert_string_equal(names.data, "local, daytona, e2b");
	mfs_buf_release(&names);
}

/* A cloud backend without credentials refuses before any request, naming
 * the variable (no server exists here: a request would fail differently). */
static void daytona_without_credentials_refuses(void **state)
{
	(void)state;
	const struct mfs_backend_ops *ops = mfs_backend_find("daytona");
	struct mfs_buf notes = MFS_BUF_INIT;
	struct mfs_err err;
	struct mfs_sandbox *sb = (struct mfs_sandbox *)&err;
	struct mfs_sandbox_spec spec = { .name = "x" };
	unsetenv("DAYTONA_API_KEY");
	unsetenv("DAYTONA_JWT_TOKEN");
	setenv("DAYTONA_API_URL", "http://127.0.0.1:9/api", 1);
	assert_int_equal(ops->probe(&notes, &err), MFS_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "DAYTONA_API_KEY is not set"));
	assert_int_equal(ops->create(&spec, &sb, &err), MFS_ERR_CONFIG);
	assert_null(sb);
	setenv("DAYTONA_JWT_TOKEN", "jwt-secret", 1);
	unsetenv("DAYTONA_ORGANIZATION_ID");
	assert_int_equal(ops->create(&spec, &sb, &err), MFS_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "DAYTONA_ORGANIZATION_ID"));
	assert_null(strstr(err.msg, "jwt-secret"));
	unsetenv("DAYTONA_JWT_TOKEN");
	unsetenv("DAYTONA_API_URL");
	mfs_buf_release(&notes);
}

static void redaction(void **state)
{
	(void)state;
	struct mfs_buf b = MFS_BUF_INIT;
	assert_true(mfs_secret_name("AWS_SECRET_ACCESS_KEY"));
	assert_true(mfs_secret_name("DAYTONA_API_KEY"));
	assert_true(mfs_secret_name("e2b_token"));
	assert_true(mfs_secret_name("DB_PASSWORD"));
	assert_true(mfs_secret_name("GOOGLE_APPLICATION_CREDENTIALS"));
	assert_false(mfs_secret_name("PATH"));
	assert_false(mfs_secret_name("METAFLOW_RUN_ID"));
	mfs_redact_text(&b, "export AWS_SESSION_TOKEN='a b c' X=1 && DB_PASSWORD=\"p w\" run; K_KEY=v|x");
	assert_string_equal(b.data, "export AWS_SESSION_TOKEN=<redacted> X=1 && DB_PASSWORD=<redacted> run; K_KEY=<redacted>|x");
	mfs_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(every_flag_lands_in_the_job, setup),
		cmocka_unit_test_setup(command_options_are_not_parsed, setup),
		cmocka_unit_test_setup(backend_from_environment, setup),
		cmocka_unit_test_setup(bad_input_is_one_usage_line, setup),
		cmocka_unit_test_setup(help_flag, setup),
		cmocka_unit_test_setup(env_file_format, setup),
		cmocka_unit_test_setup(env_order_later_wins, setup),
		cmocka_unit_test(exit_code_mapping),
		cmocka_unit_test(registry_lookups),
		cmocka_unit_test(daytona_without_credentials_refuses),
		cmocka_unit_test(redaction),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
