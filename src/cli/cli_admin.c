/*
 * cli_admin.c - `mfsandbox backends`, `ls` and `kill`: everything that
 * looks at sandboxes from outside a run, through ops->probe/list/kill.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_internal.h"
#include "mfs/cli/cli.h"
#include "mfs/core/registry.h"
#include "mfs/util/launcher_id.h"
#include "mfs/util/redact.h"

/* ---- backends ---------------------------------------------------------- */

/* Probe notes come as lines; `backends` shows them joined on one line. */
static void join_lines(struct mfs_buf *out, const char *text)
{
	bool first = true;
	for (const char *p = text; p && *p;) {
		size_t n = strcspn(p, "\n");
		if (n) {
			mfs_buf_adds(out, first ? "" : "; ");
			mfs_buf_add(out, p, n);
			first = false;
		}
		p += n + (p[n] == '\n');
	}
}

int mfs_cmd_backends(int argc, char **argv)
{
	int status;
	if (mfs_cli_no_options("backends", argc, argv, false, &status))
		return status;
	for (size_t i = 0; i < mfs_backend_count(); i++) {
		const struct mfs_backend_ops *ops = mfs_backend_at(i);
		struct mfs_buf notes = MFS_BUF_INIT, line = MFS_BUF_INIT;
		struct mfs_err perr = { MFS_OK, "" };
		enum mfs_code rc = ops->probe(&notes, &perr);
		mfs_buf_addf(&line, "%-8s %-10s %s", ops->name, rc == MFS_OK ? "usable" : "unusable",
			     ops->summary ? ops->summary : "");
		if (rc != MFS_OK)
			mfs_buf_addf(&line, "; needs: %s", perr.msg);
		if (notes.len) {
			mfs_buf_adds(&line, "; limits: ");
			join_lines(&line, notes.data);
		}
		puts(line.data);
		mfs_buf_release(&notes);
		mfs_buf_release(&line);
	}
	fflush(stdout);
	return 0;
}

/* ---- collecting sandboxes ---------------------------------------------- */

struct found {
	const struct mfs_backend_ops *ops;
	char *id;
	char *state;
	time_t created;
	struct mfs_kvlist labels;
};

struct found_list {
	struct found *v;
	size_t n, cap;
	const struct mfs_backend_ops *ops; /* backend being listed */
};

static void on_sandbox(void *ctx, const struct mfs_sandbox_info *info)
{
	struct found_list *fl = ctx;
	if (fl->n == fl->cap) {
		fl->cap = fl->cap ? fl->cap * 2 : 16;
		fl->v = mfs_xrealloc(fl->v, fl->cap * sizeof(*fl->v));
	}
	struct found *f = &fl->v[fl->n++];
	f->ops = fl->ops;
	f->id = mfs_xstrdup(info->id ? info->id : "");
	f->state = mfs_xstrdup(info->state ? info->state : "");
	f->created = info->created;
	mfs_kvlist_init(&f->labels);
	for (size_t i = 0; info->labels && i < info->labels->n; i++)
		mfs_kvlist_set(&f->labels, info->labels->items[i].key, info->labels->items[i].value);
	if (!f->created) {
		const char *c = mfs_kvlist_get(&f->labels, MFS_LABEL_CREATED);
		long long v = c ? strtoll(c, NULL, 10) : 0;
		/* A label anyone with the key can set: before 1970 is unknown, and
		 * "now minus" a huge negative value would overflow. */
		f->created = v > 0 ? (time_t)v : 0;
	}
}

static void found_release(struct found_list *fl)
{
	for (size_t i = 0; i < fl->n; i++) {
		free(fl->v[i].id);
		free(fl->v[i].state);
		mfs_kvlist_release(&fl->v[i].labels);
	}
	free(fl->v);
	memset(fl, 0, sizeof(*fl));
}

/* Lists one named backend (errors are fatal) or every usable one
 * (an unusable backend is skipped; a failing list is a warning). */
