/*
 * cli.c - subcommand dispatch, help texts and the exit-status mapping.
 *
 * Subcommands are rows of one table (git's style): adding one is adding a
 * row and a function.  The run/backends/ls/kill bodies live in
 * cli_run.c and cli_admin.c.
 */
#include "mfs/cli/cli.h"

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli_internal.h"
#include "mfs/core/registry.h"
#include "mfs/util/file.h"

int mfs_exit_for(enum mfs_code code, int cmd_status, int signo)
{
	switch (code) {
	case MFS_OK:
		return cmd_status & 0xff;
	case MFS_ERR_USAGE:
	case MFS_ERR_CONFIG:
	case MFS_ERR_AUTH:
	case MFS_ERR_UNSUPPORTED:
		return MFS_EXIT_USAGE;
	case MFS_ERR_TIMEOUT:
		return MFS_EXIT_TIMEOUT;
	case MFS_ERR_CANCELLED:
		return 128 + (signo > 0 && signo < 64 ? signo : SIGTERM);
	case MFS_ERR_NOMEM:
	case MFS_ERR_IO:
	case MFS_ERR_HTTP:
	case MFS_ERR_NOTFOUND:
	case MFS_ERR_BACKEND:
	case MFS_ERR_PROTOCOL:
		return MFS_EXIT_BACKEND;
	}
	return MFS_EXIT_BACKEND;
}

/* One line whatever the message quotes: a control byte from the user's
 * input (a newline in an --env name) would split it. */
