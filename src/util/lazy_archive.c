/*
 * lazy_archive.c - libarchive, loaded on first use (see lazy_curl.c for why:
 * libarchive drags in xml2, crypto and six compressors, ~1.6 ms per start).
 * Only --code packing and the relay's unpacking use it, each after
 * mfs_need_archive().  Only the functions we call are listed: using another
 * fails at link time; add it below.
 */
#include "mfs/util/lazy.h"

#include "lazy_lib.h"

#if !MFS_LAZY
enum mfs_code mfs_need_archive(struct mfs_err *err)
{
	(void)err;
	return MFS_OK;
}
#else
#include <archive.h>
#include <archive_entry.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

/* The SONAME, found by the Makefile in the installed libarchive. */
#ifndef MFS_LIBARCHIVE_SONAME
#define MFS_LIBARCHIVE_SONAME "libarchive.so.13"
#endif

static struct {
	struct archive *(*write_new)(void);
	int (*write_set_format_pax_restricted)(struct archive *);
	int (*write_add_filter_gzip)(struct archive *);
	int (*write_open_filename)(struct archive *, const char *);
	int (*write_header)(struct archive *, struct archive_entry *);
	la_ssize_t (*write_data)(struct archive *, const void *, size_t);
	int (*write_close)(struct archive *);
	int (*write_free)(struct archive *);
	struct archive *(*read_new)(void);
	int (*read_support_filter_all)(struct archive *);
	int (*read_support_format_all)(struct archive *);
	int (*read_open_memory)(struct archive *, const void *, size_t);
	int (*read_next_header)(struct archive *, struct archive_entry **);
	la_ssize_t (*read_data)(struct archive *, void *, size_t);
	int (*read_free)(struct archive *);
	const char *(*error_string)(struct archive *);
	struct archive_entry *(*entry_new)(void);
	void (*entry_free)(struct archive_entry *);
	void (*entry_copy_stat)(struct archive_entry *, const struct stat *);
	void (*entry_set_pathname)(struct archive_entry *, const char *);
	void (*entry_set_symlink)(struct archive_entry *, const char *);
	void (*entry_set_uid)(struct archive_entry *, la_int64_t);
	void (*entry_set_gid)(struct archive_entry *, la_int64_t);
	const char *(*entry_pathname)(struct archive_entry *);
	const char *(*entry_hardlink)(struct archive_entry *);
	const char *(*entry_symlink)(struct archive_entry *);
	__LA_MODE_T (*entry_filetype)(struct archive_entry *);
	time_t (*entry_mtime)(struct archive_entry *);
} fn;

static bool loaded;
static char load_error[256];

