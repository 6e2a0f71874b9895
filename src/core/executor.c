/*
 * executor.c - drive one command through a backend (include/mfs/core/executor.h).
 *
 * The invariant that matters most: once create() handed us a sandbox,
 * destroy() runs on every path (error, timeout, signal) unless --keep.
 * Everything after create therefore records its error and falls through to
 * the single teardown at the end instead of returning early.
 */
#include "mfs/core/executor.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mfs/core/step_files.h"
#include "mfs/util/cancel.h"
#include "mfs/util/clock.h"
#include "mfs/util/pack.h"
#include "mfs/util/launcher_id.h"
#include "mfs/util/redact.h"
#include "mfs/util/file.h"

/* Where --code lands in the work dir before it is unpacked and removed. */
#define CODE_REMOTE ".mfs-code.tar"
/* Extra lifetime the sandbox gets beyond --timeout so that our own exec
 * timeout fires first and we destroy it cleanly. */
#define SANDBOX_TIMEOUT_SLACK_S 60

void mfs_job_init(struct mfs_job *job)
{
	memset(job, 0, sizeof(*job));
	mfs_strv_init(&job->argv);
	mfs_kvlist_init(&job->env);
	mfs_kvlist_init(&job->uploads);
	mfs_strv_init(&job->rw_paths);
	mfs_kvlist_init(&job->ro_binds);
	mfs_kvlist_init(&job->rw_binds);
}

void mfs_job_release(struct mfs_job *job)
{
	free(job->image);
	free(job->gpu);
	free(job->network);
	free(job->code_path);
	mfs_strv_release(&job->rw_paths);
	mfs_kvlist_release(&job->ro_binds);
	mfs_kvlist_release(&job->rw_binds);
	mfs_strv_release(&job->argv);
	mfs_kvlist_release(&job->env);
	mfs_kvlist_release(&job->uploads);
	mfs_step_release(&job->step);
	mfs_job_init(job);
}

void mfs_job_set_argv(struct mfs_job *job, const char *const *argv)
{
	mfs_strv_release(&job->argv);
	mfs_strv_pushv(&job->argv, argv);
	mfs_step_release(&job->step);
	job->is_step = mfs_step_parse((const char *const *)job->argv.v, &job->step);
}

void mfs_job_result_init(struct mfs_job_result *res)
{
	res->ran = false;
	res->status = 0;
	mfs_buf_init(&res->plan);
}

void mfs_job_result_release(struct mfs_job_result *res)
{
	mfs_buf_release(&res->plan);
	mfs_job_result_init(res);
}

enum mfs_code mfs_job_prepare(struct mfs_job *job, struct mfs_err *err)
{
	return job->prepare ? job->prepare(job, err) : MFS_OK;
}

enum mfs_code mfs_job_finish(struct mfs_job *job, struct mfs_sandbox *sb,
			     const struct mfs_job_outcome *outcome, struct mfs_err *err)
{
	return job->finish ? job->finish(job, sb, outcome, err) : MFS_OK;
}

/* The executor's side of the message channel: --quiet drops all but what
 * must be seen, for the executor's own lines and the backend's alike. */
static void filtered_say(void *ctx, enum mfs_say_level level, const char *line)
{
	const struct mfs_job *job = ctx;
	if (job->quiet && level != MFS_SAY_ALWAYS)
		return;
	if (job->say.fn)
		job->say.fn(job->say.ctx, level, line);
}

#define say(job, level, ...) \
	mfs_sayf(&(struct mfs_say){ filtered_say, (void *)(job) }, (level), __VA_ARGS__)

/* ---- output passthrough ------------------------------------------------ */

static void passthrough(void *ctx, enum mfs_stream stream, const char *data, size_t len)
{
	(void)ctx;
	mfs_write_all(stream == MFS_STDERR ? 2 : 1, data, len);
}

static const struct mfs_io passthrough_io = { passthrough, NULL };

/* Collects a helper command's output (unpacking --code) for error messages. */
static void collect(void *ctx, enum mfs_stream stream, const char *data, size_t len)
{
	struct mfs_buf *b = ctx;
	(void)stream;
	if (b->len < 4096)
		mfs_buf_add(b, data, len);
}

/* ---- naming and labels ------------------------------------------------- */

