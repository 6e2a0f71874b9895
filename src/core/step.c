/*
 * step.c - recognise `PYTHON FLOW.py [top-level options] step NAME ...`
 * (include/mfs/core/step.h).
 *
 * Recognition is deliberately forgiving: anything we cannot read as a step
 * command is simply "not a step" and runs exactly as given.  Only the
 * fields the executor needs for names, labels and the header are kept.
 */
#include "mfs/core/step.h"

#include <stdlib.h>
#include <string.h>

/* Top-level options of Metaflow's `start` group that take one value
 * (--branch is @project's; --mode is Metaflow's spin mode). */
static const char *const top_one_value[] = {
	"metadata", "environment", "datastore", "datastore-root", "event-logger",
	"monitor", "with", "package-suffixes", "local-config-file", "branch",
	"tag", "namespace", "mode", NULL,
};
/* ... and those that take two (--config-value NAME VALUE, --config NAME FILE). */
static const char *const top_two_values[] = { "config-value", "config", NULL };
/* Known flags, so a following word is never taken for their value
 * (--production is @project's). */
static const char *const top_flags[] = {
	"quiet", "not-quiet", "pylint", "no-pylint", "production",
	"force-rebuild-environments", "no-force-rebuild-environments", NULL,
};

static bool in_list(const char *const *list, const char *s, size_t n)
{
	for (; *list; list++)
		if (strlen(*list) == n && strncmp(*list, s, n) == 0)
			return true;
	return false;
}

