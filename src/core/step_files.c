/*
 * step_files.c - ship the launcher's files a step command names into the
 * sandbox (include/mfs/core/step_files.h).
 *
 * Without this a flow with a Metaflow `Config` fails in every sandboxed
 * step: the runtime passes the resolved configs as `--local-config-file
 * /tmp/tmpXXXX`, a file the sandbox does not have.  The check happens
 * before any sandbox exists, so a missing file is one line and 202, not a
 * failed task after a sandbox was paid for.
 */
#include "mfs/core/step_files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Options whose value is a path on the launcher.  Not here, on purpose:
 * --config-value (the value itself, or kv.NAME: read from the config file
 * or the code package), --package-suffixes (suffixes), resume's
 * --clone-run-id / --clone-only and @project's --branch (names). */
static const struct {
	bool top;
	const char *name;
} file_options[] = {
	{ true, "local-config-file" },    /* the runtime's resolved configs */
	{ true, "config" },               /* --config NAME FILE */
	{ false, "input-paths-filename" }, /* the step's inputs (Argo) */
};

/* Metaflow marks a --config value that is already content, not a path. */
#define CONVERTED_PREFIX "@!c!@:"
/* Longest part of the local file name kept in the copy's name. */
#define NAME_KEEP 64

struct found {
	size_t idx, vidx;
	const char *name; /* from file_options */
};

struct finder {
	struct found *v;
	size_t n, cap;
};

static void find_file_option(void *ctx, bool top, const char *name, size_t nlen, size_t idx,
			     size_t vidx, const char *value)
{
	struct finder *f = ctx;
	for (size_t i = 0; i < sizeof(file_options) / sizeof(file_options[0]); i++) {
		const char *want = file_options[i].name;
		if (file_options[i].top != top || strlen(want) != nlen || strncmp(want, name, nlen))
			continue;
		/* --config NAME FILE: the file is the second word; a value
		 * Metaflow already converted is content. */
		if (!strcmp(want, "config") &&
		    (vidx != idx + 2 || !strncmp(value, CONVERTED_PREFIX, strlen(CONVERTED_PREFIX))))
			return;
		if (f->n == f->cap) {
			f->cap = f->cap ? 2 * f->cap : 4;
			f->v = mfs_xrealloc(f->v, f->cap * sizeof(*f->v));
		}
		f->v[f->n++] = (struct found){ idx, vidx, want };
		return;
	}
}

/* The value as written: after '=' for `--name=value`. */
static const char *value_of(const struct mfs_strv *argv, const struct found *f)
{
	const char *w = argv->v[f->vidx];
	if (f->vidx == f->idx) {
		const char *eq = strchr(w, '=');
		return eq ? eq + 1 : w;
	}
	return w;
}

/* stat() first: opening a FIFO to test it would block until a writer
 * comes; a regular file opens at once. */
static enum mfs_code check_file(const char *opt, const char *path, struct mfs_err *err)
{
	struct stat sb;
	int fd;
	if (!*path)
		return mfs_fail(err, MFS_ERR_USAGE, "--%s: empty path in the step command", opt);
	if (stat(path, &sb) != 0)
		return mfs_fail(err, MFS_ERR_USAGE,
				"--%s %s: %s (the step command names a file on this machine, "
				"which is shipped into the sandbox)", opt, path, strerror(errno));
	if (!S_ISREG(sb.st_mode))
		return mfs_fail(err, MFS_ERR_USAGE, "--%s %s: not a regular file", opt, path);
	if (sb.st_size > MFS_STEP_FILE_MAX)
		return mfs_fail(err, MFS_ERR_USAGE, "--%s %s: %lld bytes, over the %ld MiB a step may ship",
				opt, path, (long long)sb.st_size, MFS_STEP_FILE_MAX >> 20);
	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return mfs_fail(err, MFS_ERR_USAGE, "--%s %s: %s", opt, path, strerror(errno));
	close(fd);
	return MFS_OK;
}

/* `<n>-<last component>`, with only [A-Za-z0-9._-] kept, so every
 * backend's upload takes it as it is and two files never collide. */
static void copy_name(size_t n, const char *path, struct mfs_buf *out)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	mfs_buf_addf(out, "%zu-", n);
	for (size_t i = 0; base[i] && i < NAME_KEEP; i++) {
		char c = base[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '.' || c == '_' || c == '-';
		mfs_buf_addch(out, ok ? c : '_');
	}
}

static void apply(struct mfs_strv *argv, const struct found *f, size_t n, const char *step_dir,
		  struct mfs_kvlist *uploads)
{
	struct mfs_buf name = MFS_BUF_INIT, remote = MFS_BUF_INIT, seen = MFS_BUF_INIT;
	const char *local = value_of(argv, f);
	copy_name(n, local, &name);
	if (step_dir && *step_dir)
		mfs_buf_addf(&remote, "%s/", step_dir);
	mfs_buf_addf(&remote, "%s/%s", MFS_STEP_FILES_DIR, name.data);
	if (f->vidx == f->idx)
		mfs_buf_addf(&seen, "--%s=", f->name);
	mfs_buf_addf(&seen, "%s/%s", MFS_STEP_FILES_DIR, name.data);
	mfs_kvlist_set(uploads, remote.data, local);
	free(argv->v[f->vidx]);
	argv->v[f->vidx] = mfs_buf_detach(&seen, NULL);
	mfs_buf_release(&name);
	mfs_buf_release(&remote);
}

enum mfs_code mfs_step_ship_files(struct mfs_strv *argv, const struct mfs_step *st,
				  const char *step_dir, struct mfs_kvlist *uploads,
				  struct mfs_err *err)
{
	struct finder f = { NULL, 0, 0 };
	enum mfs_code rc = MFS_OK;
	mfs_step_each_option((const char *const *)argv->v, st, find_file_option, &f);
	/* All checked before anything changes: a failure leaves the job as
	 * it was. */
	for (size_t i = 0; i < f.n && rc == MFS_OK; i++)
		rc = check_file(f.v[i].name, value_of(argv, &f.v[i]), err);
	for (size_t i = 0; i < f.n && rc == MFS_OK; i++)
		apply(argv, &f.v[i], i, step_dir, uploads);
	free(f.v);
	return rc;
}
