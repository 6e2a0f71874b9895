/*
 * exec.c - one command in a local sandbox: start bwrap, stream its output,
 * enforce the deadline and cancellation, and turn bwrap's JSON status into
 * the command's exit status or a backend error.
 */
#include "local.h"
#include "mfs/util/cancel.h"
#include "mfs/util/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GRACE_MS        2000   /* cancellation: signal, then this long, then SIGKILL */
#define DRAIN_MS        5000   /* after SIGKILL, how long we still collect output */
#define STDERR_TAIL     1024   /* kept to explain a bwrap set-up failure */

/* Last complete value of "key": N in bwrap's JSON status lines, or -1. */
static long json_last_int(const struct mfs_buf *js, const char *key)
{
	long v = -1;
	const char *p = js->data;
	size_t kl = strlen(key);
	while (p && (p = strstr(p, key)) != NULL) {
		p += kl;
		while (*p == '"' || *p == ':' || *p == ' ')
			p++;
		char *end;
		long n = strtol(p, &end, 10);
		if (end != p)
			v = n;
		p = end;
	}
	return v;
}

/* Appends what the (non-blocking) status pipe holds to js: 0 at EOF, 1
 * when the writer is still there, -1 on error. */
static int drain_status(int fd, struct mfs_buf *js)
{
	char piece[512];
	for (;;) {
		ssize_t r = read(fd, piece, sizeof(piece));
		if (r > 0) {
			mfs_buf_add(js, piece, (size_t)r);
			continue;
		}
		if (r == 0)
			return 0;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN ? 1 : -1;
	}
}

enum stop_reason { RUNNING, STOP_TIMEOUT, STOP_CANCEL };

/* One command from spawn to exit status.  Every fd is -1 when closed. */
struct run {
	struct local_sandbox *ls;
	const struct mfs_io *io;
	pid_t pid;
	int out, err, js, rep;        /* read ends: stdout, stderr, JSON status, spawn report */
	struct mfs_buf status_json;
	char tail[STDERR_TAIL];       /* last bytes of stderr */
	size_t tail_len;
	char *chunk;
	long long deadline, grace_end, drain_end;  /* ms on mfs_now_ms(), -1 none */
	enum stop_reason stop;
	bool cancelled;
};

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* The earlier of the request's timeout and the sandbox's lifetime cap. */
static long long run_deadline(const struct local_sandbox *ls, const struct mfs_exec_req *req,
			      long long start)
{
	long long deadline = -1;
	if (req->timeout_s > 0)
		deadline = start + req->timeout_s * 1000LL;
	if (ls->timeout_s > 0) {
		long long cap = ((long long)ls->created + ls->timeout_s - (long long)time(NULL)) * 1000LL + start;
		if (deadline < 0 || cap < deadline)
			deadline = cap;
	}
	return deadline;
}

/* Pipes, argv and environment, then bwrap started: r->pid set, r's read
 * ends open, every write end closed. */
static enum mfs_code run_start(struct run *r, const struct mfs_exec_req *req, struct mfs_err *err)
{
	struct local_sandbox *ls = r->ls;
	struct mfs_strv argv = MFS_STRV_INIT, envp = MFS_STRV_INIT, cg_procs = MFS_STRV_INIT;
	struct mfs_buf cwd = MFS_BUF_INIT;
	int p_out[2] = { -1, -1 }, p_err[2] = { -1, -1 }, p_js[2] = { -1, -1 };
	int p_rep[2] = { -1, -1 }, devnull = -1, scope = local_scope_open(ls->bwrap);
	enum mfs_code rc = MFS_OK;

	if (!req->cwd)
		mfs_buf_adds(&cwd, ls->base.workdir);
	else if (req->cwd[0] == '/')
		mfs_buf_adds(&cwd, req->cwd);
	else
		mfs_buf_addf(&cwd, "%s/%s", ls->base.workdir, req->cwd);
	local_build_env(ls, req->env, &envp);
	local_build_argv(ls, ls->bwrap, cwd.data, req->argv, &envp, &argv);
	for (size_t i = 0; i < ls->cgroups.n; i++)
		mfs_strv_pushf(&cg_procs, "%s/cgroup.procs", ls->cgroups.v[i]);

