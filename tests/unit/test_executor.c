/* Unit tests for executor.c against a recording fake backend: the sandbox
 * is destroyed on every path unless --keep, labels carry the step, the two
 * hooks run at their documented places, dry-run creates nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "mfs/util/cancel.h"
#include "mfs/util/clock.h"
#include "mfs/core/executor.h"

/* ---- fake backend ---- */
static struct {
	struct mfs_buf log;           /* "create upload:R exec destroy ..." */
	struct mfs_kvlist labels;     /* copied at create */
	struct mfs_strv exec_argv;    /* last exec */
	long exec_timeout;
	enum mfs_code fail_probe, fail_create, fail_upload, fail_exec;
	int exec_status;
	bool cancel_during_exec;
	bool speak;                   /* create and exec say a line each */
	int live;                     /* sandboxes created and not destroyed */
	int kept;                     /* of those, released by --keep */
	enum mfs_code fail_destroy;   /* the sandbox is freed, its removal failed */
	double destroy_bound;         /* seconds destroy() was given */
	const char *id;               /* the id create() answers; NULL: fake-1 */
} fake;

static void logw(const char *w)
{
	if (fake.log.len)
		mfs_buf_addch(&fake.log, ' ');
	mfs_buf_adds(&fake.log, w);
}

static enum mfs_code f_probe(struct mfs_buf *notes, struct mfs_err *err)
{
	(void)notes;
	logw("probe");
	return fake.fail_probe ? mfs_fail(err, fake.fail_probe, "probe says no") : MFS_OK;
}

static enum mfs_code f_create(const struct mfs_sandbox_spec *spec, struct mfs_sandbox **out,
			      struct mfs_err *err)
{
	logw("create");
	if (fake.fail_create)
		return mfs_fail(err, fake.fail_create, "create failed");
	for (size_t i = 0; i < spec->labels->n; i++)
		mfs_kvlist_set(&fake.labels, spec->labels->items[i].key, spec->labels->items[i].value);
	mfs_kvlist_set(&fake.labels, "_name", spec->name);
	if (fake.speak)
		mfs_sayf(spec->say, MFS_SAY_INFO, "fake: creating %s", spec->name);
	struct mfs_sandbox *sb = mfs_xcalloc(1, sizeof(*sb));
	sb->id = mfs_xstrdup(fake.id ? fake.id : "fake-1");
	fake.live++;
	*out = sb;
	return MFS_OK;
}

static enum mfs_code f_upload(struct mfs_sandbox *sb, const char *l, const char *r, struct mfs_err *err)
{
	(void)sb, (void)l;
	struct mfs_buf w = MFS_BUF_INIT;
	mfs_buf_addf(&w, "upload:%s", r);
	logw(w.data);
	mfs_buf_release(&w);
	return fake.fail_upload ? mfs_fail(err, fake.fail_upload, "upload failed") : MFS_OK;
}

static enum mfs_code f_exec(struct mfs_sandbox *sb, const struct mfs_exec_req *req,
			    const struct mfs_io *io, int *status, struct mfs_err *err)
{
	logw("exec");
	if (fake.speak)
		mfs_sayf(sb->say, MFS_SAY_WARN, "fake: slow exec");
	mfs_strv_release(&fake.exec_argv);
	mfs_strv_pushv(&fake.exec_argv, req->argv);
	fake.exec_timeout = req->timeout_s;
	io->write(io->ctx, MFS_STDOUT, "out\0bin", 7);
	io->write(io->ctx, MFS_STDERR, "err", 3);
	if (fake.cancel_during_exec)
		mfs_cancel_request(SIGTERM);
	if (fake.fail_exec)
		return mfs_fail(err, fake.fail_exec, "exec failed");
	*status = fake.exec_status;
	return MFS_OK;
}

static enum mfs_code f_destroy(struct mfs_sandbox *sb, struct mfs_err *err)
{
	logw("destroy");
	fake.destroy_bound = sb->destroy_by - mfs_now_s();
	free(sb->id);
	free(sb);
	fake.live--;
	return fake.fail_destroy ? mfs_fail(err, fake.fail_destroy, "delete failed") : MFS_OK;
}

/* --keep: the handle goes, the (fake) sandbox stays; teardown checks it. */
static void f_release(struct mfs_sandbox *sb)
{
	logw("release");
	free(sb->id);
	free(sb);
	fake.kept++;
}

