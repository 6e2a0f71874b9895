/*
 * pack.c - tar.gz of a directory with libarchive (include/mfs/util/pack.h).
 *
 * A hand-rolled walk (openat/fdopendir) instead of archive_read_disk keeps
 * the stored paths relative without chdir and lets us skip sockets/fifos,
 * which cannot be shipped anyway.
 *
 * The walk is a loop over an explicit stack of open directories, not a
 * recursion: a tree thousands of levels deep must end in a clear error, not
 * in a stack overflow.  Each level holds one directory fd, so the depth is
 * bounded (MFS_PACK_MAX_DEPTH) well below the usual 1024-fd limit.
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
#include "mfs/util/lazy.h"

/* One directory being listed: its sorted entry names and the next one. */
struct level {
	int fd;
	char *rel;            /* "" for the top, else "a/b" */
	struct mfs_strv names;
	size_t next;
};

struct walk {
	struct archive *a;
	const char *top;      /* the --code DIR, for messages */
	struct level *lv;
	size_t depth;         /* levels in use */
};

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

static int name_cmp(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Takes fd (closed on every path); on success the level is on top. */
static enum mfs_code push_dir(struct walk *w, int fd, const char *rel, struct mfs_err *err)
{
	if (w->depth == MFS_PACK_MAX_DEPTH) {
		close(fd);
		return mfs_fail(err, MFS_ERR_USAGE,
				"--code %s: directories nested more than %d deep; pack the tree "
				"yourself and pass the tarball to --code", w->top, MFS_PACK_MAX_DEPTH);
	}
	/* fdopendir owns a dup so that the level keeps an fd for openat. */
	int dfd = dup(fd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		int e = errno;
		if (dfd >= 0)
			close(dfd);
		close(fd);
		return mfs_fail(err, MFS_ERR_IO, "--code: cannot list %s: %s", *rel ? rel : ".",
				strerror(e));
	}
	struct level *l = &w->lv[w->depth++];
	l->fd = fd;
	l->rel = mfs_xstrdup(rel);
	mfs_strv_init(&l->names);
	l->next = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			mfs_strv_push(&l->names, de->d_name);
	closedir(d);
	/* Sorted so the same tree gives the same archive. */
	if (l->names.n > 1)
		qsort(l->names.v, l->names.n, sizeof(*l->names.v), name_cmp);
	return MFS_OK;
}

static void pop_dir(struct walk *w)
{
	struct level *l = &w->lv[--w->depth];
	close(l->fd);
	free(l->rel);
	mfs_strv_release(&l->names);
}

static enum mfs_code write_header(struct walk *w, const struct stat *st, int dirfd, const char *name,
				  const char *rel, struct mfs_err *err)
{
	enum mfs_code rc = MFS_OK;
	struct archive_entry *e = archive_entry_new();
	archive_entry_copy_stat(e, st);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	archive_entry_set_pathname(e, rel);
	if (S_ISLNK(st->st_mode)) {
		char target[4096];
		ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
		if (n < 0) {
			rc = mfs_fail(err, MFS_ERR_IO, "--code: cannot read link %s: %s", rel, strerror(errno));
			goto out;
		}
		target[n] = '\0';
		archive_entry_set_symlink(e, target);
	}
	if (archive_write_header(w->a, e) != ARCHIVE_OK)
		rc = mfs_fail(err, MFS_ERR_IO, "--code: cannot pack %s: %s", rel, archive_error_string(w->a));
out:
	archive_entry_free(e);
	return rc;
}

/* Packs one entry of the top level; a directory is pushed to be walked. */
static enum mfs_code add_entry(struct walk *w, const char *name, const char *rel, struct mfs_err *err)
{
	int dirfd = w->lv[w->depth - 1].fd;
	struct stat st;
	int fd = -1;

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
	enum mfs_code rc = write_header(w, &st, dirfd, name, rel, err);
	if (rc == MFS_OK && S_ISREG(st.st_mode))
		rc = add_file_data(w->a, fd, rel, err);
	if (rc == MFS_OK && S_ISDIR(st.st_mode))
		return push_dir(w, fd, rel, err);
	if (fd >= 0)
		close(fd);
	return rc;
}

static enum mfs_code walk_tree(struct walk *w, int top, struct mfs_err *err)
{
	enum mfs_code rc = push_dir(w, top, "", err);
	struct mfs_buf rel = MFS_BUF_INIT;
	while (rc == MFS_OK && w->depth) {
		struct level *l = &w->lv[w->depth - 1];
		if (l->next == l->names.n) {
			pop_dir(w);
			continue;
		}
		const char *name = l->names.v[l->next++];
		mfs_buf_reset(&rel);
		if (*l->rel)
			mfs_buf_addf(&rel, "%s/", l->rel);
		mfs_buf_adds(&rel, name);
		rc = add_entry(w, name, rel.data, err);
	}
	while (w->depth)
		pop_dir(w);
	mfs_buf_release(&rel);
	return rc;
}

enum mfs_code mfs_pack_dir(const char *dir, const char *out_path, struct mfs_err *err)
{
	enum mfs_code rc = mfs_need_archive(err);
	if (rc != MFS_OK)
		return rc;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return mfs_fail(err, MFS_ERR_USAGE, "--code %s: not a readable directory: %s", dir,
				strerror(errno));
	struct walk w = { archive_write_new(), dir, NULL, 0 };
	archive_write_set_format_pax_restricted(w.a);
	archive_write_add_filter_gzip(w.a);
	if (archive_write_open_filename(w.a, out_path) != ARCHIVE_OK) {
		rc = mfs_fail(err, MFS_ERR_IO, "--code: cannot write %s: %s", out_path,
			      archive_error_string(w.a));
		close(fd);
		archive_write_free(w.a);
		return rc;
	}
	w.lv = mfs_xcalloc(MFS_PACK_MAX_DEPTH, sizeof(*w.lv));
	rc = walk_tree(&w, fd, err);
	if (archive_write_close(w.a) != ARCHIVE_OK && rc == MFS_OK)
		rc = mfs_fail(err, MFS_ERR_IO, "--code: cannot finish %s: %s", out_path,
			      archive_error_string(w.a));
	archive_write_free(w.a);
	free(w.lv);
	return rc;
}
