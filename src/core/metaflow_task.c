/*
 * metaflow_task.c - the Metaflow half of `mfsandbox run --metaflow-spec`
 * (include/mfs/core/metaflow_task.h): spec parsing, the in-sandbox script, and
 * the prepare hook that rewrites the job.
 *
 * The script keeps the semantics of Metaflow's own remote bootstrap (logs
 * directory, mflog variables and shell functions, datastore client
 * libraries, `metaflow/` work dir with its `.metaflow`, extracted package on
 * PYTHONPATH, bootstrap commands, captured step output, save_logs, exit with
 * the step's status) but is written here, around an uploaded package rather
 * than a download from inside the sandbox.
 */
#include "mfs/core/metaflow_task.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mfs/util/env.h"
#include "mfs/util/file.h"
#include "mfs/util/redact.h"

void mfs_mf_spec_init(struct mfs_mf_spec *spec)
{
	memset(spec, 0, sizeof(*spec));
	mfs_strv_init(&spec->bootstrap);
	mfs_strv_init(&spec->dependencies);
	mfs_kvlist_init(&spec->post_extract_env);
	mfs_kvlist_init(&spec->env);
	mfs_kvlist_init(&spec->config_env);
	mfs_strv_init(&spec->forward_env);
	mfs_strv_init(&spec->rw_paths);
}

void mfs_mf_spec_release(struct mfs_mf_spec *spec)
{
	free(spec->flow_name);
	free(spec->ds_type);
	free(spec->ds_root);
	free(spec->package_path);
	free(spec->package_url);
	free(spec->package_sha);
	free(spec->package_metadata);
	free(spec->executable);
	free(spec->python);
	free(spec->launcher_python);
	mfs_strv_release(&spec->bootstrap);
	mfs_strv_release(&spec->dependencies);
	mfs_kvlist_release(&spec->post_extract_env);
	mfs_kvlist_release(&spec->env);
	mfs_kvlist_release(&spec->config_env);
	mfs_strv_release(&spec->forward_env);
	mfs_strv_release(&spec->rw_paths);
	mfs_mf_spec_init(spec);
}

/* ---- spec parsing ---------------------------------------------------- */

static enum mfs_code bad(struct mfs_err *err, const char *field, const char *what)
{
	return mfs_fail(err, MFS_ERR_CONFIG,
			"--metaflow-spec: field '%s' %s (the spec is written by the @sandbox decorator; "
			"see docs/architecture.md)", field, what);
}

/* Copies an optional (required=false) or required string member. */
static enum mfs_code get_str(json_t *obj, const char *key, const char *field, bool required,
			     char **out, struct mfs_err *err)
{
	json_t *v = obj ? json_object_get(obj, key) : NULL;
	if (!v || json_is_null(v))
		return required ? bad(err, field, "is missing") : MFS_OK;
	if (!json_is_string(v))
		return bad(err, field, "must be a string");
	const char *s = json_string_value(v);
	if (required && !*s)
		return bad(err, field, "is empty");
	if (strlen(s) != json_string_length(v))
		return bad(err, field, "contains a NUL byte");
	*out = mfs_xstrdup(s);
	return MFS_OK;
}

static enum mfs_code get_strv(json_t *obj, const char *key, struct mfs_strv *out,
			      struct mfs_err *err)
{
	json_t *v = json_object_get(obj, key), *item;
	size_t i;
	if (!v || json_is_null(v))
		return MFS_OK;
	if (!json_is_array(v))
		return bad(err, key, "must be a list of strings");
	json_array_foreach(v, i, item) {
		if (!json_is_string(item) || strlen(json_string_value(item)) != json_string_length(item))
			return bad(err, key, "must be a list of strings");
		mfs_strv_push(out, json_string_value(item));
	}
	return MFS_OK;
}

static enum mfs_code get_map(json_t *obj, const char *key, struct mfs_kvlist *out,
			     struct mfs_err *err)
{
	json_t *v = json_object_get(obj, key), *item;
	const char *name;
	if (!v || json_is_null(v))
		return MFS_OK;
	if (!json_is_object(v))
		return bad(err, key, "must be an object of strings");
	json_object_foreach(v, name, item) {
		if (!json_is_string(item) || strlen(json_string_value(item)) != json_string_length(item))
			return bad(err, key, "must be an object of strings");
		mfs_kvlist_set(out, name, json_string_value(item));
	}
	return MFS_OK;
}

