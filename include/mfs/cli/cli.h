/*
 * cli.h - the mfsandbox command line (src/cli/cli.c) and the one place where
 * error codes become exit statuses.
 */
#ifndef MFS_CLI_H
#define MFS_CLI_H

#include <stdbool.h>

#include "mfs/util/err.h"
#include "mfs/core/executor.h"

#define MFS_VERSION "0.1.0"

/* Exit statuses of mfsandbox itself (README "Exit codes").  Anything else
 * is the command's own status, or 128+N when it died of signal N. */
#define MFS_EXIT_USAGE   202 /* bad usage/configuration: Metaflow never retries 202 */
#define MFS_EXIT_BACKEND 203 /* backend/infrastructure failure: @retry may retry */
#define MFS_EXIT_TIMEOUT 204 /* --timeout reached: @retry may retry */

/* The only mapping from enum mfs_code to an exit status.  cmd_status is
 * used for MFS_OK, signo (0: SIGTERM) for MFS_ERR_CANCELLED. */
int mfs_exit_for(enum mfs_code code, int cmd_status, int signo);

/* What `run` parses that is the CLI's business, not the executor's. */
struct mfs_run_opts {
	char *metaflow_spec;          /* --metaflow-spec FILE, NULL: none */
	bool relay;                   /* --relay: metadata relay on the local backend too */
	struct mfs_strv forward_env;  /* --forward-env NAME: extra launcher vars for a step */
};
void mfs_run_opts_init(struct mfs_run_opts *opts);
void mfs_run_opts_release(struct mfs_run_opts *opts);

/* Parses `run [OPTIONS] [--] COMMAND...` (argv[0] is "run") into job and
 * opts.  Resolves the backend (--backend, else METAFLOW_SANDBOX_BACKEND).
 * *help is set when --help was given (job is then incomplete). */
enum mfs_code mfs_cli_parse_run(int argc, char **argv, struct mfs_job *job,
				struct mfs_run_opts *opts, bool *help, struct mfs_err *err);

/* Reads an --env-file into env (KEY=VALUE lines, # comments, optional
 * `export `, one pair of surrounding quotes stripped, bare KEY copied
 * from our environment). */
enum mfs_code mfs_cli_read_env_file(const char *path, struct mfs_kvlist *env, struct mfs_err *err);

/* Entry point used by main(): returns the process exit status. */
int mfs_cli_main(int argc, char **argv);

#endif
