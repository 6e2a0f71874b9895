/*
 * view.c - which host paths a local sandbox shows, read-only, by default:
 * what a Python program needs and nothing of the launcher's own.
 *
 * The system: /usr, the top-level bin/sbin/lib* (symlinks into /usr on a
 * merged-/usr system, recreated as symlinks), and /etc with its private
 * entries hidden.  "Private" is the system's own judgement: whatever under
 * /etc is not readable by others (shadow, gshadow, sudoers, ssl/private,
 * ssh host keys, ...), found once per sandbox at create().  A file that a
 * top-level /etc symlink points to outside the view (resolv.conf ->
 * /run/...) is shown alone, never its directory.
 *
 * The interpreter: a Python named in the command (an absolute .../python*
 * or .../pypy* word in argv or the environment) or found as `python3`/
 * `python` on the command's PATH shows its prefix: the venv (pyvenv.cfg
 * next to bin/), the base installation the venv names (`home =`), and the
 * installation its binary resolves to (pyenv, conda, uv).  A prefix that
 * would show a home directory, /, /run, /tmp or /var as a whole is not
 * shown: such a Python needs an explicit --ro-bind.
 */
#include "local.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ETC_MAX_DEPTH    6
#define ETC_MAX_ENTRIES  20000  /* walked; a larger /etc is refused */
#define ETC_MAX_HIDDEN   512
#define PY_MAX           16     /* interpreters looked at per command */

/* Shown read-only in every sandbox (top-level lib* are found at run time). */
static const char *const system_dirs[] = { "/usr", "/bin", "/sbin", "/etc", NULL };

static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0');
}

static bool is_lib_name(const char *name)
{
	return !strncmp(name, "lib", 3) && strchr("36x", name[3] ? name[3] : '3') &&
	       strlen(name) <= 6;
}

/* Inside a system directory of the view (so already shown). */
static bool in_system_view(const char *path)
{
	for (const char *const *d = system_dirs; *d; d++)
		if (under(path, *d))
			return true;
	const char *second = strchr(path + 1, '/');
	size_t n = second ? (size_t)(second - path - 1) : strlen(path + 1);
	char top[8];
	if (n >= sizeof(top))
		return false;
	memcpy(top, path + 1, n);
	top[n] = '\0';
	return is_lib_name(top);
}

/* ------------------------------------------------------------ /etc scan */

struct etc_walk {
	struct mfs_strv todo;     /* directories still to read (no recursion) */
	struct mfs_strv depth;    /* their depths, as text, same index */
	size_t seen;
};

/* Records one entry of an /etc directory (dirfd: that directory): hidden
 * when others may not read it (a directory: not read or not enter), queued
 * when a readable directory.  Relative to dirfd, no path walk per entry:
 * this runs for every file of /etc at each create(). */
static void etc_entry(struct local_sandbox *ls, struct etc_walk *w, int dirfd,
		      const char *path, const char *name, int depth)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISLNK(st.st_mode))
		return;
	bool dir = S_ISDIR(st.st_mode);
	bool open_to_all = dir ? (st.st_mode & (S_IROTH | S_IXOTH)) == (S_IROTH | S_IXOTH)
			       : (st.st_mode & S_IROTH) && (S_ISREG(st.st_mode) || S_ISCHR(st.st_mode));
	if (!open_to_all) {
		mfs_strv_pushf(&ls->etc_hidden, "%c%s", dir ? 'd' : 'f', path);
	} else if (dir && depth < ETC_MAX_DEPTH) {
		mfs_strv_push(&w->todo, path);
		mfs_strv_pushf(&w->depth, "%d", depth + 1);
	}
}

/* A top-level /etc symlink to a regular file outside the view; never one
 * into /proc, /sys or /dev (mtab -> /proc/self/mounts resolves to the
 * launcher's own pid: the sandbox's /proc answers it instead). */
static void etc_link(struct local_sandbox *ls, const char *path)
{
	struct stat st;
	char *real = realpath(path, NULL);
	if (real && !in_system_view(real) && !under(real, "/proc") && !under(real, "/sys") &&
	    !under(real, "/dev") && stat(real, &st) == 0 && S_ISREG(st.st_mode) &&
	    (st.st_mode & S_IROTH))
		mfs_strv_push(&ls->etc_links, real);
	free(real);
}