/* Environment names go into `export NAME=...` lines: only shell names. */
static bool env_name_ok(const char *s, bool allow_colon)
{
	size_t n = strlen(s);
	if (allow_colon && n && s[n - 1] == ':')
		n--;
	return mfs_env_name_ok(s, n);
}

static bool pkg_name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || *s == '-' || *s == '.'))
			return false;
	return true;
}

/* "default_sizes": which of the size flags are the decorator's defaults. */
static enum mfs_code get_sizes(json_t *obj, unsigned *out, struct mfs_err *err)
{
	static const struct { const char *name; unsigned cap; } sizes[] = {
		{ "cpu", MFS_CAP_CPU }, { "memory", MFS_CAP_MEMORY }, { "disk", MFS_CAP_DISK },
	};
	struct mfs_strv names = MFS_STRV_INIT;
	enum mfs_code rc = get_strv(obj, "default_sizes", &names, err);
	for (size_t i = 0; rc == MFS_OK && i < names.n; i++) {
		size_t k = 0;
		while (k < sizeof(sizes) / sizeof(sizes[0]) && strcmp(names.v[i], sizes[k].name))
			k++;
		if (k == sizeof(sizes) / sizeof(sizes[0]))
			rc = bad(err, "default_sizes", "holds something other than cpu, memory and disk");
		else
			*out |= sizes[k].cap;
	}
	mfs_strv_release(&names);
	return rc;
}

static enum mfs_code get_step_timeout(json_t *obj, long *out, struct mfs_err *err)
{
	json_t *v = json_object_get(obj, "step_timeout");
	if (!v || json_is_null(v))
		return MFS_OK;
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > MFS_MF_STEP_TIMEOUT_MAX)
		return bad(err, "step_timeout", "must be a number of seconds (1 to 10 years)");
	*out = (long)json_integer_value(v);
	return MFS_OK;
}

static enum mfs_code check_names(const struct mfs_mf_spec *spec, struct mfs_err *err)
{
	for (size_t i = 0; i < spec->env.n; i++)
		if (!env_name_ok(spec->env.items[i].key, false))
			return bad(err, "env", "holds a name that is not a shell variable name");
	for (size_t i = 0; i < spec->config_env.n; i++)
		if (!env_name_ok(spec->config_env.items[i].key, false))
			return bad(err, "config_env", "holds a name that is not a shell variable name");
	for (size_t i = 0; i < spec->post_extract_env.n; i++) {
		if (!env_name_ok(spec->post_extract_env.items[i].key, true))
			return bad(err, "post_extract_env", "holds a name that is not a shell variable name");
		/* values are shell expressions placed inside double quotes */
		if (strpbrk(spec->post_extract_env.items[i].value, "\"`\\"))
			return bad(err, "post_extract_env", "holds a value with a quote or backslash");
	}
	for (size_t i = 0; i < spec->forward_env.n; i++)
		if (!env_name_ok(spec->forward_env.v[i], false))
			return bad(err, "forward_env", "holds a name that is not a shell variable name");
	for (size_t i = 0; i < spec->dependencies.n; i++)
		if (!pkg_name_ok(spec->dependencies.v[i]))
			return bad(err, "dependencies", "holds something that is not a package name");
	for (size_t i = 0; i < spec->rw_paths.n; i++)
		if (spec->rw_paths.v[i][0] != '/')
			return bad(err, "rw_paths", "must hold absolute paths");
	if (spec->launcher_python && spec->launcher_python[0] != '/')
		return bad(err, "launcher_python", "must be an absolute path");
	return MFS_OK;
}