	if (pipe2(p_out, O_CLOEXEC) || pipe2(p_err, O_CLOEXEC) || pipe2(p_js, O_CLOEXEC) ||
	    pipe2(p_rep, O_CLOEXEC) || (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		rc = mfs_fail(err, MFS_ERR_IO, "cannot create pipes: %s", strerror(errno));
		goto out;
	}
	(void)fcntl(p_out[1], F_SETPIPE_SZ, 1024 * 1024);  /* fewer wake-ups for bulk output */
	struct spawn_fds fds = { devnull, p_out[1], p_err[1], p_js[1], p_rep[1], scope };
	r->pid = local_spawn_bwrap(ls->bwrap, argv.v, envp.v, cg_procs.v, ls->mem_rlimit_mb, &fds);
	if (r->pid < 0)
		rc = mfs_fail(err, MFS_ERR_IO, "cannot fork: %s", strerror(errno));
out:
	r->out = p_out[0];
	r->err = p_err[0];
	r->js = p_js[0];
	r->rep = p_rep[0];
	int ends[] = { p_out[1], p_err[1], p_js[1], p_rep[1], devnull, scope };
	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++)
		close_fd(&ends[i]);
	mfs_strv_release(&argv);
	mfs_strv_release(&envp);
	mfs_strv_release(&cg_procs);
	mfs_buf_release(&cwd);
	return rc;
}

/* Keeps the last STDERR_TAIL bytes of stderr, to explain a bwrap failure. */
static void keep_tail(struct run *r, const char *data, size_t n)
{
	size_t keep = n < STDERR_TAIL ? n : STDERR_TAIL;
	if (r->tail_len + keep > STDERR_TAIL) {
		size_t drop = r->tail_len + keep - STDERR_TAIL;
		memmove(r->tail, r->tail + drop, r->tail_len - drop);
		r->tail_len -= drop;
	}
	memcpy(r->tail + r->tail_len, data + n - keep, keep);
	r->tail_len += keep;
}

/* poll() timeout in ms for the next deadline, grace end or drain end. */
static int run_poll_timeout(const struct run *r, long long now)
{
	long long wake = -1;
	long long marks[3] = { r->stop == RUNNING ? r->deadline : -1,
			       r->stop == RUNNING && r->cancelled ? r->grace_end : -1, r->drain_end };
	for (int i = 0; i < 3; i++)
		if (marks[i] >= 0 && (wake < 0 || marks[i] < wake))
			wake = marks[i];
	return wake < 0 ? -1 : wake <= now ? 0 : (int)(wake - now);
}

/* Cancellation forwards the signal and starts the grace period; a passed
 * deadline or grace end kills the tree and starts the drain period. */
static void run_check_stop(struct run *r, long long now)
{
	if (!r->cancelled && mfs_cancelled()) {
		(void)drain_status(r->js, &r->status_json);
		r->cancelled = true;
		r->grace_end = now + GRACE_MS;
		/* No command yet (bwrap still setting up): nothing to be
		 * graceful with. */
		if (r->stop == RUNNING &&
		    !local_forward_signal((pid_t)json_last_int(&r->status_json, "child-pid"),
					  mfs_cancel_signal()))
			r->grace_end = now;
	}
	if (r->stop == RUNNING && r->deadline >= 0 && now >= r->deadline)
		r->stop = STOP_TIMEOUT;
	else if (r->stop == RUNNING && r->cancelled && now >= r->grace_end)
		r->stop = STOP_CANCEL;
	else
		return;
	local_kill_tree(r->ls, r->pid);
	r->drain_end = now + DRAIN_MS;
}

/* Reads one ready stream and hands the bytes on; closes it at EOF. */
static void run_read(struct run *r, int *fd, enum mfs_stream stream)
{
	ssize_t n = read(*fd, r->chunk, READ_CHUNK);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		close_fd(fd);
		return;
	}
	if (stream == MFS_STDERR)
		keep_tail(r, r->chunk, (size_t)n);
	r->io->write(r->io->ctx, stream, r->chunk, (size_t)n);
}