static void f_describe(const struct mfs_sandbox *sb, struct mfs_buf *out)
{
	mfs_buf_addf(out, "enter: fake-shell %s\nline two", sb->id);
}

static const struct mfs_backend_ops fake_ops = {
	.name = "fake", .summary = "test", .caps = MFS_CAP_MEMORY,
	.probe = f_probe, .create = f_create, .upload = f_upload, .exec = f_exec,
	.destroy = f_destroy, .release = f_release, .describe = f_describe,
};

/* Like fake_ops, but what it honours depends on the spec: no disk ever,
 * cpu only with an image. */
static unsigned f_caps_for(const struct mfs_sandbox_spec *spec, struct mfs_buf *why)
{
	mfs_buf_adds(why, "fakes are small");
	return MFS_CAP_MEMORY | MFS_CAP_IMAGE | (spec->image ? MFS_CAP_CPU : 0);
}

static const struct mfs_backend_ops sized_ops = {
	.name = "sized", .summary = "test", .caps = MFS_CAP_MEMORY | MFS_CAP_CPU | MFS_CAP_IMAGE,
	.caps_for = f_caps_for,
	.probe = f_probe, .create = f_create, .upload = f_upload, .exec = f_exec,
	.destroy = f_destroy, .release = f_release, .describe = f_describe,
};

/* ---- capture of output and messages ---- */
static struct mfs_buf out_bytes, err_bytes, said;

static void cap_write(void *ctx, enum mfs_stream s, const char *d, size_t n)
{
	(void)ctx;
	mfs_buf_add(s == MFS_STDERR ? &err_bytes : &out_bytes, d, n);
}
static const struct mfs_io cap_io = { cap_write, NULL };

static void cap_say(void *ctx, enum mfs_say_level level, const char *line)
{
	(void)ctx;
	if (level == MFS_SAY_PROGRESS)
		return; /* transient: a terminal's business */
	mfs_buf_addf(&said, "%s%s\n", level == MFS_SAY_WARN ? "warning: " : "", line);
}

static int setup(void **state)
{
	(void)state;
	memset(&fake, 0, sizeof(fake));
	mfs_buf_init(&out_bytes);
	mfs_buf_init(&err_bytes);
	mfs_buf_init(&said);
	mfs_cancel_init();
	mfs_cancel_reset();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	assert_int_equal(fake.live, fake.kept);
	mfs_buf_release(&fake.log);
	mfs_kvlist_release(&fake.labels);
	mfs_strv_release(&fake.exec_argv);
	mfs_buf_release(&out_bytes);
	mfs_buf_release(&err_bytes);
	mfs_buf_release(&said);
	mfs_cancel_reset();
	return 0;
}

static void new_job(struct mfs_job *job, const char *const *argv)
{
	mfs_job_init(job);
	job->ops = &fake_ops;
	job->io = &cap_io;
	job->say.fn = cap_say;
	mfs_job_set_argv(job, argv);
}

static void new_sized_job(struct mfs_job *job, const char *const *argv)
{
	new_job(job, argv);
	job->ops = &sized_ops;
}

static const char *const step_argv[] = { "python3", "hello.py", "--metadata", "local", "step", "start",
					 "--run-id", "17", "--task-id", "4", "--retry-count", "1", NULL };

static void happy_path(void **state)
{
	(void)state;
	struct mfs_job job;
	struct mfs_job_result res;
	struct mfs_err err;
	new_job(&job, step_argv);
	mfs_kvlist_set(&job.uploads, "data/x", "/etc/hostname");
	fake.exec_status = 7;
	mfs_job_result_init(&res);
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_OK);
	assert_true(res.ran);
	assert_int_equal(res.status, 7);
	assert_string_equal(fake.log.data, "create upload:data/x exec destroy");
	assert_int_equal(out_bytes.len, 7);
	assert_memory_equal(out_bytes.data, "out\0bin", 7);
	assert_string_equal(err_bytes.data, "err");
	assert_string_equal(mfs_kvlist_get(&fake.labels, "mfsandbox"), "1");
	assert_string_equal(mfs_kvlist_get(&fake.labels, "mfsandbox.flow"), "hello");
	assert_string_equal(mfs_kvlist_get(&fake.labels, "mfsandbox.run"), "17");
	assert_string_equal(mfs_kvlist_get(&fake.labels, "mfsandbox.step"), "start");
	assert_string_equal(mfs_kvlist_get(&fake.labels, "mfsandbox.task"), "4");
	assert_string_equal(mfs_kvlist_get(&fake.labels, "mfsandbox.attempt"), "1");
	assert_non_null(mfs_kvlist_get(&fake.labels, "mfsandbox.created"));
	assert_non_null(mfs_kvlist_get(&fake.labels, "mfsandbox.pid"));
	assert_non_null(mfs_kvlist_get(&fake.labels, "mfsandbox.host"));
	assert_null(mfs_kvlist_get(&fake.labels, "mfsandbox.timeout"));
	assert_string_equal(mfs_kvlist_get(&fake.labels, "_name"), "mfs-hello-17-start-4-1");
	assert_string_equal(said.data, "hello/17/start/4 (attempt 1) in fake sandbox fake-1\n");
	assert_int_equal(fake.exec_argv.n, 12);
	mfs_job_result_release(&res);
	mfs_job_release(&job);
}