enum mfs_code mfs_mf_spec_parse(const char *text, size_t len, struct mfs_mf_spec *spec,
				struct mfs_err *err)
{
	json_error_t jerr;
	enum mfs_code rc;
	json_t *root = json_loadb(text, len, 0, &jerr);
	if (!root)
		return mfs_fail(err, MFS_ERR_CONFIG, "--metaflow-spec: not valid JSON (line %d: %s)",
				jerr.line, jerr.text);
	json_t *ver = json_object_get(root, "version");
	json_t *ds = json_object_get(root, "datastore");
	json_t *pkg = json_object_get(root, "code_package");
	if (!json_is_object(root)) {
		rc = mfs_fail(err, MFS_ERR_CONFIG, "--metaflow-spec: expected a JSON object");
		goto out;
	}
	if (!json_is_integer(ver)) {
		rc = bad(err, "version", "is missing or not a number");
		goto out;
	}
	if (json_integer_value(ver) != MFS_MF_SPEC_VERSION) {
		rc = mfs_fail(err, MFS_ERR_CONFIG,
			      "--metaflow-spec: version %lld is not supported (this mfsandbox reads %d); "
			      "install matching versions of mfsandbox and the Python package",
			      (long long)json_integer_value(ver), MFS_MF_SPEC_VERSION);
		goto out;
	}
	if (ds && !json_is_object(ds)) {
		rc = bad(err, "datastore", "must be an object");
		goto out;
	}
	if (pkg && !json_is_object(pkg)) {
		rc = bad(err, "code_package", "must be an object");
		goto out;
	}
	if ((rc = get_str(root, "flow_name", "flow_name", true, &spec->flow_name, err)) ||
	    (rc = get_str(ds, "type", "datastore.type", true, &spec->ds_type, err)) ||
	    (rc = get_str(ds, "root", "datastore.root", false, &spec->ds_root, err)) ||
	    (rc = get_str(pkg, "path", "code_package.path", true, &spec->package_path, err)) ||
	    (rc = get_str(pkg, "url", "code_package.url", false, &spec->package_url, err)) ||
	    (rc = get_str(pkg, "sha", "code_package.sha", false, &spec->package_sha, err)) ||
	    (rc = get_str(pkg, "metadata", "code_package.metadata", false, &spec->package_metadata, err)) ||
	    (rc = get_str(root, "executable", "executable", true, &spec->executable, err)) ||
	    (rc = get_str(root, "python", "python", false, &spec->python, err)) ||
	    (rc = get_str(root, "launcher_python", "launcher_python", false, &spec->launcher_python,
			  err)) ||
	    (rc = get_strv(root, "bootstrap_commands", &spec->bootstrap, err)) ||
	    (rc = get_strv(root, "dependencies", &spec->dependencies, err)) ||
	    (rc = get_map(root, "post_extract_env", &spec->post_extract_env, err)) ||
	    (rc = get_map(root, "env", &spec->env, err)) ||
	    (rc = get_map(root, "config_env", &spec->config_env, err)) ||
	    (rc = get_sizes(root, &spec->default_sizes, err)) ||
	    (rc = get_step_timeout(root, &spec->step_timeout_s, err)) ||
	    (rc = get_strv(root, "forward_env", &spec->forward_env, err)) ||
	    (rc = get_strv(root, "rw_paths", &spec->rw_paths, err)))
		goto out;
	rc = check_names(spec, err);
	if (rc == MFS_OK && !spec->python)
		spec->python = mfs_xstrdup("python");
out:
	json_decref(root);
	return rc;
}

enum mfs_code mfs_mf_spec_load(const char *path, struct mfs_mf_spec *spec, struct mfs_err *err)
{
	struct mfs_buf text = MFS_BUF_INIT;
	char chunk[8192];
	size_t n;
	enum mfs_code rc = MFS_OK;
	FILE *f;
	if ((rc = mfs_fopen_regular(path, "--metaflow-spec", MFS_ERR_CONFIG, &f, err)) != MFS_OK)
		return rc;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		mfs_buf_add(&text, chunk, n);
	if (ferror(f))
		rc = mfs_fail(err, MFS_ERR_CONFIG, "--metaflow-spec %s: read error", path);
	fclose(f);
	if (rc == MFS_OK)
		rc = mfs_mf_spec_parse(text.data ? text.data : "", text.len, spec, err);
	mfs_buf_release(&text);
	return rc;
}

/* ---- the script --------------------------------------------------------- */

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

/* The step command: the spec's interpreter, the flow file by its name in
 * the package, then every word after the flow file quoted; a long
 * --input-paths value is read back from env chunks. */
