/*
 * lazy.h - libarchive usable?  A lazy build (the default) opens libarchive
 * on first use (src/util/lazy_archive.c, figures in docs/architecture.md);
 * `make LAZY=0` links it normally and this is always MFS_OK.
 */
#ifndef MFS_LAZY_H
#define MFS_LAZY_H

#include "mfs/util/err.h"

/* MFS_ERR_IO naming the library when it cannot be loaded.  Every path
 * into archive_* calls it first: a shim called without a load aborts (a
 * bug, not a runtime condition). */
enum mfs_code mfs_need_archive(struct mfs_err *err);

#endif
