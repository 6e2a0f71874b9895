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

void local_build_argv(const struct local_sandbox *ls, const char *bwrap, const char *cwd,
		       const char *const *cmd, const struct mfs_strv *envp, struct mfs_strv *argv)
{
	mfs_strv_push(argv, bwrap);
	const char *const fixed[] = {
		"--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
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
	/* /tmp first, then a tmpfs over the state root (other sandboxes and our
	 * state file stay invisible), then the work dir at its host path. */
	mfs_strv_push(argv, "--bind");
	mfs_strv_push(argv, ls->tmpdir);
	mfs_strv_push(argv, "/tmp");
	add_host_tmp_binds(cmd, envp, argv);
	const char *const binds[] = {
		"--tmpfs", ls->state_root,
		"--bind", ls->base.workdir, ls->base.workdir,
		NULL };
	mfs_strv_pushv(argv, binds);
	for (size_t i = 0; i < ls->rw_paths.n; i++) {
		mfs_strv_push(argv, "--bind");
		mfs_strv_push(argv, ls->rw_paths.v[i]);
		mfs_strv_push(argv, ls->rw_paths.v[i]);
	}
	mfs_strv_push(argv, "--chdir");
	mfs_strv_push(argv, cwd);
	mfs_strv_push(argv, "--");
	mfs_strv_pushv(argv, cmd);
}
