/* Unit tests for metaflow_task.c: the spec (good and bad), the in-sandbox
 * script, the mflog decoration of output, and the prepare hook's rewrite of
 * a job. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mfs/core/executor.h"
#include "mfs/core/metaflow_task.h"
#include "mfs/core/registry.h"

#define GOOD_SPEC                                                                  \
	"{\"version\":1,\"flow_name\":\"HelloFlow\","                                      \
	"\"datastore\":{\"type\":\"local\",\"root\":\"/data/.metaflow\"},"                 \
	"\"code_package\":{\"path\":\"%s\",\"url\":\"u\",\"sha\":\"abc\","                \
	"\"metadata\":\"{\\\"version\\\": 0}\"},"                                          \
	"\"executable\":\"/venv/bin/python\",\"python\":\"/venv/bin/python\","             \
	"\"bootstrap_commands\":[\"echo boot-one\",\"echo boot-two\"],"                    \
	"\"dependencies\":[\"boto3\",\"requests\"],"                                       \
	"\"post_extract_env\":{\"PYTHONPATH\":\"$(pwd)/.mf_code\",\"METAFLOW_EXTRACTED_ROOT:\":\"$(pwd)\"}," \
	"\"env\":{\"METAFLOW_USER\":\"ann\",\"FOO\":\"bar baz\"},"                         \
	"\"config_env\":{\"METAFLOW_S3_ENDPOINT_URL\":\"http://s3\","                        \
	"\"METAFLOW_OTEL_AUTH_HEADER\":\"Bearer xyz\",\"FOO\":\"from config\","                \
	"\"METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE\":\"aws-secrets-manager\"},"                \
	"\"default_sizes\":[\"cpu\",\"memory\"],\"step_timeout\":900,"                       \
	"\"forward_env\":[\"MFS_TEST_SECRET\",\"MFS_TEST_UNSET\"],"                         \
	"\"rw_paths\":[\"/data/.metaflow\"]}"

static enum mfs_code parse(const char *text, struct mfs_mf_spec *spec, struct mfs_err *err)
{
	mfs_mf_spec_init(spec);
	return mfs_mf_spec_parse(text, strlen(text), spec, err);
}

static char *good_spec(const char *pkg)
{
	struct mfs_buf b = MFS_BUF_INIT;
	mfs_buf_addf(&b, GOOD_SPEC, pkg);
	return mfs_buf_detach(&b, NULL);
}

static void spec_parses_every_field(void **state)
{
	(void)state;
	struct mfs_mf_spec spec;
	struct mfs_err err = { MFS_OK, "" };
	char *text = good_spec("/tmp/pkg.tgz");
	assert_int_equal(parse(text, &spec, &err), MFS_OK);
	assert_string_equal(spec.flow_name, "HelloFlow");
	assert_string_equal(spec.ds_type, "local");
	assert_string_equal(spec.ds_root, "/data/.metaflow");
	assert_string_equal(spec.package_path, "/tmp/pkg.tgz");
	assert_string_equal(spec.package_metadata, "{\"version\": 0}");
	assert_int_equal(spec.bootstrap.n, 2);
	assert_string_equal(mfs_kvlist_get(&spec.env, "FOO"), "bar baz");
	assert_string_equal(mfs_kvlist_get(&spec.post_extract_env, "METAFLOW_EXTRACTED_ROOT:"), "$(pwd)");
	assert_int_equal(spec.forward_env.n, 2);
	assert_string_equal(spec.rw_paths.v[0], "/data/.metaflow");
	assert_int_equal(spec.config_env.n, 4);
	assert_int_equal(spec.default_sizes, MFS_CAP_CPU | MFS_CAP_MEMORY);
	assert_int_equal(spec.step_timeout_s, 900);
	mfs_mf_spec_release(&spec);
	free(text);
}

/* Each bad spec gives one line naming what is wrong. */
static void expect_bad(const char *text, const char *needle)
{
	struct mfs_mf_spec spec;
	struct mfs_err err = { MFS_OK, "" };
	assert_int_equal(parse(text, &spec, &err), MFS_ERR_CONFIG);
	if (!strstr(err.msg, needle))
		fail_msg("message '%s' does not mention '%s'", err.msg, needle);
	assert_null(strchr(err.msg, '\n'));
	mfs_mf_spec_release(&spec);
}

