/*
 * config.c - where the local backend keeps its sandboxes and which
 * bubblewrap it runs: both from the environment, checked before use.
 */
#include "local.h"
#include "mfs/util/env.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


char *local_state_root_path(void)
{
	const char *v = mfs_env_nonempty("MFSANDBOX_LOCAL_STATE_DIR");
	if (v)
		return mfs_xstrdup(v);
	/* /var/tmp, not /tmp: /tmp inside the sandbox is a private bind, so a
	 * work dir under the host's /tmp would need mount points created in it. */
	struct mfs_buf b = MFS_BUF_INIT;
	mfs_buf_addf(&b, "/var/tmp/mfsandbox-%u", (unsigned)getuid());
	return mfs_buf_detach(&b, NULL);
}

/* Creates the state root if needed; returns its canonical path. */
enum mfs_code local_state_root_ready(char **out, struct mfs_err *err)
{
	char *root = local_state_root_path();
	enum mfs_code rc = MFS_OK;
	struct stat st;
	if (root[0] != '/') {
		rc = mfs_fail(err, MFS_ERR_CONFIG,
			      "MFSANDBOX_LOCAL_STATE_DIR must be an absolute path, got '%s'", root);
		goto out;
	}
	if ((stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) &&
	    (local_mkdir_p(root, 0700) != 0 || stat(root, &st) != 0)) {
		rc = mfs_fail(err, MFS_ERR_CONFIG,
			      "cannot create local sandbox state dir %s: %s (set MFSANDBOX_LOCAL_STATE_DIR)",
			      root, strerror(errno));
		goto out;
	}
	if (st.st_uid != getuid()) {
		rc = mfs_fail(err, MFS_ERR_CONFIG,
			      "local sandbox state dir %s belongs to another user (set MFSANDBOX_LOCAL_STATE_DIR)",
			      root);
		goto out;
	}
	char *real = realpath(root, NULL);
	if (!real) {
		rc = mfs_fail(err, MFS_ERR_CONFIG, "cannot resolve %s: %s", root, strerror(errno));
		goto out;
	}
	*out = mfs_xstrdup(real);
	free(real);
out:
	free(root);
	return rc;
}

/* Absolute path of bubblewrap: MFSANDBOX_BWRAP, else `bwrap` on PATH. */
enum mfs_code local_find_bwrap(char **out, struct mfs_err *err)
{
	const char *forced = mfs_env_nonempty("MFSANDBOX_BWRAP");
	if (forced) {
		if (access(forced, X_OK) != 0)
			return mfs_fail(err, MFS_ERR_CONFIG,
					"MFSANDBOX_BWRAP=%s is not executable: %s", forced, strerror(errno));
		*out = mfs_xstrdup(forced);
		return MFS_OK;
	}
	const char *path = mfs_env_nonempty("PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	const char *s = path;
	while (*s) {
		const char *colon = strchr(s, ':');
		size_t n = colon ? (size_t)(colon - s) : strlen(s);
		if (n) {
			struct mfs_buf b = MFS_BUF_INIT;
			mfs_buf_add(&b, s, n);
			mfs_buf_adds(&b, "/bwrap");
			if (access(b.data, X_OK) == 0) {
				*out = mfs_buf_detach(&b, NULL);
				return MFS_OK;
			}
			mfs_buf_release(&b);
		}
		s += n + (colon ? 1 : 0);
	}
	return mfs_fail(err, MFS_ERR_CONFIG,
			"bubblewrap (bwrap) not found on PATH: install it (apt-get install bubblewrap) or set MFSANDBOX_BWRAP");
}
