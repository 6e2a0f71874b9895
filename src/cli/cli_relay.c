/*
 * cli_relay.c - `mfsandbox relay replay PATHSPEC` and the relay/credential
 * set-up of `mfsandbox run` for Metaflow step commands.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli_internal.h"
#include "mfs/cli/cli.h"
#include "mfs/core/forward_env.h"
#include "mfs/net/http.h"
#include "mfs/core/job_relay.h"
#include "mfs/core/metaflow_task.h"
#include "mfs/relay/relay.h"
#include "mfs/util/env.h"

const char mfs_relay_help[] =
	"usage: mfsandbox relay replay [--spool DIR] PATHSPEC\n"
	"\n"
	"Finishes metadata relays that failed and were kept on disk (for example the\n"
	"metadata service was down): PATHSPEC is Flow/run[/step[/task[/attempt]]].\n"
	"Rows already sent are not sent again.  The spool defaults to\n"
	"$MFSANDBOX_RELAY_SPOOL, else ~/.local/state/mfsandbox/relay.  Service headers\n"
	"come from METAFLOW_SERVICE_HEADERS, credentials from the usual AWS variables.\n"
	"exit status: 0 when everything under PATHSPEC is relayed (or nothing was\n"
	"spooled), 203 when some still fail (they stay spooled), 202 on bad usage.\n";

enum mfs_code mfs_cli_forward_env_name(const char *name, struct mfs_strv *names,
				       struct mfs_err *err)
{
	if (!mfs_env_name_ok(name, strlen(name)))
		/* Never echo it: it may be NAME=secret. */
		return mfs_fail(err, MFS_ERR_USAGE,
				"--forward-env takes a variable name (letters, digits, _), not a value");
	mfs_strv_push(names, name);
	return MFS_OK;
}

/* MFSANDBOX_FORWARD_ENV: the --forward-env names for runs started by
 * Metaflow, whose command line the user does not write. */
static enum mfs_code forward_env_from_environment(struct mfs_strv *names, struct mfs_err *err)
{
	const char *v = getenv("MFSANDBOX_FORWARD_ENV");
	enum mfs_code rc = MFS_OK;
	if (!v || !*v)
		return MFS_OK;
	char *copy = mfs_xstrdup(v), *save = NULL;
	for (char *n = strtok_r(copy, ", \t", &save); n && rc == MFS_OK;
	     n = strtok_r(NULL, ", \t", &save))
		rc = mfs_cli_forward_env_name(n, names, err);
	if (rc != MFS_OK)
		mfs_fail(err, rc, "MFSANDBOX_FORWARD_ENV takes variable names separated by commas "
			 "(letters, digits, _), never values");
	free(copy);
	return rc;
}

enum mfs_code mfs_cli_relay_setup(struct mfs_job *job, struct mfs_run_opts *opts,
				  struct mfs_job_relay *relay, struct mfs_err *err)
{
	if (!job->is_step)
		return MFS_OK;
	enum mfs_code frc = forward_env_from_environment(&opts->forward_env, err);
	if (frc != MFS_OK)
		return frc;
	mfs_forward_credentials(&job->env, &opts->forward_env);
	/* Checked before any sandbox exists: a step on S3 with a wrong
	 * AWS_PROFILE would only fail inside it. */
	if (job->step.datastore && !strcmp(job->step.datastore, "s3")) {
		enum mfs_code rc = mfs_forward_aws_profile(&job->env, err);
		if (rc != MFS_OK)
			return rc;
	}
	/* A @sandbox step needs the relay whenever the launcher cannot see
	 * the metadata its sandbox writes (mfs_mf_relay_needed). */
	bool spec_relay = opts->metaflow_spec && mfs_mf_relay_needed(&job->step);
	if (!(opts->relay || mfs_truthy(getenv("MFSANDBOX_RELAY")) || spec_relay))
		return MFS_OK;
	mfs_job_relay_arm(job, relay);
	/* A bad budget is found now, not after the step ran. */
	return mfs_relay_timeout_from_env(&relay->timeout_s, err);
}

int mfs_cmd_relay(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "spool", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct mfs_err err = { MFS_OK, "" };
	const char *spool = NULL;
	unsigned done = 0, failed = 0;
	int c, status;

	optind = 0;
	opterr = 0;
	/* Options anywhere (no '+'): the help and docs write them after
	 * `replay`, which "+" took for the end of the options. */
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'h') {
			mfs_cli_help("relay");
			return 0;
		}
		if (c == 's') {
			spool = optarg;
			continue;
		}
		mfs_cli_bad_option("relay", c, argv, optind, &err);
		return mfs_cli_fail(&err);
	}
	if (argc - optind != 2 || strcmp(argv[optind], "replay") != 0) {
		mfs_fail(&err, MFS_ERR_USAGE, "relay: usage: mfsandbox relay replay PATHSPEC "
			 "(see 'mfsandbox relay --help')");
		return mfs_cli_fail(&err);
	}
	long budget;
	enum mfs_code rc = mfs_relay_timeout_from_env(&budget, &err);
	if (rc != MFS_OK)
		return mfs_cli_fail(&err);
	rc = mfs_relay_replay(argv[optind + 1], spool, budget, &done, &failed, &err);
	if (rc == MFS_ERR_NOTFOUND) {
		mfs_cli_say(NULL, err.msg);
		status = 0;
	} else if (rc != MFS_OK) {
		status = mfs_cli_fail(&err);
	} else {
		struct mfs_buf line = MFS_BUF_INIT;
		mfs_buf_addf(&line, "relay: %u relayed, %u still spooled", done, failed);
		mfs_cli_say(NULL, line.data);
		mfs_buf_release(&line);
		status = 0;
	}
	mfs_http_cleanup();
	return status;
}
