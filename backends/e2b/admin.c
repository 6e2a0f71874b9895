/*
 * admin.c - the ops that remove or find sandboxes: destroy (after a run),
 * kill and list (`mfsandbox kill` / `ls`, from any process, by metadata).
 */
#include "internal.h"
#include "mfs/util/err.h"

#include <stdlib.h>
#include <string.h>

void e2b_release(struct mfs_sandbox *base)
{
	e2b_sandbox_free((struct e2b_sandbox *)base);
}

enum mfs_code e2b_destroy(struct mfs_sandbox *base, struct mfs_err *err)
{
	struct e2b_sandbox *sb = (struct e2b_sandbox *)base;
	struct e2b_conf c;
	enum mfs_code rc = MFS_OK;

	if (!sb)
		return MFS_OK;
	if (!sb->debug) {
		rc = e2b_conf_load(&c, err);
		if (rc == MFS_OK) {
			/* The URL the sandbox was made through, even if env changed. */
			free(c.api_url);
			c.api_url = mfs_xstrdup(sb->api_url);
			c.deadline = base->destroy_by;
			rc = e2b_delete_sandbox(&c, sb->base.id, NULL, err);
		}
		e2b_conf_release(&c);
	}
	e2b_sandbox_free(sb);
	return rc;
}

enum mfs_code e2b_kill(const char *id, struct mfs_err *err)
{
	struct e2b_conf c;
	bool gone = false;
	enum mfs_code rc = e2b_conf_load(&c, err);
	if (rc == MFS_OK)
		rc = e2b_delete_sandbox(&c, id, &gone, err);
	if (rc == MFS_OK && gone)
		rc = mfs_fail(err, MFS_ERR_NOTFOUND, "E2B sandbox %s does not exist (already gone)",
			      id);
	e2b_conf_release(&c);
	return rc;
}

enum mfs_code e2b_list(mfs_list_fn fn, void *ctx, struct mfs_err *err)
{
	struct e2b_conf c;
	enum mfs_code rc = e2b_conf_load(&c, err);
	if (rc == MFS_OK && c.debug)
		rc = mfs_fail(err, MFS_ERR_UNSUPPORTED, "E2B_DEBUG=true has no control plane to list");
	if (rc == MFS_OK)
		rc = e2b_list_by_metadata(&c, MFS_LABEL_OWNER "=1", fn, ctx, err);
	e2b_conf_release(&c);
	return rc;
}