static enum mfs_code collect(const char *backend, struct found_list *fl, int *warnings,
			     struct mfs_err *err)
{
	if (backend) {
		const struct mfs_backend_ops *ops = mfs_backend_find(backend);
		struct mfs_buf names = MFS_BUF_INIT;
		enum mfs_code rc;
		if (!ops) {
			mfs_backend_names(&names);
			rc = mfs_fail(err, MFS_ERR_USAGE, "--backend '%.40s' is not a backend (one of: %s)",
				      backend, names.data);
			mfs_buf_release(&names);
			return rc;
		}
		struct mfs_buf notes = MFS_BUF_INIT;
		rc = ops->probe(&notes, err);
		mfs_buf_release(&notes);
		if (rc != MFS_OK)
			return mfs_err_prefix(err, "backend %s is not usable here", ops->name);
		fl->ops = ops;
		rc = ops->list(on_sandbox, fl, err);
		if (rc != MFS_OK)
			mfs_err_prefix(err, "listing %s sandboxes", ops->name);
		return rc;
	}
	for (size_t i = 0; i < mfs_backend_count(); i++) {
		const struct mfs_backend_ops *ops = mfs_backend_at(i);
		struct mfs_buf notes = MFS_BUF_INIT;
		struct mfs_err lerr = { MFS_OK, "" };
		enum mfs_code rc = ops->probe(&notes, &lerr);
		mfs_buf_release(&notes);
		if (rc != MFS_OK || !(ops->caps & MFS_CAP_LIST))
			continue;
		fl->ops = ops;
		if (ops->list(on_sandbox, fl, &lerr) != MFS_OK) {
			struct mfs_buf msg = MFS_BUF_INIT;
			mfs_buf_addf(&msg, "warning: listing %s sandboxes: %s", ops->name, lerr.msg);
			mfs_cli_say(NULL, msg.data);
			mfs_buf_release(&msg);
			(*warnings)++;
		}
	}
	return MFS_OK;
}

static void shown(struct mfs_buf *out, const char *provider_text)
{
	mfs_escape_text(out, provider_text, 200);
}

static const char *label(const struct found *f, const char *key)
{
	const char *v = mfs_kvlist_get(&f->labels, key);
	return v && *v ? v : "-";
}

static void format_age(struct mfs_buf *out, time_t created)
{
	if (!created) {
		mfs_buf_adds(out, "?");
		return;
	}
	long long s = (long long)(time(NULL) - created);
	if (s < 0)
		s = 0;
	if (s < 120)
		mfs_buf_addf(out, "%llds", s);
	else if (s < 7200)
		mfs_buf_addf(out, "%lldm", s / 60);
	else if (s < 172800)
		mfs_buf_addf(out, "%lldh", s / 3600);
	else
		mfs_buf_addf(out, "%lldd", s / 86400);
}