static void add_step_command(const struct mfs_mf_spec *spec, const struct mfs_step *st,
			     const char *const *argv, struct mfs_kvlist *env_out,
			     struct mfs_buf *out)
{
	mfs_buf_addf(out, "%s -u ", spec->executable);
	mfs_buf_add_shell_quoted(out, base_name(argv[st->file_index]));
	for (size_t i = st->file_index + 1; argv[i]; i++) {
		const char *w = argv[i];
		mfs_buf_addch(out, ' ');
		if (i > st->step_index && strcmp(w, "--input-paths") == 0 && argv[i + 1] &&
		    strlen(argv[i + 1]) > MFS_MF_INPUT_CHUNK) {
			const char *v = argv[++i];
			size_t len = strlen(v);
			mfs_buf_adds(out, "--input-paths \"");
			for (size_t off = 0, k = 0; off < len; off += MFS_MF_INPUT_CHUNK, k++) {
				char name[64];
				size_t n = len - off < MFS_MF_INPUT_CHUNK ? len - off : MFS_MF_INPUT_CHUNK;
				char *chunk = mfs_xstrndup(v + off, n);
				snprintf(name, sizeof(name), "METAFLOW_INPUT_PATHS_%zu", k);
				mfs_kvlist_set(env_out, name, chunk);
				free(chunk);
				mfs_buf_addf(out, "${%s}", name);
			}
			mfs_buf_addch(out, '"');
			continue;
		}
		mfs_buf_add_shell_quoted(out, w);
	}
}

/* Long on purpose: it writes one shell script top to bottom, and the
 * numbered sections below are that script's sections in order; split, the
 * script could no longer be read from here. */
enum mfs_code mfs_mf_build_script(const struct mfs_mf_spec *spec, const struct mfs_step *st,
				  const char *const *argv, struct mfs_kvlist *env_out,
				  struct mfs_buf *out, struct mfs_err *err)
{
	struct mfs_buf path = MFS_BUF_INIT;
	if (!st->flow_name || !st->step || !st->run_id || !st->task_id || !st->file_index)
		return mfs_fail(err, MFS_ERR_USAGE,
				"--metaflow-spec needs a Metaflow step command after --, "
				"e.g. python flow.py step NAME --run-id R --task-id T");
	mfs_step_pathspec(st, &path);

	/* 1. logs and mflog variables, before anything can fail */
	mfs_buf_adds(out, "mkdir -p \"$PWD/.logs\" || exit 1\n");
	mfs_buf_adds(out, "export PYTHONUNBUFFERED=x MF_PATHSPEC=");
	mfs_buf_add_shell_quoted(out, path.data);
	mfs_buf_adds(out, " MF_DATASTORE=");
	mfs_buf_add_shell_quoted(out, spec->ds_type);
	mfs_buf_addf(out, " MF_ATTEMPT=%d", st->attempt);
	mfs_buf_adds(out, " MFLOG_STDOUT=\"$PWD/.logs/mflog_stdout\" MFLOG_STDERR=\"$PWD/.logs/mflog_stderr\"");
	if (spec->ds_root) {
		mfs_buf_adds(out, " MF_DATASTORE_ROOT=");
		mfs_buf_add_shell_quoted(out, spec->ds_root);
	}
	mfs_buf_adds(out, "\nMFS_PY=");
	mfs_buf_add_shell_quoted(out, spec->python);
	mfs_buf_adds(out, "\n");

	/* 2. shell functions Metaflow's bootstrap commands rely on; `python`
	 * is provided when the image has only python3 (or the spec names a
	 * venv interpreter), and the helpers' interpreter falls back to
	 * python3 when the spec's is missing, so the function never calls itself */
	mfs_buf_adds(out,
		"command -v \"$MFS_PY\" >/dev/null 2>&1 || MFS_PY=$(command -v python3 || echo python3)\n"
		"command -v python >/dev/null 2>&1 || { python() { \"$MFS_PY\" \"$@\"; }; export -f python; }\n"
		"mflog() { local t; t=$(date -u +%Y-%m-%dT%H:%M:%S.%6N); "
		"printf '[MFLOG|0|%sZ|task|%s]%s\\n' \"$t\" \"$t\" \"$1\" >> \"$MFLOG_STDOUT\"; printf '%s\\n' \"$1\"; }\n"
		"flush_mflogs() { \"$MFS_PY\" -m metaflow.mflog.save_logs >/dev/null; }\n"
		"export -f mflog flush_mflogs\n"
		"export MFS_PY\n");

