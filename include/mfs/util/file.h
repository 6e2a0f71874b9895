/*
 * file.h - opening a file named on the command line or in the environment.
 *
 * A FIFO or a device given where a file is expected would block open() or
 * read() forever (`--env-file <(...)` with no writer, /dev/zero): those are
 * refused at once, before anything waits on them.
 */
#ifndef MFS_FILE_H
#define MFS_FILE_H

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "mfs/util/buf.h"
#include "mfs/util/err.h"

/* Opens path read-only without blocking and sets *out only when it is a
 * regular file; else returns `code` with "<what> <path>: <why>" in err. */
enum mfs_code mfs_fopen_regular(const char *path, const char *what, enum mfs_code code,
				FILE **out, struct mfs_err *err);

/* Reads a whole (small) file into out, NUL-terminated (data non-NULL even
 * when empty); false with errno set when it cannot be opened or read. */
bool mfs_read_file(const char *path, struct mfs_buf *out);

/* Reads path whole into out (NUL-terminated) when it is a regular file of
 * at most max bytes, opened without blocking and without following a
 * symlink in its last component: for files another party may have put
 * there (a FIFO would block open(), /dev/zero fill memory).  MFS_ERR_NOTFOUND
 * when it does not exist; MFS_ERR_IO naming the path otherwise. */
enum mfs_code mfs_read_regular(const char *path, size_t max, struct mfs_buf *out,
			       struct mfs_err *err);

/* mkdir -p with mode 0700 that refuses to walk through a symlink or a
 * non-directory, so nothing written below path can land outside the tree
 * the caller meant. */
enum mfs_code mfs_make_dirs(const char *path, struct mfs_err *err);

/* Writes len bytes to path atomically (path.tmp-<pid>, then rename), mode
 * 0600, never through a symlink; mtime 0 keeps the current time. */
enum mfs_code mfs_write_file_atomic(const char *path, const void *data, size_t len,
				    time_t mtime, struct mfs_err *err);

/* Writes all n bytes, riding out EINTR and a non-blocking fd inherited
 * from the parent (EAGAIN: wait for POLLOUT).  Other errors (a closed
 * pipe) drop the rest: output we can no longer deliver is not a failure
 * of the run. */
void mfs_write_all(int fd, const void *data, size_t n);

#endif