static void add_name_part(struct mfs_buf *out, const char *s)
{
	mfs_buf_addch(out, '-');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		mfs_buf_addch(out, ok ? (char)c : '-');
	}
}

void mfs_job_sandbox_name(const struct mfs_job *job, struct mfs_buf *out)
{
	mfs_buf_adds(out, "mfs");
	if (job->is_step) {
		char attempt[16];
		snprintf(attempt, sizeof(attempt), "%d", job->step.attempt);
		add_name_part(out, job->step.flow_name);
		add_name_part(out, job->step.run_id);
		add_name_part(out, job->step.step);
		add_name_part(out, job->step.task_id);
		add_name_part(out, attempt);
	} else {
		mfs_buf_addf(out, "-%ld-%lld", (long)getpid(), (long long)time(NULL));
	}
}

static long sandbox_timeout(const struct mfs_job *job)
{
	return job->timeout_s > 0 ? job->timeout_s + SANDBOX_TIMEOUT_SLACK_S : 0;
}

static void make_labels(const struct mfs_job *job, struct mfs_kvlist *labels)
{
	char num[32], host[256];

	mfs_kvlist_set(labels, MFS_LABEL_OWNER, "1");
	if (job->is_step) {
		mfs_kvlist_set(labels, MFS_LABEL_FLOW, job->step.flow_name);
		mfs_kvlist_set(labels, MFS_LABEL_RUN, job->step.run_id);
		mfs_kvlist_set(labels, MFS_LABEL_STEP, job->step.step);
		mfs_kvlist_set(labels, MFS_LABEL_TASK, job->step.task_id);
		snprintf(num, sizeof(num), "%d", job->step.attempt);
		mfs_kvlist_set(labels, MFS_LABEL_ATTEMPT, num);
	}
	snprintf(num, sizeof(num), "%lld", (long long)time(NULL));
	mfs_kvlist_set(labels, MFS_LABEL_CREATED, num);
	if (sandbox_timeout(job)) {
		snprintf(num, sizeof(num), "%ld", sandbox_timeout(job));
		mfs_kvlist_set(labels, MFS_LABEL_TIMEOUT, num);
	}
	struct mfs_launcher_id self;
	snprintf(num, sizeof(num), "%ld", (long)getpid());
	mfs_kvlist_set(labels, MFS_LABEL_PID, num);
	if (mfs_launcher_self(&self)) {
		mfs_kvlist_set(labels, MFS_LABEL_MACHINE, self.machine);
		mfs_kvlist_set(labels, MFS_LABEL_BOOT, self.boot);
		snprintf(num, sizeof(num), "%llu", self.start);
		mfs_kvlist_set(labels, MFS_LABEL_PIDSTART, num);
	}
	if (gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		mfs_kvlist_set(labels, MFS_LABEL_HOST, host);
	}
}

/* ---- dry run ----------------------------------------------------------- */

static void add_redacted_word(struct mfs_buf *out, const struct mfs_redactor *r,
			      const char *word)
{
	struct mfs_buf clean = MFS_BUF_INIT;
	mfs_redact(r, &clean, word);
	mfs_buf_add_shell_quoted(out, clean.data ? clean.data : "");
	mfs_buf_release(&clean);
}

static void plan_field(struct mfs_buf *out, const char *name, const char *value)
{
	mfs_buf_addf(out, "  %-8s %s\n", name, value && *value ? value : "(backend default)");
}

/* Host paths a local sandbox shows besides its default view. */
static void describe_binds(const struct mfs_job *job, struct mfs_buf *out)
{
	mfs_buf_adds(out, "host paths:\n");
	if (!job->ro_binds.n && !job->rw_binds.n && !job->rw_paths.n)
		mfs_buf_adds(out, "  (none beyond the backend's default view)\n");
	for (size_t i = 0; i < job->ro_binds.n; i++)
		mfs_buf_addf(out, "  %s -> %s (read-only)\n", job->ro_binds.items[i].value,
			     job->ro_binds.items[i].key);
	for (size_t i = 0; i < job->rw_binds.n; i++)
		mfs_buf_addf(out, "  %s -> %s (writable)\n", job->rw_binds.items[i].value,
			     job->rw_binds.items[i].key);
	for (size_t i = 0; i < job->rw_paths.n; i++)
		mfs_buf_addf(out, "  %s (writable, the Metaflow local datastore)\n", job->rw_paths.v[i]);
}

