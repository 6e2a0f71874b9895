/* registry.c - the static name -> ops table (include/mfs/core/registry.h),
 * made from the one list in include/mfs/core/backends.h: adding a backend
 * is one line there and its folder under backends/, nothing here. */
#include "mfs/core/registry.h"

#include <string.h>

#include "mfs/core/backends.h"

#define DECLARE(name) extern const struct mfs_backend_ops mfs_##name##_ops;
MFS_BACKEND_LIST(DECLARE)

static const struct {
	const char *name;
	const struct mfs_backend_ops *ops;
} backends[] = {
#define ROW(name) { #name, &mfs_##name##_ops },
	MFS_BACKEND_LIST(ROW)
};

#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

const struct mfs_backend_ops *mfs_backend_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < N_BACKENDS; i++)
		if (strcmp(backends[i].name, name) == 0)
			return backends[i].ops;
	return NULL;
}

size_t mfs_backend_count(void)
{
	return N_BACKENDS;
}

const struct mfs_backend_ops *mfs_backend_at(size_t i)
{
	return i < N_BACKENDS ? backends[i].ops : NULL;
}

void mfs_backend_names(struct mfs_buf *out)
{
	for (size_t i = 0; i < N_BACKENDS; i++)
		mfs_buf_addf(out, "%s%s", i ? ", " : "", backends[i].name);
}