static void spec_rejects_bad_input(void **state)
{
	(void)state;
	expect_bad("", "not valid JSON");
	expect_bad("{\"version\":1,", "not valid JSON");
	expect_bad("[1,2]", "JSON object");
	expect_bad("{\"flow_name\":\"F\"}", "'version'");
	expect_bad("{\"version\":7}", "version 7 is not supported");
	expect_bad("{\"version\":1}", "'flow_name' is missing");
	expect_bad("{\"version\":1,\"flow_name\":3}", "'flow_name' must be a string");
	expect_bad("{\"version\":1,\"flow_name\":\"F\"}", "'datastore.type' is missing");
	expect_bad("{\"version\":1,\"flow_name\":\"F\",\"datastore\":\"s3\"}", "'datastore' must be an object");
	expect_bad("{\"version\":1,\"flow_name\":\"F\",\"datastore\":{\"type\":\"s3\"}}",
		   "'code_package.path' is missing");
	expect_bad("{\"version\":1,\"flow_name\":\"F\",\"datastore\":{\"type\":\"s3\"},"
		   "\"code_package\":{\"path\":\"/p\"},\"python\":\"python\"}", "'executable' is missing");
	const char *base = "{\"version\":1,\"flow_name\":\"F\",\"datastore\":{\"type\":\"s3\"},"
			   "\"code_package\":{\"path\":\"/p\"},\"python\":\"python\",\"executable\":\"python\",";
	char buf[512];
	snprintf(buf, sizeof(buf), "%s\"env\":{\"A B\":\"x\"}}", base);
	expect_bad(buf, "'env'");
	snprintf(buf, sizeof(buf), "%s\"env\":[\"A\"]}", base);
	expect_bad(buf, "'env' must be an object");
	snprintf(buf, sizeof(buf), "%s\"forward_env\":[\"AWS;rm -rf\"]}", base);
	expect_bad(buf, "'forward_env'");
	snprintf(buf, sizeof(buf), "%s\"dependencies\":[\"boto3; curl\"]}", base);
	expect_bad(buf, "'dependencies'");
	snprintf(buf, sizeof(buf), "%s\"rw_paths\":[\"relative\"]}", base);
	expect_bad(buf, "'rw_paths'");
	snprintf(buf, sizeof(buf), "%s\"post_extract_env\":{\"P\":\"a\\\"b\"}}", base);
	expect_bad(buf, "'post_extract_env'");
	snprintf(buf, sizeof(buf), "%s\"bootstrap_commands\":\"echo\"}", base);
	expect_bad(buf, "'bootstrap_commands'");
	snprintf(buf, sizeof(buf), "%s\"config_env\":{\"A=B\":\"x\"}}", base);
	expect_bad(buf, "'config_env'");
	snprintf(buf, sizeof(buf), "%s\"launcher_python\":\"bin/python\"}", base);
	expect_bad(buf, "'launcher_python'");
	snprintf(buf, sizeof(buf), "%s\"default_sizes\":[\"gpu\"]}", base);
	expect_bad(buf, "'default_sizes'");
	const char *timeouts[] = { "0", "-5", "\"900\"", "1.5", "999999999999" };
	for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
		snprintf(buf, sizeof(buf), "%s\"step_timeout\":%s}", base, timeouts[i]);
		expect_bad(buf, "'step_timeout'");
	}
}

static void spec_load_names_missing_file(void **state)
{
	(void)state;
	struct mfs_mf_spec spec;
	struct mfs_err err = { MFS_OK, "" };
	mfs_mf_spec_init(&spec);
	assert_int_equal(mfs_mf_spec_load("/nonexistent/spec.json", &spec, &err), MFS_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "--metaflow-spec /nonexistent/spec.json"));
	mfs_mf_spec_release(&spec);
}

static const char *step_argv[] = {
	"/launcher/python", "/home/ann/flows/hello.py", "--quiet", "--metadata", "local",
	"--datastore", "local", "--datastore-root", "/data/.metaflow", "step", "train",
	"--run-id", "17", "--task-id", "4", "--retry-count", "2", "--tag", "it's a tag",
	"--input-paths", "17/start/1", NULL,
};

static const char *pos(const char *hay, const char *needle)
{
	const char *p = strstr(hay, needle);
	if (!p)
		fail_msg("script lacks '%s'", needle);
	return p;
}

