/*
 * pack.c - tar.gz of a directory with libarchive (include/mfs/util/pack.h).
 *
 * A hand-rolled walk (openat/fdopendir) instead of archive_read_disk keeps
 * the stored paths relative without chdir and lets us skip sockets/fifos,
 * which cannot be shipped anyway.
 */
#include "mfs/util/pack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mfs/util/buf.h"

static enum mfs_code add_file_data(struct archive *a, int fd, const char *rel, struct mfs_err *err)
{
	char chunk[65536];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return mfs_fail(err, MFS_ERR_IO, "--code: cannot read %s: %s", rel, strerror(errno));
		if (n == 0)
			return MFS_OK;
		if (archive_write_data(a, chunk, (size_t)n) != n)
			return mfs_fail(err, MFS_ERR_IO, "--code: cannot pack %s: %s", rel,
					archive_error_string(a));
	}
}

static enum mfs_code add_entry(struct archive *a, int dirfd, const char *name,
			       const char *rel, struct mfs_err *err);

static enum mfs_code add_dir(struct archive *a, int fd, const char *rel, struct mfs_err *err)
{
	enum mfs_code rc = MFS_OK;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return mfs_fail(err, MFS_ERR_IO, "--code: cannot list %s: %s", rel, strerror(errno));
	}
	struct mfs_strv names = MFS_STRV_INIT;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			mfs_strv_push(&names, de->d_name);
	/* Sorted so the same tree gives the same archive. */
	for (size_t i = 1; i < names.n; i++)
		for (size_t j = i; j > 0 && strcmp(names.v[j - 1], names.v[j]) > 0; j--) {
			char *t = names.v[j];
			names.v[j] = names.v[j - 1];
			names.v[j - 1] = t;
		}
	for (size_t i = 0; i < names.n && rc == MFS_OK; i++) {
		struct mfs_buf child = MFS_BUF_INIT;
		if (*rel)
			mfs_buf_addf(&child, "%s/", rel);
		mfs_buf_adds(&child, names.v[i]);
		rc = add_entry(a, dirfd(d), names.v[i], child.data, err);
		mfs_buf_release(&child);
	}
	mfs_strv_release(&names);
	closedir(d);
	return rc;
}

static enum mfs_code add_entry(struct archive *a, int dirfd, const char *name,
			       const char *rel, struct mfs_err *err)
{
	enum mfs_code rc = MFS_OK;
	struct stat st;
	int fd = -1;
	struct archive_entry *e = NULL;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return mfs_fail(err, MFS_ERR_IO, "--code: cannot stat %s: %s", rel, strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
		return MFS_OK;
	if (!S_ISLNK(st.st_mode)) {
		fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
			    (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
		if (fd < 0)
			return mfs_fail(err, MFS_ERR_IO, "--code: cannot open %s: %s", rel, strerror(errno));
	}
	e = archive_entry_new();
	archive_entry_copy_stat(e, &st);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	archive_entry_set_pathname(e, rel);
	if (S_ISLNK(st.st_mode)) {
		char target[4096];
		ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
		if (n < 0) {
			rc = mfs_fail(err, MFS_ERR_IO, "--code: cannot read link %s: %s", rel, strerror(errno));
			goto out;
		}
		target[n] = '\0';
		archive_entry_set_symlink(e, target);
	}
	if (archive_write_header(a, e) != ARCHIVE_OK) {
		rc = mfs_fail(err, MFS_ERR_IO, "--code: cannot pack %s: %s", rel, archive_error_string(a));
		goto out;
	}
	if (S_ISREG(st.st_mode))
		rc = add_file_data(a, fd, rel, err);
	else if (S_ISDIR(st.st_mode)) {
		rc = add_dir(a, fd, rel, err);
		fd = -1; /* add_dir closed it */
	}
out:
	archive_entry_free(e);
	if (fd >= 0)
		close(fd);
	return rc;
}

enum mfs_code mfs_pack_dir(const char *dir, const char *out_path, struct mfs_err *err)
{
	enum mfs_code rc;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return mfs_fail(err, MFS_ERR_USAGE, "--code %s: not a readable directory: %s", dir,
				strerror(errno));
	struct archive *a = archive_write_new();
	archive_write_set_format_pax_restricted(a);
	archive_write_add_filter_gzip(a);
	if (archive_write_open_filename(a, out_path) != ARCHIVE_OK) {
		rc = mfs_fail(err, MFS_ERR_IO, "--code: cannot write %s: %s", out_path,
			      archive_error_string(a));
		close(fd);
		archive_write_free(a);
		return rc;
	}
	rc = add_dir(a, fd, "", err);
	if (archive_write_close(a) != ARCHIVE_OK && rc == MFS_OK)
		rc = mfs_fail(err, MFS_ERR_IO, "--code: cannot finish %s: %s", out_path,
			      archive_error_string(a));
	archive_write_free(a);
	return rc;
}