static void quiet_and_plain_commands_have_no_header(void **state)
{
	(void)state;
	const char *argv[] = { "echo", "hi", NULL };
	struct mfs_job job;
	struct mfs_job_result res;
	struct mfs_err err;
	new_job(&job, argv);
	job.timeout_s = 30;
	mfs_job_result_init(&res);
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_OK);
	assert_int_equal(said.len, 0);
	assert_string_equal(mfs_kvlist_get(&fake.labels, "mfsandbox.timeout"), "90");
	assert_null(mfs_kvlist_get(&fake.labels, "mfsandbox.flow"));
	assert_true(fake.exec_timeout >= 29 && fake.exec_timeout <= 30);
	mfs_job_release(&job);
	new_job(&job, step_argv);
	job.quiet = true;
	job.memory_mb = 100;
	job.cpu = 1; /* not in caps: the warning is quiet too */
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_OK);
	assert_int_equal(said.len, 0);
	mfs_job_result_release(&res);
	mfs_job_release(&job);
}

static void warns_about_limits_it_cannot_enforce(void **state)
{
	(void)state;
	const char *argv[] = { "true", NULL };
	struct mfs_job job;
	struct mfs_job_result res;
	struct mfs_err err;
	new_job(&job, argv);
	job.cpu = 2;
	job.memory_mb = 512;
	mfs_job_result_init(&res);
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_OK);
	assert_non_null(strstr(said.data, "warning: fake: --cpu is not applied"));
	assert_null(strstr(said.data, "--memory"));
	mfs_job_result_release(&res);
	mfs_job_release(&job);
}

static void caps_for_spec_refuse_before_create_or_warn_once(void **state)
{
	(void)state;
	const char *argv[] = { "true", NULL };
	struct mfs_job job;
	struct mfs_job_result res;
	struct mfs_err err;
	mfs_job_result_init(&res);

	/* --disk is refused, in a dry run too, and nothing is made */
	new_sized_job(&job, argv);
	job.disk_gb = 5;
	job.cpu = 2;
	job.dry_run = true;
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_ERR_UNSUPPORTED);
	assert_non_null(strstr(err.msg, "cannot honour --disk: fakes are small"));
	job.dry_run = false;
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_ERR_UNSUPPORTED);
	assert_int_equal(fake.log.len, 0);
	assert_int_equal(said.len, 0);
	mfs_job_release(&job);

	/* cpu without an image and network none: one warning line for both */
	new_sized_job(&job, argv);
	job.cpu = 2;
	job.memory_mb = 64;
	job.network = mfs_xstrdup("none");
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_OK);
	assert_string_equal(said.data, "warning: sized: --cpu and --network none are not applied: "
			    "fakes are small; the command runs without them\n");
	mfs_job_release(&job);

	/* with an image the same cpu is honoured: nothing to say */
	mfs_buf_reset(&said);
	new_sized_job(&job, argv);
	job.cpu = 2;
	job.image = mfs_xstrdup("big");
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_OK);
	assert_int_equal(said.len, 0);
	mfs_job_release(&job);
	mfs_job_result_release(&res);
}

/* Sizes an integration defaulted (size_defaults) are applied where the
 * backend can and dropped silently where it cannot; asked ones still get the
 * one warning or the refusal.  The @e2b decorator relies on this to send its
 * defaults without a warning per task. */