static void add_printable(struct mfs_buf *line, const char *msg)
{
	for (const char *p = msg; *p; p++)
		mfs_buf_addch(line, (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p);
}

/* A progress line is on screen without its newline. */
static bool progress_open;

void mfs_cli_say(void *ctx, const char *msg)
{
	mfs_cli_note(ctx, MFS_SAY_ALWAYS, msg);
}

void mfs_cli_note(void *ctx, enum mfs_say_level level, const char *msg)
{
	struct mfs_buf line = MFS_BUF_INIT;
	(void)ctx;
	if (level == MFS_SAY_PROGRESS) {
		if (!*msg) {
			if (progress_open)
				mfs_write_all(2, "\n", 1);
			progress_open = false;
		} else if (isatty(2) == 1) {
			/* \r and erase-to-end redraw the status in place. */
			mfs_buf_adds(&line, "\rmfsandbox: ");
			add_printable(&line, msg);
			mfs_buf_adds(&line, "\033[K");
			mfs_write_all(2, line.data, line.len);
			progress_open = true;
		}
		mfs_buf_release(&line);
		return;
	}
	mfs_buf_addf(&line, "%smfsandbox: %s", progress_open ? "\n" : "",
		     level == MFS_SAY_WARN ? "warning: " : "");
	add_printable(&line, msg);
	mfs_buf_addch(&line, '\n');
	progress_open = false;
	mfs_write_all(2, line.data, line.len);
	mfs_buf_release(&line);
}

int mfs_cli_fail(const struct mfs_err *err)
{
	mfs_cli_say(NULL, err->msg[0] ? err->msg : mfs_code_name(err->code));
	return mfs_exit_for(err->code, 0, 0);
}

enum mfs_code mfs_cli_bad_option(const char *cmd, int opt, char **argv, int optind_now,
				 struct mfs_err *err)
{
	/* The offending word, cut at '=' so a value (maybe a secret) is never echoed. */
	char word[64] = "?";
	if (optopt && optopt != '?' && optopt < 128 && argv[optind_now - 1] &&
	    strncmp(argv[optind_now - 1], "--", 2) != 0)
		snprintf(word, sizeof(word), "-%c", optopt);
	else if (optind_now > 0 && argv[optind_now - 1])
		snprintf(word, sizeof(word), "%.*s", (int)strcspn(argv[optind_now - 1], "="),
			 argv[optind_now - 1]);
	if (opt == ':')
		return mfs_fail(err, MFS_ERR_USAGE, "%s: option %s needs a value (see 'mfsandbox %s --help')",
				cmd, word, cmd);
	return mfs_fail(err, MFS_ERR_USAGE, "%s: unknown option %s (see 'mfsandbox %s --help')", cmd,
			word, cmd);
}

static const char main_help[] =
	"usage: mfsandbox COMMAND [OPTIONS]\n"
	"\n"
	"Runs a command (typically one Metaflow task) inside an isolated sandbox.\n"
	"\n"
	"commands:\n"
	"  run       run a command in a new sandbox and remove the sandbox afterwards\n"
	"  backends  list the backends and whether they are usable on this machine\n"
	"  ls        list sandboxes created by mfsandbox that still exist\n"
	"  kill      remove sandboxes by id, pathspec, or when stale\n"
	"  relay     finish spooled metadata relays: mfsandbox relay replay PATHSPEC\n"
	"  version   print the version\n"
	"  help      show help for a command: mfsandbox help run\n"
	"\n"
	"exit status: the command's own, 128+N if it died of signal N,\n"
	"  202 bad usage or configuration (not retried by Metaflow),\n"
	"  203 backend or infrastructure failure (retryable), 204 --timeout reached.\n"
	"docs: README.md, docs/configuration.md\n";

static const char run_help[] =
	"usage: mfsandbox run [OPTIONS] [--] COMMAND [ARG...]\n"
	"\n"
	"Creates a sandbox, runs COMMAND in its work directory with stdout and stderr\n"
	"passed through live, removes the sandbox and exits with COMMAND's status.\n"
	"\n"
	"options:\n"
	"  --backend NAME        local, daytona or e2b (default: $METAFLOW_SANDBOX_BACKEND)\n"
	"  --cpu N               CPUs (may be fractional, e.g. 0.5)\n"
	"  --memory MB           memory limit in MiB\n"
	"  --disk GB             disk size in GiB\n"
	"  --gpu SPEC            GPU request, backend-specific (e.g. 1, A100)\n"
	"  --image REF           image / template of the sandbox\n"
	"  --network host|none   network access (default: the backend's)\n"
	"  --timeout SECONDS     kill the command and exit 204 after this long\n"
	"  --env KEY=VALUE       set a variable in the sandbox (repeatable);\n"
	"                        --env KEY copies KEY from this environment, which\n"
	"                        keeps secrets off the command line\n"
	"  --env-file FILE       KEY=VALUE lines (# comments, optional 'export ')\n"
	"  --upload LOCAL:REMOTE copy a file into the sandbox (repeatable); REMOTE\n"
	"                        relative to the work directory unless absolute\n"
	"  --code DIR|TARBALL    ship code: a directory is packed, a tarball sent as\n"
	"                        is; both are unpacked into the work directory\n"
	"  --ro-bind HOST[:DEST] show host path HOST read-only at DEST (default: the\n"
	"                        same path) in a local sandbox (repeatable)\n"
	"  --bind HOST[:DEST]    the same, writable\n"
	"  --keep                keep the sandbox afterwards and print how to reach it\n"
	"  --dry-run             print the sandbox and command (secrets redacted); do nothing\n"
	"  --quiet               no header or progress lines on stderr\n"
	"  --relay               relay a step's metadata back from the datastore after\n"
	"                        it ran (also MFSANDBOX_RELAY=1); see docs/architecture.md\n"
	"  --forward-env NAME    also copy launcher variable NAME into a step's sandbox\n"
	"                        (repeatable, or MFSANDBOX_FORWARD_ENV=NAME,NAME; provider\n"
	"                        keys are not forwarded otherwise)\n"
	"  -h, --help            this text\n";

static const char backends_help[] =
	"usage: mfsandbox backends\n"
	"\n"
	"One line per backend: its name, whether it is usable on this machine, what it\n"
	"still needs (an env var, a package) and the limits it cannot enforce.\n";

static const char ls_help[] =
	"usage: mfsandbox ls [--backend NAME]\n"
	"\n"
	"Lists the sandboxes mfsandbox created that still exist, with their\n"
	"flow/run/step/task, attempt and age.  Without --backend, every usable backend.\n";

static const char kill_help[] =
	"usage: mfsandbox kill [--backend NAME] ID...\n"
	"       mfsandbox kill [--backend NAME] --pathspec FLOW/RUN[/STEP[/TASK]]\n"
	"       mfsandbox kill [--backend NAME] --stale\n"
	"\n"
	"Removes sandboxes.  --stale: older than their own timeout, or started by an\n"
	"mfsandbox process on this host that no longer exists.\n";

static const char version_help[] = "usage: mfsandbox version\n";
static const char help_help[] = "usage: mfsandbox help [COMMAND]\n";

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} commands[] = {
	{ "run", mfs_cmd_run, run_help },
	{ "backends", mfs_cmd_backends, backends_help },
	{ "ls", mfs_cmd_ls, ls_help },
	{ "kill", mfs_cmd_kill, kill_help },
	{ "relay", mfs_cmd_relay, mfs_relay_help },
	{ "version", cmd_version, version_help },
	{ "help", cmd_help, help_help },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

void mfs_cli_help(const char *cmd)
{
	const char *text = main_help;
	for (size_t i = 0; cmd && i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, cmd) == 0)
			text = commands[i].help;
	fputs(text, stdout);
	fflush(stdout);
}

