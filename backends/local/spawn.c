/*
 * spawn.c - starting bubblewrap from a vfork()ed child, and reaching the
 * processes it started: forwarding a signal to the command, killing the tree.
 */
#include "local.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

_Noreturn static void child_fail(int fd, int step)
{
	struct spawn_failure f = { step, errno };
	ssize_t r = write(fd, &f, sizeof(f));
	(void)r;
	_exit(127);
}

/* Runs in the vfork()ed child, on the parent's memory: async-signal-safe
 * calls only, no allocation, and it never returns (execve or _exit). */
_Noreturn static void child_exec(const char *bwrap, char *const *argv, char *const *envp,
		       char *const *cg_procs, long mem_rlimit_mb, const struct spawn_fds *fds)
{
	setpgid(0, 0);
	int report = fcntl(fds->report, F_DUPFD_CLOEXEC, 10);
	for (size_t i = 0; cg_procs && cg_procs[i]; i++) {
		int fd = open(cg_procs[i], O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1)
			child_fail(report, 0);
		close(fd);
	}
	if (mem_rlimit_mb > 0) {
		rlim_t bytes = (rlim_t)mem_rlimit_mb * 1024 * 1024;
		struct rlimit rl = { bytes, bytes };
		(void)setrlimit(RLIMIT_AS, &rl);
	}
	/* Move the fds out of 0..3 first so the dup2s below cannot clobber one. */
	int hi[4] = { fcntl(fds->in, F_DUPFD_CLOEXEC, 10), fcntl(fds->out, F_DUPFD_CLOEXEC, 10),
		      fcntl(fds->err, F_DUPFD_CLOEXEC, 10), fcntl(fds->json, F_DUPFD_CLOEXEC, 10) };
	for (int fd = 0; fd < 4; fd++)
		if (hi[fd] < 0 || dup2(hi[fd], fd) < 0)
			child_fail(report, 1);
	/* Nothing else of the launcher's (sockets, files) leaks into the sandbox. */
	if (syscall(SYS_close_range, 4U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */) != 0)
		for (int fd = 4; fd < 4096; fd++)
			(void)fcntl(fd, F_SETFD, FD_CLOEXEC);

	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		(void)sigaction(s, &dfl, NULL);  /* ignored signals survive exec otherwise */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	if (local_scope_enter(fds->scope) != 0)
		child_fail(report, 2);
	execve(bwrap, argv, envp);
	child_fail(report, 1);
}

/* vfork, not fork: copying our page tables (and the copy-on-write faults
 * after it) was the largest part of the spawn; we stay suspended only until
 * bwrap is exec'd.  Every signal stays blocked until the child has reset
 * all handlers: ours must not run in it.  A function of its own so that no
 * variable of the caller lives across the vfork. */
pid_t local_spawn_bwrap(const char *bwrap, char *const *argv, char *const *envp,
			char *const *cg_procs, long mem_rlimit_mb, const struct spawn_fds *fds)
{
	sigset_t block_all, old_mask;
	sigfillset(&block_all);
	sigprocmask(SIG_SETMASK, &block_all, &old_mask);
	pid_t pid = vfork();
	if (pid == 0)
		child_exec(bwrap, argv, envp, cg_procs, mem_rlimit_mb, fds);
	int saved = errno;
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	errno = saved;
	return pid;
}

/* Signals the command (the pid-ns init's child) and its process group. */
bool local_forward_signal(pid_t init, int sig)
{
	if (init <= 0)
		return false;
	struct mfs_strv kids = MFS_STRV_INIT;
	local_children_of(init, &kids);
	bool any = false;
	for (size_t i = 0; i < kids.n; i++) {
		pid_t c = (pid_t)atol(kids.v[i]);
		if (kill(-c, sig) == 0 || kill(c, sig) == 0)
			any = true;
	}
	mfs_strv_release(&kids);
	return any;
}

void local_kill_tree(const struct local_sandbox *ls, pid_t pid)
{
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	for (size_t i = 0; i < ls->cgroups.n; i++)
		local_cg_kill_all(ls->cgroups.v[i]);
}
