/*
 * admin.c - list and kill local sandboxes from any process, working only
 * from the state files under the state root.
 */
#include "local.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), sl = strlen(suffix);
	return n >= sl && !strcmp(s + n - sl, suffix);
}


enum mfs_code local_list(mfs_list_fn fn, void *ctx, struct mfs_err *err)
{
	char *root = local_state_root_path();
	DIR *d = opendir(root);
	if (!d) {
		enum mfs_code rc = errno == ENOENT ? MFS_OK
			: mfs_fail(err, MFS_ERR_IO, "cannot read %s: %s", root, strerror(errno));
		free(root);
		return rc;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || !ends_with(e->d_name, STATE_SUFFIX))
			continue;
		char *id = mfs_xstrndup(e->d_name, strlen(e->d_name) - strlen(STATE_SUFFIX));
		struct local_sandbox *ls = NULL;
		enum mfs_code lrc = local_state_load(root, id, &ls, NULL);
		free(id);
		if (lrc != MFS_OK)
			continue;  /* gone meanwhile, or unreadable */
		struct mfs_sandbox_info info = {
			.id = ls->base.id,
			.state = local_process_alive(ls->pid, ls->pid_start) ? "running" : "idle",
			.labels = &ls->labels,
			.created = ls->created,
		};
		fn(ctx, &info);
		local_sandbox_free(ls);
	}
	closedir(d);
	free(root);
	return MFS_OK;
}

enum mfs_code local_kill(const char *id, struct mfs_err *err)
{
	/* ID.tmp etc. name a part of sandbox ID, never a sandbox */
	if (!id || !*id || id[0] == '.' || strchr(id, '/') || ends_with(id, STATE_SUFFIX) ||
	    ends_with(id, PID_SUFFIX) || ends_with(id, TMP_SUFFIX))
		return mfs_fail(err, MFS_ERR_USAGE, "'%s' is not a local sandbox id (see `mfsandbox ls`)",
				id ? id : "");
	char *root = local_state_root_path();
	struct local_sandbox *ls = NULL;
	enum mfs_code rc = local_state_load(root, id, &ls, err);
	if (rc == MFS_ERR_NOTFOUND) {
		/* Its directories without a state file: the debris of a crashed create. */
		ls = mfs_xcalloc(1, sizeof(*ls));
		local_sandbox_set_paths(ls, root, id);
		if (local_is_dir(ls->base.workdir) || local_is_dir(ls->tmpdir))
			rc = local_teardown(ls, err);
		local_sandbox_free(ls);
	} else if (rc == MFS_OK) {
		rc = local_teardown(ls, err);
		local_sandbox_free(ls);
	}
	free(root);
	return rc;
}
