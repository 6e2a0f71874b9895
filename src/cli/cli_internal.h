/* cli_internal.h - shared between src/cli*.c only. */
#ifndef MFS_CLI_INTERNAL_H
#define MFS_CLI_INTERNAL_H

#include <stdbool.h>

#include "mfs/util/buf.h"
#include "mfs/util/err.h"
#include "mfs/util/say.h"

/* Prints "mfsandbox: <msg>" as one line on stderr (one write(2)). */
void mfs_cli_say(void *ctx, const char *msg);
/* The run's message sink (util/say.h): "warning: " before a warning; a
 * progress line redrawn in place on a terminal and dropped elsewhere. */
void mfs_cli_note(void *ctx, enum mfs_say_level level, const char *msg);
/* Prints the error and returns its exit status. */
int mfs_cli_fail(const struct mfs_err *err);
/* Prints a subcommand's help text to stdout. */
void mfs_cli_help(const char *cmd);

/* Subcommands without options: handles --help and bad options; returns 1
 * with *status set when the caller should return it. */
int mfs_cli_no_options(const char *cmd, int argc, char **argv, bool allow_args, int *status);

/* getopt_long's complaint turned into a one-line usage error. */
enum mfs_code mfs_cli_bad_option(const char *cmd, int opt, char **argv, int optind_now,
				 struct mfs_err *err);

int mfs_cmd_run(int argc, char **argv);
int mfs_cmd_backends(int argc, char **argv);
int mfs_cmd_ls(int argc, char **argv);
int mfs_cmd_kill(int argc, char **argv);
int mfs_cmd_relay(int argc, char **argv);
extern const char mfs_relay_help[];

struct mfs_job;
struct mfs_job_relay;
/* --forward-env NAME: a variable name, never NAME=VALUE (values stay off argv). */
enum mfs_code mfs_cli_forward_env_name(const char *name, struct mfs_strv *names,
				       struct mfs_err *err);
/* For a step command: forwards the launcher's datastore credentials into the
 * sandbox env (an AWS profile's keys for a step on S3) and arms the relay
 * (--relay, MFSANDBOX_RELAY=1, or a spec whose metadata must be relayed).
 * MFS_ERR_CONFIG for an AWS_PROFILE that does not resolve. */
struct mfs_run_opts;
enum mfs_code mfs_cli_relay_setup(struct mfs_job *job, struct mfs_run_opts *opts,
				  struct mfs_job_relay *relay, struct mfs_err *err);

#endif