/* Every secret the job carries, so its value is hidden under any name. */
static void plan_secrets(const struct mfs_job *job, struct mfs_redactor *r)
{
	mfs_redactor_add_env(r, &job->env);
	for (size_t i = 0; job->secret_vars && i < job->secret_vars->n; i++)
		if (mfs_secret_name(job->secret_vars->v[i]))
			mfs_redactor_add(r, getenv(job->secret_vars->v[i]));
}

void mfs_job_describe(const struct mfs_job *job, struct mfs_buf *out)
{
	struct mfs_buf name = MFS_BUF_INIT, tmp = MFS_BUF_INIT;
	struct mfs_redactor secrets;

	mfs_redactor_init(&secrets);
	plan_secrets(job, &secrets);

	mfs_job_sandbox_name(job, &name);
	mfs_buf_addf(out, "dry run: nothing is created\nbackend: %s\nsandbox: %s\n",
		     job->ops ? job->ops->name : "(none)", name.data);
	plan_field(out, "image:", job->image);
	if (job->cpu > 0)
		mfs_buf_addf(&tmp, "%g", job->cpu);
	plan_field(out, "cpu:", tmp.data);
	mfs_buf_reset(&tmp);
	if (job->memory_mb > 0)
		mfs_buf_addf(&tmp, "%ld MB", job->memory_mb);
	plan_field(out, "memory:", tmp.data);
	mfs_buf_reset(&tmp);
	if (job->disk_gb > 0)
		mfs_buf_addf(&tmp, "%ld GB", job->disk_gb);
	plan_field(out, "disk:", tmp.data);
	mfs_buf_reset(&tmp);
	mfs_buf_addf(out, "  %-8s %s\n", "gpu:", job->gpu ? job->gpu : "(none)");
	plan_field(out, "network:", job->network);
	if (job->timeout_s > 0)
		mfs_buf_addf(out, "  %-8s %ld s\n", "timeout:", job->timeout_s);
	else
		mfs_buf_addf(out, "  %-8s (none)\n", "timeout:");
	mfs_buf_addf(out, "  %-8s %s\n", "keep:", job->keep ? "yes" : "no");
	if (job->is_step) {
		mfs_buf_reset(&tmp);
		mfs_step_pathspec(&job->step, &tmp);
		mfs_buf_addf(out, "step: %s (attempt %d)\n", tmp.data, job->step.attempt);
	}
	mfs_buf_adds(out, "env:\n");
	if (!job->env.n)
		mfs_buf_adds(out, "  (none)\n");
	for (size_t i = 0; i < job->env.n; i++) {
		const struct mfs_kv *kv = &job->env.items[i];
		mfs_buf_addf(out, "  %s=", kv->key);
		if (mfs_secret_name(kv->key)) {
			mfs_buf_adds(out, MFS_REDACTED);
		} else {
			mfs_buf_reset(&tmp);
			mfs_redact(&secrets, &tmp, kv->value);
			mfs_buf_add_shell_quoted(out, tmp.data ? tmp.data : "");
		}
		mfs_buf_addch(out, '\n');
	}
	mfs_buf_adds(out, "uploads:\n");
	if (!job->uploads.n && !job->code_path)
		mfs_buf_adds(out, "  (none)\n");
	for (size_t i = 0; i < job->uploads.n; i++)
		mfs_buf_addf(out, "  %s -> %s\n", job->uploads.items[i].value, job->uploads.items[i].key);
	if (job->code_path)
		mfs_buf_addf(out, "  %s -> %s (unpacked into the work dir, then removed)\n",
			     job->code_path, CODE_REMOTE);
	describe_binds(job, out);
	mfs_buf_adds(out, "command:\n  ");
	for (size_t i = 0; i < job->argv.n; i++) {
		if (i)
			mfs_buf_addch(out, ' ');
		add_redacted_word(out, &secrets, job->argv.v[i]);
	}
	mfs_buf_addch(out, '\n');
	mfs_redactor_release(&secrets);
	mfs_buf_release(&name);
	mfs_buf_release(&tmp);
}

/* ---- the run ----------------------------------------------------------- */

