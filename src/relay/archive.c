/* archive.c - the task's metadata tarball, checked whole before any member
 * is used (include/mfs/relay/archive.h).  Libarchive reads gzip and tar. */
#include "mfs/relay/archive.h"

#include <archive.h>
#include <archive_entry.h>

#include "mfs/util/lazy.h"
#include "mfs/util/redact.h"

/* The archive was written by the step's code: bounded before it is unpacked. */
#define MAX_MEMBERS 50000
#define MAX_UNPACKED (64u * 1024 * 1024)

/* Not spooled by the caller, since a replay would fetch the same archive. */
enum mfs_code mfs_relay_refuse(struct mfs_relay_tar *t, const char *name, const char *why,
			       struct mfs_err *err)
{
	struct mfs_buf shown = MFS_BUF_INIT;
	mfs_escape_text(&shown, name ? name : "", 160);
	t->refused = true;
	enum mfs_code rc = mfs_fail(err, MFS_ERR_PROTOCOL,
				    "relay: %s/%s/%s/%s attempt %d: refused the task's metadata "
				    "archive, nothing of it written: member '%s' %s",
				    t->ids.flow, t->ids.run_id, t->ids.step, t->ids.task_id,
				    t->attempt, shown.data, why);
	mfs_buf_release(&shown);
	return rc;
}

static enum mfs_member_verdict verdict(const struct mfs_relay_tar *t, struct archive_entry *e,
				       const char **rel, const char **why)
{
	bool link = archive_entry_hardlink(e) || archive_entry_symlink(e);
	return mfs_relay_member(&t->ids, archive_entry_pathname(e), archive_entry_filetype(e),
				link, rel, why);
}

static enum mfs_code tar_open(struct archive **a, const struct mfs_buf *tgz, struct mfs_err *err)
{
	*a = archive_read_new();
	archive_read_support_filter_all(*a);
	archive_read_support_format_all(*a);
	if (archive_read_open_memory(*a, tgz->data, tgz->len) != ARCHIVE_OK)
		return mfs_fail(err, MFS_ERR_PROTOCOL, "metadata tarball unreadable: %s",
				archive_error_string(*a));
	return MFS_OK;
}

/* Reads the current member's data into out (NULL: only counts it), keeping
 * *total within MAX_UNPACKED. */
static enum mfs_code tar_data(struct mfs_relay_tar *t, struct archive *a,
			      struct archive_entry *e, struct mfs_buf *out, size_t *total,
			      struct mfs_err *err)
{
	char chunk[16384];
	la_ssize_t n;

	while ((n = archive_read_data(a, chunk, sizeof(chunk))) > 0) {
		*total += (size_t)n;
		if (*total > MAX_UNPACKED)
			return mfs_relay_refuse(t, archive_entry_pathname(e),
						"takes the archive past 64 MiB unpacked", err);
		if (out)
			mfs_buf_add(out, chunk, (size_t)n);
	}
	if (n < 0)
		return mfs_fail(err, MFS_ERR_PROTOCOL, "metadata tarball: %s",
				archive_error_string(a));
	return MFS_OK;
}

/* First pass: every member must pass the path rule, and the archive must
 * stay within its bounds, before anything is written or sent. */
static enum mfs_code check_tarball(struct mfs_relay_tar *t, const struct mfs_buf *tgz,
				   struct mfs_err *err)
{
	struct archive *a;
	struct archive_entry *e;
	size_t members = 0, total = 0;
	const char *rel, *why;
	int ar = ARCHIVE_EOF;

	enum mfs_code rc = tar_open(&a, tgz, err);
	while (rc == MFS_OK && (ar = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		if (++members > MAX_MEMBERS)
			rc = mfs_relay_refuse(t, archive_entry_pathname(e), "is one more than the "
					      "50000 members a task's metadata may have", err);
		else if (verdict(t, e, &rel, &why) == MFS_MEMBER_REFUSE)
			rc = mfs_relay_refuse(t, archive_entry_pathname(e), why, err);
		else
			rc = tar_data(t, a, e, NULL, &total, err);
	}
	if (rc == MFS_OK && ar != ARCHIVE_EOF)
		rc = mfs_fail(err, MFS_ERR_PROTOCOL, "metadata tarball: %s", archive_error_string(a));
	archive_read_free(a);
	return rc;
}

/* Second pass, on an archive check_tarball accepted. */
static enum mfs_code apply_tarball(struct mfs_relay_tar *t, const struct mfs_buf *tgz,
				   mfs_relay_member_fn fn, void *ctx, struct mfs_err *err)
{
	struct archive *a;
	struct archive_entry *e;
	struct mfs_buf data = MFS_BUF_INIT;
	size_t total = 0;
	const char *rel, *why;
	int ar = ARCHIVE_EOF;

	enum mfs_code rc = tar_open(&a, tgz, err);
	while (rc == MFS_OK && (ar = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		enum mfs_member_verdict v = verdict(t, e, &rel, &why);
		if (v != MFS_MEMBER_TASK && v != MFS_MEMBER_ONCE)
			continue;
		mfs_buf_reset(&data);
		rc = tar_data(t, a, e, &data, &total, err);
		if (rc == MFS_OK)
			rc = fn(ctx, rel, &data, archive_entry_mtime(e), v == MFS_MEMBER_ONCE, err);
	}
	if (rc == MFS_OK && ar != ARCHIVE_EOF)
		rc = mfs_fail(err, MFS_ERR_PROTOCOL, "metadata tarball: %s", archive_error_string(a));
	archive_read_free(a);
	mfs_buf_release(&data);
	return rc;
}

enum mfs_code mfs_relay_read_tarball(struct mfs_relay_tar *t, const struct mfs_buf *tgz,
				     mfs_relay_member_fn fn, void *ctx, struct mfs_err *err)
{
	enum mfs_code rc = mfs_need_archive(err);
	if (rc == MFS_OK)
		rc = check_tarball(t, tgz, err);
	return rc == MFS_OK ? apply_tarball(t, tgz, fn, ctx, err) : rc;
}
