/*
 * backends.h - the ops table of every compiled-in backend.
 * Included only by src/core/registry.c (the structural test checks it).
 */
#ifndef MFS_BACKENDS_H
#define MFS_BACKENDS_H

#include "mfs/backend.h"

extern const struct mfs_backend_ops mfs_local_ops;   /* backends/local/local.c */
extern const struct mfs_backend_ops mfs_daytona_ops; /* backends/daytona/daytona.c */
extern const struct mfs_backend_ops mfs_e2b_ops;     /* backends/e2b/e2b.c */

#endif
