/* launcher_id.c - the launcher identity of kill --stale (include/mfs/util/launcher_id.h). */
#include "mfs/util/launcher_id.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mfs/util/buf.h"
#include "mfs/util/sha256.h"

/* Linux's PID_MAX_LIMIT: no pid label above it names a process. */
#define PID_LIMIT 4194304L

/* First line of a small file, trailing whitespace dropped; false if absent or empty. */
static bool read_line(const char *path, char *out, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, out, cap - 1);
	close(fd);
	if (n <= 0)
		return false;
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0';
	for (size_t len = strlen(out); len && (out[len - 1] == ' ' || out[len - 1] == '\t');)
		out[--len] = '\0';
	return out[0] != '\0';
}

static void hash32(const char *text, char out[33])
{
	char hex[65];
	mfs_sha256_hex(text, strlen(text), hex);
	memcpy(out, hex, 32);
	out[32] = '\0';
}

bool mfs_pid_start(long pid, unsigned long long *start, bool *gone)
{
	char path[64], stat[1024];
	*gone = false;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*gone = errno == ENOENT;
		return false;
	}
	ssize_t n = read(fd, stat, sizeof(stat) - 1);
	close(fd);
	if (n <= 0)
		return false;
	stat[n] = '\0';
	/* The command name (field 2) may hold spaces and ')': count from the last ')'. */
	char *p = strrchr(stat, ')');
	if (!p)
		return false;
	for (int field = 2; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return false;
	}
	char *end;
	errno = 0;
	*start = strtoull(p + 1, &end, 10);
	return errno == 0 && end != p + 1 && (*end == ' ' || *end == '\0' || *end == '\n');
}

bool mfs_launcher_self(struct mfs_launcher_id *id)
{
	char mid[128], boot[128], ns[64] = "";
	bool gone;

	memset(id, 0, sizeof(*id));
	id->pid = (long)getpid();
	if (!mfs_pid_start(id->pid, &id->start, &gone))
		return false;
	if (!read_line("/etc/machine-id", mid, sizeof(mid)) &&
	    !read_line("/var/lib/dbus/machine-id", mid, sizeof(mid)))
		return false;
	if (!read_line("/proc/sys/kernel/random/boot_id", boot, sizeof(boot)))
		return false;
	ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);
	ns[n > 0 ? n : 0] = '\0';
	struct mfs_buf text = MFS_BUF_INIT;
	mfs_buf_addf(&text, "mfsandbox machine\n%s\n%s\n", mid, ns);
	hash32(text.data, id->machine);
	mfs_buf_release(&text);
	hash32(boot, id->boot);
	return true;
}

/* A decimal label in 1..max, else 0 (the provider's string is not trusted). */
static unsigned long long parse_label(const char *s, unsigned long long max)
{
	if (!s || *s < '0' || *s > '9' || strlen(s) > 20)
		return 0;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	return errno || *end || v > max ? 0 : v;
}

enum mfs_launcher_state mfs_launcher_state(const struct mfs_launcher_id *self,
					   const char *machine, const char *boot,
					   const char *pid, const char *start)
{
	if (!self->machine[0] || !machine || strcmp(machine, self->machine) != 0 || !boot)
		return MFS_LAUNCHER_UNKNOWN;
	/* Same machine, another boot: every process of that boot is gone. */
	if (strcmp(boot, self->boot) != 0)
		return MFS_LAUNCHER_GONE;
	long p = (long)parse_label(pid, PID_LIMIT);
	unsigned long long want = parse_label(start, ULLONG_MAX);
	if (!p || !want)
		return MFS_LAUNCHER_UNKNOWN;
	unsigned long long have;
	bool gone;
	if (!mfs_pid_start(p, &have, &gone))
		return gone ? MFS_LAUNCHER_GONE : MFS_LAUNCHER_UNKNOWN;
	return have == want ? MFS_LAUNCHER_ALIVE : MFS_LAUNCHER_GONE;
}
