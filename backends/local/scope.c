/*
 * scope.c - the host's abstract Unix sockets kept out of reach.
 *
 * Abstract sockets belong to the network namespace, not the filesystem, so
 * a sandbox on the host's network (the default, --network host) could
 * connect to every one the launcher's machine listens on (X11, D-Bus and
 * others use them).  A Landlock domain with the abstract-socket scope
 * (Landlock ABI 6, Linux 6.12) refuses a connect to a socket made outside
 * it; the vfork()ed child enters such a domain just before it execs bwrap,
 * so bwrap and the command are inside, and sockets the command makes for
 * itself still work.  The domain handles no filesystem access, so bwrap's
 * mounts are untouched.
 */
#include "local.h"

#include <errno.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The kernel ABI (include/uapi/linux/landlock.h); Debian 12's headers
 * predate the `scoped` member. */
struct scope_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};
#define SCOPE_ABI_MIN 6
#define SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define RULESET_VERSION (1U << 0)

static int landlock_abi(void)
{
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0, RULESET_VERSION);
	return v > 0 && v < 1000 ? (int)v : 0;
}

/* A setuid bwrap would lose its privilege to the no_new_privs the domain
 * needs, and fail where it needs it: such a bwrap goes unscoped. */
static bool bwrap_setuid(const char *bwrap)
{
	struct stat st;
	return stat(bwrap, &st) == 0 && (st.st_mode & S_ISUID);
}

int local_scope_open(const char *bwrap)
{
	if (landlock_abi() < SCOPE_ABI_MIN || bwrap_setuid(bwrap))
		return -1;
	struct scope_ruleset_attr attr = { .scoped = SCOPE_ABSTRACT_UNIX_SOCKET };
	long fd = syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	return fd >= 0 ? (int)fd : -1;
}

/* In the vfork()ed child: raw system calls only. */
int local_scope_enter(int ruleset)
{
	if (ruleset < 0)
		return 0;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -1;
	return syscall(SYS_landlock_restrict_self, ruleset, 0) == 0 ? 0 : -1;
}

void local_scope_describe(const char *bwrap, struct mfs_buf *notes)
{
	int abi = landlock_abi();
	if (abi >= SCOPE_ABI_MIN && !bwrap_setuid(bwrap))
		mfs_buf_addf(notes, "abstract Unix sockets of the host: out of reach "
			     "(Landlock ABI %d scope)\n", abi);
	else
		mfs_buf_addf(notes, "abstract Unix sockets of the host: reachable with --network "
			     "host (%s); use --network none\n",
			     abi >= SCOPE_ABI_MIN ? "bwrap is setuid"
						  : "needs Landlock ABI 6, Linux 6.12");
}