/* Seconds left before --timeout (>= 1), 0 without a timeout, -1 when past. */
static long time_left(const struct mfs_job *job, long long deadline)
{
	if (job->timeout_s <= 0)
		return 0;
	long long left = deadline - (long long)mfs_now_s();
	return left > 0 ? (long)left : -1;
}

static enum mfs_code check_between_steps(const struct mfs_job *job, long long deadline,
					 struct mfs_err *err)
{
	if (mfs_cancelled())
		return mfs_fail(err, MFS_ERR_CANCELLED, "cancelled by signal %d", mfs_cancel_signal());
	if (time_left(job, deadline) < 0)
		return mfs_fail(err, MFS_ERR_TIMEOUT, "--timeout %lds reached before the command started",
				job->timeout_s);
	return MFS_OK;
}

static enum mfs_code check_local_files(const struct mfs_job *job, struct mfs_err *err)
{
	struct stat st;
	for (size_t i = 0; i < job->uploads.n; i++) {
		const char *local = job->uploads.items[i].value;
		if (stat(local, &st) != 0)
			return mfs_fail(err, MFS_ERR_USAGE, "--upload %s: %s", local, strerror(errno));
		if (!S_ISREG(st.st_mode))
			return mfs_fail(err, MFS_ERR_USAGE,
					"--upload %s: not a regular file (ship directories with --code)", local);
	}
	if (job->code_path) {
		if (stat(job->code_path, &st) != 0)
			return mfs_fail(err, MFS_ERR_USAGE, "--code %s: %s", job->code_path, strerror(errno));
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
			return mfs_fail(err, MFS_ERR_USAGE,
					"--code %s: must be a directory or a tarball", job->code_path);
	}
	return MFS_OK;
}

/* The spec's sizes and environment choices, which is all caps_for reads. */
static void fill_spec_limits(const struct mfs_job *job, struct mfs_sandbox_spec *spec)
{
	spec->image = job->image;
	spec->cpu = job->cpu;
	spec->memory_mb = job->memory_mb;
	spec->disk_gb = job->disk_gb;
	spec->gpu = job->gpu;
	spec->network = job->network;
}

/* "--a", "--a and --b", "--a, --b and --c" */
static void add_flag_list(struct mfs_buf *out, const char *const *flags, size_t n)
{
	for (size_t i = 0; i < n; i++)
		mfs_buf_addf(out, "%s%s", i == 0 ? "" : i + 1 == n ? " and " : ", ", flags[i]);
}

/* A size the integration defaulted, which the backend cannot honour, is
 * dropped before caps are judged: nobody asked for it. */
static void drop_unmet_defaults(struct mfs_job *job, unsigned caps)
{
	unsigned drop = job->size_defaults & ~caps;
	if (drop & MFS_CAP_CPU)
		job->cpu = 0;
	if (drop & MFS_CAP_MEMORY)
		job->memory_mb = 0;
	if (drop & MFS_CAP_DISK)
		job->disk_gb = 0;
}

/* The capabilities this job's spec gets from its backend; `why` as in
 * caps_for (backend.h). */
static unsigned job_caps(const struct mfs_job *job, struct mfs_buf *why)
{
	struct mfs_sandbox_spec spec = { 0 };
	fill_spec_limits(job, &spec);
	return job->ops->caps_for ? job->ops->caps_for(&spec, why) : job->ops->caps;
}

/* The one place capabilities become behaviour (backend.h): what would
 * change the command's world (--image, --gpu, --disk) is refused before
 * anything is made; a limit that only confines less (--cpu, --memory,
 * --network none) gets one warning line and the command runs. */
static enum mfs_code check_caps(struct mfs_job *job, bool warn, struct mfs_err *err)
{
	static const struct { unsigned cap; bool refuse; const char *flag; } rules[] = {
		{ MFS_CAP_IMAGE, true, "--image" }, { MFS_CAP_GPU, true, "--gpu" },
		{ MFS_CAP_DISK, true, "--disk" }, { MFS_CAP_CPU, false, "--cpu" },
		{ MFS_CAP_MEMORY, false, "--memory" }, { MFS_CAP_NETWORK, false, "--network none" },
	};
	struct mfs_buf why = MFS_BUF_INIT, flags = MFS_BUF_INIT;
	const char *refused[3], *unapplied[3];
	size_t nref = 0, nwarn = 0;
	enum mfs_code rc = MFS_OK;

