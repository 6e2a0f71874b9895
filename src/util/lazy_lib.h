/* lazy_lib.h - dlopen() helper shared by the lazy loaders (lazy_curl.c,
 * lazy_archive.c).  MFS_LAZY=0 (`make LAZY=0`) links the libraries
 * normally instead and these files compile to the mfs_need_* stubs. */
#ifndef MFS_LAZY_LIB_H
#define MFS_LAZY_LIB_H

#include <stddef.h>

#ifndef MFS_LAZY
#define MFS_LAZY 1
#endif

struct mfs_lazy_sym {
	const char *name;
	void **slot;
};

/* Loads soname and fills every slot: 0, or -1 with one line in why (the
 * library or symbol that is missing) and nothing loaded for good. */
int mfs_lazy_load(const char *soname, const struct mfs_lazy_sym *syms, char *why, size_t n);

#endif