static void script_keeps_metaflow_semantics_in_order(void **state)
{
	(void)state;
	struct mfs_mf_spec spec;
	struct mfs_err err = { MFS_OK, "" };
	struct mfs_step st;
	struct mfs_buf out = MFS_BUF_INIT;
	struct mfs_kvlist env = MFS_KVLIST_INIT;
	char *text = good_spec("/tmp/pkg.tgz");
	assert_int_equal(parse(text, &spec, &err), MFS_OK);
	assert_true(mfs_step_parse(step_argv, &st));
	mfs_step_set_flow_name(&st, "HelloFlow");
	assert_int_equal(mfs_mf_build_script(&spec, &st, step_argv, &env, &out, &err), MFS_OK);
	const char *s = out.data;

	const char *logs = pos(s, "mkdir -p \"$PWD/.logs\"");
	const char *exports = pos(s, "MF_PATHSPEC=HelloFlow/17/train/4 ");
	pos(s, "MF_ATTEMPT=2");
	pos(s, "MF_DATASTORE=local ");
	pos(s, "MF_DATASTORE_ROOT=/data/.metaflow\n");
	const char *funcs = pos(s, "mflog() {");
	pos(s, "MFS_PY=$(command -v python3 || echo python3)");
	pos(s, "flush_mflogs() {");
	const char *deps = pos(s, "import boto3, requests");
	pos(s, "METAFLOW_SKIP_INSTALL_DEPENDENCIES");
	const char *dirs = pos(s, "mkdir -p metaflow && cd metaflow && mkdir -p .metaflow");
	const char *tar = pos(s, "tar -xzf job.tar");
	const char *pp = pos(s, "export PYTHONPATH=\"$(pwd)/.mf_code${PYTHONPATH:+:$PYTHONPATH}\"");
	pos(s, "export METAFLOW_EXTRACTED_ROOT=\"$(pwd)\"");
	const char *boot1 = pos(s, "echo boot-one &&");
	const char *boot2 = pos(s, "echo boot-two &&");
	const char *cmd = pos(s, "/venv/bin/python -u hello.py ");
	const char *save = pos(s, "metaflow.mflog.save_logs >/dev/null\nexit $c");
	assert_true(logs < exports && exports < funcs && funcs < deps && deps < dirs && dirs < tar &&
		    tar < pp && pp < boot1 && boot1 < boot2 && boot2 < cmd && cmd < save);
	/* the step's own words, quoted; nothing of the launcher's interpreter */
	pos(cmd, " step train --run-id 17 ");
	pos(cmd, "'it'\\''s a tag'");
	assert_null(strstr(s, "/launcher/python"));
	assert_int_equal(env.n, 0);

	/* and it is valid bash */
	char path[] = "/tmp/mfs-script-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, out.data, out.len), (ssize_t)out.len);
	close(fd);
	char check[128];
	snprintf(check, sizeof(check), "bash -n %s", path);
	assert_int_equal(system(check), 0);
	unlink(path);

	mfs_kvlist_release(&env);
	mfs_buf_release(&out);
	mfs_step_release(&st);
	mfs_mf_spec_release(&spec);
	free(text);
}

static void long_input_paths_move_to_env_chunks(void **state)
{
	(void)state;
	struct mfs_mf_spec spec;
	struct mfs_err err = { MFS_OK, "" };
	struct mfs_step st;
	struct mfs_buf out = MFS_BUF_INIT, paths = MFS_BUF_INIT, joined = MFS_BUF_INIT;
	struct mfs_kvlist env = MFS_KVLIST_INIT;
	char *text = good_spec("/tmp/pkg.tgz");
	assert_int_equal(parse(text, &spec, &err), MFS_OK);
	for (int i = 0; paths.len < MFS_MF_INPUT_CHUNK + 1000; i++)
		mfs_buf_addf(&paths, "%s17/split/%d", i ? "," : "", i);
	const char *argv[] = { "python", "f.py", "step", "join", "--run-id", "17", "--task-id", "9",
			       "--input-paths", paths.data, NULL };
	assert_true(mfs_step_parse(argv, &st));
	assert_int_equal(mfs_mf_build_script(&spec, &st, argv, &env, &out, &err), MFS_OK);
	assert_int_equal(env.n, 2);
	mfs_buf_adds(&joined, mfs_kvlist_get(&env, "METAFLOW_INPUT_PATHS_0"));
	mfs_buf_adds(&joined, mfs_kvlist_get(&env, "METAFLOW_INPUT_PATHS_1"));
	assert_string_equal(joined.data, paths.data);
	pos(out.data, "--input-paths \"${METAFLOW_INPUT_PATHS_0}${METAFLOW_INPUT_PATHS_1}\"");
	assert_null(strstr(out.data, "17/split/5,"));
	mfs_kvlist_release(&env);
	mfs_buf_release(&out);
	mfs_buf_release(&paths);
	mfs_buf_release(&joined);
	mfs_step_release(&st);
	mfs_mf_spec_release(&spec);
	free(text);
}

