/*
 * ops.c - the `daytona` backend: Daytona cloud sandboxes.
 *
 * Two services are involved.  The main API ({DAYTONA_API_URL}/sandbox...)
 * creates, lists and deletes sandboxes; the toolbox, reached through the
 * proxy at {toolboxProxyUrl}/{sandboxId}, moves files and runs processes.
 * Both take the same Authorization header.  Facts and their sources:
 * shared/reference/daytona-api.md; the test double is tests/emulators/daytona.
 *
 * Why the pieces look the way they do:
 * - Without --image the sandbox comes from the default snapshot, the warm
 *   pool's fast path.  A snapshot fixes the size, and the API refuses
 *   cpu/memory/disk with one, so those flags apply only with --image (a
 *   build from `FROM <image>`); without it dt_caps_for tells the executor,
 *   which warns or refuses.  The environment never goes into the create call either (it
 *   would miss the warm pool, and the API would store secrets): each command
 *   gets it through a script uploaded next to it, which removes itself.
 *   Without env the script goes inline in the command (one request less).
 * - autoStopInterval + autoDeleteInterval 0 make an orphan (launcher killed
 *   with SIGKILL) stop after idling and then delete itself.
 * - Create is a POST that may make a sandbox even when its answer is lost.
 *   Every create carries a one-off nonce label; after an ambiguous failure
 *   (transport error, 502/503/504) we look the nonce up before trying again,
 *   so a lost response never yields two sandboxes.  429 means nothing was
 *   made and is retried after Retry-After.
 * - The step runs as an async session command: synchronous calls die at the
 *   proxy's idle timeout on long steps.  Output comes from following the
 *   command's log over the daemon's WebSocket with X-Daytona-Split-Output,
 *   which keeps the per-line stdout/stderr markers so the two streams stay
 *   apart; the log crosses the network once (logs.c).  Polling the whole
 *   log is the fallback: every 20 ms after output, backing off to 150 ms
 *   while quiet and 500 ms after 10 s of silence.
 * - The real daemon's quirks (exit-code race, 5 s kill grace, NULs dropped,
 *   work dir not always /home/daytona) and what is done about each are
 *   listed in docs/architecture.md.
 */
#include "daytona.h"

#include <stdlib.h>

/* ---- probe / describe ---- */

static enum mfs_code dt_probe(struct mfs_buf *notes, struct mfs_err *err)
{
	struct dt_conf c;
	enum mfs_code rc = dt_conf_load(&c, err);
	if (rc == MFS_OK && notes)
		mfs_buf_adds(notes, "without --image the default snapshot fixes the size: --cpu, "
			     "--memory, --disk and --gpu apply only with --image\n");
	dt_conf_release(&c);
	return rc;
}

static void dt_describe(const struct mfs_sandbox *base, struct mfs_buf *out)
{
	const struct dt_sandbox *sb = (const struct dt_sandbox *)base;
	/* The command to paste carries an id the API chose: quoted. */
	mfs_buf_addf(out, "Daytona sandbox %s (toolbox %s); connect with: daytona ssh ",
		     sb->base.id, sb->toolbox ? sb->toolbox : "?");
	mfs_buf_add_shell_quoted(out, sb->base.id);
	mfs_buf_addch(out, '\n');
}

/* Sizes apply only with --image (a snapshot fixes them).  Without it a
 * request within the default snapshot's size (1 vCPU, 1 GiB, 3 GiB) is met
 * anyway, which matters since @daytona always passes its defaults. */
static unsigned dt_caps_for(const struct mfs_sandbox_spec *spec, struct mfs_buf *why)
{
	unsigned caps = mfs_daytona_ops.caps;
	if (spec->image && *spec->image)
		return caps;
	caps &= ~(unsigned)(MFS_CAP_CPU | MFS_CAP_MEMORY | MFS_CAP_DISK | MFS_CAP_GPU);
	if (spec->cpu <= SNAPSHOT_CPU)
		caps |= MFS_CAP_CPU;
	if (spec->memory_mb <= SNAPSHOT_MEMORY_MB)
		caps |= MFS_CAP_MEMORY;
	if (spec->disk_gb <= SNAPSHOT_DISK_GB)
		caps |= MFS_CAP_DISK;
	mfs_buf_adds(why, "without --image the default snapshot's size (1 vCPU, 1 GiB, 3 GiB) "
		     "is used and no GPU; sizes and --gpu apply with --image");
	return caps;
}

const struct mfs_backend_ops mfs_daytona_ops = {
	.name = "daytona",
	.summary = "Daytona cloud sandboxes (REST + toolbox API; needs DAYTONA_API_KEY)",
	.caps = MFS_CAP_CPU | MFS_CAP_MEMORY | MFS_CAP_DISK | MFS_CAP_GPU | MFS_CAP_IMAGE |
		MFS_CAP_NETWORK | MFS_CAP_STREAM | MFS_CAP_DOWNLOAD | MFS_CAP_LIST,
	.caps_for = dt_caps_for,
	.probe = dt_probe,
	.create = dt_create,
	.upload = dt_upload,
	.download = dt_download,
	.exec = dt_exec,
	.destroy = dt_destroy,
	.release = dt_release,
	.list = dt_list,
	.kill = dt_kill,
	.describe = dt_describe,
};
