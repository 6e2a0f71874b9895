/*
 * cli_run.c - `mfsandbox run`: flags -> struct mfs_job -> mfs_job_run().
 *
 * Every bad input is one MFS_ERR_USAGE line naming the flag (exit 202);
 * values are never echoed back for env vars, since they may be secrets.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_internal.h"
#include "mfs/util/cancel.h"
#include "mfs/cli/cli.h"
#include "mfs/core/job_relay.h"
#include "mfs/core/metaflow_task.h"
#include "mfs/core/registry.h"
#include "mfs/util/file.h"
#include "mfs/util/env.h"

#define BACKEND_ENV "METAFLOW_SANDBOX_BACKEND"
/* Linux's PATH_MAX - 1 and NAME_MAX: no sandbox can hold more. */
#define MFS_REMOTE_PATH_MAX 4095
#define MFS_REMOTE_NAME_MAX 255

enum {
	OPT_BACKEND = 256, OPT_CPU, OPT_MEMORY, OPT_DISK, OPT_GPU, OPT_IMAGE, OPT_NETWORK,
	OPT_TIMEOUT, OPT_ENV, OPT_ENV_FILE, OPT_UPLOAD, OPT_CODE, OPT_KEEP, OPT_DRY_RUN, OPT_QUIET,
	OPT_RELAY, OPT_FORWARD_ENV, OPT_RO_BIND, OPT_BIND,
	OPT_METAFLOW_SPEC,
};

static const struct option run_opts[] = {
	{ "backend", required_argument, NULL, OPT_BACKEND },
	{ "cpu", required_argument, NULL, OPT_CPU },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "disk", required_argument, NULL, OPT_DISK },
	{ "gpu", required_argument, NULL, OPT_GPU },
	{ "image", required_argument, NULL, OPT_IMAGE },
	{ "network", required_argument, NULL, OPT_NETWORK },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "env", required_argument, NULL, OPT_ENV },
	{ "env-file", required_argument, NULL, OPT_ENV_FILE },
	{ "upload", required_argument, NULL, OPT_UPLOAD },
	{ "code", required_argument, NULL, OPT_CODE },
	{ "keep", no_argument, NULL, OPT_KEEP },
	{ "metaflow-spec", required_argument, NULL, OPT_METAFLOW_SPEC },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "relay", no_argument, NULL, OPT_RELAY },
	{ "forward-env", required_argument, NULL, OPT_FORWARD_ENV },
	{ "ro-bind", required_argument, NULL, OPT_RO_BIND },
	{ "bind", required_argument, NULL, OPT_BIND },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static enum mfs_code parse_long(const char *flag, const char *text, const char *unit, long max,
				long *out, struct mfs_err *err)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (!*text || *end || errno || v <= 0 || v > max)
		return mfs_fail(err, MFS_ERR_USAGE, "%s '%.40s': expected a whole number of %s from 1 to %ld",
				flag, text, unit, max);
	*out = v;
	return MFS_OK;
}

static enum mfs_code parse_cpu(const char *text, double *out, struct mfs_err *err)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (!*text || *end || errno || !isfinite(v) || v <= 0 || v > 4096)
		return mfs_fail(err, MFS_ERR_USAGE, "--cpu '%.40s': expected a number of CPUs above 0, e.g. 2 or 0.5",
				text);
	*out = v;
	return MFS_OK;
}

/* "KEY=VALUE", or "KEY" copied from our environment.  `where` prefixes errors. */
static enum mfs_code add_env(struct mfs_kvlist *env, const char *spec, const char *where,
			     struct mfs_err *err)
{
	const char *eq = strchr(spec, '=');
	size_t n = eq ? (size_t)(eq - spec) : strlen(spec);
	if (!mfs_env_name_ok(spec, n)) {
		/* Without '=' the name cannot be told from the value ("KEY: secret",
		 * a bare token); '/' and '+' mark base64, i.e. a key, not a name. */
		const char *b64 = strpbrk(spec, "/+");
		if (!eq || n > 40 || (b64 && b64 < eq))
			return mfs_fail(err, MFS_ERR_USAGE,
					"%s: expected KEY=VALUE or a bare KEY, KEY made of letters, digits, _ "
					"(the text is not shown: it may hold a secret)", where);
		return mfs_fail(err, MFS_ERR_USAGE,
				"%s: '%.*s' is not a variable name (expected KEY=VALUE with KEY made of letters, digits, _)",
				where, (int)n, spec);
	}
	char *key = mfs_xstrndup(spec, n);
	const char *value = eq ? eq + 1 : getenv(key);
	enum mfs_code rc = MFS_OK;
	if (!value)
		rc = mfs_fail(err, MFS_ERR_USAGE, "%s: %s has no value and is not set in this environment",
			      where, key);
	else
		mfs_kvlist_set(env, key, value);
	free(key);
	return rc;
}

