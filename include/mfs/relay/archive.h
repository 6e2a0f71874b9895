/*
 * archive.h - reading the metadata tarball a sandboxed task left behind.
 *
 * The archive was written by the step's code, so it is read twice: a first
 * pass checks every member against the path rule (contain.h) and the bounds
 * (50000 members, 64 MiB unpacked) before anything is handed on; only then
 * does a second pass give each member the rule accepts to a callback.  A
 * refusal stops everything: nothing of the archive is written or sent.
 */
#ifndef MFS_RELAY_ARCHIVE_H
#define MFS_RELAY_ARCHIVE_H

#include <stdbool.h>
#include <time.h>

#include "mfs/relay/contain.h"
#include "mfs/util/buf.h"
#include "mfs/util/err.h"

/* Whose archive is read, and what came of it. */
struct mfs_relay_tar {
	struct mfs_task_ids ids;
	int attempt;              /* named in a refusal */
	bool refused;             /* set once the archive broke a rule */
};

/* One accepted member: rel is its path below .metaflow/ (contain.h); once
 * is true for a flow/run/step record that is applied only when absent. */
typedef enum mfs_code (*mfs_relay_member_fn)(void *ctx, const char *rel,
					     const struct mfs_buf *data, time_t mtime,
					     bool once, struct mfs_err *err);

/* Checks the whole gzip'd (or plain) tar in tgz, then hands fn each member
 * the path rule lets through.  A broken rule sets t->refused and returns
 * MFS_ERR_PROTOCOL saying which member and why; an unreadable archive is
 * MFS_ERR_PROTOCOL without refusal; a missing libarchive MFS_ERR_IO. */
enum mfs_code mfs_relay_read_tarball(struct mfs_relay_tar *t, const struct mfs_buf *tgz,
				     mfs_relay_member_fn fn, void *ctx, struct mfs_err *err);

/* Refuses the whole archive because of member name (why: words for the
 * user); also for a rule a callback enforces.  Returns MFS_ERR_PROTOCOL. */
enum mfs_code mfs_relay_refuse(struct mfs_relay_tar *t, const char *name, const char *why,
			       struct mfs_err *err);

#endif