static void load(void)
{
	static const struct mfs_lazy_sym syms[] = {
		{ "archive_write_new", (void **)&fn.write_new },
		{ "archive_write_set_format_pax_restricted", (void **)&fn.write_set_format_pax_restricted },
		{ "archive_write_add_filter_gzip", (void **)&fn.write_add_filter_gzip },
		{ "archive_write_open_filename", (void **)&fn.write_open_filename },
		{ "archive_write_header", (void **)&fn.write_header },
		{ "archive_write_data", (void **)&fn.write_data },
		{ "archive_write_close", (void **)&fn.write_close },
		{ "archive_write_free", (void **)&fn.write_free },
		{ "archive_read_new", (void **)&fn.read_new },
		{ "archive_read_support_filter_all", (void **)&fn.read_support_filter_all },
		{ "archive_read_support_format_all", (void **)&fn.read_support_format_all },
		{ "archive_read_open_memory", (void **)&fn.read_open_memory },
		{ "archive_read_next_header", (void **)&fn.read_next_header },
		{ "archive_read_data", (void **)&fn.read_data },
		{ "archive_read_free", (void **)&fn.read_free },
		{ "archive_error_string", (void **)&fn.error_string },
		{ "archive_entry_new", (void **)&fn.entry_new },
		{ "archive_entry_free", (void **)&fn.entry_free },
		{ "archive_entry_copy_stat", (void **)&fn.entry_copy_stat },
		{ "archive_entry_set_pathname", (void **)&fn.entry_set_pathname },
		{ "archive_entry_set_symlink", (void **)&fn.entry_set_symlink },
		{ "archive_entry_set_uid", (void **)&fn.entry_set_uid },
		{ "archive_entry_set_gid", (void **)&fn.entry_set_gid },
		{ "archive_entry_pathname", (void **)&fn.entry_pathname },
		{ "archive_entry_hardlink", (void **)&fn.entry_hardlink },
		{ "archive_entry_symlink", (void **)&fn.entry_symlink },
		{ "archive_entry_filetype", (void **)&fn.entry_filetype },
		{ "archive_entry_mtime", (void **)&fn.entry_mtime },
		{ NULL, NULL },
	};
	loaded = mfs_lazy_load(MFS_LIBARCHIVE_SONAME, syms, load_error, sizeof(load_error)) == 0;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

enum mfs_code mfs_need_archive(struct mfs_err *err)
{
	pthread_once(&once, load);
	return loaded ? MFS_OK : mfs_fail(err, MFS_ERR_IO, "%s", load_error);
}

#define LOAD() do { pthread_once(&once, load); if (!loaded) abort(); } while (0)

struct archive *archive_write_new(void) { LOAD(); return fn.write_new(); }
int archive_write_set_format_pax_restricted(struct archive *a) { LOAD(); return fn.write_set_format_pax_restricted(a); }
int archive_write_add_filter_gzip(struct archive *a) { LOAD(); return fn.write_add_filter_gzip(a); }
int archive_write_open_filename(struct archive *a, const char *p) { LOAD(); return fn.write_open_filename(a, p); }
int archive_write_header(struct archive *a, struct archive_entry *e) { LOAD(); return fn.write_header(a, e); }
la_ssize_t archive_write_data(struct archive *a, const void *d, size_t n) { LOAD(); return fn.write_data(a, d, n); }
int archive_write_close(struct archive *a) { LOAD(); return fn.write_close(a); }
int archive_write_free(struct archive *a) { LOAD(); return fn.write_free(a); }
struct archive *archive_read_new(void) { LOAD(); return fn.read_new(); }
int archive_read_support_filter_all(struct archive *a) { LOAD(); return fn.read_support_filter_all(a); }
int archive_read_support_format_all(struct archive *a) { LOAD(); return fn.read_support_format_all(a); }
int archive_read_open_memory(struct archive *a, const void *d, size_t n) { LOAD(); return fn.read_open_memory(a, d, n); }
int archive_read_next_header(struct archive *a, struct archive_entry **e) { LOAD(); return fn.read_next_header(a, e); }
la_ssize_t archive_read_data(struct archive *a, void *d, size_t n) { LOAD(); return fn.read_data(a, d, n); }
int archive_read_free(struct archive *a) { LOAD(); return fn.read_free(a); }
const char *archive_error_string(struct archive *a) { LOAD(); return fn.error_string(a); }
struct archive_entry *archive_entry_new(void) { LOAD(); return fn.entry_new(); }
void archive_entry_free(struct archive_entry *e) { LOAD(); fn.entry_free(e); }
void archive_entry_copy_stat(struct archive_entry *e, const struct stat *st) { LOAD(); fn.entry_copy_stat(e, st); }
void archive_entry_set_pathname(struct archive_entry *e, const char *p) { LOAD(); fn.entry_set_pathname(e, p); }
void archive_entry_set_symlink(struct archive_entry *e, const char *p) { LOAD(); fn.entry_set_symlink(e, p); }
void archive_entry_set_uid(struct archive_entry *e, la_int64_t v) { LOAD(); fn.entry_set_uid(e, v); }
void archive_entry_set_gid(struct archive_entry *e, la_int64_t v) { LOAD(); fn.entry_set_gid(e, v); }
const char *archive_entry_pathname(struct archive_entry *e) { LOAD(); return fn.entry_pathname(e); }
const char *archive_entry_hardlink(struct archive_entry *e) { LOAD(); return fn.entry_hardlink(e); }
const char *archive_entry_symlink(struct archive_entry *e) { LOAD(); return fn.entry_symlink(e); }
__LA_MODE_T archive_entry_filetype(struct archive_entry *e) { LOAD(); return fn.entry_filetype(e); }
time_t archive_entry_mtime(struct archive_entry *e) { LOAD(); return fn.entry_mtime(e); }
#endif /* MFS_LAZY */