	if (job->size_defaults) {
		drop_unmet_defaults(job, job_caps(job, &why));
		mfs_buf_reset(&why);
	}
	unsigned asked = (job->image ? MFS_CAP_IMAGE : 0) | (job->gpu ? MFS_CAP_GPU : 0) |
			 (job->disk_gb > 0 ? MFS_CAP_DISK : 0) | (job->cpu > 0 ? MFS_CAP_CPU : 0) |
			 (job->memory_mb > 0 ? MFS_CAP_MEMORY : 0) |
			 (job->network && !strcmp(job->network, "none") ? MFS_CAP_NETWORK : 0);
	unsigned caps = job_caps(job, &why);
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		if (!(asked & rules[i].cap) || (caps & rules[i].cap))
			continue;
		if (rules[i].refuse)
			refused[nref++] = rules[i].flag;
		else
			unapplied[nwarn++] = rules[i].flag;
	}
	const char *sep = why.len ? ": " : "";
	if (nref) {
		add_flag_list(&flags, refused, nref);
		rc = mfs_fail(err, MFS_ERR_UNSUPPORTED,
			      "the %s backend cannot honour %s%s%s; drop %s or choose another --backend",
			      job->ops->name, flags.data, sep, why.len ? why.data : "",
			      nref > 1 ? "them" : "it");
	} else if (nwarn && warn) {
		add_flag_list(&flags, unapplied, nwarn);
		say(job, MFS_SAY_WARN, "%s: %s %s not applied%s%s; the command runs without %s",
		    job->ops->name, flags.data, nwarn > 1 ? "are" : "is", sep,
		    why.len ? why.data : "the backend cannot enforce it", nwarn > 1 ? "them" : "it");
	}
	mfs_buf_release(&why);
	mfs_buf_release(&flags);
	return rc;
}

/* Packs a --code directory into a temp file; *tarball is what to upload
 * and *temp is set when we must unlink it afterwards. */
