/*
 * daytona.c - placeholder for the Daytona backend (Daytona cloud sandboxes (REST + toolbox API)).
 *
 * Registered so `mfsandbox backends` lists it, but every operation says
 * plainly that it is not built yet: it must never pretend to run anything.
 * The real implementation replaces this file.
 */
#include "mfs/backend.h"

#define NOT_BUILT "the daytona backend is not built yet (planned in its own issue); use --backend local"

static enum mfs_code daytona_probe(struct mfs_buf *notes, struct mfs_err *err)
{
	(void)notes;
	return mfs_fail(err, MFS_ERR_UNSUPPORTED, "not built yet (see the Daytona backend issue)");
}

static enum mfs_code daytona_create(const struct mfs_sandbox_spec *spec, struct mfs_sandbox **out,
				 struct mfs_err *err)
{
	(void)spec;
	*out = NULL;
	return mfs_fail(err, MFS_ERR_UNSUPPORTED, NOT_BUILT);
}

static enum mfs_code daytona_upload(struct mfs_sandbox *sb, const char *local_path,
				 const char *remote_path, struct mfs_err *err)
{
	(void)sb, (void)local_path, (void)remote_path;
	return mfs_fail(err, MFS_ERR_UNSUPPORTED, NOT_BUILT);
}

static enum mfs_code daytona_download(struct mfs_sandbox *sb, const char *remote_path,
				   const char *local_path, struct mfs_err *err)
{
	(void)sb, (void)remote_path, (void)local_path;
	return mfs_fail(err, MFS_ERR_UNSUPPORTED, NOT_BUILT);
}

static enum mfs_code daytona_exec(struct mfs_sandbox *sb, const struct mfs_exec_req *req,
			       const struct mfs_io *io, int *status, struct mfs_err *err)
{
	(void)sb, (void)req, (void)io, (void)status;
	return mfs_fail(err, MFS_ERR_UNSUPPORTED, NOT_BUILT);
}

static enum mfs_code daytona_destroy(struct mfs_sandbox *sb, struct mfs_err *err)
{
	(void)sb; /* create never hands one out */
	(void)err;
	return MFS_OK;
}

static enum mfs_code daytona_list(mfs_list_fn fn, void *ctx, struct mfs_err *err)
{
	(void)fn, (void)ctx;
	return mfs_fail(err, MFS_ERR_UNSUPPORTED, NOT_BUILT);
}

static enum mfs_code daytona_kill(const char *id, struct mfs_err *err)
{
	(void)id;
	return mfs_fail(err, MFS_ERR_UNSUPPORTED, NOT_BUILT);
}

static void daytona_describe(const struct mfs_sandbox *sb, struct mfs_buf *out)
{
	(void)sb;
	mfs_buf_adds(out, "daytona: not built yet");
}

const struct mfs_backend_ops mfs_daytona_ops = {
	.name = "daytona",
	.summary = "Daytona cloud sandboxes (REST + toolbox API)",
	.caps = 0,
	.probe = daytona_probe,
	.create = daytona_create,
	.upload = daytona_upload,
	.download = daytona_download,
	.exec = daytona_exec,
	.destroy = daytona_destroy,
	.list = daytona_list,
	.kill = daytona_kill,
	.describe = daytona_describe,
};