/* Options of `kill`. */
static const struct option admin_opts[] = {
	{ "backend", required_argument, NULL, 'b' },
	{ "pathspec", required_argument, NULL, 'p' },
	{ "stale", no_argument, NULL, 's' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

/* ---- ls ---------------------------------------------------------------- */

static void print_row(const struct found *f)
{
	struct mfs_buf ps = MFS_BUF_INIT, age = MFS_BUF_INIT, id = MFS_BUF_INIT,
		       att = MFS_BUF_INIT, st = MFS_BUF_INIT, raw = MFS_BUF_INIT;
	if (mfs_kvlist_get(&f->labels, MFS_LABEL_FLOW))
		mfs_buf_addf(&raw, "%s/%s/%s/%s", label(f, MFS_LABEL_FLOW), label(f, MFS_LABEL_RUN),
			     label(f, MFS_LABEL_STEP), label(f, MFS_LABEL_TASK));
	else
		mfs_buf_adds(&raw, "-");
	format_age(&age, f->created);
	/* The provider wrote these: no escape sequence reaches the terminal. */
	shown(&ps, raw.data);
	shown(&id, f->id);
	shown(&att, label(f, MFS_LABEL_ATTEMPT));
	shown(&st, *f->state ? f->state : "-");
	printf("%-36s %-8s %-40s %-7s %-5s %s\n", id.data, f->ops->name, ps.data, att.data,
	       age.data, st.data);
	mfs_buf_release(&raw);
	mfs_buf_release(&ps);
	mfs_buf_release(&age);
	mfs_buf_release(&id);
	mfs_buf_release(&att);
	mfs_buf_release(&st);
}

int mfs_cmd_ls(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "backend", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct mfs_err err = { MFS_OK, "" };
	struct found_list fl = { 0 };
	const char *backend = NULL;
	int c, warnings = 0;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		if (c == 'h') {
			mfs_cli_help("ls");
			return 0;
		}
		if (c == 'b') {
			backend = optarg;
			continue;
		}
		mfs_cli_bad_option("ls", c, argv, optind, &err);
		return mfs_cli_fail(&err);
	}
	if (optind < argc) {
		mfs_fail(&err, MFS_ERR_USAGE, "ls takes no arguments (see 'mfsandbox ls --help')");
		return mfs_cli_fail(&err);
	}
	if (collect(backend, &fl, &warnings, &err) != MFS_OK) {
		found_release(&fl);
		return mfs_cli_fail(&err);
	}
	printf("%-36s %-8s %-40s %-7s %-5s %s\n", "ID", "BACKEND", "FLOW/RUN/STEP/TASK", "ATTEMPT",
	       "AGE", "STATE");
	for (size_t i = 0; i < fl.n; i++)
		print_row(&fl.v[i]);
	fflush(stdout);
	found_release(&fl);
	return warnings ? MFS_EXIT_BACKEND : 0;
}

/* ---- kill -------------------------------------------------------------- */

struct pathspec {
	char *parts[4]; /* flow, run, step, task; NULL past the given depth */
};

static enum mfs_code parse_pathspec(const char *text, struct pathspec *ps, struct mfs_err *err)
{
	size_t k = 0;
	const char *p = text;
	memset(ps, 0, sizeof(*ps));
	while (k < 4) {
		size_t n = strcspn(p, "/");
		if (!n)
			break;
		ps->parts[k++] = mfs_xstrndup(p, n);
		p += n;
		if (!*p)
			break;
		p++;
	}
	if (k < 2 || *p) {
		for (size_t i = 0; i < 4; i++)
			free(ps->parts[i]);
		memset(ps, 0, sizeof(*ps));
		return mfs_fail(err, MFS_ERR_USAGE,
				"--pathspec '%.80s': expected FLOW/RUN[/STEP[/TASK]], e.g. HelloFlow/12/start",
				text);
	}
	return MFS_OK;
}

static bool pathspec_matches(const struct pathspec *ps, const struct found *f)
{
	static const char *const keys[4] = { MFS_LABEL_FLOW, MFS_LABEL_RUN, MFS_LABEL_STEP, MFS_LABEL_TASK };
	for (size_t i = 0; i < 4 && ps->parts[i]; i++) {
		const char *v = mfs_kvlist_get(&f->labels, keys[i]);
		if (!v || strcmp(v, ps->parts[i]) != 0)
			return false;
	}
	return true;
}

/* Older than its own timeout, or its launcher (this machine, boot and pid
 * namespace; the same pid started at the same time) is gone.  A sandbox
 * from anywhere else is never stale by its launcher. */
static bool is_stale(const struct found *f, const struct mfs_launcher_id *self)
{
	const char *t = mfs_kvlist_get(&f->labels, MFS_LABEL_TIMEOUT);
	long long timeout = t ? strtoll(t, NULL, 10) : 0;
	if (timeout > 0 && f->created && (long long)(time(NULL) - f->created) > timeout)
		return true;
	return mfs_launcher_state(self, mfs_kvlist_get(&f->labels, MFS_LABEL_MACHINE),
				  mfs_kvlist_get(&f->labels, MFS_LABEL_BOOT),
				  mfs_kvlist_get(&f->labels, MFS_LABEL_PID),
				  mfs_kvlist_get(&f->labels, MFS_LABEL_PIDSTART)) == MFS_LAUNCHER_GONE;
}

/* Kills one sandbox: "killed ID (backend)" on stdout (already gone counts),
 * else one line on stderr and the first such error kept in *first. */
static void kill_one(const struct found *f, struct mfs_err *first)
{
	struct mfs_err kerr = { MFS_OK, "" };
	if (f->ops->kill(f->id, &kerr) == MFS_OK || kerr.code == MFS_ERR_NOTFOUND) {
		struct mfs_buf id = MFS_BUF_INIT;
		shown(&id, f->id);
		printf("killed %s (%s)\n", id.data, f->ops->name);
		mfs_buf_release(&id);
		return;
	}
	mfs_err_prefix(&kerr, "killing %s sandbox %s", f->ops->name, f->id);
	mfs_cli_say(NULL, kerr.msg);
	if (first->code == MFS_OK)
		*first = kerr;
}

/* What `kill` was asked to take: ids (each must name a sandbox), a
 * pathspec, and/or the stale ones. */
struct kill_selection {
	char **ids;
	size_t n_ids;
	const struct pathspec *ps;  /* NULL: no --pathspec */
	bool stale;
	const char *backend;        /* named in "no sandbox with id" */
};

/* Kills every found sandbox the selection names, then says which ids named
 * none; the first failure is kept in *first. */
static void kill_selected(const struct found_list *fl, const struct kill_selection *sel,
			  struct mfs_err *first)
{
	struct mfs_launcher_id self;
	bool *id_seen = mfs_xcalloc(sel->n_ids ? sel->n_ids : 1, sizeof(bool));

	mfs_launcher_self(&self);
	for (size_t i = 0; i < fl->n; i++) {
		const struct found *f = &fl->v[i];
		bool hit = false;
		for (size_t k = 0; k < sel->n_ids; k++)
			if (strcmp(sel->ids[k], f->id) == 0)
				hit = id_seen[k] = true;
		if (!hit && sel->ps && pathspec_matches(sel->ps, f))
			hit = true;
		if (!hit && sel->stale && is_stale(f, &self))
			hit = true;
		if (hit)
			kill_one(f, first);
	}
	fflush(stdout);
	for (size_t k = 0; k < sel->n_ids; k++) {
		if (id_seen[k])
			continue;
		struct mfs_err nerr;
		mfs_fail(&nerr, MFS_ERR_USAGE, "no sandbox with id '%.80s'%s%s (see 'mfsandbox ls')",
			 sel->ids[k], sel->backend ? " in backend " : "",
			 sel->backend ? sel->backend : "");
		mfs_cli_say(NULL, nerr.msg);
		if (first->code == MFS_OK)
			*first = nerr;
	}
	free(id_seen);
}

int mfs_cmd_kill(int argc, char **argv)
{
	struct mfs_err err = { MFS_OK, "" }, first = { MFS_OK, "" };
	struct found_list fl = { 0 };
	struct pathspec ps = { { NULL } };
	const char *backend = NULL, *pathspec = NULL;
	bool stale = false;
	int c, warnings = 0, status = 0;

	optind = 0;
	opterr = 0;
	/* Options after the IDs too (no '+'): no sandbox id starts with '-', and
	 * `kill ID --backend B` took "--backend" and "B" for two more ids. */
	while ((c = getopt_long(argc, argv, ":h", admin_opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			mfs_cli_help("kill");
			return 0;
		case 'b':
			backend = optarg;
			break;
		case 'p':
			pathspec = optarg;
			break;
		case 's':
			stale = true;
			break;
		default:
			mfs_cli_bad_option("kill", c, argv, optind, &err);
			return mfs_cli_fail(&err);
		}
	}
	char **ids = argv + optind;
	size_t n_ids = (size_t)(argc - optind);
	if (!n_ids && !pathspec && !stale) {
		mfs_fail(&err, MFS_ERR_USAGE, "kill: give sandbox IDs, --pathspec FLOW/RUN[/STEP[/TASK]] or --stale (see 'mfsandbox ls')");
		return mfs_cli_fail(&err);
	}
	if (pathspec && parse_pathspec(pathspec, &ps, &err) != MFS_OK)
		return mfs_cli_fail(&err);
	if (collect(backend, &fl, &warnings, &err) != MFS_OK) {
		status = mfs_cli_fail(&err);
		goto out;
	}
	struct kill_selection sel = { ids, n_ids, pathspec ? &ps : NULL, stale, backend };
	kill_selected(&fl, &sel, &first);
	if (first.code != MFS_OK)
		status = mfs_exit_for(first.code, 0, 0);
	else if (warnings)
		status = MFS_EXIT_BACKEND;
out:
	for (size_t i = 0; i < 4; i++)
		free(ps.parts[i]);
	found_release(&fl);
	return status;
}
