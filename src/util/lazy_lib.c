/* lazy_lib.c - the dlopen()/dlsym() half of src/lazy_*.c. */
#include "lazy_lib.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

void mfs_lazy_load(const char *soname, const char *package, const struct mfs_lazy_sym *syms)
{
	/* RTLD_LAZY: libcurl drags in ~30 libraries, and binding every function
	 * of those that allow lazy binding costs more instructions than the whole
	 * rest of a Daytona run (callgrind: 21.0M -> 18.0M per run).  The
	 * symbols we use are still checked below. */
	void *h = dlopen(soname, RTLD_LAZY | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "mfsandbox: cannot load %s (install the Debian package %s): %s\n", soname,
			package, dlerror());
		exit(203);
	}
	for (; syms->name; syms++) {
		*syms->slot = dlsym(h, syms->name);
		if (!*syms->slot) {
			fprintf(stderr, "mfsandbox: %s lacks %s (too old? install a current %s)\n", soname,
				syms->name, package);
			exit(203);
		}
	}
	/* never dlclose: the library stays for the life of the process */
}