enum mfs_code mfs_cli_read_env_file(const char *path, struct mfs_kvlist *env, struct mfs_err *err)
{
	enum mfs_code rc = MFS_OK;
	FILE *f;
	if ((rc = mfs_fopen_regular(path, "--env-file", MFS_ERR_USAGE, &f, err)) != MFS_OK)
		return rc;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned lineno = 0;
	struct mfs_buf where = MFS_BUF_INIT;
	while (rc == MFS_OK && (len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		char *p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p || *p == '#')
			continue;
		if (strncmp(p, "export ", 7) == 0)
			for (p += 7; *p == ' '; p++)
				;
		/* Strip one pair of quotes around the value, as .env files do. */
		char *eq = strchr(p, '=');
		if (eq) {
			size_t vlen = strlen(eq + 1);
			if (vlen >= 2 && (eq[1] == '"' || eq[1] == '\'') && eq[vlen] == eq[1]) {
				eq[vlen] = '\0';
				memmove(eq + 1, eq + 2, vlen - 1);
			}
		}
		mfs_buf_reset(&where);
		mfs_buf_addf(&where, "--env-file %s:%u", path, lineno);
		rc = add_env(env, p, where.data, err);
	}
	if (rc == MFS_OK && ferror(f))
		rc = mfs_fail(err, MFS_ERR_USAGE, "--env-file %s: read error", path);
	free(line);
	mfs_buf_release(&where);
	fclose(f);
	return rc;
}

/* Why REMOTE cannot name a file in any sandbox, or NULL: caught here, the
 * mistake costs no sandbox (a backend would find it only after create). */
static const char *bad_remote(const char *remote)
{
	if (strlen(remote) > MFS_REMOTE_PATH_MAX)
		return "is longer than 4095 bytes";
	for (const char *s = remote; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return "holds a control character";
	const char *last = remote;
	for (const char *s = remote;;) {
		size_t n = strcspn(s, "/");
		if (n > MFS_REMOTE_NAME_MAX)
			return "has a name longer than 255 bytes";
		if (n == 2 && !strncmp(s, "..", 2))
			return "must not contain '..'";
		if (n)
			last = s;
		if (!s[n])
			break;
		s += n + 1;
	}
	size_t len = strlen(remote);
	if (remote[len - 1] == '/' || !strcmp(last, "."))
		return "must name a file, not a directory (e.g. data.csv:input/data.csv)";
	return NULL;
}

static enum mfs_code add_upload(struct mfs_kvlist *uploads, const char *spec, struct mfs_err *err)
{
	const char *colon = strchr(spec, ':');
	if (!colon || colon == spec || !colon[1])
		return mfs_fail(err, MFS_ERR_USAGE, "--upload '%.80s': expected LOCAL:REMOTE, e.g. data.csv:input/data.csv",
				spec);
	const char *why = bad_remote(colon + 1);
	if (why)
		return mfs_fail(err, MFS_ERR_USAGE, "--upload '%.80s': REMOTE %s", spec, why);
	char *local = mfs_xstrndup(spec, (size_t)(colon - spec));
	mfs_kvlist_set(uploads, colon + 1, local);
	free(local);
	return MFS_OK;
}

/* True if path has a "." or ".." component (or an empty one). */
static bool odd_component(const char *path)
{
	for (const char *s = path + 1; ; ) {
		size_t n = strcspn(s, "/");
		if (n == 0 ? s[0] == '/' : (s[0] == '.' && (n == 1 || (n == 2 && s[1] == '.'))))
			return true;
		if (!s[n])
			return false;
		s += n + 1;
	}
}

/* --ro-bind / --bind HOST[:DEST]: HOST an existing absolute path, DEST
 * (default HOST) absolute; a DEST named again, by either flag, is replaced. */
static enum mfs_code add_bind(struct mfs_job *job, bool writable, const char *arg,
			      struct mfs_err *err)
{
	const char *flag = writable ? "--bind" : "--ro-bind";
	const char *colon = strchr(arg, ':');
	char *host = colon ? mfs_xstrndup(arg, (size_t)(colon - arg)) : mfs_xstrdup(arg);
	const char *dest = colon ? colon + 1 : host;
	struct stat st;
	enum mfs_code rc = MFS_OK;
	if (host[0] != '/' || dest[0] != '/' || !strcmp(dest, "/") || odd_component(host) ||
	    odd_component(dest))
		rc = mfs_fail(err, MFS_ERR_USAGE,
			      "%s '%.200s': expected HOST[:DEST], both absolute paths without . or .. "
			      "and DEST not /, e.g. %s /data/in:/in", flag, arg, flag);
	else if (stat(host, &st) != 0)
		rc = mfs_fail(err, MFS_ERR_USAGE, "%s %.200s: %s (it must exist on this machine)",
			      flag, host, strerror(errno));
	if (rc == MFS_OK) {
		mfs_kvlist_remove(writable ? &job->ro_binds : &job->rw_binds, dest);
		mfs_kvlist_set(writable ? &job->rw_binds : &job->ro_binds, dest, host);
	}
	free(host);
	return rc;
}

/* Daytona builds an image as a Dockerfile "FROM <image>" line: a newline
 * would add instructions of its own (RUN ...), a space options. */
static bool image_name_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return false;
	return true;
}

