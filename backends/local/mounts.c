/*
 * mounts.c - what a command sees: its environment and bubblewrap's
 * argv, i.e. the namespaces and the filesystem view of the sandbox.
 */
#include "local.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The command's environment: a clean one, not the launcher's.  Kept from
 * the launcher: what finds programs and renders text (PATH, HOME, USER,
 * LOGNAME, LANG, LC_*, TZ, TERM); TMPDIR is the private /tmp.  Then
 * spec->env, then req->env, each overriding. */
void local_build_env(const struct local_sandbox *ls, const struct mfs_kvlist *extra,
		      struct mfs_strv *envp)
{
	static const char *const keep[] = { "PATH", "HOME", "USER", "LOGNAME", "LANG",
					    "LANGUAGE", "TZ", "TERM", NULL };
	struct mfs_kvlist env = MFS_KVLIST_INIT;
	extern char **environ;
	for (const char *const *k = keep; *k; k++) {
		const char *v = getenv(*k);
		if (v)
			mfs_kvlist_set(&env, *k, v);
	}
	for (char **e = environ; *e; e++) {
		char *eq = strchr(*e, '=');
		if (eq && !strncmp(*e, "LC_", 3)) {
			char *key = mfs_xstrndup(*e, (size_t)(eq - *e));
			mfs_kvlist_set(&env, key, eq + 1);
			free(key);
		}
	}
	if (!mfs_kvlist_get(&env, "PATH"))
		mfs_kvlist_set(&env, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	mfs_kvlist_set(&env, "TMPDIR", "/tmp");
	for (size_t i = 0; i < ls->env.n; i++)
		mfs_kvlist_set(&env, ls->env.items[i].key, ls->env.items[i].value);
	for (size_t i = 0; extra && i < extra->n; i++)
		mfs_kvlist_set(&env, extra->items[i].key, extra->items[i].value);
	for (size_t i = 0; i < env.n; i++)
		mfs_strv_pushf(envp, "%s=%s", env.items[i].key, env.items[i].value);
	mfs_kvlist_release(&env);
}

/* The private /tmp hides the host's.  Host entries under /tmp that the
 * command names in its argv or environment (a venv's interpreter, a flow
 * directory) or that hold the launcher's cwd stay visible read-only:
 * otherwise a project or venv living under /tmp cannot run its own tools.
 * Writes still land in the sandbox's own /tmp. */
static void tmp_names_in(const char *s, struct mfs_strv *out)
{
	for (const char *p = strstr(s, "/tmp/"); p; p = strstr(p + 1, "/tmp/")) {
		if (p != s && !strchr(" \t\n'\"=:;(", p[-1]))
			continue;
		const char *name = p + 5;
		size_t n = strcspn(name, "/ \t\n'\":;)");
		/* Only directories named as the parent of a path (/tmp/venv/bin/python):
		 * a bare /tmp/x may be a file the command means to create. */
		if (n == 0 || name[n] != '/' ||
		    (name[0] == '.' && (n == 1 || (n == 2 && name[1] == '.'))))
			continue;
		struct mfs_buf path = MFS_BUF_INIT;
		struct stat st;
		bool seen = false;
		mfs_buf_adds(&path, "/tmp/");
		mfs_buf_add(&path, name, n);
		for (size_t i = 0; i < out->n && !seen; i++)
			seen = !strcmp(out->v[i], path.data);
		if (!seen && lstat(path.data, &st) == 0 && S_ISDIR(st.st_mode))
			mfs_strv_push(out, path.data);
		mfs_buf_release(&path);
	}
}

static void add_host_tmp_binds(const char *const *cmd, const struct mfs_strv *envp,
			       struct mfs_strv *argv)
{
	struct mfs_strv names = MFS_STRV_INIT;
	char here[PATH_MAX + 1];
	for (size_t i = 0; cmd[i]; i++)
		tmp_names_in(cmd[i], &names);
	for (size_t i = 0; i < envp->n; i++)
		tmp_names_in(envp->v[i], &names);
	if (getcwd(here, sizeof(here) - 1))
		tmp_names_in(strcat(here, "/"), &names);
	for (size_t i = 0; i < names.n; i++) {
		mfs_strv_push(argv, "--ro-bind");
		mfs_strv_push(argv, names.v[i]);
		mfs_strv_push(argv, names.v[i]);
	}
	mfs_strv_release(&names);
}

/* A fresh tmpfs at $HOME unless HOME is not a plain absolute path of
 * its own (unset, /, inside the system view, /tmp or the state root):
 * the launcher's home, its keys and configuration, never show. */
static void add_home(const struct local_sandbox *ls, const struct mfs_strv *envp,
		     struct mfs_strv *argv)
{
	const char *home = NULL;
	for (size_t i = 0; i < envp->n; i++)
		if (!strncmp(envp->v[i], "HOME=", 5))
			home = envp->v[i] + 5;
	if (!home || home[0] != '/' || !home[1] || strstr(home, "/.") || strstr(home, "//"))
		return;
	const char *const not_there[] = { "/usr", "/bin", "/sbin", "/lib", "/etc", "/proc", "/dev",
					  "/tmp", "/var/tmp", ls->state_root, NULL };
	for (const char *const *d = not_there; *d; d++) {
		size_t n = strlen(*d);
		if (!strncmp(home, *d, n) && (home[n] == '/' || home[n] == '\0'))
			return;
	}
	mfs_strv_push(argv, "--tmpfs");
	mfs_strv_push(argv, home);
}

/* Binds sorted by destination, a parent before what is inside it. */
static void add_user_binds(const struct local_sandbox *ls, struct mfs_strv *argv)
{
	const struct mfs_kvlist *lists[2] = { &ls->ro_binds, &ls->rw_binds };
	size_t total = ls->ro_binds.n + ls->rw_binds.n;
	const struct mfs_kv **order = mfs_xcalloc(total ? total : 1, sizeof(*order));
	bool *rw = mfs_xcalloc(total ? total : 1, sizeof(*rw));
	size_t n = 0;
	for (int l = 0; l < 2; l++)
		for (size_t i = 0; i < lists[l]->n; i++) {
			size_t at = n++;
			const struct mfs_kv *kv = &lists[l]->items[i];
			while (at > 0 && strlen(order[at - 1]->key) > strlen(kv->key)) {
				order[at] = order[at - 1];
				rw[at] = rw[at - 1];
				at--;
			}
			order[at] = kv;
			rw[at] = l == 1;
		}
	for (size_t i = 0; i < n; i++) {
		mfs_strv_push(argv, rw[i] ? "--bind" : "--ro-bind");
		mfs_strv_push(argv, order[i]->value);
		mfs_strv_push(argv, order[i]->key);
	}
	free(order);
	free(rw);
}

/* bwrap's argv.  The root is an empty tmpfs, made read-only last; on it,
 * in order: the system view and private /dev, /proc; a fresh $HOME; the
 * sandbox's /tmp and a fresh /var/tmp; host /tmp dirs the command names;
 * the interpreter's prefixes; a tmpfs over the state root (other sandboxes
 * and state files stay invisible); the work dir at its host path; the
 * Metaflow datastore (rw_paths); then --ro-bind/--bind. */
void local_build_argv(const struct local_sandbox *ls, const char *bwrap, const char *cwd,
		      const char *const *cmd, const struct mfs_strv *envp, struct mfs_strv *argv)
{
	mfs_strv_push(argv, bwrap);
	const char *const fixed[] = {
		"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
		"--die-with-parent",
		/* setsid: no controlling terminal, so no TIOCSTI into the user's
		 * shell; signals reach the command through us instead. */
		"--new-session",
		"--json-status-fd", "3",
		NULL };
	mfs_strv_pushv(argv, fixed);
	if (geteuid() == 0) {
		/* root keeps its capabilities in bwrap unless told otherwise, and
		 * CAP_SYS_ADMIN could remount the host filesystem read-write */
		mfs_strv_push(argv, "--cap-drop");
		mfs_strv_push(argv, "ALL");
	}
	if (ls->net_none)
		mfs_strv_push(argv, "--unshare-net");
	local_view_system(ls, argv);
	const char *const devs[] = { "--dev", "/dev", "--proc", "/proc", NULL };
	mfs_strv_pushv(argv, devs);
	add_home(ls, envp, argv);
	const char *const tmps[] = { "--bind", ls->tmpdir, "/tmp", "--tmpfs", "/var/tmp", NULL };
	mfs_strv_pushv(argv, tmps);
	add_host_tmp_binds(cmd, envp, argv);
	local_view_python(ls, cmd, envp, argv);
	const char *const binds[] = {
		"--tmpfs", ls->state_root,
		"--bind", ls->base.workdir, ls->base.workdir,
		"--remount-ro", ls->state_root,
		NULL };
	mfs_strv_pushv(argv, binds);
	for (size_t i = 0; i < ls->rw_paths.n; i++) {
		mfs_strv_push(argv, "--bind");
		mfs_strv_push(argv, ls->rw_paths.v[i]);
		mfs_strv_push(argv, ls->rw_paths.v[i]);
	}
	add_user_binds(ls, argv);
	const char *const tail[] = { "--remount-ro", "/", "--chdir", cwd, "--", NULL };
	mfs_strv_pushv(argv, tail);
	mfs_strv_pushv(argv, cmd);
}
