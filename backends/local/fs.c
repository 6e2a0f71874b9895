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

/* Removes name under dirfd and everything below it, without following
 * symlinks; makes directories writable first (a command may chmod them). */
static int rm_tree_at(int at, const char *name)
{
	struct stat st;
	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(at, name, 0) == 0 || errno == ENOENT ? 0 : -1;

	int rc = 0;
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	(void)fchmod(fd, 0700);
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (rm_tree_at(dirfd(d), e->d_name) != 0)
			rc = -1;
	}
	closedir(d);
	if (unlinkat(at, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
		rc = -1;
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
