/*
 * job_relay.h - the metadata relay as a job's finish hook.
 *
 * mfs_job_relay_arm() records, before the job runs, what the relay needs from
 * the step command as Metaflow launched it (the --metadata it asked for, which
 * Metaflow support may rewrite to "local" inside the sandbox) and sets
 * job->finish.  After the command, the hook relays this attempt's metadata
 * (include/mfs/relay/relay.h) and reports through job->say; it fails the job only
 * when metadata could be lost.  Used for every step on remote backends, and
 * on the local backend with `--relay` / MFSANDBOX_RELAY=1.
 */
#ifndef MFS_JOB_RELAY_H
#define MFS_JOB_RELAY_H

#include "mfs/core/executor.h"
#include "mfs/relay/relay.h"

struct mfs_job_relay {
	char *metadata;           /* "local" | "service", as launched */
	char *spool_dir;          /* NULL: default */
	long timeout_s;           /* the relay's budget; 0: MFS_RELAY_TIMEOUT_S */
	struct mfs_relay_report report;
	bool ran;                 /* the hook ran the relay */
};

void mfs_job_relay_init(struct mfs_job_relay *jr);
void mfs_job_relay_release(struct mfs_job_relay *jr);

/* No-op unless job->is_step.  Metadata: the step's --metadata, else
 * METAFLOW_DEFAULT_METADATA, else "local". */
void mfs_job_relay_arm(struct mfs_job *job, struct mfs_job_relay *jr);

#endif
