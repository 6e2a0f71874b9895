/*
 * step_files.h - the launcher's files that a Metaflow step command names.
 *
 * Metaflow's runtime passes some inputs of a task as paths on the launcher:
 * `--local-config-file` (the run's resolved Config values, a temp file),
 * `--config NAME FILE` and the step's `--input-paths-filename`.  A sandbox
 * has its own file system, so before the command starts each such file
 * becomes an upload and its option is rewritten to the copy's path inside
 * the sandbox.  The table of options and why each is (or is not) rewritten
 * is in docs/architecture.md "Metaflow integration".
 */
#ifndef MFS_STEP_FILES_H
#define MFS_STEP_FILES_H

#include "mfs/util/buf.h"
#include "mfs/util/err.h"
#include "mfs/core/step.h"

/* Folder of the copies, relative to where the step command runs. */
#define MFS_STEP_FILES_DIR ".mfs-files"
/* Largest file shipped this way: configs and input paths are small; a
 * bigger one is more likely a mistake than an input. */
#define MFS_STEP_FILE_MAX (64L * 1024 * 1024)

/* For the step command argv (parsed into *st): checks that every file it
 * names is a readable regular file of at most MFS_STEP_FILE_MAX bytes,
 * adds an upload for each to `uploads` (key: path in the sandbox relative
 * to its work dir, `step_dir/.mfs-files/<n>-<name>`; value: the local
 * path), and rewrites the option's value in argv to the copy's path as the
 * command sees it from step_dir (`.mfs-files/<n>-<name>`).  step_dir is
 * the directory the command runs in, relative to the work dir; NULL or ""
 * for the work dir itself.  Nothing is read beyond stat() and open().
 * A missing, unreadable, non-regular or too large file: MFS_ERR_USAGE
 * naming the option and the path; argv and uploads are then unchanged. */
enum mfs_code mfs_step_ship_files(struct mfs_strv *argv, const struct mfs_step *st,
				  const char *step_dir, struct mfs_kvlist *uploads,
				  struct mfs_err *err);

#endif
