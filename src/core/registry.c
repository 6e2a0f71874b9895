/* registry.c - the static name -> ops table (include/mfs/core/registry.h).
 * Adding a backend is adding one row here and one file under backends/. */
#include "mfs/core/registry.h"

#include <string.h>

#include "mfs/core/backends.h"

static const struct {
	const char *name;
	const struct mfs_backend_ops *ops;
} backends[] = {
	{ "local", &mfs_local_ops },
	{ "daytona", &mfs_daytona_ops },
	{ "e2b", &mfs_e2b_ops },
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
