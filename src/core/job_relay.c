/* job_relay.c - the metadata relay as a job's finish hook (include/mfs/core/job_relay.h). */
#include "mfs/core/job_relay.h"

#include <stdlib.h>
#include <string.h>

#include "mfs/util/buf.h"

void mfs_job_relay_init(struct mfs_job_relay *jr)
{
	memset(jr, 0, sizeof(*jr));
}

void mfs_job_relay_release(struct mfs_job_relay *jr)
{
	free(jr->metadata);
	free(jr->spool_dir);
	mfs_job_relay_init(jr);
}

static const char *env_or(const char *name, const char *fallback)
{
	const char *v = getenv(name);
	return v && *v ? v : fallback;
}

static enum mfs_code relay_finish(struct mfs_job *job, struct mfs_sandbox *sb,
				  const struct mfs_job_outcome *outcome, struct mfs_err *err)
{
	struct mfs_job_relay *jr = job->finish_ctx;
	const struct mfs_step *st = &job->step;
	char *local_root = NULL;
	enum mfs_code rc;

	(void)sb;
	(void)outcome; /* a failed or killed task is relayed too: its rows matter */
	const char *ds_type = st->datastore ? st->datastore : env_or("METAFLOW_DEFAULT_DATASTORE", "local");
	const char *ds_root = st->datastore_root;
	if (!ds_root && !strcmp(ds_type, "s3"))
		ds_root = env_or("METAFLOW_DATASTORE_SYSROOT_S3", NULL);
	if (!ds_root && !strcmp(ds_type, "local"))
		ds_root = local_root = mfs_relay_local_root();
	struct mfs_relay_spec spec = {
		.flow = st->flow_name,
		.run_id = st->run_id,
		.step = st->step,
		.task_id = st->task_id,
		.attempt = st->attempt,
		.ds_type = ds_type,
		.ds_root = ds_root,
		.metadata = jr->metadata,
		.service_url = env_or("METAFLOW_SERVICE_URL", NULL),
		.spool_dir = jr->spool_dir,
		.timeout_s = jr->timeout_s,
	};
	rc = mfs_relay_run(&spec, &jr->report, err);
	jr->ran = true;
	if (rc == MFS_OK && jr->report.warning[0])
		mfs_sayf(&job->say, MFS_SAY_ALWAYS, "%s", jr->report.warning);
	free(local_root);
	return rc;
}

void mfs_job_relay_arm(struct mfs_job *job, struct mfs_job_relay *jr)
{
	if (!job->is_step)
		return;
	const char *md = job->step.metadata ? job->step.metadata
					    : env_or("METAFLOW_DEFAULT_METADATA", "local");
	free(jr->metadata);
	jr->metadata = mfs_xstrdup(md);
	job->finish = relay_finish;
	job->finish_ctx = jr;
}
