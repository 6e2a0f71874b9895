/* local_store.c - the launcher's .metaflow: where it is, and merging a
 * task's files into it as Metaflow's own sync does (include/mfs/relay/relay.h). */
#include "relay_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mfs/util/file.h"

char *mfs_relay_local_root(void)
{
	const char *sys = getenv("METAFLOW_DATASTORE_SYSROOT_LOCAL");
	struct mfs_buf b = MFS_BUF_INIT;
	char cwd[4096];

	if (sys && *sys) {
		mfs_buf_addf(&b, "%s/.metaflow", sys);
		return mfs_buf_detach(&b, NULL);
	}
	if (!getcwd(cwd, sizeof(cwd)))
		return mfs_xstrdup(".metaflow");
	/* Metaflow uses the nearest .metaflow above the working directory. */
	for (size_t len = strlen(cwd); len > 0;) {
		struct stat st;
		mfs_buf_reset(&b);
		mfs_buf_add(&b, cwd, len);
		mfs_buf_adds(&b, len == 1 ? ".metaflow" : "/.metaflow");
		if (stat(b.data, &st) == 0 && S_ISDIR(st.st_mode))
			return mfs_buf_detach(&b, NULL);
		while (len > 1 && cwd[len - 1] != '/')
			len--;
		if (len > 1)
			len--; /* drop the slash */
		else if (len == 1 && cwd[0] == '/')
			break;
	}
	mfs_buf_reset(&b);
	mfs_buf_addf(&b, "%s/.metaflow", cwd);
	return mfs_buf_detach(&b, NULL);
}

/* rel is below .metaflow/ and already passed the path rule (contain.h). */
enum mfs_code relay_merge_local(void *ctx, const char *rel, const struct mfs_buf *data,
				time_t mtime, bool once, struct mfs_err *err)
{
	struct relay *r = ctx;
	struct mfs_buf dst = MFS_BUF_INIT;
	struct stat st;
	enum mfs_code rc = MFS_OK;
	time_t now = time(NULL);

	/* A future mtime would make the step's copy win every later merge. */
	if (mtime > now)
		mtime = now;
	mfs_buf_addf(&dst, "%s/%s", r->local_root, rel);
	/* Newer files win, like Metaflow's copy_tree(update=True); flow, run and
	 * step records are the launcher's once it has them. */
	if (lstat(dst.data, &st) == 0) {
		if (once || !S_ISREG(st.st_mode) || st.st_mtime >= mtime)
			goto out;
	}
	char *slash = strrchr(dst.data, '/');
	*slash = '\0';
	rc = mfs_make_dirs(dst.data, err);
	*slash = '/';
	if (rc == MFS_OK)
		rc = mfs_write_file_atomic(dst.data, data->data ? data->data : "", data->len,
					   mtime, err);
	if (rc == MFS_OK)
		r->rep->files_merged++;
out:
	mfs_buf_release(&dst);
	return rc;
}
