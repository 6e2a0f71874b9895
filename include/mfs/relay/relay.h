/*
 * relay.h - brings a sandboxed task's Metaflow metadata back to the launcher.
 *
 * Inside the sandbox Metaflow writes local metadata and, at task end, uploads
 * a tarball of its .metaflow dir to the datastore's content-addressed store
 * and names it in <ds_root>/<Flow>/<run>/<step>/<task>/<attempt>.local_metadata.
 * After the step, mfs_relay_run() fetches both and then either
 *  - merges the files into the launcher's .metaflow (metadata "local"; newer
 *    files win, as Metaflow's own sync does), or
 *  - replays this attempt's rows to the metadata service (metadata
 *    "service"): POST .../tasks/{t}/metadata and .../artifact.
 *
 * Exactly once: a service replay keeps its state in a spool entry
 * <spool>/<Flow>/<run>/<step>/<task>/<attempt>/ (spec.json, payload.json,
 * state), locked while in use; "done" there means a second relay sends
 * nothing.  Only rows of this attempt are sent (attempt_id:N tag, N_artifact_
 * files), so retries never duplicate earlier attempts' rows.  A failure is
 * kept in the spool and `mfsandbox relay replay PATHSPEC` finishes it later.
 *
 * Never masks the step's exit code: a task that died before writing its
 * metadata, or a relay that failed and was spooled, is reported as one
 * warning line in the report and the call returns MFS_OK.  An error return
 * means something could be lost (the spool itself could not be written) or
 * the spec is unusable.
 *
 * Bounded: every request (S3 GETs, service POSTs) is cut at the relay's
 * budget, spec.timeout_s from the start of mfs_relay_run, retries included;
 * a relay the budget cut is spooled like any other failure.  A first signal
 * cuts it too (the requests are cancellable).
 */
#ifndef MFS_RELAY_H
#define MFS_RELAY_H

#include <stdbool.h>

#include "mfs/util/err.h"

/* The whole relay's budget in seconds: default, and the variable that
 * raises it (whole seconds, 1 to 3600). */
#define MFS_RELAY_TIMEOUT_S 120L
#define MFS_RELAY_TIMEOUT_ENV "MFSANDBOX_RELAY_TIMEOUT_S"

struct mfs_relay_spec {
	const char *flow;
	const char *run_id;
	const char *step;
	const char *task_id;
	int attempt;
	const char *ds_type;      /* "s3" or "local" */
	const char *ds_root;      /* "s3://bucket/prefix", or the local .metaflow dir */
	const char *metadata;     /* "local" or "service" */
	const char *service_url;  /* service: base URL (METAFLOW_SERVICE_URL) */
	const char *local_root;   /* local: launcher's .metaflow; NULL: found as Metaflow does */
	const char *spool_dir;    /* NULL: mfs_relay_default_spool() */
	long timeout_s;           /* the budget; 0: MFS_RELAY_TIMEOUT_S */
};

struct mfs_relay_report {
	bool found;               /* the task wrote its metadata */
	bool already_done;        /* an earlier relay of this attempt finished */
	bool spooled;             /* failed; kept for `mfsandbox relay replay` */
	unsigned files_merged;    /* local: files written into .metaflow */
	unsigned metadata_rows;   /* service: rows sent now */
	unsigned artifact_rows;
	unsigned long s3_requests;
	char warning[1024];        /* one line for the person; "" if none */
};

enum mfs_code mfs_relay_run(const struct mfs_relay_spec *spec, struct mfs_relay_report *rep,
			    struct mfs_err *err);

/* Finishes every spooled relay under PATHSPEC ("Flow/run[/step[/task[/attempt]]]"),
 * each entry within timeout_s (0: MFS_RELAY_TIMEOUT_S).  *done / *failed
 * count entries; failures stay spooled. */
enum mfs_code mfs_relay_replay(const char *pathspec, const char *spool_dir, long timeout_s,
			       unsigned *done, unsigned *failed, struct mfs_err *err);

/* MFSANDBOX_RELAY_TIMEOUT_S into *timeout_s (0 when unset or empty);
 * MFS_ERR_USAGE naming the variable when it is not 1 to 3600. */
enum mfs_code mfs_relay_timeout_from_env(long *timeout_s, struct mfs_err *err);

/* $MFSANDBOX_RELAY_SPOOL, else $XDG_STATE_HOME/mfsandbox/relay, else
 * ~/.local/state/mfsandbox/relay.  Owned by the caller. */
char *mfs_relay_default_spool(void);

/* The launcher's local metadata root as Metaflow finds it:
 * $METAFLOW_DATASTORE_SYSROOT_LOCAL/.metaflow, else the nearest .metaflow
 * from the current directory up, else ./.metaflow.  Owned by the caller. */
char *mfs_relay_local_root(void);

#endif
