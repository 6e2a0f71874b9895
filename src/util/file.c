/* file.c - opening only regular files (include/mfs/util/file.h). */
#include "mfs/util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
