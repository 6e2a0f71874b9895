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

/* Host path for a path inside the sandbox: the work dir has the same path
 * on both sides, /tmp is the sandbox's private tmp dir.  Anything else is
 * the read-only host filesystem, so a copy there makes no sense. */
static enum mfs_code host_path(const struct local_sandbox *ls, const char *inside,
			       struct mfs_buf *out, struct mfs_err *err)
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
	if (inside[0] != '/')
		mfs_buf_addf(out, "%s/%s", wd, inside);
	else if (!strncmp(inside, wd, wl) && (inside[wl] == '/' || inside[wl] == '\0'))
		mfs_buf_adds(out, inside);
	else if (!strncmp(inside, "/tmp/", 5))
		mfs_buf_addf(out, "%s%s", ls->tmpdir, inside + 4);
	else
		return mfs_fail(err, MFS_ERR_USAGE,
				"sandbox path %s is outside the work dir %s and /tmp; the rest of the "
				"local sandbox is the read-only host filesystem", inside, wd);
	return MFS_OK;
}

static enum mfs_code copy_file(const char *from, const char *to, struct mfs_err *err)
{
	enum mfs_code rc = MFS_OK;
	int in = -1, outfd = -1;
	struct stat st;
	char *parent = mfs_xstrdup(to);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		if (local_mkdir_p(parent, 0755) != 0) {
			rc = mfs_fail(err, MFS_ERR_IO, "cannot create %s: %s", parent, strerror(errno));
			goto out;
		}
	}
	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) != 0) {
		rc = mfs_fail(err, MFS_ERR_IO, "cannot read %s: %s", from, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = mfs_fail(err, MFS_ERR_USAGE, "%s is not a regular file", from);
		goto out;
	}
	outfd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 0777);
	if (outfd < 0) {
		rc = mfs_fail(err, MFS_ERR_IO, "cannot write %s: %s", to, strerror(errno));
		goto out;
	}
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
			ssize_t m = write(outfd, chunk + off, (size_t)(n - off));
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
	(void)fchmod(outfd, st.st_mode & 0777);  /* keep +x despite the umask */
out:
	if (in >= 0)
		close(in);
	if (outfd >= 0 && close(outfd) != 0 && rc == MFS_OK)
		rc = mfs_fail(err, MFS_ERR_IO, "cannot write %s: %s", to, strerror(errno));
	free(parent);
	return rc;
}

enum mfs_code local_upload(struct mfs_sandbox *sb, const char *local_path,
				  const char *remote_path, struct mfs_err *err)
{
	struct local_sandbox *ls = (struct local_sandbox *)sb;
	struct mfs_buf to = MFS_BUF_INIT;
	enum mfs_code rc = host_path(ls, remote_path, &to, err);
	if (!rc)
		rc = copy_file(local_path, to.data, err);
	mfs_buf_release(&to);
	return rc;
}

enum mfs_code local_download(struct mfs_sandbox *sb, const char *remote_path,
				    const char *local_path, struct mfs_err *err)
{
	struct local_sandbox *ls = (struct local_sandbox *)sb;
	struct mfs_buf from = MFS_BUF_INIT;
	enum mfs_code rc = host_path(ls, remote_path, &from, err);
	if (!rc && access(from.data, F_OK) != 0)
		rc = mfs_fail(err, MFS_ERR_NOTFOUND, "%s does not exist in sandbox %s",
			      remote_path, sb->id);
	if (!rc)
		rc = copy_file(from.data, local_path, err);
	mfs_buf_release(&from);
	return rc;
}
