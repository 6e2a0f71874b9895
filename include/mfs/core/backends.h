/*
 * backends.h - the compiled-in backends, in the order `mfsandbox backends`
 * lists them.  Adding a backend is adding its folder under backends/ and one
 * X(<name>) line here; the folder defines `mfs_<name>_ops`.  Included only by
 * src/core/registry.c (the structural test checks it).
 */
#ifndef MFS_BACKENDS_H
#define MFS_BACKENDS_H

#include "mfs/backend.h"

#define MFS_BACKEND_LIST(X) \
	X(local)            \
	X(daytona)          \
	X(e2b)              \
	/* a new backend's line goes above: no other line changes */

#endif