static void set_str(char **slot, const char *value)
{
	char *copy = mfs_xstrdup(value);
	free(*slot);
	*slot = copy;
}

static enum mfs_code choose_backend(const char *flag, struct mfs_job *job, struct mfs_err *err)
{
	struct mfs_buf names = MFS_BUF_INIT;
	enum mfs_code rc = MFS_OK;
	const char *env = getenv(BACKEND_ENV);
	const char *name = flag ? flag : (env && *env ? env : NULL);

	mfs_backend_names(&names);
	if (!name)
		rc = mfs_fail(err, MFS_ERR_USAGE,
			      "no backend chosen: pass --backend NAME or set %s (one of: %s)", BACKEND_ENV,
			      names.data);
	else if (!(job->ops = mfs_backend_find(name)))
		rc = mfs_fail(err, MFS_ERR_USAGE, "%s '%.40s' is not a backend (one of: %s)",
			      flag ? "--backend" : BACKEND_ENV, name, names.data);
	mfs_buf_release(&names);
	return rc;
}

void mfs_run_opts_init(struct mfs_run_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	mfs_strv_init(&opts->forward_env);
}

void mfs_run_opts_release(struct mfs_run_opts *opts)
{
	free(opts->metaflow_spec);
	mfs_strv_release(&opts->forward_env);
	mfs_run_opts_init(opts);
}

/* Long on purpose: one flat case per flag, each a line or two, reads
 * better as one table than split across helpers. */
enum mfs_code mfs_cli_parse_run(int argc, char **argv, struct mfs_job *job,
				struct mfs_run_opts *opts, bool *help, struct mfs_err *err)
{
	enum mfs_code rc = MFS_OK;
	const char *backend = NULL;
	int c;