	/* 3. set-up chain: stops at the first failure */
	mfs_buf_adds(out, "mflog 'Setting up task environment.' &&\n");
	if (spec->dependencies.n) {
		mfs_buf_adds(out, "{ [ -n \"$METAFLOW_SKIP_INSTALL_DEPENDENCIES\" ] || \"$MFS_PY\" -c 'import ");
		for (size_t i = 0; i < spec->dependencies.n; i++) {
			/* package name == module name for the datastore clients */
			const char *p = spec->dependencies.v[i];
			mfs_buf_addf(out, "%s%s", i ? ", " : "", p);
		}
		mfs_buf_adds(out, "' 2>/dev/null || \"$MFS_PY\" -m pip install -qqq --no-compile --no-cache-dir "
				  "--disable-pip-version-check");
		for (size_t i = 0; i < spec->dependencies.n; i++)
			mfs_buf_addf(out, " %s", spec->dependencies.v[i]);
		mfs_buf_adds(out, "; } &&\n");
	}
	mfs_buf_adds(out, "mkdir -p " MFS_MF_STEP_DIR " && cd " MFS_MF_STEP_DIR " && mkdir -p .metaflow &&\n"
			  "{ TAR_OPTIONS=--warning=no-timestamp tar -xzf job.tar -C . || "
			  "{ mflog 'Could not extract the code package.'; false; }; } &&\n"
			  "rm -f job.tar &&\n");
	for (size_t i = 0; i < spec->post_extract_env.n; i++) {
		const char *k = spec->post_extract_env.items[i].key, *v = spec->post_extract_env.items[i].value;
		size_t kl = strlen(k);
		if (kl && k[kl - 1] == ':')
			mfs_buf_addf(out, "export %.*s=\"%s\" &&\n", (int)(kl - 1), k, v);
		else
			mfs_buf_addf(out, "export %s=\"%s${%s:+:$%s}\" &&\n", k, v, k, k);
	}
	mfs_buf_adds(out, "mflog 'Task is starting.' &&\n"
			  "flush_mflogs &&\n"
			  "rm -f .logs_out .logs_err && mkfifo .logs_out .logs_err &&\n"
			  "{ \"$MFS_PY\" -m metaflow.mflog.tee task \"$MFLOG_STDOUT\" < .logs_out & mfs_to=$!; } &&\n"
			  "{ \"$MFS_PY\" -m metaflow.mflog.tee task \"$MFLOG_STDERR\" < .logs_err >&2 & mfs_te=$!; } &&\n"
			  "{ (\n");

	/* 4. bootstrap commands and the step, output captured */
	for (size_t i = 0; i < spec->bootstrap.n; i++)
		mfs_buf_addf(out, "%s &&\n", spec->bootstrap.v[i]);
	add_step_command(spec, st, argv, env_out, out);
	mfs_buf_adds(out, "\n) > .logs_out 2> .logs_err; }\n");

	/* 5. always: wait for the tees, save the logs, keep the step's status */
	mfs_buf_adds(out, "c=$?\n"
			  "[ -n \"$mfs_to\" ] && wait \"$mfs_to\" \"$mfs_te\"\n"
			  "rm -f .logs_out .logs_err\n"
			  "\"$MFS_PY\" -m metaflow.mflog.save_logs >/dev/null\n"
			  "exit $c\n");
	mfs_buf_release(&path);
	return MFS_OK;
}

/* ---- output decoration ----------------------------------------------- */

static void emit(struct mfs_mf_task *t, enum mfs_stream stream, const char *line, size_t n)
{
	struct mfs_buf out = MFS_BUF_INIT;
	bool structured = (n >= 7 && memcmp(line, "[MFLOG|", 7) == 0) ||
			  (n >= 9 && memcmp(line, "[![MFLOG|", 9) == 0);
	if (!structured) {
		struct timespec ts;
		struct tm tm;
		char when[40];
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		mfs_buf_addf(&out, "[MFLOG|0|%s.%06ldZ|task|mfs-%d-%lu]", when, ts.tv_nsec / 1000,
			     (int)getpid(), ++t->seq);
	}
	mfs_buf_add(&out, line, n);
	if (t->down)
		t->down->write(t->down->ctx, stream, out.data, out.len);
	else
		mfs_write_all(stream == MFS_STDERR ? 2 : 1, out.data, out.len);
	mfs_buf_release(&out);
}