/* bwrap writes its JSON status in many small pieces while it sets up.
 * Nothing needs them before it exits (or before a cancellation needs the
 * command's pid), so that pipe is not polled at all: its buffer holds
 * them, and it is read once bwrap has been reaped (or, without blocking,
 * on a cancellation).  The loop wakes for output, for the end of output
 * (the last process of the sandbox gone) and for signals only: not also
 * for bwrap's exit, which comes just before. */
static enum mfs_code run_loop(struct run *r, struct mfs_err *err)
{
	(void)fcntl(r->js, F_SETFL, O_NONBLOCK);
	while (r->out >= 0 || r->err >= 0) {
		struct pollfd pfd[3];
		int *fd_of[3], np = 0;
		int *streams[2] = { &r->out, &r->err };
		for (int i = 0; i < 2; i++)
			if (*streams[i] >= 0) {
				pfd[np] = (struct pollfd){ *streams[i], POLLIN, 0 };
				fd_of[np++] = streams[i];
			}
		if (!r->cancelled && mfs_cancel_fd() >= 0) {
			pfd[np] = (struct pollfd){ mfs_cancel_fd(), POLLIN, 0 };
			fd_of[np++] = NULL;
		}
		int n = poll(pfd, (nfds_t)np, run_poll_timeout(r, mfs_now_ms()));
		if (n < 0 && errno != EINTR) {
			local_kill_tree(r->ls, r->pid);
			return mfs_fail(err, MFS_ERR_IO, "poll: %s", strerror(errno));
		}
		long long now = mfs_now_ms();
		run_check_stop(r, now);
		if (r->drain_end >= 0 && now >= r->drain_end)
			break;  /* something survived SIGKILL holding a pipe: stop reading */
		for (int i = 0; n > 0 && i < np; i++)
			if (fd_of[i] && pfd[i].revents)
				run_read(r, fd_of[i], fd_of[i] == &r->out ? MFS_STDOUT : MFS_STDERR);
	}
	return MFS_OK;
}

/* Waits for bwrap, collects its status, and says whether the child failed
 * before its execve (cgroup join or exec of bwrap). */
static enum mfs_code run_reap(struct run *r, enum mfs_code rc, int *ws, struct mfs_err *err)
{
	struct local_sandbox *ls = r->ls;
	if (rc || r->stop != RUNNING)
		local_kill_tree(ls, r->pid);
	while (waitpid(r->pid, ws, 0) < 0 && errno == EINTR)
		;
	r->pid = -1;
	ls->pid = 0;
	ls->pid_start = 0;
	local_pid_clear(ls);
	(void)drain_status(r->js, &r->status_json);  /* complete: its writer has been reaped */
	/* The child is gone, so the report pipe is at EOF (execve closed it:
	 * success) or holds the reason it never got there. */
	struct spawn_failure fail;
	ssize_t got;
	while ((got = read(r->rep, &fail, sizeof(fail))) < 0 && errno == EINTR)
		;
	if (got == (ssize_t)sizeof(fail) && !rc)
		rc = fail.step == 0
			? mfs_fail(err, MFS_ERR_BACKEND, "cannot put the command into cgroup %s: %s",
				   ls->cgroups.n ? ls->cgroups.v[0] : "?", strerror(fail.errnum))
			: fail.step == 2
			? mfs_fail(err, MFS_ERR_BACKEND, "cannot enter the Landlock domain that keeps "
				   "the host's abstract sockets out: %s", strerror(fail.errnum))
			: mfs_fail(err, MFS_ERR_BACKEND, "cannot run %s: %s (set MFSANDBOX_BWRAP)",
				   ls->bwrap, strerror(fail.errnum));
	/* Whatever a command started and left in its cgroups does not outlive it. */
	for (size_t i = 0; i < ls->cgroups.n; i++)
		local_cg_kill_all(ls->cgroups.v[i]);
	return rc;
}

