/*
 * launcher_id.h - who launched a sandbox, so `mfsandbox kill --stale` never
 * calls another machine's sandbox stale.
 *
 * A hostname says nothing: CI runners, containers and laptops share names,
 * and a pid means something only on the machine, boot and pid namespace it
 * came from.  Every sandbox carries
 *   machine  sha256 of "mfsandbox machine", /etc/machine-id (else
 *            /var/lib/dbus/machine-id) and this process's pid namespace
 *            (/proc/self/ns/pid), 32 hex: the raw machine-id never leaves
 *   boot     sha256 of /proc/sys/kernel/random/boot_id, 32 hex
 *   pid      the launcher's pid
 *   start    its start time (/proc/PID/stat field 22, ticks after boot), so
 *            a reused pid is told from the launcher
 * A launcher with no machine-id sets no identity labels: its sandboxes are
 * stale only by their timeout label.
 */
#ifndef MFS_LAUNCHER_ID_H
#define MFS_LAUNCHER_ID_H

#include <stdbool.h>

struct mfs_launcher_id {
	char machine[33];          /* "" when unknown */
	char boot[33];
	long pid;
	unsigned long long start;
};

/* This process.  False (machine "") when the machine cannot be identified. */
bool mfs_launcher_self(struct mfs_launcher_id *id);

/* Start time of pid in clock ticks after boot; false when there is no such
 * process (*gone true) or it cannot be read (*gone false). */
bool mfs_pid_start(long pid, unsigned long long *start, bool *gone);

enum mfs_launcher_state {
	MFS_LAUNCHER_UNKNOWN = 0, /* another machine, namespace, or labels we cannot read */
	MFS_LAUNCHER_ALIVE,
	MFS_LAUNCHER_GONE,        /* this machine: other boot, dead pid, or pid reused */
};

/* The launcher named by a sandbox's labels (strings from the provider, any of
 * them NULL when absent), as seen from self. */
enum mfs_launcher_state mfs_launcher_state(const struct mfs_launcher_id *self,
					   const char *machine, const char *boot,
					   const char *pid, const char *start);

#endif