static enum mfs_code stage_code(const struct mfs_job *job, char **tarball, char **temp,
				struct mfs_err *err)
{
	struct stat st;
	*tarball = *temp = NULL;
	if (!job->code_path)
		return MFS_OK;
	if (stat(job->code_path, &st) == 0 && S_ISREG(st.st_mode)) {
		*tarball = mfs_xstrdup(job->code_path);
		return MFS_OK;
	}
	const char *dir = getenv("TMPDIR");
	struct mfs_buf path = MFS_BUF_INIT;
	mfs_buf_addf(&path, "%s/mfs-code-XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkstemp(path.data);
	if (fd < 0) {
		enum mfs_code rc = mfs_fail(err, MFS_ERR_IO, "--code: cannot create a temp file in %s: %s",
					    dir && *dir ? dir : "/tmp", strerror(errno));
		mfs_buf_release(&path);
		return rc;
	}
	close(fd);
	*temp = mfs_buf_detach(&path, NULL);
	*tarball = mfs_xstrdup(*temp);
	return mfs_pack_dir(job->code_path, *temp, err);
}

static enum mfs_code ship_code(const struct mfs_job *job, struct mfs_sandbox *sb,
			       const char *tarball, long long deadline, struct mfs_err *err)
{
	static const char *const unpack[] = {
		"sh", "-c", "tar -xf \"$1\" && rm -f \"$1\"", "sh", CODE_REMOTE, NULL,
	};
	struct mfs_buf out = MFS_BUF_INIT;
	struct mfs_io io = { collect, &out };
	struct mfs_exec_req req = { .argv = unpack, .timeout_s = time_left(job, deadline) };
	int status = 0;
	enum mfs_code rc = job->ops->upload(sb, tarball, CODE_REMOTE, err);
	if (rc != MFS_OK) {
		mfs_err_prefix(err, "uploading --code");
		goto out;
	}
	rc = job->ops->exec(sb, &req, &io, &status, err);
	if (rc != MFS_OK) {
		mfs_err_prefix(err, "unpacking --code");
		goto out;
	}
	if (status != 0) {
		char *nl = out.data ? strchr(out.data, '\n') : NULL;
		if (nl)
			*nl = '\0';
		rc = mfs_fail(err, MFS_ERR_BACKEND, "unpacking --code in the sandbox failed (status %d): %s",
			      status, out.data && *out.data ? out.data : "no output");
	}
out:
	mfs_buf_release(&out);
	return rc;
}

/* probe() is diagnosis, and can be costly (the local one starts a throw-away
 * bubblewrap), so a run does not pay for it up front: only when create()
 * fails do we ask probe() what is missing, whose answer ("set
 * E2B_API_KEY", "install bubblewrap") is what the person needs. */
static enum mfs_code explain_create_failure(const struct mfs_job *job, enum mfs_code rc,
					    struct mfs_err *err)
{
	struct mfs_buf notes = MFS_BUF_INIT;
	struct mfs_err perr = { MFS_OK, "" };
	if (rc != MFS_ERR_CANCELLED && rc != MFS_ERR_USAGE &&
	    job->ops->probe(&notes, &perr) != MFS_OK) {
		*err = perr;
		rc = perr.code;
		mfs_err_prefix(err, "backend %s is not usable here", job->ops->name);
	} else {
		mfs_err_prefix(err, "creating the %s sandbox", job->ops->name);
	}
	mfs_buf_release(&notes);
	return rc;
}

static void header(const struct mfs_job *job, const struct mfs_sandbox *sb)
{
	if (job->quiet || !job->is_step)
		return;
	struct mfs_buf ps = MFS_BUF_INIT;
	mfs_step_pathspec(&job->step, &ps);
	say(job, MFS_SAY_INFO, "%s (attempt %d) in %s sandbox %s", ps.data, job->step.attempt, job->ops->name,
	    sb->id ? sb->id : "?");
	mfs_buf_release(&ps);
}

static void keep_notice(const struct mfs_job *job, const struct mfs_sandbox *sb)
{
	struct mfs_buf how = MFS_BUF_INIT;
	if (job->ops->describe)
		job->ops->describe(sb, &how);
	bool has_kill = how.data && strstr(how.data, "mfsandbox kill");
	say(job, MFS_SAY_ALWAYS, "kept %s sandbox %s (--keep)", job->ops->name, sb->id ? sb->id : "?");
	/* describe() may return several lines: pass each on. */
	for (char *line = how.data, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (*line)
			say(job, MFS_SAY_ALWAYS, "  %s", line);
	}
	/* A line to paste into a shell, with an id the provider chose: quoted. */
	struct mfs_buf id = MFS_BUF_INIT;
	mfs_buf_add_shell_quoted(&id, sb->id ? sb->id : "?");
	if (!has_kill)
		say(job, MFS_SAY_ALWAYS, "remove it with: mfsandbox kill --backend %s %s", job->ops->name,
		    id.data);
	mfs_buf_release(&id);
	mfs_buf_release(&how);
}

/* Linux hands a program no single argument or NAME=value longer than
 * MAX_ARG_STRLEN (32 pages), whichever backend runs it: such a word failed
 * as "cannot run bwrap" (203, retried) or inside the sandbox.  Only the
 * name is shown: a value may be a secret. */
#define ARG_STRLEN_MAX 131072

static enum mfs_code check_word_sizes(const struct mfs_job *job, struct mfs_err *err)
{
	for (size_t i = 0; i < job->argv.n; i++)
		if (strlen(job->argv.v[i]) >= ARG_STRLEN_MAX)
			return mfs_fail(err, MFS_ERR_USAGE, "word %zu of the command is %zu bytes; "
					"Linux passes at most %d to a program: put it in a file "
					"(--upload)", i, strlen(job->argv.v[i]), ARG_STRLEN_MAX - 1);
	for (size_t i = 0; i < job->env.n; i++) {
		size_t n = strlen(job->env.items[i].key) + 1 + strlen(job->env.items[i].value);
		if (n >= ARG_STRLEN_MAX)
			return mfs_fail(err, MFS_ERR_USAGE, "environment variable %s is %zu bytes "
					"with its name; Linux passes at most %d to a program: put "
					"it in a file (--upload)", job->env.items[i].key, n,
					ARG_STRLEN_MAX - 1);
	}
	return MFS_OK;
}

/* Everything that can refuse the job before the world is touched; a dry
 * run stops after it. */
static enum mfs_code check_job(struct mfs_job *job, struct mfs_err *err)
{
	enum mfs_code rc;
	if (!job->ops)
		return mfs_fail(err, MFS_ERR_USAGE, "no backend chosen");
	/* Before prepare, which may turn the step command into a script. */
	if (job->is_step &&
	    (rc = mfs_step_ship_files(&job->argv, &job->step, job->step_dir, &job->uploads, err)) != MFS_OK)
		return rc;
	rc = mfs_job_prepare(job, err);
	if (rc != MFS_OK)
		return rc;
	if (!job->argv.n)
		return mfs_fail(err, MFS_ERR_USAGE, "no command to run");
	if ((rc = check_word_sizes(job, err)) != MFS_OK)
		return rc;
	/* A refusal holds for a dry run too: it would refuse the real one. */
	if ((rc = check_caps(job, !job->dry_run, err)) != MFS_OK)
		return rc;
	if ((job->ro_binds.n || job->rw_binds.n) && !(job->ops->caps & MFS_CAP_HOST_BINDS))
		return mfs_fail(err, MFS_ERR_USAGE,
				"--ro-bind/--bind show host paths inside a sandbox on this machine; the %s "
				"backend runs elsewhere: use --upload or --code", job->ops->name);
	return MFS_OK;
}

/* MFSANDBOX_DELETE_TIMEOUT_S, or its default. */
static long cleanup_bound(const struct mfs_job *job)
{
	return job->delete_timeout_s > 0 ? job->delete_timeout_s : MFS_DELETE_TIMEOUT_S;
}

/* create() with the job's name, labels and limits; *sb stays NULL unless it
 * succeeded, and then it carries the message channel. */
static enum mfs_code create_sandbox(const struct mfs_job *job, long long deadline,
				    const struct mfs_say *chan, struct mfs_sandbox **sb,
				    struct mfs_err *err)
{
	struct mfs_kvlist labels = MFS_KVLIST_INIT;
	struct mfs_buf name = MFS_BUF_INIT;