struct capture {
	struct mfs_buf out[2];
};

static void capture_write(void *ctx, enum mfs_stream stream, const char *data, size_t len)
{
	struct capture *c = ctx;
	mfs_buf_add(&c->out[stream == MFS_STDERR], data, len);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; p && (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static void output_lines_are_decorated_once(void **state)
{
	(void)state;
	struct capture cap = { { MFS_BUF_INIT, MFS_BUF_INIT } };
	struct mfs_io down = { capture_write, &cap };
	struct mfs_mf_task t;
	mfs_mf_task_init(&t, NULL);
	t.down = &down;
	mfs_mf_io_write(&t, MFS_STDOUT, "hel", 3);
	const char *more = "lo\nsecond\n[MFLOG|0|2024-01-01T00:00:00.000000Z|task|x]kept\n";
	mfs_mf_io_write(&t, MFS_STDOUT, more, strlen(more));
	mfs_mf_io_write(&t, MFS_STDERR, "bin\x01\xff\n", 6);
	mfs_mf_io_write(&t, MFS_STDOUT, "no newline", 10);
	assert_int_equal(count(cap.out[0].data, "[MFLOG|0|"), 3); /* hello, second, kept as is */
	assert_non_null(strstr(cap.out[0].data, "]hello\n"));
	assert_non_null(strstr(cap.out[0].data, "]second\n"));
	assert_non_null(strstr(cap.out[0].data, "\n[MFLOG|0|2024-01-01T00:00:00.000000Z|task|x]kept\n"));
	assert_null(strstr(cap.out[0].data, "no newline"));
	assert_non_null(memmem(cap.out[1].data, cap.out[1].len, "]bin\x01\xff\n", 7));
	mfs_mf_task_release(&t); /* flushes the unfinished line */
	assert_non_null(strstr(cap.out[0].data, "]no newline\n"));
	assert_int_equal(count(cap.out[0].data, "[MFLOG|0|"), 4);
	mfs_buf_release(&cap.out[0]);
	mfs_buf_release(&cap.out[1]);
}

/* Output that never ends a line is passed on in bounded pieces: once it
 * was held in memory until the command ended, however large. */
static void an_endless_line_is_held_only_up_to_the_bound(void **state)
{
	(void)state;
	struct capture cap = { { MFS_BUF_INIT, MFS_BUF_INIT } };
	struct mfs_io down = { capture_write, &cap };
	struct mfs_mf_task t;
	char chunk[4096];
	size_t sent = 0;
	mfs_mf_task_init(&t, NULL);
	t.down = &down;
	memset(chunk, 'x', sizeof(chunk));
	for (int i = 0; i < 1024; i++) { /* 4 MiB, no newline */
		mfs_mf_io_write(&t, MFS_STDOUT, chunk, sizeof(chunk));
		sent += sizeof(chunk);
		assert_true(t.partial[0].len <= MFS_MF_LINE_MAX);
	}
	mfs_mf_io_write(&t, MFS_STDOUT, chunk, 100);
	sent += 100;
	mfs_mf_io_write(&t, MFS_STDOUT, "end\n", 4);
	mfs_mf_task_release(&t);
	/* Every byte arrived, in 64 lines of the bound and one with the rest. */
	size_t xs = 0;
	for (size_t i = 0; i < cap.out[0].len; i++)
		xs += cap.out[0].data[i] == 'x';
	assert_int_equal(xs, sent);
	assert_int_equal(count(cap.out[0].data, "[MFLOG|0|"), sent / MFS_MF_LINE_MAX + 1);
	assert_non_null(strstr(cap.out[0].data, "xend\n"));
	mfs_buf_release(&cap.out[0]);
	mfs_buf_release(&cap.out[1]);
}

static char *write_temp(const char *text, const char *suffix)
{
	char path[] = "/tmp/mfs-test-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	(void)suffix;
	return mfs_xstrdup(path);
}

/* The one relay rule: the launcher cannot see local metadata written in
 * the sandbox when it uses the service or a non-local datastore. */
static void relay_needed_when_the_launcher_cannot_see_the_metadata(void **state)
{
	(void)state;
	static const struct { const char *md, *ds; bool relay; } cases[] = {
		{ "local", "local", false }, { NULL, NULL, false }, { "local", NULL, false },
		{ "service", "local", true }, { "local", "s3", true }, { "service", "s3", true },
		{ NULL, "azure", true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mfs_step st;
		memset(&st, 0, sizeof(st));
		st.metadata = (char *)cases[i].md;
		st.datastore = (char *)cases[i].ds;
		assert_int_equal(mfs_mf_relay_needed(&st), cases[i].relay);
	}
}

static enum mfs_code prepare(struct mfs_job *job, struct mfs_mf_task *t, const char *spec,
			     const char *const *argv, struct mfs_err *err)
{
	mfs_job_init(job);
	mfs_mf_task_init(t, spec);
	mfs_job_set_argv(job, argv);
	job->prepare = mfs_mf_prepare;
	job->prepare_ctx = t;
	return mfs_job_prepare(job, err);
}

static void prepare_rewrites_the_job(void **state)
{
	(void)state;
	struct mfs_job job;
	struct mfs_mf_task t;
	struct mfs_err err = { MFS_OK, "" };
	char *pkg = write_temp("not really a tarball", ".tgz");
	char *text = good_spec(pkg);
	char *spec = write_temp(text, ".json");
	const char *argv[] = { "/launcher/python", "flow.py", "--metadata", "service", "step", "a",
			       "--run-id", "5", "--task-id", "6", NULL };
	setenv("MFS_TEST_SECRET", "s3cr3t", 1);
	unsetenv("MFS_TEST_UNSET");

	assert_int_equal(prepare(&job, &t, spec, argv, &err), MFS_OK);
	assert_int_equal(job.argv.n, 3);
	assert_string_equal(job.argv.v[0], "bash");
	assert_string_equal(job.argv.v[1], "-c");
	assert_non_null(strstr(job.argv.v[2], " --metadata local step a "));
	assert_null(strstr(job.argv.v[2], "s3cr3t")); /* secrets never in the script */
	assert_string_equal(job.step.flow_name, "HelloFlow");
	assert_string_equal(mfs_kvlist_get(&job.env, "METAFLOW_USER"), "ann");
	/* config: a secret-looking name never reaches the sandbox; the spec's
	 * own env wins over config */
	assert_string_equal(mfs_kvlist_get(&job.env, "METAFLOW_S3_ENDPOINT_URL"), "http://s3");
	assert_null(mfs_kvlist_get(&job.env, "METAFLOW_OTEL_AUTH_HEADER"));
	assert_string_equal(mfs_kvlist_get(&job.env, "METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE"),
			    "aws-secrets-manager"); /* names a service: the @secrets backend */
	assert_string_equal(mfs_kvlist_get(&job.env, "FOO"), "bar baz");
	/* service metadata: local inside, and the task ships it for the relay */
	assert_string_equal(mfs_kvlist_get(&job.env, "METAFLOW_DEFAULT_METADATA"), "local");
	assert_string_equal(mfs_kvlist_get(&job.env, "METAFLOW_SANDBOX_METADATA_RELAY"), "1");
	assert_int_equal(job.size_defaults, MFS_CAP_CPU | MFS_CAP_MEMORY);
	assert_string_equal(mfs_kvlist_get(&job.env, "MFS_TEST_SECRET"), "s3cr3t");
	assert_null(mfs_kvlist_get(&job.env, "MFS_TEST_UNSET"));
	assert_string_equal(mfs_kvlist_get(&job.uploads, MFS_MF_PACKAGE_REMOTE), pkg);
	assert_int_equal(job.rw_paths.n, 1);
	assert_ptr_equal(job.io, &t.io);
	mfs_mf_task_release(&t);
	mfs_job_release(&job);

	/* local metadata and datastore: nothing to relay, the timeout is
	 * raised above the step's @timeout (900 s) with room for set-up */
	const char *local_argv[] = { "/launcher/python", "flow.py", "--metadata", "local",
				     "--datastore", "local", "step", "a", "--run-id", "5",
				     "--task-id", "6", NULL };
	mfs_job_init(&job);
	job.timeout_s = 600;
	mfs_mf_task_init(&t, spec);
	mfs_job_set_argv(&job, local_argv);
	job.prepare = mfs_mf_prepare;
	job.prepare_ctx = &t;
	assert_int_equal(mfs_job_prepare(&job, &err), MFS_OK);
	assert_string_equal(mfs_kvlist_get(&job.env, "METAFLOW_DEFAULT_METADATA"), "local");
	assert_null(mfs_kvlist_get(&job.env, "METAFLOW_SANDBOX_METADATA_RELAY"));
	assert_int_equal(job.timeout_s, 900 + MFS_MF_TIMEOUT_SLACK_S);
	mfs_mf_task_release(&t);
	mfs_job_release(&job);

	/* not a step command: one clear line */
	const char *plain[] = { "echo", "hi", NULL };
	assert_int_equal(prepare(&job, &t, spec, plain, &err), MFS_ERR_USAGE);
	assert_non_null(strstr(err.msg, "needs a Metaflow step command"));
	mfs_mf_task_release(&t);
	mfs_job_release(&job);

	/* the package file vanished */
	unlink(pkg);
	assert_int_equal(prepare(&job, &t, spec, argv, &err), MFS_ERR_CONFIG);
	assert_non_null(strstr(err.msg, "code package"));
	mfs_mf_task_release(&t);
	mfs_job_release(&job);

	unlink(spec);
	unsetenv("MFS_TEST_SECRET");
	free(spec);
	free(text);
	free(pkg);
}

/* A backend on this machine runs a plain-python step and the helpers with
 * the launcher's interpreter and installs nothing; a remote one keeps the
 * spec's words; an environment's own interpreter is never replaced. */
static void launcher_python_only_on_this_machine(void **state)
{
	(void)state;
	static const struct { const char *backend, *exe, *want_exe, *want_py; bool deps; } cases[] = {
		{ "local", " python3 ", "'/opt/my py/bin/python'", "/opt/my py/bin/python", false },
		{ "local", "$MF_ARCH/env/bin/python -s", "$MF_ARCH/env/bin/python -s",
		  "/opt/my py/bin/python", false },
		{ "e2b", "python", "python", "python", true },
		{ NULL, "python", "python", "python", true },
	};
	char *pkg = write_temp("pkg", ".tgz");
	const char *argv[] = { "/launcher/python", "flow.py", "step", "a", "--run-id", "5",
			       "--task-id", "6", NULL };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mfs_buf text = MFS_BUF_INIT;
		struct mfs_job job;
		struct mfs_mf_task t;
		struct mfs_err err = { MFS_OK, "" };
		mfs_buf_addf(&text, "{\"version\":1,\"flow_name\":\"F\",\"datastore\":{\"type\":\"s3\"},"
			     "\"code_package\":{\"path\":\"%s\"},\"executable\":\"%s\","
			     "\"launcher_python\":\"/opt/my py/bin/python\","
			     "\"dependencies\":[\"boto3\"]}", pkg, cases[i].exe);
		char *spec = write_temp(text.data, ".json");
		mfs_job_init(&job);
		job.ops = cases[i].backend ? mfs_backend_find(cases[i].backend) : NULL;
		mfs_mf_task_init(&t, spec);
		mfs_job_set_argv(&job, argv);
		job.prepare = mfs_mf_prepare;
		job.prepare_ctx = &t;
		assert_int_equal(mfs_job_prepare(&job, &err), MFS_OK);
		assert_string_equal(t.spec.executable, cases[i].want_exe);
		assert_string_equal(t.spec.python, cases[i].want_py);
		assert_int_equal(t.spec.dependencies.n, cases[i].deps ? 1 : 0);
		assert_non_null(strstr(job.argv.v[2], cases[i].want_exe));
		mfs_mf_task_release(&t);
		mfs_job_release(&job);
		unlink(spec);
		free(spec);
		mfs_buf_release(&text);
	}
	unlink(pkg);
	free(pkg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(spec_parses_every_field),
		cmocka_unit_test(spec_rejects_bad_input),
		cmocka_unit_test(spec_load_names_missing_file),
		cmocka_unit_test(script_keeps_metaflow_semantics_in_order),
		cmocka_unit_test(long_input_paths_move_to_env_chunks),
		cmocka_unit_test(output_lines_are_decorated_once),
		cmocka_unit_test(an_endless_line_is_held_only_up_to_the_bound),
		cmocka_unit_test(relay_needed_when_the_launcher_cannot_see_the_metadata),
		cmocka_unit_test(prepare_rewrites_the_job),
		cmocka_unit_test(launcher_python_only_on_this_machine),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