/* bwrap itself failed: no exit-code record.  Not finding the program is
 * the command's problem (126/127 like a shell); anything else is ours. */
static enum mfs_code setup_failure(const struct run *r, const char *prog, int *status,
				   struct mfs_err *err)
{
	enum mfs_code rc = MFS_OK;
	struct mfs_buf t = MFS_BUF_INIT;
	mfs_buf_add(&t, r->tail, r->tail_len);
	local_chomp(&t);
	const char *last = strrchr(t.data ? t.data : "", '\n');
	last = last ? last + 1 : (t.data ? t.data : "");
	if (strstr(last, "bwrap: execvp ")) {
		/* A PATH search reports EACCES for an unreadable PATH dir too;
		 * only a named file is surely "not executable". */
		*status = strchr(prog, '/') && strstr(last, "Permission denied") ? 126 : 127;
	} else {
		*status = -1;
		rc = mfs_fail(err, MFS_ERR_BACKEND, "bubblewrap failed before the command ran: %s",
			      *last ? last : "no message");
	}
	mfs_buf_release(&t);
	return rc;
}

/* The command's shell-style status, and the error for a timeout or a
 * cancellation (the status is still set for those). */
static enum mfs_code run_status(const struct run *r, const char *prog, int ws, int *status,
				struct mfs_err *err)
{
	long code = json_last_int(&r->status_json, "exit-code");
	if (code >= 0)
		*status = (int)code;
	else if (WIFSIGNALED(ws))
		*status = 128 + WTERMSIG(ws);
	else
		*status = WEXITSTATUS(ws);

	if (r->stop == STOP_TIMEOUT)
		return mfs_fail(err, MFS_ERR_TIMEOUT, "the command ran longer than its timeout and was killed");
	if (r->cancelled)
		return mfs_fail(err, MFS_ERR_CANCELLED, "cancelled by signal %d; the command was %s",
				mfs_cancel_signal(),
				r->stop == STOP_CANCEL ? "killed after the grace period" : "stopped");
	if (code < 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 1)
		return setup_failure(r, prog, status, err);
	return MFS_OK;
}

enum mfs_code local_exec(struct mfs_sandbox *sb, const struct mfs_exec_req *req,
			 const struct mfs_io *io, int *status, struct mfs_err *err)
{
	struct local_sandbox *ls = (struct local_sandbox *)sb;
	enum mfs_code rc = MFS_OK;
	int ws = 0;

	*status = -1;
	if (!req->argv || !req->argv[0])
		return mfs_fail(err, MFS_ERR_USAGE, "no command to run");
	if (mfs_cancelled())
		return mfs_fail(err, MFS_ERR_CANCELLED, "cancelled by signal %d before the command started",
				mfs_cancel_signal());
	if (!ls->bwrap && (rc = local_find_bwrap(&ls->bwrap, err)) != MFS_OK)
		return rc;

	struct run r = { .ls = ls, .io = io, .pid = -1, .out = -1, .err = -1, .js = -1, .rep = -1,
			 .status_json = MFS_BUF_INIT, .grace_end = -1, .drain_end = -1, .stop = RUNNING };
	rc = run_start(&r, req, err);
	if (rc)
		goto out;
	/* vfork() has returned: bwrap runs, or the child failed before its
	 * execve (its pipe ends are closed, so the loop ends at once and the
	 * report pipe tells why afterwards). */
	ls->pid = r.pid;
	ls->pid_start = local_proc_start_time(r.pid);
	local_pid_publish(ls);
	r.deadline = run_deadline(ls, req, mfs_now_ms());
	r.chunk = mfs_xmalloc(READ_CHUNK);
	rc = run_loop(&r, err);
	rc = run_reap(&r, rc, &ws, err);
	if (!rc)
		rc = run_status(&r, req->argv[0], ws, status, err);
out:
	if (r.pid > 0) {
		local_kill_tree(ls, r.pid);
		while (waitpid(r.pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	int fds[] = { r.out, r.err, r.js, r.rep };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		close_fd(&fds[i]);
	free(r.chunk);
	mfs_buf_release(&r.status_json);
	return rc;
}