static bool is_python(const char *arg0)
{
	const char *base = strrchr(arg0, '/');
	base = base ? base + 1 : arg0;
	return strncmp(base, "python", 6) == 0 || strncmp(base, "pypy", 4) == 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Index of the script after the interpreter's own options, 0 if none
 * (e.g. `python -c ...` or `python -m ...` are not flows). */
static size_t script_index(const char *const *argv)
{
	size_t i = 1;
	while (argv[i] && argv[i][0] == '-' && argv[i][1]) {
		const char *o = argv[i];
		if (strcmp(o, "--") == 0)
			return argv[i + 1] ? i + 1 : 0;
		if (o[1] == '-')
			return 0; /* --version, --help ... */
		for (size_t k = 1; o[k]; k++) {
			if (o[k] == 'c' || o[k] == 'm')
				return 0;
			if (o[k] == 'X' || o[k] == 'W') {
				if (!o[k + 1])
					i++; /* value in the next word */
				break;
			}
		}
		if (!argv[i])
			return 0;
		i++;
	}
	return argv[i] ? i : 0;
}

/* Splits "--name=value" or "--name"; returns false if not a long option. */
static bool long_opt(const char *arg, const char **name, size_t *nlen, const char **inline_val)
{
	if (strncmp(arg, "--", 2) != 0 || !arg[2])
		return false;
	*name = arg + 2;
	const char *eq = strchr(*name, '=');
	*nlen = eq ? (size_t)(eq - *name) : strlen(*name);
	*inline_val = eq ? eq + 1 : NULL;
	return true;
}

/* Walks the top-level options from `from`; returns the index of the word
 * "step" or 0.  Calls seen() for every option with a value (for a
 * two-value option, with its second word). */
static size_t walk_top(const char *const *argv, size_t from, mfs_step_opt_fn seen, void *ctx)
{
	size_t i = from;
	while (argv[i]) {
		const char *name, *val;
		size_t nlen;
		if (strcmp(argv[i], "step") == 0)
			return i;
		if (!long_opt(argv[i], &name, &nlen, &val))
			return 0; /* another command (run, resume, batch ...) */
		if (val) {
			if (seen)
				seen(ctx, true, name, nlen, i, i, val);
			i++;
		} else if (in_list(top_two_values, name, nlen)) {
			if (!argv[i + 1] || !argv[i + 2])
				return 0;
			if (seen)
				seen(ctx, true, name, nlen, i, i + 2, argv[i + 2]);
			i += 3;
		} else if (in_list(top_one_value, name, nlen)) {
			if (!argv[i + 1])
				return 0;
			if (seen)
				seen(ctx, true, name, nlen, i, i + 1, argv[i + 1]);
			i += 2;
		} else if (in_list(top_flags, name, nlen)) {
			i++;
		} else {
			/* Unknown (e.g. a flow decorator's option): a following
			 * word that is neither an option nor "step" is its value. */
			const char *next = argv[i + 1];
			i += (next && next[0] != '-' && strcmp(next, "step") != 0) ? 2 : 1;
		}
	}
	return 0;
}

/* The step's own options after `step NAME`: a long option's value is the
 * next word unless that is an option too (Metaflow's step options all
 * take one value). */
static void walk_step(const char *const *argv, size_t si, mfs_step_opt_fn seen, void *ctx)
{
	for (size_t i = si + 2; argv[i]; i++) {
		const char *name, *val;
		size_t nlen, oi = i;
		if (!long_opt(argv[i], &name, &nlen, &val))
			continue;
		if (!val && argv[i + 1] && strncmp(argv[i + 1], "--", 2) != 0)
			val = argv[++i];
		if (val)
			seen(ctx, false, name, nlen, oi, i, val);
	}
}

void mfs_step_each_option(const char *const *argv, const struct mfs_step *st, mfs_step_opt_fn fn,
			  void *ctx)
{
	if (!st->step)
		return;
	size_t si = walk_top(argv, st->file_index + 1, fn, ctx);
	if (si)
		walk_step(argv, si, fn, ctx);
}

static void keep_top(void *ctx, bool top, const char *name, size_t nlen, size_t idx, size_t vidx,
		     const char *value)
{
	struct mfs_step *st = ctx;
	char **slot = NULL;
	(void)top;
	(void)idx;
	(void)vidx;
	if (nlen == 8 && strncmp(name, "metadata", 8) == 0)
		slot = &st->metadata;
	else if (nlen == 9 && strncmp(name, "datastore", 9) == 0)
		slot = &st->datastore;
	else if (nlen == 14 && strncmp(name, "datastore-root", 14) == 0)
		slot = &st->datastore_root;
	if (slot) {
		free(*slot);
		*slot = mfs_xstrdup(value);
	}
}

static bool parse_attempt(const char *s, int *out)
{
	char *end;
	long v;
	if (!*s)
		return false;
	v = strtol(s, &end, 10);
	if (*end || v < 0 || v > 1000000)
		return false;
	*out = (int)v;
	return true;
}

static void set_default_flow_name(struct mfs_step *st)
{
	const char *base = strrchr(st->flow_file, '/');
	base = base ? base + 1 : st->flow_file;
	size_t n = strlen(base);
	if (n > 3 && strcmp(base + n - 3, ".py") == 0)
		n -= 3;
	st->flow_name = mfs_xstrndup(base, n);
}

static void keep_step(void *ctx, bool top, const char *name, size_t nlen, size_t idx, size_t vidx,
		      const char *val)
{
	struct mfs_step *st = ctx;
	(void)top;
	(void)idx;
	(void)vidx;
	if (nlen == 6 && strncmp(name, "run-id", 6) == 0) {
		free(st->run_id);
		st->run_id = mfs_xstrdup(val);
	} else if (nlen == 7 && strncmp(name, "task-id", 7) == 0) {
		free(st->task_id);
		st->task_id = mfs_xstrdup(val);
	} else if (nlen == 11 && strncmp(name, "retry-count", 11) == 0 && st->attempt >= 0 &&
		   !parse_attempt(val, &st->attempt)) {
		st->attempt = -1; /* not a step command: the caller checks */
	}
}

bool mfs_step_parse(const char *const *argv, struct mfs_step *st)
{
	memset(st, 0, sizeof(*st));
	if (!argv || !argv[0] || !is_python(argv[0]))
		return false;
	size_t fi = script_index(argv);
	if (!fi || !ends_with(argv[fi], ".py"))
		return false;
	size_t si = walk_top(argv, fi + 1, keep_top, st);
	if (!si || !argv[si + 1] || argv[si + 1][0] == '-')
		goto not_step;

	st->flow_file = mfs_xstrdup(argv[fi]);
	st->step = mfs_xstrdup(argv[si + 1]);
	st->file_index = fi;
	st->step_index = si;
	walk_step(argv, si, keep_step, st);
	if (st->attempt < 0)
		goto not_step;
	if (!st->run_id || !st->task_id || !*st->run_id || !*st->task_id)
		goto not_step;
	set_default_flow_name(st);
	return true;

not_step:
	mfs_step_release(st);
	return false;
}

void mfs_step_release(struct mfs_step *st)
{
	free(st->flow_file);
	free(st->flow_name);
	free(st->step);
	free(st->run_id);
	free(st->task_id);
	free(st->datastore);
	free(st->datastore_root);
	free(st->metadata);
	memset(st, 0, sizeof(*st));
}

void mfs_step_set_flow_name(struct mfs_step *st, const char *name)
{
	char *copy = mfs_xstrdup(name);
	free(st->flow_name);
	st->flow_name = copy;
}

struct rewrite {
	struct mfs_strv *argv;
	const char *name;
	const char *value;
	bool found;
};

static void rewrite_top(void *ctx, bool top, const char *name, size_t nlen, size_t idx,
			size_t vidx, const char *value)
{
	struct rewrite *rw = ctx;
	(void)top;
	(void)value;
	/* one-value options only: `--name=V` or `--name V` */
	if (strlen(rw->name) != nlen || strncmp(rw->name, name, nlen) != 0 || vidx > idx + 1)
		return;
	char **slot = &rw->argv->v[idx];
	if (vidx == idx) {
		struct mfs_buf b = MFS_BUF_INIT;
		mfs_buf_addf(&b, "--%s=%s", rw->name, rw->value);
		free(*slot);
		*slot = mfs_buf_detach(&b, NULL);
	} else {
		free(rw->argv->v[idx + 1]);
		rw->argv->v[idx + 1] = mfs_xstrdup(rw->value);
	}
	rw->found = true;
}

enum mfs_code mfs_step_set_option(struct mfs_strv *argv, struct mfs_step *st,
				  const char *name, const char *value, struct mfs_err *err)
{
	struct rewrite rw = { argv, name, value, false };
	if (!st->step)
		return mfs_fail(err, MFS_ERR_USAGE, "cannot set --%s: not a Metaflow step command", name);
	size_t si = walk_top((const char *const *)argv->v, st->file_index + 1, rewrite_top, &rw);
	if (!si)
		return mfs_fail(err, MFS_ERR_USAGE, "cannot set --%s: not a Metaflow step command", name);
	if (!rw.found) {
		/* Insert "--name value" before the step word: push two slots at
		 * the end, then rotate them into place. */
		mfs_strv_push(argv, "");
		mfs_strv_push(argv, "");
		char *a = argv->v[argv->n - 2], *b = argv->v[argv->n - 1];
		memmove(&argv->v[si + 2], &argv->v[si], (argv->n - 2 - si) * sizeof(char *));
		free(a);
		free(b);
		struct mfs_buf opt = MFS_BUF_INIT;
		mfs_buf_addf(&opt, "--%s", name);
		argv->v[si] = mfs_buf_detach(&opt, NULL);
		argv->v[si + 1] = mfs_xstrdup(value);
	}
	char *flow_name = st->flow_name ? mfs_xstrdup(st->flow_name) : NULL;
	mfs_step_release(st);
	bool ok = mfs_step_parse((const char *const *)argv->v, st);
	if (ok && flow_name)
		mfs_step_set_flow_name(st, flow_name);
	free(flow_name);
	if (!ok)
		return mfs_fail(err, MFS_ERR_USAGE, "setting --%s broke the step command", name);
	return MFS_OK;
}

void mfs_step_pathspec(const struct mfs_step *st, struct mfs_buf *out)
{
	mfs_buf_addf(out, "%s/%s/%s/%s", st->flow_name ? st->flow_name : "?",
		     st->run_id ? st->run_id : "?", st->step ? st->step : "?",
		     st->task_id ? st->task_id : "?");
}
