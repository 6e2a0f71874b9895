/*
 * executor.h - one run of one command in one sandbox.
 *
 * The CLI fills a struct mfs_job from flags; mfs_job_run() drives the
 * backend: prepare hook -> create (labelled; probe only to explain a failed
 * create) -> uploads and code
 * -> exec with live stdout/stderr passthrough -> finish hook -> destroy
 * (on every path unless --keep).  It returns an mfs_code; the command's
 * own exit status is in result->status when the command ran.
 *
 * A step command's launcher-local files (--local-config-file, --config
 * NAME FILE, --input-paths-filename) become uploads and its options point
 * at the copies before prepare runs (include/mfs/core/step_files.h).
 *
 * Two extension points, both plain function pointers on the job that stay
 * NULL (no-op) unless a feature sets them:
 *  - prepare: runs first, before anything is created (also in --dry-run,
 *    so it must not touch the world).  Metaflow support rewrites the job
 *    here: argv -> `bash -c <script>`, extra env, extra uploads, step info.
 *  - finish: runs after exec and before destroy, with the live sandbox and
 *    the outcome, whether the command succeeded, failed, timed out or was
 *    cancelled.  The metadata relay runs here.  Its error fails the job
 *    (203) only when it returns one; it decides what is fatal.
 */
#ifndef MFS_EXECUTOR_H
#define MFS_EXECUTOR_H

#include <stdbool.h>

#include "mfs/backend.h"
#include "mfs/util/buf.h"
#include "mfs/util/err.h"
#include "mfs/util/say.h"
#include "mfs/core/step.h"

struct mfs_job;

/* What happened to the command, handed to the finish hook. */
struct mfs_job_outcome {
	bool ran;             /* exec was started */
	int status;           /* command status (0..255) when code == MFS_OK */
	enum mfs_code code;   /* MFS_OK, or why exec did not give a status */
};

typedef enum mfs_code (*mfs_job_prepare_fn)(struct mfs_job *job, struct mfs_err *err);
typedef enum mfs_code (*mfs_job_finish_fn)(struct mfs_job *job, struct mfs_sandbox *sb,
					   const struct mfs_job_outcome *outcome,
					   struct mfs_err *err);

struct mfs_job {
	const struct mfs_backend_ops *ops;

	/* sandbox spec (0 / NULL: backend default); strings owned */
	char *image;
	double cpu;
	long memory_mb;
	long disk_gb;
	char *gpu;
	char *network;        /* "host" | "none" | NULL */
	long timeout_s;       /* --timeout: whole run, 0: none */
	/* MFS_CAP_CPU/MEMORY/DISK bits whose size above is an integration's
	 * default, not the user's request: where the backend cannot honour
	 * one it is dropped without a word (an E2B template sizes its own
	 * sandbox), instead of the warning or refusal an asked size gets.
	 * prepare may set it (Metaflow support: the spec's default_sizes). */
	unsigned size_defaults;
	/* MFSANDBOX_DELETE_TIMEOUT_S: how long each clean-up (removing the
	 * sandbox, or what a failed create made; stopping a command that must
	 * stop) may take before the run gives up on it; 0: MFS_DELETE_TIMEOUT_S. */
	long delete_timeout_s;

	struct mfs_strv argv;    /* the command, run exactly */
	struct mfs_kvlist env;   /* sandbox environment (may hold secrets) */
	struct mfs_kvlist uploads; /* key: remote path, value: local path */
	char *code_path;         /* --code DIR|TARBALL, NULL: none */
	struct mfs_strv rw_paths;  /* host dirs bound read-write (local backend only) */
	struct mfs_kvlist ro_binds, rw_binds; /* --ro-bind/--bind: key DEST, value HOST */

	bool keep, dry_run, quiet;
	/* Launcher variables whose values the --dry-run plan hides under any
	 * name (the CLI's --forward-env); borrowed, NULL: none. */
	const struct mfs_strv *secret_vars;

	/* Filled from argv by mfs_job_set_argv(); prepare may change it. */
	bool is_step;
	struct mfs_step step;
	/* Where a step command runs, relative to the work dir (NULL: the work
	 * dir): the launcher files it names are shipped below it
	 * (src/core/step_files.c).  Metaflow support: MFS_MF_STEP_DIR. */
	const char *step_dir;

	/* Extension points (see top of file); NULL: nothing to do. */
	mfs_job_prepare_fn prepare;
	void *prepare_ctx;
	mfs_job_finish_fn finish;
	void *finish_ctx;

	/* One-line messages for the person (header, warnings, --keep
	 * instructions, the backend's progress); fn NULL: dropped.  The
	 * executor applies --quiet before passing a line on.  Never given
	 * secrets. */
	struct mfs_say say;
	/* Command output sink; NULL: byte-exact to fds 1 and 2. */
	const struct mfs_io *io;
};

struct mfs_job_result {
	bool ran;             /* the command started (status is meaningful) */
	int status;           /* its exit status, 128+N for signal N */
	struct mfs_buf plan;  /* --dry-run: what would happen, secrets redacted */
};

void mfs_job_init(struct mfs_job *job);
void mfs_job_release(struct mfs_job *job);
/* Sets the command and parses it as a Metaflow step command if it is one. */
void mfs_job_set_argv(struct mfs_job *job, const char *const *argv);

void mfs_job_result_init(struct mfs_job_result *res);
void mfs_job_result_release(struct mfs_job_result *res);

/* Calls job->prepare if set (extension point a). */
enum mfs_code mfs_job_prepare(struct mfs_job *job, struct mfs_err *err);
/* Calls job->finish if set (extension point b). */
enum mfs_code mfs_job_finish(struct mfs_job *job, struct mfs_sandbox *sb,
			     const struct mfs_job_outcome *outcome, struct mfs_err *err);

/* Renders the --dry-run plan (secrets redacted) into out. */
void mfs_job_describe(const struct mfs_job *job, struct mfs_buf *out);

enum mfs_code mfs_job_run(struct mfs_job *job, struct mfs_job_result *res, struct mfs_err *err);

/* Sandbox name for a job: "mfs-<flow>-<run>-<step>-<task>-<attempt>" for
 * steps, else "mfs-<pid>-<time>"; only [A-Za-z0-9-]. */
void mfs_job_sandbox_name(const struct mfs_job *job, struct mfs_buf *out);

#endif