/* One directory of the walk; false when a bound is passed. */
static bool etc_dir(struct local_sandbox *ls, struct etc_walk *w, const char *dir, int depth)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return true;  /* unreadable to us: hidden by its own mode, or gone */
	}
	struct dirent *e;
	bool ok = true;
	while (ok && (e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		struct mfs_buf p = MFS_BUF_INIT;
		mfs_buf_addf(&p, "%s/%s", dir, e->d_name);
		if (e->d_type == DT_LNK) {
			if (depth == 1)
				etc_link(ls, p.data);
		} else {
			etc_entry(ls, w, dirfd(d), p.data, e->d_name, depth);
		}
		mfs_buf_release(&p);
		ok = ++w->seen <= ETC_MAX_ENTRIES && ls->etc_hidden.n <= ETC_MAX_HIDDEN;
	}
	closedir(d);
	return ok;
}

/* Fills ls->etc_hidden and ls->etc_links; a breadth-first walk whose
 * queue is bounded by ETC_MAX_ENTRIES. */
enum mfs_code local_view_scan_etc(struct local_sandbox *ls, struct mfs_err *err)
{
	struct etc_walk w = { MFS_STRV_INIT, MFS_STRV_INIT, 0 };
	enum mfs_code rc = MFS_OK;
	mfs_strv_push(&w.todo, "/etc");
	mfs_strv_push(&w.depth, "1");
	for (size_t i = 0; i < w.todo.n && rc == MFS_OK; i++)
		if (!etc_dir(ls, &w, w.todo.v[i], atoi(w.depth.v[i])))
			rc = mfs_fail(err, MFS_ERR_CONFIG,
				      "/etc has more than %d entries or %d private ones; the local "
				      "backend cannot hide them all", ETC_MAX_ENTRIES, ETC_MAX_HIDDEN);
	mfs_strv_release(&w.todo);
	mfs_strv_release(&w.depth);
	return rc;
}

/* ------------------------------------------------------------ system */

static void push3(struct mfs_strv *argv, const char *a, const char *b, const char *c)
{
	mfs_strv_push(argv, a);
	mfs_strv_push(argv, b);
	if (c)
		mfs_strv_push(argv, c);
}

/* A top-level entry as it is on the host: a symlink stays one. */
static void show_top(const char *path, struct mfs_strv *argv)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return;
	if (S_ISLNK(st.st_mode)) {
		char target[4096];
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			push3(argv, "--symlink", target, path);
		}
	} else if (S_ISDIR(st.st_mode)) {
		push3(argv, "--ro-bind", path, path);
	}
}

void local_view_system(const struct local_sandbox *ls, struct mfs_strv *argv)
{
	for (const char *const *d = system_dirs; *d; d++)
		show_top(*d, argv);
	DIR *root = opendir("/");
	struct dirent *e;
	while (root && (e = readdir(root)) != NULL) {
		if (!is_lib_name(e->d_name))
			continue;
		struct mfs_buf p = MFS_BUF_INIT;
		mfs_buf_addf(&p, "/%s", e->d_name);
		show_top(p.data, argv);
		mfs_buf_release(&p);
	}
	if (root)
		closedir(root);
	for (size_t i = 0; i < ls->etc_hidden.n; i++) {
		const char *path = ls->etc_hidden.v[i] + 1;
		if (ls->etc_hidden.v[i][0] == 'd') {
			push3(argv, "--tmpfs", path, NULL);
			push3(argv, "--remount-ro", path, NULL);
		} else {
			push3(argv, "--ro-bind", "/dev/null", path);
		}
	}
	for (size_t i = 0; i < ls->etc_links.n; i++)
		push3(argv, "--ro-bind", ls->etc_links.v[i], ls->etc_links.v[i]);
}

/* ------------------------------------------------------------ python */

/* A prefix may be shown unless it would show one of these (or / itself)
 * whole: a home, the runtime dirs, the shared temp dirs, the state root. */
static bool prefix_allowed(const char *prefix, const char *home, const char *state_root)
{
	const char *const keep_out[] = { "/home", "/root", "/run", "/var/run", "/var/tmp", "/tmp",
					 "/var", "/proc", "/sys", "/dev", home, state_root, NULL };
	if (!strcmp(prefix, "/") || in_system_view(prefix) || under(prefix, state_root))
		return false;  /* shown already: the system, or a work dir */
	for (const char *const *k = keep_out; *k; k++)
		if (**k == '/' && under(*k, prefix))
			return false;
	return true;
}

static void add_prefix(struct mfs_strv *out, const char *prefix, const char *home,
		       const char *state_root)
{
	struct stat st;
	if (!prefix_allowed(prefix, home, state_root) || stat(prefix, &st) != 0 || !S_ISDIR(st.st_mode))
		return;
	for (size_t i = 0; i < out->n; i++)
		if (!strcmp(out->v[i], prefix))
			return;
	mfs_strv_push(out, prefix);
}

/* "/a/b/bin/python" -> "/a/b": two levels up, in place; false if there
 * are not two. */