/* For subcommands without options: accepts only --help, and no arguments
 * unless allow_args.  Returns 1 (with *status) when the caller is done. */
int mfs_cli_no_options(const char *cmd, int argc, char **argv, bool allow_args, int *status)
{
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
	struct mfs_err err = { MFS_OK, "" };
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		if (c == 'h') {
			mfs_cli_help(cmd);
			*status = 0;
			return 1;
		}
		mfs_cli_bad_option(cmd, c, argv, optind, &err);
		*status = mfs_cli_fail(&err);
		return 1;
	}
	if (!allow_args && optind < argc) {
		mfs_fail(&err, MFS_ERR_USAGE, "%s takes no arguments (see 'mfsandbox %s --help')", cmd, cmd);
		*status = mfs_cli_fail(&err);
		return 1;
	}
	return 0;
}

static int cmd_version(int argc, char **argv)
{
	int status;
	if (mfs_cli_no_options("version", argc, argv, false, &status))
		return status;
	printf("mfsandbox %s\n", MFS_VERSION);
	return 0;
}

static int cmd_help(int argc, char **argv)
{
	int status;
	if (mfs_cli_no_options("help", argc, argv, true, &status))
		return status;
	if (optind < argc) {
		for (size_t i = 0; i < N_COMMANDS; i++)
			if (strcmp(commands[i].name, argv[optind]) == 0) {
				mfs_cli_help(argv[optind]);
				return 0;
			}
		struct mfs_err err;
		mfs_fail(&err, MFS_ERR_USAGE, "help: unknown command '%.40s' (commands: run, backends, ls, kill, relay, version, help)",
			 argv[optind]);
		return mfs_cli_fail(&err);
	}
	mfs_cli_help(NULL);
	return 0;
}

int mfs_cli_main(int argc, char **argv)
{
	struct mfs_err err = { MFS_OK, "" };
	if (argc < 2) {
		mfs_fail(&err, MFS_ERR_USAGE, "no command given (try 'mfsandbox help')");
		return mfs_cli_fail(&err);
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		mfs_cli_help(NULL);
		return 0;
	}
	if (strcmp(cmd, "--version") == 0)
		cmd = "version";
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, cmd) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	if (cmd[0] == '-')
		mfs_fail(&err, MFS_ERR_USAGE, "options go after the command, e.g. 'mfsandbox run %.*s ...' (see 'mfsandbox help')",
			 (int)strcspn(cmd, "="), cmd);
	else
		mfs_fail(&err, MFS_ERR_USAGE, "unknown command '%.40s' (commands: run, backends, ls, kill, relay, version, help)",
			 cmd);
	return mfs_cli_fail(&err);
}
