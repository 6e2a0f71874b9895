/*
 * registry.h - the static table of backends (src/core/registry.c).
 * Adding a provider: one new backends/<name>.c and one row in that table.
 */
#ifndef MFS_REGISTRY_H
#define MFS_REGISTRY_H

#include <stddef.h>

#include "mfs/backend.h"

const struct mfs_backend_ops *mfs_backend_find(const char *name);
size_t mfs_backend_count(void);
const struct mfs_backend_ops *mfs_backend_at(size_t i);
/* "local, daytona, e2b" into out, for error messages. */
void mfs_backend_names(struct mfs_buf *out);

#endif
