/*
 * files.c - upload and download: plain copies between host paths, since
 * the work dir and the private /tmp are host directories bound inside.
 */
#include "local.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Where a path inside the sandbox lives on the host: a root directory (the
 * work dir has the same path on both sides, /tmp is the sandbox's private
 * tmp dir) and the path below it.  Anything else is the read-only host
 * filesystem, so a copy there makes no sense. */
static enum mfs_code host_path(const struct local_sandbox *ls, const char *inside,
			       const char **root, const char **rel, struct mfs_err *err)
{
	const char *wd = ls->base.workdir;
	size_t wl = strlen(wd);
	if (!inside || !*inside)
		return mfs_fail(err, MFS_ERR_USAGE, "empty sandbox path");
	for (const char *s = inside; *s; ) {
		const char *slash = strchr(s, '/');
		size_t n = slash ? (size_t)(slash - s) : strlen(s);
		if (n == 2 && !strncmp(s, "..", 2))
			return mfs_fail(err, MFS_ERR_USAGE, "sandbox path %s must not contain '..'", inside);
		s += n + (slash ? 1 : 0);
	}
	*root = wd;
	if (inside[0] != '/')
		*rel = inside;
	else if (!strncmp(inside, wd, wl) && inside[wl] == '/')
		*rel = inside + wl + 1;
	else if (!strncmp(inside, "/tmp/", 5))
		*root = ls->tmpdir, *rel = inside + 5;
	else
		return mfs_fail(err, MFS_ERR_USAGE,
				"sandbox path %s is outside the work dir %s and /tmp; the rest of the "
				"local sandbox is the read-only host filesystem", inside, wd);
	while (**rel == '/')
		(*rel)++;
	if (!**rel)
		return mfs_fail(err, MFS_ERR_USAGE, "sandbox path %s names a directory, not a file",
				inside);
	return MFS_OK;
}

/* Opens rel below root as the sandbox sees it, without following a symlink
 * at any step: the command owns the work dir and /tmp, and a link it left
 * there (out.txt -> ~/.aws/credentials) must not make the launcher read or
 * write a host file outside them.  `create` makes missing directories and
 * the file; O_NONBLOCK so a FIFO left in its place cannot hang us (it is
 * then refused as not a regular file). */
static enum mfs_code open_beneath(const char *root, const char *rel, bool create,
				  const char *shown, int *out, struct mfs_err *err)
{
	int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char *path = mfs_xstrdup(rel), *name = path;
	for (char *slash; dfd >= 0 && (slash = strchr(name, '/')) != NULL; name = slash + 1) {
		*slash = '\0';
		if (!*name || !strcmp(name, "."))
			continue;
		if (create && mkdirat(dfd, name, 0755) != 0 && errno != EEXIST)
			break;
		int next = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(dfd);
		dfd = next;
	}
	int fd = -1;
	if (dfd >= 0 && strchr(name, '/') == NULL)
		fd = openat(dfd, name, (create ? O_WRONLY | O_CREAT : O_RDONLY) | O_NOFOLLOW |
				       O_NONBLOCK | O_CLOEXEC, 0644);
	int saved = errno;
	struct stat st;
	if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
		close(fd);
		fd = -1;
		saved = EINVAL;
	}
	if (dfd >= 0)
		close(dfd);
	free(path);
	if (fd >= 0 && (fcntl(fd, F_SETFL, 0) != 0 || (create && ftruncate(fd, 0) != 0))) {
		saved = errno;
		close(fd);
		fd = -1;
	}
	*out = fd;
	if (fd >= 0)
		return MFS_OK;
	if (saved == ENOENT)
		return mfs_fail(err, MFS_ERR_NOTFOUND, "%s does not exist in the sandbox", shown);
	if (saved == ELOOP || saved == ENOTDIR || saved == EINVAL || saved == ENXIO ||
	    saved == EISDIR)
		return mfs_fail(err, MFS_ERR_USAGE, "sandbox path %s is not a regular file below the "
				"work dir or /tmp (a symlink, FIFO or directory is never followed)",
				shown);
	return mfs_fail(err, MFS_ERR_IO, "cannot open %s in the sandbox: %s", shown,
			strerror(saved));
}