void mfs_mf_io_write(void *ctx, enum mfs_stream stream, const char *data, size_t len)
{
	struct mfs_mf_task *t = ctx;
	struct mfs_buf *part = &t->partial[stream == MFS_STDERR ? 1 : 0];
	while (len) {
		const char *nl = memchr(data, '\n', len);
		size_t n = nl ? (size_t)(nl - data) + 1 : len;
		size_t room = MFS_MF_LINE_MAX - part->len;
		if (n > room) {
			/* A line longer than the bound (or output that never ends
			 * one) is passed on in bounded pieces, each its own line,
			 * instead of being held in memory without limit. */
			mfs_buf_add(part, data, room);
			mfs_buf_addch(part, '\n');
			emit(t, stream, part->data, part->len);
			mfs_buf_reset(part);
			data += room;
			len -= room;
			continue;
		}
		if (!nl) {
			mfs_buf_add(part, data, len);
			return;
		}
		if (part->len) {
			mfs_buf_add(part, data, n);
			emit(t, stream, part->data, part->len);
			mfs_buf_reset(part);
		} else {
			emit(t, stream, data, n);
		}
		data += n;
		len -= n;
	}
}

void mfs_mf_task_init(struct mfs_mf_task *t, const char *spec_path)
{
	memset(t, 0, sizeof(*t));
	t->spec_path = spec_path ? mfs_xstrdup(spec_path) : NULL;
	mfs_mf_spec_init(&t->spec);
	mfs_buf_init(&t->partial[0]);
	mfs_buf_init(&t->partial[1]);
	t->io.write = mfs_mf_io_write;
	t->io.ctx = t;
}

void mfs_mf_task_release(struct mfs_mf_task *t)
{
	for (int i = 0; i < 2; i++) {
		if (t->partial[i].len) {
			mfs_buf_addch(&t->partial[i], '\n');
			emit(t, i ? MFS_STDERR : MFS_STDOUT, t->partial[i].data, t->partial[i].len);
		}
		mfs_buf_release(&t->partial[i]);
	}
	mfs_mf_spec_release(&t->spec);
	free(t->spec_path);
	t->spec_path = NULL;
}

/* ---- the prepare hook ------------------------------------------------- */

bool mfs_mf_relay_needed(const struct mfs_step *st)
{
	return (st->metadata && !strcmp(st->metadata, "service")) ||
	       (st->datastore && strcmp(st->datastore, "local") != 0);
}

/* A Metaflow config value the sandbox gets: not one whose name looks
 * secret (the one rule, src/util/redact.c), except the names that rule
 * mistakes, which name a kind of service rather than hold a secret. */
static bool config_passes(const char *name)
{
	static const char *const not_secret[] = { "METAFLOW_DEFAULT_SECRETS_BACKEND_TYPE" };
	for (size_t i = 0; i < sizeof(not_secret) / sizeof(not_secret[0]); i++)
		if (!strcmp(name, not_secret[i]))
			return true;
	return !mfs_secret_name(name);
}

/* Environment: Metaflow config that passes, spec values, the metadata the
 * task uses, then forwarded secrets and input chunks.  Values go through
 * the sandbox environment, never argv. */
static void add_env(struct mfs_job *job, const struct mfs_mf_spec *spec,
		    const struct mfs_kvlist *chunks, bool relay)
{
	for (size_t i = 0; i < spec->config_env.n; i++)
		if (config_passes(spec->config_env.items[i].key))
			mfs_kvlist_set(&job->env, spec->config_env.items[i].key,
				       spec->config_env.items[i].value);
	for (size_t i = 0; i < spec->env.n; i++)
		mfs_kvlist_set(&job->env, spec->env.items[i].key, spec->env.items[i].value);
	mfs_kvlist_set(&job->env, "METAFLOW_DEFAULT_METADATA",
		       job->step.metadata ? job->step.metadata : "local");
	if (relay) /* the task ships its local metadata through the datastore */
		mfs_kvlist_set(&job->env, "METAFLOW_SANDBOX_METADATA_RELAY", "1");
	for (size_t i = 0; i < spec->forward_env.n; i++) {
		const char *v = getenv(spec->forward_env.v[i]);
		if (v && *v)
			mfs_kvlist_set(&job->env, spec->forward_env.v[i], v);
	}
	for (size_t i = 0; i < chunks->n; i++)
		mfs_kvlist_set(&job->env, chunks->items[i].key, chunks->items[i].value);
}