static void defaulted_sizes_are_dropped_without_a_word(void **state)
{
	static const struct { unsigned defaults; bool dry_run; const char *said; } cases[] = {
		/* a defaulted --disk is not refused: dropped like the cpu */
		{ MFS_CAP_CPU | MFS_CAP_MEMORY | MFS_CAP_DISK, true, "" },
		{ MFS_CAP_CPU | MFS_CAP_MEMORY | MFS_CAP_DISK, false, "" },
		/* the same cpu asked for: the one warning line */
		{ MFS_CAP_MEMORY, false, "warning: sized: --cpu is not applied: fakes are small; "
					 "the command runs without it\n" },
	};
	const char *argv[] = { "true", NULL };
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mfs_job job;
		struct mfs_job_result res;
		struct mfs_err err;
		mfs_buf_reset(&said);
		mfs_job_result_init(&res);
		new_sized_job(&job, argv);
		job.cpu = 1;
		job.memory_mb = 1024;
		job.disk_gb = (cases[i].defaults & MFS_CAP_DISK) ? 5 : 0;
		job.size_defaults = cases[i].defaults;
		job.dry_run = cases[i].dry_run;
		assert_int_equal(mfs_job_run(&job, &res, &err), MFS_OK);
		assert_string_equal(said.data ? said.data : "", cases[i].said);
		if (job.dry_run) {
			assert_non_null(strstr(res.plan.data, "cpu:     (backend default)"));
			assert_non_null(strstr(res.plan.data, "memory:  1024 MB")); /* honoured: kept */
			assert_non_null(strstr(res.plan.data, "disk:    (backend default)"));
		}
		mfs_job_release(&job);
		mfs_job_result_release(&res);
	}
}

/* A backend speaks only through the channel; --quiet silences it too. */
static void backend_lines_go_through_the_executor(void **state)
{
	(void)state;
	const char *argv[] = { "true", NULL };
	struct mfs_job job;
	struct mfs_job_result res;
	struct mfs_err err;
	mfs_job_result_init(&res);
	fake.speak = true;
	new_job(&job, argv);
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_OK);
	assert_non_null(strstr(said.data, "fake: creating mfs-"));
	assert_non_null(strstr(said.data, "warning: fake: slow exec\n"));
	mfs_job_release(&job);
	mfs_buf_reset(&said);
	new_job(&job, argv);
	job.quiet = true;
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_OK);
	assert_int_equal(said.len, 0);
	mfs_job_release(&job);
	mfs_job_result_release(&res);
}

static void failures_still_destroy(void **state)
{
	(void)state;
	struct { enum mfs_code *slot; enum mfs_code code; const char *log; bool ran; } cases[] = {
		{ &fake.fail_create, MFS_ERR_BACKEND, "create probe", false },
		{ &fake.fail_upload, MFS_ERR_HTTP, "create upload:r destroy", false },
		{ &fake.fail_exec, MFS_ERR_TIMEOUT, "create upload:r exec destroy", true },
		{ &fake.fail_exec, MFS_ERR_BACKEND, "create upload:r exec destroy", true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mfs_job job;
		struct mfs_job_result res;
		struct mfs_err err;
		fake.fail_probe = fake.fail_create = fake.fail_upload = fake.fail_exec = MFS_OK;
		*cases[i].slot = cases[i].code;
		mfs_buf_reset(&fake.log);
		new_job(&job, step_argv);
		job.timeout_s = 5;
		mfs_kvlist_set(&job.uploads, "r", "/etc/hostname");
		mfs_job_result_init(&res);
		assert_int_equal(mfs_job_run(&job, &res, &err), cases[i].code);
		assert_string_equal(fake.log.data, cases[i].log);
		assert_int_equal(res.ran, cases[i].ran);
		assert_int_equal(fake.live, fake.kept);
		assert_true(err.msg[0] != '\0');
		if (cases[i].code == MFS_ERR_TIMEOUT)
			assert_non_null(strstr(err.msg, "--timeout 5s reached"));
		mfs_job_result_release(&res);
		mfs_job_release(&job);
	}
}

static void missing_upload_fails_before_create(void **state)
{
	(void)state;
	struct mfs_job job;
	struct mfs_job_result res;
	struct mfs_err err;
	new_job(&job, step_argv);
	mfs_kvlist_set(&job.uploads, "r", "/nonexistent/file");
	mfs_job_result_init(&res);
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_ERR_USAGE);
	assert_non_null(strstr(err.msg, "--upload /nonexistent/file"));
	assert_int_equal(fake.log.len, 0);
	mfs_job_result_release(&res);
	mfs_job_release(&job);
}

