/* lazy_lib.c - the dlopen()/dlsym() half of the lazy loaders (lazy_lib.h). */
#include "lazy_lib.h"

#if MFS_LAZY
#include <dlfcn.h>
#include <stdio.h>

int mfs_lazy_load(const char *soname, const struct mfs_lazy_sym *syms, char *why, size_t n)
{
	/* RTLD_LAZY: libcurl drags in ~30 libraries, and binding every function
	 * of those that allow lazy binding costs more instructions than the whole
	 * rest of a Daytona run (callgrind: 21.0M -> 18.0M per run).  The
	 * symbols we use are still checked below. */
	void *h = dlopen(soname, RTLD_LAZY | RTLD_LOCAL);
	if (!h) {
		snprintf(why, n, "cannot load %s, which this build opens on first use: %s", soname,
			 dlerror());
		return -1;
	}
	for (const struct mfs_lazy_sym *s = syms; s->name; s++) {
		*s->slot = dlsym(h, s->name);
		if (!*s->slot) {
			snprintf(why, n, "%s lacks %s: install a current version", soname, s->name);
			dlclose(h);
			return -1;
		}
	}
	/* never dlclose a loaded library: it stays for the life of the process */
	return 0;
}
#endif
