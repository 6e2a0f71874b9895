/*
 * e2b.c - placeholder for the E2B backend (E2B cloud sandboxes (control plane + envd)).
 *
 * Registered so `mfsandbox backends` lists it, but every operation says
 * plainly that it is not built yet: it must never pretend to run anything.
 * The real implementation replaces this file.
 */
#include "mfs/backend.h"

#define NOT_BUILT "the e2b backend is not built yet (planned in its own issue); use --backend local"

static enum mfs_code e2b_probe(struct mfs_buf *notes, struct mfs_err *err)
{
	(void)notes;
	return mfs_fail(err, MFS_ERR_UNSUPPORTED, "not built yet (see the E2B backend issue)");
}

static enum mfs_code e2b_create(const struct mfs_sandbox_spec *spec, struct mfs_sandbox **out,
				 struct mfs_err *err)
{
	(void)spec;
	*out = NULL;
	return mfs_fail(err, MFS_ERR_UNSUPPORTED, NOT_BUILT);
}

static enum mfs_code e2b_upload(struct mfs_sandbox *sb, const char *local_path,
				 const char *remote_path, struct mfs_err *err)
{
	(void)sb, (void)local_path, (void)remote_path;
	return mfs_fail(err, MFS_ERR_UNSUPPORTED, NOT_BUILT);
}

static enum mfs_code e2b_download(struct mfs_sandbox *sb, const char *remote_path,
				   const char *local_path, struct mfs_err *err)
{
	(void)sb, (void)remote_path, (void)local_path;
	return mfs_fail(err, MFS_ERR_UNSUPPORTED, NOT_BUILT);
}

static enum mfs_code e2b_exec(struct mfs_sandbox *sb, const struct mfs_exec_req *req,
			       const struct mfs_io *io, int *status, struct mfs_err *err)
{
	(void)sb, (void)req, (void)io, (void)status;
	return mfs_fail(err, MFS_ERR_UNSUPPORTED, NOT_BUILT);
}

static enum mfs_code e2b_destroy(struct mfs_sandbox *sb, struct mfs_err *err)
{
	(void)sb; /* create never hands one out */
	(void)err;
	return MFS_OK;
}

static enum mfs_code e2b_list(mfs_list_fn fn, void *ctx, struct mfs_err *err)
{
	(void)fn, (void)ctx;
	return mfs_fail(err, MFS_ERR_UNSUPPORTED, NOT_BUILT);
}

static enum mfs_code e2b_kill(const char *id, struct mfs_err *err)
{
	(void)id;
	return mfs_fail(err, MFS_ERR_UNSUPPORTED, NOT_BUILT);
}

static void e2b_describe(const struct mfs_sandbox *sb, struct mfs_buf *out)
{
	(void)sb;
	mfs_buf_adds(out, "e2b: not built yet");
}

const struct mfs_backend_ops mfs_e2b_ops = {
	.name = "e2b",
	.summary = "E2B cloud sandboxes (control plane + envd): not built yet",
	.caps = 0,
	.probe = e2b_probe,
	.create = e2b_create,
	.upload = e2b_upload,
	.download = e2b_download,
	.exec = e2b_exec,
	.destroy = e2b_destroy,
	.list = e2b_list,
	.kill = e2b_kill,
	.describe = e2b_describe,
};