/* probe() only runs to explain a failed create(), and then its answer
 * (what is missing) is the message and decides the exit code. */
static void failed_create_is_explained_by_probe(void **state)
{
	(void)state;
	struct mfs_job job;
	struct mfs_job_result res;
	struct mfs_err err;
	new_job(&job, step_argv);
	mfs_job_result_init(&res);
	fake.fail_create = MFS_ERR_BACKEND;
	fake.fail_probe = MFS_ERR_CONFIG;
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_ERR_CONFIG);
	assert_string_equal(err.msg, "backend fake is not usable here: probe says no");
	assert_string_equal(fake.log.data, "create probe");
	mfs_buf_reset(&fake.log);
	fake.fail_probe = MFS_OK;
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_ERR_BACKEND);
	assert_string_equal(err.msg, "creating the fake sandbox: create failed");
	mfs_buf_reset(&fake.log);
	fake.fail_create = MFS_OK;
	fake.fail_probe = MFS_ERR_CONFIG; /* never asked on the happy path */
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_OK);
	assert_string_equal(fake.log.data, "create exec destroy");
	mfs_job_result_release(&res);
	mfs_job_release(&job);
}

static void cancel_wins_and_destroys(void **state)
{
	(void)state;
	struct mfs_job job;
	struct mfs_job_result res;
	struct mfs_err err;
	new_job(&job, step_argv);
	fake.cancel_during_exec = true;
	mfs_job_result_init(&res);
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_ERR_CANCELLED);
	assert_string_equal(fake.log.data, "create exec destroy");
	mfs_job_result_release(&res);
	mfs_job_release(&job);

	/* the request is still pending, as after a signal before create:
	 * nothing is created at all */
	mfs_buf_reset(&fake.log);
	fake.cancel_during_exec = false;
	new_job(&job, step_argv);
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_ERR_CANCELLED);
	assert_int_equal(fake.log.len, 0);
	mfs_job_result_release(&res);
	mfs_job_release(&job);
}

/* A removal that gives up (the bound, a second signal) leaves the
 * command's status standing and names the sandbox and `kill --stale`. */
static void delete_given_up_is_one_line_and_the_status_stands(void **state)
{
	(void)state;
	static const struct { enum mfs_code rc; long bound; const char *line; } cases[] = {
		{ MFS_ERR_TIMEOUT, 7, "warning: gave up removing fake sandbox fake-1 after 7 s "
		  "(MFSANDBOX_DELETE_TIMEOUT_S); it may still exist: remove it with: mfsandbox kill "
		  "--backend fake --stale\n" },
		{ MFS_ERR_CANCELLED, 0, "warning: gave up removing fake sandbox fake-1 on a second "
		  "signal; it may still exist: remove it with: mfsandbox kill --backend fake "
		  "--stale\n" },
	};
	for (size_t i = 0; i < 2; i++) {
		struct mfs_job job;
		struct mfs_job_result res;
		struct mfs_err err;
		new_job(&job, (const char *const[]){ "true", NULL });
		job.delete_timeout_s = cases[i].bound;
		fake.fail_destroy = cases[i].rc;
		fake.exec_status = 3;
		mfs_buf_reset(&said);
		mfs_job_result_init(&res);
		assert_int_equal(mfs_job_run(&job, &res, &err), MFS_OK);
		assert_int_equal(res.status, 3);
		assert_string_equal(said.data, cases[i].line);
		long want = cases[i].bound ? cases[i].bound : MFS_DELETE_TIMEOUT_S;
		assert_true(fake.destroy_bound > want - 1 && fake.destroy_bound <= want);
		mfs_job_result_release(&res);
		mfs_job_release(&job);
	}
}

