/* file.c - opening only regular files, reading and writing small files
 * whole (include/mfs/util/file.h). */
#include "mfs/util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum mfs_code mfs_fopen_regular(const char *path, const char *what, enum mfs_code code,
				FILE **out, struct mfs_err *err)
{
	*out = NULL;
	/* O_NONBLOCK: open() of a FIFO without a writer returns at once. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return mfs_fail(err, code, "%s %s: %s", what, path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return mfs_fail(err, code, "%s %s: not a regular file", what, path);
	}
	int fl = fcntl(fd, F_GETFL);
	FILE *f = fl >= 0 && fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == 0 ? fdopen(fd, "r") : NULL;
	if (!f) {
		int e = errno;
		close(fd);
		return mfs_fail(err, code, "%s %s: %s", what, path, strerror(e));
	}
	*out = f;
	return MFS_OK;
}

void mfs_write_all(int fd, const void *data, size_t n)
{
	const char *p = data;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd pfd = { .fd = fd, .events = POLLOUT };
				(void)poll(&pfd, 1, -1);
				continue;
			}
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

bool mfs_read_file(const char *path, struct mfs_buf *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	char chunk[8192];
	ssize_t n;
	mfs_buf_reset(out);
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int saved = errno;
			close(fd);
			errno = saved;
			return false;
		}
		mfs_buf_add(out, chunk, (size_t)n);
	}
	close(fd);
	mfs_buf_grow(out, 0);
	out->data[out->len] = '\0';
	return true;
}

enum mfs_code mfs_read_regular(const char *path, size_t max, struct mfs_buf *out,
			       struct mfs_err *err)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	enum mfs_code rc = MFS_OK;
	if (fd < 0)
		return mfs_fail(err, errno == ENOENT ? MFS_ERR_NOTFOUND : MFS_ERR_IO,
				"cannot read %s: %s", path, strerror(errno));
	mfs_buf_reset(out);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		rc = mfs_fail(err, MFS_ERR_IO, "cannot read %s: not a regular file", path);
	char chunk[8192];
	while (rc == MFS_OK) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n == 0)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = mfs_fail(err, MFS_ERR_IO, "cannot read %s: %s", path, strerror(errno));
		else if (out->len + (size_t)n > max)
			rc = mfs_fail(err, MFS_ERR_IO, "cannot read %s: larger than %zu bytes", path,
				      max);
		else
			mfs_buf_add(out, chunk, (size_t)n);
	}
	close(fd);
	mfs_buf_grow(out, 0);
	out->data[out->len] = '\0';
	return rc;
}

enum mfs_code mfs_make_dirs(const char *path, struct mfs_err *err)
{
	char *p = mfs_xstrdup(path);
	enum mfs_code rc = MFS_OK;

	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;
		*s = '\0';
		struct stat st;
		if (lstat(p, &st) == 0) {
			if (!S_ISDIR(st.st_mode)) {
				rc = mfs_fail(err, MFS_ERR_IO, "%s exists and is not a directory", p);
				break;
			}
		} else if (mkdir(p, 0700) != 0 && errno != EEXIST) {
			rc = mfs_fail(err, MFS_ERR_IO, "cannot create %s: %s", p, strerror(errno));
			break;
		}
		*s = c;
		if (!c)
			break;
	}
	free(p);
	return rc;
}

/* Writes all of data to fd; false with errno set. */
static bool write_fd(int fd, const char *data, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		off += (size_t)n;
	}
	return true;
}

enum mfs_code mfs_write_file_atomic(const char *path, const void *data, size_t len,
				    time_t mtime, struct mfs_err *err)
{
	struct mfs_buf tmp = MFS_BUF_INIT;
	enum mfs_code rc = MFS_OK;

	mfs_buf_addf(&tmp, "%s.tmp-%ld", path, (long)getpid());
	int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = mfs_fail(err, MFS_ERR_IO, "cannot write %s: %s", tmp.data, strerror(errno));
		goto out;
	}
	if (!write_fd(fd, data, len)) {
		rc = mfs_fail(err, MFS_ERR_IO, "cannot write %s: %s", tmp.data, strerror(errno));
		close(fd);
		unlink(tmp.data);
		goto out;
	}
	if (mtime) {
		struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
		futimens(fd, ts);
	}
	if (close(fd) != 0 || rename(tmp.data, path) != 0) {
		rc = mfs_fail(err, MFS_ERR_IO, "cannot write %s: %s", path, strerror(errno));
		unlink(tmp.data);
	}
out:
	mfs_buf_release(&tmp);
	return rc;
}
