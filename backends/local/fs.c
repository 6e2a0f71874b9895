/*
 * fs.c - small host file helpers of the local backend: make and remove
 * trees, read and publish small files.
 */
#include "local.h"
#include "mfs/util/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool local_is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int local_mkdir_p(const char *path, mode_t mode)
{
	char *p = mfs_xstrdup(path);
	int rc = 0;
	for (char *s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, mode) != 0 && errno != EEXIST) {
			rc = -1;
			break;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	if (rc == 0 && !local_is_dir(path)) {
		errno = ENOTDIR;
		rc = -1;
	}
	int saved = errno;
	free(p);
	errno = saved;
	return rc;
}

/* Removing a tree a command left: no recursion and a bounded number of open
 * directories, since the command decides how deep it is (a chain of 25,000
 * directories once ran out of descriptors and the sandbox could never be
 * removed), and directories made usable first (a command may chmod them
 * 000).  A level whose stream was closed to stay within RM_OPEN_MAX is
 * reopened through its child's "..", checked to be the same directory. */
#define RM_OPEN_MAX 64

struct rm_level {
	char *name;     /* in the parent */
	dev_t dev;
	ino_t ino;
	DIR *d;         /* NULL: closed, reopened when needed */
};

struct rm_walk {
	int at;                 /* the parent of level 0 */
	struct rm_level *v;
	size_t n, cap;
	size_t lo;              /* levels below lo are closed */
};

/* Opens directory name under fd, made rwx for us through the opened
 * inode itself (O_PATH, then /proc/self/fd), never through a symlink. */
static DIR *rm_open(int fd, const char *name, struct stat *st)
{
	int p = openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (p < 0 || fstat(p, st) != 0) {
		if (p >= 0)
			close(p);
		return NULL;
	}
	if ((st->st_mode & S_IRWXU) != S_IRWXU) {
		char self[64];
		snprintf(self, sizeof(self), "/proc/self/fd/%d", p);
		(void)chmod(self, 0700);
	}
	int d = openat(p, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(p);
	DIR *dir = d >= 0 ? fdopendir(d) : NULL;
	if (d >= 0 && !dir)
		close(d);
	return dir;
}

static int rm_push(struct rm_walk *w, int fd, const char *name)
{
	struct stat st;
	DIR *d = rm_open(fd, name, &st);
	if (!d)
		return -1;
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 16;
		w->v = mfs_xrealloc(w->v, w->cap * sizeof(*w->v));
	}
	w->v[w->n++] = (struct rm_level){ mfs_xstrdup(name), st.st_dev, st.st_ino, d };
	if (w->n - w->lo > RM_OPEN_MAX) {
		closedir(w->v[w->lo].d);
		w->v[w->lo++].d = NULL;
	}
	return 0;
}

/* The top level is empty: remove it from its parent, reopening the parent
 * through ".." first if it was closed. */
static int rm_pop(struct rm_walk *w)
{
	struct rm_level *top = &w->v[w->n - 1], *up = w->n > 1 ? top - 1 : NULL;
	int rc = 0;
	if (up && !up->d) {
		struct stat st;
		int d = openat(dirfd(top->d), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (d >= 0 && fstat(d, &st) == 0 && st.st_dev == up->dev && st.st_ino == up->ino)
			up->d = fdopendir(d);
		if (!up->d && d >= 0)
			close(d);
		if (!up->d)
			rc = -1;
		else
			w->lo = w->n - 2;
	}
	closedir(top->d);
	if (rc == 0 && unlinkat(up ? dirfd(up->d) : w->at, top->name, AT_REMOVEDIR) != 0 &&
	    errno != ENOENT)
		rc = -1;
	free(top->name);
	w->n--;
	return rc;
}

/* One entry of the top level: a file goes, a directory is entered. */
static int rm_entry(struct rm_walk *w, const char *name)
{
	int fd = dirfd(w->v[w->n - 1].d);
	struct stat st;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : -1;
	if (S_ISDIR(st.st_mode))
		return rm_push(w, fd, name);
	return unlinkat(fd, name, 0) == 0 || errno == ENOENT ? 0 : -1;
}

/* Removes name under at and everything below it, without following
 * symlinks.  0, or -1 with what could not be removed left in place. */
static int rm_tree_at(int at, const char *name)
{
	struct rm_walk w = { .at = at };
	struct stat st;
	int rc;
	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(at, name, 0) == 0 || errno == ENOENT ? 0 : -1;
	rc = rm_push(&w, at, name);
	while (rc == 0 && w.n) {
		errno = 0;
		struct dirent *e = readdir(w.v[w.n - 1].d);
		if (e)
			rc = rm_entry(&w, e->d_name);
		else
			rc = errno ? -1 : rm_pop(&w);
	}
	int saved = errno;
	for (size_t i = 0; i < w.n; i++) {
		if (w.v[i].d)
			closedir(w.v[i].d);
		free(w.v[i].name);
	}
	free(w.v);
	errno = saved;
	return rc;
}

static int rm_tree(const char *path)
{
	return rm_tree_at(AT_FDCWD, path);
}

/* An emptied directory (the common case) goes with one rmdir; a tree walk
 * only for what a command left.  0, or -1 with errno. */
int local_rm_dir(const char *path)
{
	if (rmdir(path) == 0 || errno == ENOENT)
		return 0;
	return errno == ENOTEMPTY || errno == EEXIST || errno == ENOTDIR ? rm_tree(path) : -1;
}


/* Reads a whole (small) file; NULL with errno set on failure. */
char *local_read_text(const char *path)
{
	struct mfs_buf b = MFS_BUF_INIT;
	if (!mfs_read_file(path, &b)) {
		int saved = errno;
		mfs_buf_release(&b);
		errno = saved;
		return NULL;
	}
	return mfs_buf_detach(&b, NULL);
}

int local_write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = strlen(text);
	ssize_t n = write(fd, text, len);
	int saved = errno;
	close(fd);
	if (n != (ssize_t)len) {
		errno = n < 0 ? saved : EIO;
		return -1;
	}
	return 0;
}

/* Publishes path with the given text: written to path.tmp, then renamed
 * onto a name that does not exist yet, so a reader sees all or nothing.
 * Never a rename over an existing file: on ext4 that forces the new data
 * to disk at once (auto_da_alloc), and a file whose blocks were allocated
 * costs a synchronous discard when removed on a discard-mounted fs.  A small
 * file created and removed within a run never reaches the disk. */
int local_publish_file(const char *path, const char *text, size_t len)
{
	struct mfs_buf tmp = MFS_BUF_INIT;
	mfs_buf_addf(&tmp, "%s.tmp", path);
	int rc = -1;
	int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		bool ok = write(fd, text, len) == (ssize_t)len;
		int saved = errno;
		if (close(fd) != 0 && ok) {
			ok = false;
			saved = errno;
		}
		if (ok && rename(tmp.data, path) == 0) {
			rc = 0;
		} else {
			if (ok)
				saved = errno;
			unlink(tmp.data);
			errno = saved;
		}
	}
	mfs_buf_release(&tmp);
	return rc;
}