/* Copies in to out; both fds are closed here. */
static enum mfs_code copy_fd(int in, int out, const char *from, const char *to,
			     struct mfs_err *err)
{
	enum mfs_code rc = MFS_OK;
	char *chunk = mfs_xmalloc(READ_CHUNK);
	for (;;) {
		ssize_t n = read(in, chunk, READ_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = mfs_fail(err, MFS_ERR_IO, "cannot read %s: %s", from, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n; ) {
			ssize_t m = write(out, chunk + off, (size_t)(n - off));
			if (m < 0 && errno == EINTR)
				continue;
			if (m < 0) {
				rc = mfs_fail(err, MFS_ERR_IO, "cannot write %s: %s", to, strerror(errno));
				goto done;
			}
			off += m;
		}
	}
done:
	free(chunk);
	close(in);
	if (close(out) != 0 && rc == MFS_OK)
		rc = mfs_fail(err, MFS_ERR_IO, "cannot write %s: %s", to, strerror(errno));
	return rc;
}

/* A host file given by the launcher: a regular file, opened without
 * blocking on a FIFO. */
static enum mfs_code open_host_regular(const char *path, struct stat *st, int *out,
				       struct mfs_err *err)
{
	enum mfs_code rc = MFS_OK;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 || fstat(fd, st) != 0)
		rc = mfs_fail(err, MFS_ERR_IO, "cannot read %s: %s", path, strerror(errno));
	else if (!S_ISREG(st->st_mode))
		rc = mfs_fail(err, MFS_ERR_USAGE, "%s is not a regular file", path);
	else if (fcntl(fd, F_SETFL, 0) != 0)
		rc = mfs_fail(err, MFS_ERR_IO, "cannot read %s: %s", path, strerror(errno));
	if (rc && fd >= 0) {
		close(fd);
		fd = -1;
	}
	*out = fd;
	return rc;
}

enum mfs_code local_upload(struct mfs_sandbox *sb, const char *local_path,
				  const char *remote_path, struct mfs_err *err)
{
	struct local_sandbox *ls = (struct local_sandbox *)sb;
	const char *root, *rel;
	struct stat st;
	enum mfs_code rc = host_path(ls, remote_path, &root, &rel, err);
	if (rc)
		return rc;
	int in, out;
	if ((rc = open_host_regular(local_path, &st, &in, err)) != MFS_OK)
		return rc;
	if ((rc = open_beneath(root, rel, true, remote_path, &out, err)) != MFS_OK) {
		close(in);
		return rc;
	}
	(void)fchmod(out, st.st_mode & 0777);  /* keep +x despite the umask */
	return copy_fd(in, out, local_path, remote_path, err);
}

enum mfs_code local_download(struct mfs_sandbox *sb, const char *remote_path,
				    const char *local_path, struct mfs_err *err)
{
	struct local_sandbox *ls = (struct local_sandbox *)sb;
	const char *root, *rel;
	enum mfs_code rc = host_path(ls, remote_path, &root, &rel, err);
	if (rc)
		return rc;
	int in;
	if ((rc = open_beneath(root, rel, false, remote_path, &in, err)) != MFS_OK)
		return rc;
	struct stat st;
	char *parent = mfs_xstrdup(local_path);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		if (local_mkdir_p(parent, 0755) != 0)
			rc = mfs_fail(err, MFS_ERR_IO, "cannot create %s: %s", parent, strerror(errno));
	}
	free(parent);
	int out = rc ? -1 : open(local_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		if (!rc)
			rc = mfs_fail(err, MFS_ERR_IO, "cannot write %s: %s", local_path, strerror(errno));
		close(in);
		return rc;
	}
	if (fstat(in, &st) == 0)
		(void)fchmod(out, st.st_mode & 0777);
	return copy_fd(in, out, remote_path, local_path, err);
}