static void keep_does_not_destroy(void **state)
{
	(void)state;
	struct mfs_job job;
	struct mfs_job_result res;
	struct mfs_err err;
	new_job(&job, step_argv);
	job.keep = true;
	job.quiet = true; /* --keep instructions are shown even when quiet */
	/* The provider chose the id: the line to paste quotes it (an id like
	 * this one was printed as a command that would run `x`). */
	fake.id = "fake-1; x";
	mfs_job_result_init(&res);
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_OK);
	fake.id = NULL;
	assert_string_equal(fake.log.data, "create exec release");
	assert_non_null(strstr(said.data, "kept fake sandbox fake-1; x"));
	assert_non_null(strstr(said.data, "  enter: fake-shell fake-1; x\n  line two\n"));
	assert_non_null(strstr(said.data, "mfsandbox kill --backend fake 'fake-1; x'"));
	/* the handle is freed (valgrind sees no leak), the sandbox lives on */
	assert_int_equal(fake.live, 1);
	assert_int_equal(fake.kept, 1);
	mfs_job_result_release(&res);
	mfs_job_release(&job);
}

struct hook_trace {
	int prepared, finished;
	struct mfs_job_outcome seen;
	enum mfs_code finish_rc;
};

static enum mfs_code prep(struct mfs_job *job, struct mfs_err *err)
{
	struct hook_trace *t = job->prepare_ctx;
	const char *script[] = { "bash", "-c", "echo from-script", NULL };
	(void)err;
	t->prepared++;
	assert_int_equal(fake.log.len, 0); /* before probe/create */
	mfs_strv_release(&job->argv);
	mfs_strv_pushv(&job->argv, script);
	mfs_kvlist_set(&job->env, "METAFLOW_RUNTIME_ENVIRONMENT", "sandbox");
	return MFS_OK;
}

static enum mfs_code fin(struct mfs_job *job, struct mfs_sandbox *sb, const struct mfs_job_outcome *o,
			 struct mfs_err *err)
{
	struct hook_trace *t = job->finish_ctx;
	t->finished++;
	t->seen = *o;
	assert_non_null(sb);
	assert_null(strstr(fake.log.data, "destroy")); /* sandbox still alive */
	return t->finish_rc ? mfs_fail(err, t->finish_rc, "relay failed") : MFS_OK;
}

static void hooks_run_in_place(void **state)
{
	(void)state;
	struct hook_trace t = { 0 };
	struct mfs_job job;
	struct mfs_job_result res;
	struct mfs_err err;
	new_job(&job, step_argv);
	job.prepare = prep;
	job.prepare_ctx = &t;
	job.finish = fin;
	job.finish_ctx = &t;
	fake.exec_status = 3;
	mfs_job_result_init(&res);
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_OK);
	assert_int_equal(t.prepared, 1);
	assert_int_equal(t.finished, 1);
	assert_true(t.seen.ran);
	assert_int_equal(t.seen.status, 3);
	assert_int_equal(t.seen.code, MFS_OK);
	assert_string_equal(fake.exec_argv.v[2], "echo from-script");
	/* step info from the original argv survives the rewrite */
	assert_string_equal(mfs_kvlist_get(&fake.labels, "mfsandbox.step"), "start");
	mfs_job_release(&job);

	/* a failing relay fails a successful command; the sandbox still goes */
	mfs_buf_reset(&fake.log);
	t.finish_rc = MFS_ERR_HTTP;
	fake.exec_status = 0;
	new_job(&job, step_argv);
	job.finish = fin;
	job.finish_ctx = &t;
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_ERR_HTTP);
	assert_string_equal(err.msg, "relay failed");
	assert_string_equal(fake.log.data, "create exec destroy");
	mfs_job_release(&job);

	/* finish runs on a failed exec too, and sees why */
	mfs_buf_reset(&fake.log);
	t.finish_rc = MFS_OK;
	fake.fail_exec = MFS_ERR_TIMEOUT;
	new_job(&job, step_argv);
	job.finish = fin;
	job.finish_ctx = &t;
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_ERR_TIMEOUT);
	assert_int_equal(t.seen.code, MFS_ERR_TIMEOUT);
	assert_true(t.seen.ran);
	mfs_job_result_release(&res);
	mfs_job_release(&job);
}

