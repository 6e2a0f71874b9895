/*
 * pack.h - packing a code directory into a tarball for --code DIR.
 *
 * The executor uploads one file and unpacks it inside the sandbox with
 * `tar -xf`, so every backend only needs upload + exec to ship code.
 */
#ifndef MFS_PACK_H
#define MFS_PACK_H

#include "mfs/util/err.h"

/* Directories nested deeper than this are refused (MFS_ERR_USAGE): the walk
 * keeps one fd open per level. */
#define MFS_PACK_MAX_DEPTH 256

/* Writes a gzip-compressed tar of dir's contents (paths relative to dir,
 * symlinks kept as links, owners dropped) to out_path. */
enum mfs_code mfs_pack_dir(const char *dir, const char *out_path, struct mfs_err *err);

#endif
