/*
 * e2b.c - the `e2b` backend: E2B cloud sandboxes.  Probe, describe and the
 * ops table; the work is in the files listed in internal.h.
 *
 * Two services are involved.  The control plane (api.<domain>, X-API-Key)
 * creates, lists and deletes sandboxes; envd, the daemon inside each sandbox
 * (port 49983, X-Access-Token), runs processes over the Connect protocol and
 * moves files over plain HTTP.  Facts and their sources:
 * shared/reference/e2b-api.md; the test double is tests/emulators/e2b.
 */
#include "internal.h"
#include "mfs/util/buf.h"
#include "mfs/util/err.h"

/* ---- probe / describe ---- */

static enum mfs_code e2b_probe(struct mfs_buf *notes, struct mfs_err *err)
{
	struct e2b_conf c;
	enum mfs_code rc = e2b_conf_load(&c, err);
	if (rc == MFS_OK && notes) {
		mfs_buf_adds(notes, "sandbox size comes from the template (--image, default "
			     DEFAULT_TEMPLATE ", " BASE_SIZE "): --cpu, --memory and --disk are "
			     "not applied; --disk and --gpu are refused\n");
		if (c.debug)
			mfs_buf_adds(notes, "E2B_DEBUG=true: envd on localhost:" ENVD_PORT
				     ", no control plane\n");
	}
	e2b_conf_release(&c);
	return rc;
}

static void e2b_describe(const struct mfs_sandbox *base, struct mfs_buf *out)
{
	const struct e2b_sandbox *sb = (const struct e2b_sandbox *)base;
	mfs_buf_addf(out, "E2B sandbox %s (envd %s); connect with: e2b sandbox connect %s\n",
		     sb->base.id, sb->envd_url, sb->base.id);
}

/* E2B has no GPUs and sizes a sandbox by its template: --gpu and --disk
 * cannot be met (the executor refuses them), --cpu and --memory are not
 * applied (it warns in one line naming the template). */
static unsigned e2b_caps_for(const struct mfs_sandbox_spec *spec, struct mfs_buf *why)
{
	if (spec->gpu && *spec->gpu)
		mfs_buf_adds(why, "E2B sandboxes have no GPUs");
	else if (spec->image && *spec->image)
		mfs_buf_addf(why, "template %s decides the sandbox size", spec->image);
	else
		mfs_buf_adds(why, "the default template " DEFAULT_TEMPLATE " has " BASE_SIZE
			     "; pass --image with a template built to the size you need");
	return mfs_e2b_ops.caps;
}

const struct mfs_backend_ops mfs_e2b_ops = {
	.name = "e2b",
	.summary = "E2B cloud sandboxes (Firecracker microVMs; needs E2B_API_KEY)",
	.caps = MFS_CAP_IMAGE | MFS_CAP_NETWORK | MFS_CAP_STREAM | MFS_CAP_DOWNLOAD |
		MFS_CAP_LIST,
	.caps_for = e2b_caps_for,
	.probe = e2b_probe,
	.create = e2b_create,
	.upload = e2b_upload,
	.download = e2b_download,
	.exec = e2b_exec,
	.destroy = e2b_destroy,
	.release = e2b_release,
	.list = e2b_list,
	.kill = e2b_kill,
	.describe = e2b_describe,
};