	*help = false;
	optind = 0; /* GNU: full reinitialisation, so parsing can run again */
	opterr = 0;
	while (rc == MFS_OK && (c = getopt_long(argc, argv, "+:h", run_opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			*help = true;
			return MFS_OK;
		case OPT_BACKEND:
			backend = optarg;
			break;
		case OPT_CPU:
			rc = parse_cpu(optarg, &job->cpu, err);
			break;
		case OPT_MEMORY:
			rc = parse_long("--memory", optarg, "MB", 16L * 1024 * 1024, &job->memory_mb, err);
			break;
		case OPT_DISK:
			rc = parse_long("--disk", optarg, "GB", 1024L * 1024, &job->disk_gb, err);
			break;
		case OPT_TIMEOUT:
			rc = parse_long("--timeout", optarg, "seconds", 366L * 24 * 3600, &job->timeout_s, err);
			break;
		case OPT_GPU:
			if (!*optarg)
				rc = mfs_fail(err, MFS_ERR_USAGE, "--gpu needs a value, e.g. --gpu 1");
			else
				set_str(&job->gpu, optarg);
			break;
		case OPT_IMAGE:
			if (!*optarg)
				rc = mfs_fail(err, MFS_ERR_USAGE, "--image needs a value");
			else if (!image_name_ok(optarg))
				rc = mfs_fail(err, MFS_ERR_USAGE, "--image: an image name holds no space, "
					      "line break or control character, e.g. python:3.12-slim");
			else
				set_str(&job->image, optarg);
			break;
		case OPT_NETWORK:
			if (strcmp(optarg, "host") && strcmp(optarg, "none"))
				rc = mfs_fail(err, MFS_ERR_USAGE, "--network '%.40s': expected host or none", optarg);
			else
				set_str(&job->network, optarg);
			break;
		case OPT_ENV:
			rc = add_env(&job->env, optarg, "--env", err);
			break;
		case OPT_ENV_FILE:
			rc = mfs_cli_read_env_file(optarg, &job->env, err);
			break;
		case OPT_UPLOAD:
			rc = add_upload(&job->uploads, optarg, err);
			break;
		case OPT_CODE:
			if (!*optarg)
				rc = mfs_fail(err, MFS_ERR_USAGE, "--code needs a directory or tarball");
			else
				set_str(&job->code_path, optarg);
			break;
		case OPT_KEEP:
			job->keep = true;
			break;
		case OPT_METAFLOW_SPEC:
			if (!*optarg)
				rc = mfs_fail(err, MFS_ERR_USAGE, "--metaflow-spec needs a file");
			else
				set_str(&opts->metaflow_spec, optarg);
			break;
		case OPT_DRY_RUN:
			job->dry_run = true;
			break;
		case OPT_QUIET:
			job->quiet = true;
			break;
		case OPT_RELAY:
			opts->relay = true;
			break;
		case OPT_RO_BIND:
		case OPT_BIND:
			rc = add_bind(job, c == OPT_BIND, optarg, err);
			break;
		case OPT_FORWARD_ENV:
			rc = mfs_cli_forward_env_name(optarg, &opts->forward_env, err);
			break;
		default:
			rc = mfs_cli_bad_option("run", c, argv, optind, err);
			break;
		}
	}
	if (rc != MFS_OK)
		return rc;
	if (optind >= argc)
		return mfs_fail(err, MFS_ERR_USAGE,
				"run: no command given: mfsandbox run [OPTIONS] -- COMMAND [ARG...]");
	if ((rc = choose_backend(backend, job, err)) != MFS_OK)
		return rc;
	const char *bound = getenv(MFS_DELETE_TIMEOUT_ENV);
	if (bound && *bound && (rc = parse_long(MFS_DELETE_TIMEOUT_ENV, bound, "seconds", 3600,
						&job->delete_timeout_s, err)) != MFS_OK)
		return rc;
	mfs_job_set_argv(job, (const char *const *)argv + optind);
	return MFS_OK;
}

static void install_signal_handlers(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a blocking call should return EINTR so loops see
	 * the cancellation promptly. */
	sa.sa_handler = mfs_cancel_request;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* A closed stdout must not kill us before the sandbox is removed. */
	signal(SIGPIPE, SIG_IGN);
}

int mfs_cmd_run(int argc, char **argv)
{
	struct mfs_job job;
	struct mfs_run_opts opts;
	struct mfs_job_relay relay;
	struct mfs_job_result res;
	struct mfs_mf_task mft;
	struct mfs_err err = { MFS_OK, "" };
	bool help = false;

	mfs_mf_task_init(&mft, NULL);
	int status;

	mfs_job_init(&job);
	mfs_run_opts_init(&opts);
	job.secret_vars = &opts.forward_env;
	mfs_job_relay_init(&relay);
	mfs_job_result_init(&res);
	job.say.fn = mfs_cli_note;
	enum mfs_code rc = mfs_cli_parse_run(argc, argv, &job, &opts, &help, &err);
	if (rc == MFS_OK && help) {
		mfs_cli_help("run");
		status = 0;
		goto out;
	}
	if (rc == MFS_OK && opts.metaflow_spec) {
		mfs_mf_task_init(&mft, opts.metaflow_spec);
		job.prepare = mfs_mf_prepare;
		job.prepare_ctx = &mft;
		job.step_dir = MFS_MF_STEP_DIR; /* the script's `cd metaflow` */
	}
	if (rc == MFS_OK && !job.dry_run) {
		if (mfs_cancel_init() != 0)
			rc = mfs_fail(&err, MFS_ERR_IO, "cannot set up signal handling: %s", strerror(errno));
		else
			install_signal_handlers();
	}
	if (rc == MFS_OK && !help)
		rc = mfs_cli_relay_setup(&job, &opts, &relay, &err);
	if (rc == MFS_OK)
		rc = mfs_job_run(&job, &res, &err);
	if (rc == MFS_OK && job.dry_run) {
		fwrite(res.plan.data, 1, res.plan.len, stdout);
		fflush(stdout);
	}
	if (rc != MFS_OK)
		mfs_cli_say(NULL, err.msg);
	status = mfs_exit_for(rc, res.status, mfs_cancel_signal());
out:
	mfs_mf_task_release(&mft); /* flushes an unfinished last line */
	mfs_job_result_release(&res);
	mfs_job_release(&job);
	mfs_run_opts_release(&opts);
	mfs_job_relay_release(&relay);
	return status;
}
