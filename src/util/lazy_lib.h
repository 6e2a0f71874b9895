/* lazy_lib.h - dlopen() helper shared by src/lazy_*.c (see lazy_curl.c). */
#ifndef MFS_LAZY_LIB_H
#define MFS_LAZY_LIB_H

struct mfs_lazy_sym {
	const char *name;
	void **slot;
};

/* Loads soname and fills every slot.  A missing library or symbol is a
 * broken installation, not a runtime condition callers could handle: one
 * line naming the Debian package, then exit 203 (infrastructure). */
void mfs_lazy_load(const char *soname, const char *package, const struct mfs_lazy_sym *syms);

#endif