static void dry_run_touches_nothing(void **state)
{
	(void)state;
	struct hook_trace t = { 0 };
	struct mfs_job job;
	struct mfs_job_result res;
	struct mfs_err err;
	const char *argv[] = { "env", "DB_PASSWORD=hunter2", "sh", "-c", "export X_TOKEN=abc; run", NULL };
	new_job(&job, argv);
	job.dry_run = true;
	job.prepare = prep;
	job.prepare_ctx = &t;
	mfs_job_release(&job);
	new_job(&job, argv);
	job.dry_run = true;
	job.memory_mb = 256;
	mfs_kvlist_set(&job.env, "AWS_SECRET_ACCESS_KEY", "hunter2");
	mfs_kvlist_set(&job.env, "PLAIN", "visible value");
	mfs_kvlist_set(&job.uploads, "in/a", "/nonexistent");
	mfs_job_result_init(&res);
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_OK);
	assert_int_equal(fake.log.len, 0);
	assert_false(res.ran);
	assert_null(strstr(res.plan.data, "hunter2"));
	assert_null(strstr(res.plan.data, "abc"));
	assert_non_null(strstr(res.plan.data, "AWS_SECRET_ACCESS_KEY=<redacted>"));
	assert_non_null(strstr(res.plan.data, "PLAIN='visible value'"));
	assert_non_null(strstr(res.plan.data, "memory:  256 MB"));
	assert_non_null(strstr(res.plan.data, "/nonexistent -> in/a"));
	assert_non_null(strstr(res.plan.data, "env 'DB_PASSWORD=<redacted>' sh -c 'export X_TOKEN=<redacted>; run'"));
	mfs_job_result_release(&res);
	mfs_job_release(&job);
}

/* A step command's launcher files become uploads before the command runs,
 * below the directory the step runs in, and the command names the copies;
 * a missing one stops the run before create (dry run included). */
static void step_files_are_shipped_first(void **state)
{
	(void)state;
	struct mfs_job job;
	struct mfs_job_result res;
	struct mfs_err err;
	const char *argv[] = { "python3", "f.py", "--local-config-file", "/etc/hostname", "step", "a",
			       "--run-id", "1", "--task-id", "2", NULL };
	new_job(&job, argv);
	job.step_dir = "metaflow";
	mfs_job_result_init(&res);
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_OK);
	assert_string_equal(fake.log.data, "create upload:metaflow/.mfs-files/0-hostname exec destroy");
	assert_string_equal(fake.exec_argv.v[3], ".mfs-files/0-hostname");
	mfs_job_release(&job);

	new_job(&job, argv);
	job.dry_run = true;
	assert_int_equal(mfs_job_run(&job, &res, &err), MFS_OK);
	assert_non_null(strstr(res.plan.data, "/etc/hostname -> .mfs-files/0-hostname\n"));
	assert_non_null(strstr(res.plan.data, "--local-config-file .mfs-files/0-hostname step a"));
	mfs_job_release(&job);

	mfs_buf_reset(&fake.log);
	argv[3] = "/nonexistent/cfg";
	for (int dry = 0; dry < 2; dry++) {
		new_job(&job, argv);
		job.dry_run = dry;
		assert_int_equal(mfs_job_run(&job, &res, &err), MFS_ERR_USAGE);
		assert_non_null(strstr(err.msg, "--local-config-file /nonexistent/cfg"));
		assert_int_equal(fake.log.len, 0);
		mfs_job_release(&job);
	}
	mfs_job_result_release(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(happy_path, setup, teardown),
		cmocka_unit_test_setup_teardown(quiet_and_plain_commands_have_no_header, setup, teardown),
		cmocka_unit_test_setup_teardown(warns_about_limits_it_cannot_enforce, setup, teardown),
		cmocka_unit_test_setup_teardown(failures_still_destroy, setup, teardown),
		cmocka_unit_test_setup_teardown(caps_for_spec_refuse_before_create_or_warn_once, setup, teardown),
		cmocka_unit_test_setup_teardown(defaulted_sizes_are_dropped_without_a_word, setup, teardown),
		cmocka_unit_test_setup_teardown(backend_lines_go_through_the_executor, setup, teardown),
		cmocka_unit_test_setup_teardown(missing_upload_fails_before_create, setup, teardown),
		cmocka_unit_test_setup_teardown(failed_create_is_explained_by_probe, setup, teardown),
		cmocka_unit_test_setup_teardown(cancel_wins_and_destroys, setup, teardown),
		cmocka_unit_test_setup_teardown(delete_given_up_is_one_line_and_the_status_stands, setup,
						teardown),
		cmocka_unit_test_setup_teardown(keep_does_not_destroy, setup, teardown),
		cmocka_unit_test_setup_teardown(hooks_run_in_place, setup, teardown),
		cmocka_unit_test_setup_teardown(dry_run_touches_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(step_files_are_shipped_first, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
