/*
 * metaflow_task.h - turning one Metaflow task into the script that runs it
 * inside a sandbox (`mfsandbox run --metaflow-spec FILE -- <step command>`).
 *
 * The Python decorator (python/metaflow_extensions/sandbox) computes what
 * only Metaflow knows and writes it once per (run, step) into a JSON spec
 * (format: docs/architecture.md "Metaflow integration").  Here, in the
 * executor's prepare hook, the job is rewritten: the code package becomes an
 * upload, the step command becomes `bash -c <script>` (mflog setup, package
 * extraction, bootstrap, the step with its output captured, save_logs, exit
 * with the step's status), and the sandbox gets the spec's environment plus
 * the forwarded secrets (by name, from our own environment).
 *
 * Output: the sandbox's raw lines are mflog-decorated before they reach
 * Metaflow's runtime, which then shows them but does not persist them a
 * second time (the task already saves them as task logs).
 */
#ifndef MFS_METAFLOW_TASK_H
#define MFS_METAFLOW_TASK_H

#include <stdbool.h>

#include "mfs/backend.h"
#include "mfs/util/buf.h"
#include "mfs/util/err.h"
#include "mfs/core/executor.h"
#include "mfs/core/step.h"

#define MFS_MF_SPEC_VERSION 1
/* Metaflow's own threshold for moving --input-paths into env vars. */
#define MFS_MF_INPUT_CHUNK (30 * 1024)
/* Where the step runs and the code package lands, relative to the sandbox
 * work dir. */
#define MFS_MF_STEP_DIR "metaflow"
#define MFS_MF_PACKAGE_REMOTE MFS_MF_STEP_DIR "/job.tar"
/* Room for sandbox creation, package upload and environment bootstrap on
 * top of the step's @timeout, so that Metaflow's own SIGALRM in the task
 * fires before our deadline does and the task records its own timeout. */
#define MFS_MF_TIMEOUT_SLACK_S 120
/* Largest step_timeout the spec may carry (10 years): a peer's number, so
 * bounded before it is added to anything. */
#define MFS_MF_STEP_TIMEOUT_MAX (10L * 366 * 24 * 3600)

struct mfs_mf_spec {
	char *flow_name;
	char *ds_type;            /* "local", "s3", ... */
	char *ds_root;            /* absolute path or URL; NULL: Metaflow's config */
	char *package_path;       /* local file uploaded into the sandbox */
	char *package_url, *package_sha, *package_metadata;
	char *executable;         /* shell words for the step's interpreter, e.g. "python" */
	char *python;             /* interpreter for Metaflow's helpers (tee, save_logs);
				   * absent in the spec: "python" */
	/* The launcher's own interpreter (absolute).  A backend on this
	 * machine runs the step and the helpers with it (mfs_mf_prepare);
	 * NULL: none given. */
	char *launcher_python;
	struct mfs_strv bootstrap;     /* shell commands run before the step, captured */
	struct mfs_strv dependencies;  /* pip packages installed when not importable */
	struct mfs_kvlist post_extract_env; /* key "X": prepend to X; "X:": replace X */
	struct mfs_kvlist env;         /* non-secret sandbox environment */
	/* Metaflow config values of the families a remote task needs; the
	 * ones whose names look secret (mfs_secret_name) are dropped here,
	 * the decorator does not filter them. */
	struct mfs_kvlist config_env;
	/* MFS_CAP_CPU/MEMORY/DISK: sizes on the command line that are the
	 * decorator's defaults, not asked for by the user (see
	 * mfs_job.size_defaults). */
	unsigned default_sizes;
	long step_timeout_s;           /* the step's @timeout in seconds; 0: none */
	struct mfs_strv forward_env;   /* names copied from our environment when set */
	struct mfs_strv rw_paths;      /* host dirs bound read-write (local backend) */
};

void mfs_mf_spec_init(struct mfs_mf_spec *spec);
void mfs_mf_spec_release(struct mfs_mf_spec *spec);
/* Parses a spec document; one-line MFS_ERR_CONFIG naming the field on error. */
enum mfs_code mfs_mf_spec_parse(const char *text, size_t len, struct mfs_mf_spec *spec,
				struct mfs_err *err);
enum mfs_code mfs_mf_spec_load(const char *path, struct mfs_mf_spec *spec, struct mfs_err *err);

/* Builds the bash script for the step command `argv` (parsed into *st).
 * Input paths longer than MFS_MF_INPUT_CHUNK go into env_out as
 * METAFLOW_INPUT_PATHS_<i>.  The script is appended to out. */
enum mfs_code mfs_mf_build_script(const struct mfs_mf_spec *spec, const struct mfs_step *st,
				  const char *const *argv, struct mfs_kvlist *env_out,
				  struct mfs_buf *out, struct mfs_err *err);

/* The longest output line held back to be decorated whole; a longer one is
 * passed on in pieces of this size, each decorated as a line of its own. */
#define MFS_MF_LINE_MAX (64 * 1024)

/* State of one `run --metaflow-spec`: the hook's context. */
struct mfs_mf_task {
	char *spec_path;
	struct mfs_mf_spec spec;
	struct mfs_io io;            /* decorating sink installed on the job */
	const struct mfs_io *down;   /* where decorated lines go; NULL: fds 1 and 2 */
	struct mfs_buf partial[2];   /* unfinished line per stream */
	unsigned long seq;
};

void mfs_mf_task_init(struct mfs_mf_task *t, const char *spec_path);
/* Flushes unfinished lines and frees everything. */
void mfs_mf_task_release(struct mfs_mf_task *t);

/* Whether a step's metadata has to be relayed by the launcher after the
 * task: the sandbox writes local metadata, which the launcher cannot see
 * when it uses the metadata service or a datastore other than the local
 * one (only that one is bound into the local sandbox).  Decided here
 * alone: the CLI arms the relay with it and prepare tells the task to ship
 * its metadata with it. */
bool mfs_mf_relay_needed(const struct mfs_step *st);

/* The executor's prepare hook; job->prepare_ctx is a struct mfs_mf_task. */
enum mfs_code mfs_mf_prepare(struct mfs_job *job, struct mfs_err *err);

/* The decorating sink on its own (tests): feeds bytes of one stream. */
void mfs_mf_io_write(void *ctx, enum mfs_stream stream, const char *data, size_t len);

#endif