static bool up2(char *path)
{
	for (int i = 0; i < 2; i++) {
		char *slash = strrchr(path, '/');
		if (!slash || slash == path)
			return false;
		*slash = '\0';
	}
	return true;
}

/* The `home = DIR` line of a venv's pyvenv.cfg, or NULL. */
static char *venv_home(const char *venv)
{
	struct mfs_buf cfg = MFS_BUF_INIT;
	mfs_buf_addf(&cfg, "%s/pyvenv.cfg", venv);
	char *text = local_read_text(cfg.data);
	mfs_buf_release(&cfg);
	char *home = NULL;
	for (char *line = text; line && *line; ) {
		char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		if (!strncmp(line, "home", 4)) {
			const char *v = line + 4;
			while (*v == ' ' || *v == '\t' || *v == '=')
				v++;
			size_t vn = n - (size_t)(v - line);
			while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\r'))
				vn--;
			if (v[0] == '/' && vn)
				home = mfs_xstrndup(v, vn);
			break;
		}
		line += n + (nl ? 1 : 0);
	}
	free(text);
	return home;
}

/* The prefixes interpreter py needs: its venv, the venv's base, and the
 * installation its binary resolves to. */
static void prefixes_of(const char *py, const char *home, const char *root, struct mfs_strv *out)
{
	char *named = mfs_xstrdup(py);
	if (up2(named)) {
		char *base = venv_home(named);
		add_prefix(out, named, home, root);
		if (base) {
			char *slash = strrchr(base, '/');
			if (slash && slash != base && !strcmp(slash, "/bin"))
				*slash = '\0';
			add_prefix(out, base, home, root);
			free(base);
		}
	}
	char *real = realpath(py, NULL);
	if (real && up2(real))
		add_prefix(out, real, home, root);
	free(real);
	free(named);
}

static bool python_name(const char *path, size_t n)
{
	const char *base = path;
	for (size_t i = 0; i < n; i++)
		if (path[i] == '/')
			base = path + i + 1;
	return !strncmp(base, "python", 6) || !strncmp(base, "pypy", 4);
}

static bool executable_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Absolute .../python* and .../pypy* words in s that are executables. */
static void pythons_in(const char *s, struct mfs_strv *found)
{
	for (const char *p = strchr(s, '/'); p && found->n < PY_MAX; p = strchr(p + 1, '/')) {
		if (p != s && !strchr(" \t\n'\"=:;(`", p[-1]))
			continue;
		size_t n = strcspn(p, " \t\n'\":;)`$|&<>");
		if (!python_name(p, n))
			continue;
		char *path = mfs_xstrndup(p, n);
		if (executable_file(path))
			mfs_strv_push(found, path);
		free(path);
		p += n - 1;
	}
}

/* `python3` and `python` as the command's PATH finds them. */
static void pythons_on_path(const char *path, struct mfs_strv *found)
{
	const char *const names[] = { "python3", "python", NULL };
	for (const char *const *name = names; *name; name++) {
		for (const char *s = path; s && *s; ) {
			size_t n = strcspn(s, ":");
			struct mfs_buf p = MFS_BUF_INIT;
			mfs_buf_add(&p, s, n);
			mfs_buf_addf(&p, "/%s", *name);
			bool hit = s[0] == '/' && executable_file(p.data);
			if (hit)
				mfs_strv_push(found, p.data);
			mfs_buf_release(&p);
			if (hit)
				break;
			s += n + (s[n] == ':');
		}
	}
}

static const char *env_value(const struct mfs_strv *envp, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < envp->n; i++)
		if (!strncmp(envp->v[i], name, n) && envp->v[i][n] == '=')
			return envp->v[i] + n + 1;
	return NULL;
}

void local_view_python(const struct local_sandbox *ls, const char *const *cmd,
		       const struct mfs_strv *envp, struct mfs_strv *argv)
{
	struct mfs_strv pys = MFS_STRV_INIT, prefixes = MFS_STRV_INIT;
	const char *home = getenv("HOME");
	for (size_t i = 0; cmd[i]; i++)
		pythons_in(cmd[i], &pys);
	for (size_t i = 0; i < envp->n; i++)
		pythons_in(envp->v[i], &pys);
	pythons_on_path(env_value(envp, "PATH"), &pys);
	for (size_t i = 0; i < pys.n; i++)
		prefixes_of(pys.v[i], home ? home : "", ls->state_root, &prefixes);
	for (size_t i = 0; i < prefixes.n; i++)
		push3(argv, "--ro-bind", prefixes.v[i], prefixes.v[i]);
	mfs_strv_release(&pys);
	mfs_strv_release(&prefixes);
}