/* s is the bare word "python" or "python3", give or take spaces. */
static bool plain_python(const char *s)
{
	s += strspn(s, " \t");
	size_t n = strcspn(s, " \t");
	if (s[n + strspn(s + n, " \t")] != '\0')
		return false;
	return (n == 6 && !strncmp(s, "python", 6)) || (n == 7 && !strncmp(s, "python3", 7));
}

/* A backend on this machine (MFS_CAP_HOST_BINDS: the local one) shows the
 * launcher's own interpreter, which has Metaflow and the datastore clients,
 * where a plain `python` on the sandbox's PATH may have neither: the
 * helpers and a plain-python step run with it, and nothing is installed.
 * An environment's own interpreter (@pypi, @conda) is left as it is. */
static void use_launcher_python(const struct mfs_job *job, struct mfs_mf_spec *spec)
{
	if (!spec->launcher_python || !job->ops || !(job->ops->caps & MFS_CAP_HOST_BINDS))
		return;
	free(spec->python);
	spec->python = mfs_xstrdup(spec->launcher_python);
	if (plain_python(spec->executable)) {
		struct mfs_buf q = MFS_BUF_INIT;
		mfs_buf_add_shell_quoted(&q, spec->launcher_python);
		free(spec->executable);
		spec->executable = mfs_buf_detach(&q, NULL);
	}
	mfs_strv_release(&spec->dependencies);
}

/* Sizes and deadline: the decorator's default sizes are only applied where
 * the backend can (the executor drops them silently elsewhere), and a step
 * @timeout longer than --timeout raises it, with room for set-up. */
static void set_limits(struct mfs_job *job, const struct mfs_mf_spec *spec)
{
	job->size_defaults = spec->default_sizes;
	if (spec->step_timeout_s && job->timeout_s > 0 &&
	    job->timeout_s < spec->step_timeout_s + MFS_MF_TIMEOUT_SLACK_S)
		job->timeout_s = spec->step_timeout_s + MFS_MF_TIMEOUT_SLACK_S;
}

enum mfs_code mfs_mf_prepare(struct mfs_job *job, struct mfs_err *err)
{
	struct mfs_mf_task *t = job->prepare_ctx;
	struct mfs_mf_spec *spec = &t->spec;
	struct mfs_buf script = MFS_BUF_INIT;
	struct mfs_kvlist chunks = MFS_KVLIST_INIT;
	struct stat sb;
	enum mfs_code rc;

	if ((rc = mfs_mf_spec_load(t->spec_path, spec, err)) != MFS_OK)
		goto out;
	if (!job->is_step) {
		rc = mfs_fail(err, MFS_ERR_USAGE,
			      "--metaflow-spec needs a Metaflow step command after --, "
			      "e.g. python flow.py step NAME --run-id R --task-id T");
		goto out;
	}
	errno = 0;
	if (stat(spec->package_path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		rc = mfs_fail(err, MFS_ERR_CONFIG, "--metaflow-spec: code package %s: %s",
			      spec->package_path, errno ? strerror(errno) : "not a file");
		goto out;
	}
	mfs_step_set_flow_name(&job->step, spec->flow_name);
	bool relay = mfs_mf_relay_needed(&job->step);
	/* The sandbox cannot reach the launcher's metadata service: it writes
	 * local metadata, relayed after the task. */
	if (job->step.metadata && !strcmp(job->step.metadata, "service") &&
	    (rc = mfs_step_set_option(&job->argv, &job->step, "metadata", "local", err)) != MFS_OK)
		goto out;

	use_launcher_python(job, spec);
	rc = mfs_mf_build_script(spec, &job->step, (const char *const *)job->argv.v, &chunks,
				 &script, err);
	if (rc != MFS_OK)
		goto out;
	add_env(job, spec, &chunks, relay);
	set_limits(job, spec);
	for (size_t i = 0; i < spec->rw_paths.n; i++)
		mfs_strv_push(&job->rw_paths, spec->rw_paths.v[i]);
	mfs_kvlist_set(&job->uploads, MFS_MF_PACKAGE_REMOTE, spec->package_path);

	{
		const char *bash_argv[] = { "bash", "-c", script.data, NULL };
		mfs_strv_release(&job->argv);
		mfs_strv_pushv(&job->argv, bash_argv);
	}
	t->down = job->io;
	job->io = &t->io;
out:
	mfs_kvlist_release(&chunks);
	mfs_buf_release(&script);
	return rc;
}
