/*
 * pack.h - packing a code directory into a tarball for --code DIR.
 *
 * The executor uploads one file and unpacks it inside the sandbox with
 * `tar -xf`, so every backend only needs upload + exec to ship code.
 */
#ifndef MFS_PACK_H
#define MFS_PACK_H

#include "mfs/util/err.h"

/* Writes a gzip-compressed tar of dir's contents (paths relative to dir,
 * symlinks kept as links, owners dropped) to out_path. */
enum mfs_code mfs_pack_dir(const char *dir, const char *out_path, struct mfs_err *err);

#endif
