/*
 * contain.h - which members of a task's metadata archive the relay may apply.
 *
 * The archive comes out of the sandbox, so the step's code chose every byte
 * of it.  A member is applied only when it is one of the files Metaflow's
 * local metadata provider writes for this task (plugins/metadata_providers/
 * local.py), all below the launcher's .metaflow:
 *
 *   <F>/<R>/<S>/<T>/_meta/<name>.json   the task's own rows (_self.json,
 *                                       sysmeta_*, <attempt>_artifact_*)
 *   <F>/_meta/_self.json, <F>/<R>/_meta/_self.json, <F>/<R>/<S>/_meta/_self.json
 *                                       flow/run/step records that a task with
 *                                       a non-numeric id creates; applied only
 *                                       when the launcher has none (ONCE)
 *
 * Skipped (never written, not an attack): directories on those paths, the
 * .metaflow directory and the directories above it, and <F>/conda.manifest,
 * which @pypi/@conda bootstrap writes in every sandbox and which must not
 * choose the launcher's environment.  Everything else refuses the whole
 * archive: other tasks, steps, runs or flows, other files, absolute names,
 * "." or ".." components, symlinks, hard links, devices, fifos.
 */
#ifndef MFS_RELAY_CONTAIN_H
#define MFS_RELAY_CONTAIN_H

#include <stdbool.h>
#include <sys/types.h>

struct mfs_task_ids {
	const char *flow;
	const char *run_id;
	const char *step;
	const char *task_id;
};

enum mfs_member_verdict {
	MFS_MEMBER_REFUSE = 0,
	MFS_MEMBER_SKIP,
	MFS_MEMBER_TASK,  /* the task's own file: written when newer */
	MFS_MEMBER_ONCE,  /* a flow/run/step record: written only when absent */
};

/* Verdict on one member.  type is the member's S_IF* file type; link is true
 * for a hard link or a symlink.  On TASK/ONCE, *rel points into name at the
 * path below .metaflow/.  On REFUSE, *why says what is wrong, in words fit
 * for the user (static text). */
enum mfs_member_verdict mfs_relay_member(const struct mfs_task_ids *ids, const char *name,
					 mode_t type, bool link, const char **rel,
					 const char **why);

#endif