	mfs_job_sandbox_name(job, &name);
	make_labels(job, &labels);
	struct mfs_sandbox_spec spec = {
		.name = name.data,
		.labels = &labels,
		.timeout_s = sandbox_timeout(job),
		.create_timeout_s = time_left(job, deadline),
		.cleanup_timeout_s = cleanup_bound(job),
		.env = &job->env,
		.rw_paths = job->rw_paths.n ? &job->rw_paths : NULL,
		.say = chan,
		.ro_binds = job->ro_binds.n ? &job->ro_binds : NULL,
		.rw_binds = job->rw_binds.n ? &job->rw_binds : NULL,
	};
	fill_spec_limits(job, &spec);
	enum mfs_code rc = job->ops->create(&spec, sb, err);
	mfs_sayf(chan, MFS_SAY_PROGRESS, "%s", ""); /* ends a progress line create left */
	if (rc != MFS_OK) {
		*sb = NULL; /* a failed create owns nothing we must destroy */
		rc = explain_create_failure(job, rc, err);
	} else {
		(*sb)->say = chan;
	}
	mfs_kvlist_release(&labels);
	mfs_buf_release(&name);
	return rc;
}

/* Uploads, code, then the command itself; what happened goes to outcome. */
static enum mfs_code run_in_sandbox(const struct mfs_job *job, struct mfs_sandbox *sb,
				    const char *tarball, long long deadline,
				    struct mfs_job_result *res, struct mfs_job_outcome *outcome,
				    struct mfs_err *err)
{
	enum mfs_code rc = MFS_OK;
	for (size_t i = 0; i < job->uploads.n && rc == MFS_OK; i++) {
		if ((rc = check_between_steps(job, deadline, err)) != MFS_OK)
			break;
		rc = job->ops->upload(sb, job->uploads.items[i].value, job->uploads.items[i].key, err);
		if (rc != MFS_OK)
			mfs_err_prefix(err, "--upload %s", job->uploads.items[i].value);
	}
	if (rc == MFS_OK && tarball && (rc = check_between_steps(job, deadline, err)) == MFS_OK)
		rc = ship_code(job, sb, tarball, deadline, err);
	if (rc == MFS_OK)
		rc = check_between_steps(job, deadline, err);
	if (rc != MFS_OK)
		return outcome->code = rc;

	struct mfs_exec_req req = {
		.argv = (const char *const *)job->argv.v,
		.timeout_s = time_left(job, deadline),
	};
	int status = 0;
	outcome->ran = res->ran = true;
	rc = job->ops->exec(sb, &req, job->io ? job->io : &passthrough_io, &status, err);
	if (rc == MFS_OK)
		res->status = status;
	else if (rc == MFS_ERR_TIMEOUT)
		mfs_fail(err, MFS_ERR_TIMEOUT, "--timeout %lds reached; the command was killed",
			 job->timeout_s);
	/* A signal that arrived while the command ran wins over its status:
	 * the caller asked us to stop. */
	if (rc == MFS_OK && mfs_cancelled())
		rc = mfs_fail(err, MFS_ERR_CANCELLED, "cancelled by signal %d", mfs_cancel_signal());
	outcome->status = res->status;
	return outcome->code = rc;
}

/* The finish hook's error fails a job that had none; else it is a warning
 * and the first error stands. */
static enum mfs_code finish(struct mfs_job *job, struct mfs_sandbox *sb, enum mfs_code rc,
			    const struct mfs_job_outcome *outcome, struct mfs_err *err)
{
	struct mfs_err ferr = { MFS_OK, "" };
	enum mfs_code frc = mfs_job_finish(job, sb, outcome, &ferr);
	if (frc == MFS_OK)
		return rc;
	if (rc == MFS_OK) {
		*err = ferr;
		return frc;
	}
	say(job, MFS_SAY_WARN, "%s", ferr.msg);
	return rc;
}

/* --keep releases the handle and says how to reach the sandbox; else it is
 * destroyed within the delete bound, and a failure to is a warning naming
 * the command that removes it.  The command's status stands either way: it
 * ran, and running it again would not remove the sandbox. */
static void teardown(const struct mfs_job *job, struct mfs_sandbox *sb)
{
	if (job->keep) {
		keep_notice(job, sb);
		job->ops->release(sb); /* the handle goes, the sandbox stays */
		return;
	}
	struct mfs_err derr = { MFS_OK, "" };
	char *id = sb->id ? mfs_xstrdup(sb->id) : NULL;
	const struct mfs_say chan = { filtered_say, (void *)job };
	long bound = cleanup_bound(job);
	sb->destroy_by = mfs_now_s() + (double)bound;
	enum mfs_code rc = job->ops->destroy(sb, &derr);
	if (rc != MFS_OK)
		mfs_say_not_removed(&chan, job->ops->name, id ? id : "?", id != NULL, rc, bound,
				    derr.msg);
	free(id);
}

enum mfs_code mfs_job_run(struct mfs_job *job, struct mfs_job_result *res, struct mfs_err *err)
{
	struct mfs_sandbox *sb = NULL;
	char *tarball = NULL, *temp = NULL;
	long long deadline;
	struct mfs_job_outcome outcome = { false, 0, MFS_ERR_BACKEND };
	const struct mfs_say chan = { filtered_say, job };

	res->ran = false;
	res->status = 0;
	enum mfs_code rc = check_job(job, err);
	if (rc != MFS_OK)
		return rc;
	/* After prepare, which may raise the timeout (a step's @timeout). */
	deadline = (long long)mfs_now_s() + (job->timeout_s > 0 ? job->timeout_s : 0);
	if (job->dry_run) {
		mfs_job_describe(job, &res->plan);
		return MFS_OK;
	}
	if ((rc = check_local_files(job, err)) == MFS_OK &&
	    (rc = stage_code(job, &tarball, &temp, err)) == MFS_OK &&
	    (rc = check_between_steps(job, deadline, err)) == MFS_OK &&
	    (rc = create_sandbox(job, deadline, &chan, &sb, err)) == MFS_OK) {
		header(job, sb);
		/* From here on every failure falls through to finish + teardown. */
		rc = run_in_sandbox(job, sb, tarball, deadline, res, &outcome, err);
		rc = finish(job, sb, rc, &outcome, err);
		teardown(job, sb);
	}
	if (temp)
		unlink(temp);
	free(temp);
	free(tarball);
	return rc;
}
