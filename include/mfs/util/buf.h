/*
 * buf.h - growable byte strings, argv vectors and key/value lists.
 *
 * Building scripts, argv, URLs and JSON bodies through these instead of
 * snprintf into fixed buffers removes truncation bugs.  Ownership: a struct
 * owns its memory from *_init until *_release; release leaves it empty and
 * reusable.  Allocation failure aborts (mfs_xmalloc): a 100-byte malloc that
 * fails on Linux means the process is already lost, and checking every append
 * would bury the logic.
 */
#ifndef MFS_BUF_H
#define MFS_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

void *mfs_xmalloc(size_t n);
void *mfs_xcalloc(size_t n, size_t size);
void *mfs_xrealloc(void *p, size_t n);
char *mfs_xstrdup(const char *s);
char *mfs_xstrndup(const char *s, size_t n);
/* Zeroes a secret string, then frees it (NULL is fine): no key outlives its
 * owner in freed heap. */
void mfs_wipe_free(char *s);

/* Always NUL-terminated; data may also hold binary bytes (use len). */
struct mfs_buf {
	char *data;
	size_t len;
	size_t cap;
};
#define MFS_BUF_INIT { NULL, 0, 0 }

void mfs_buf_init(struct mfs_buf *b);
void mfs_buf_release(struct mfs_buf *b);
void mfs_buf_reset(struct mfs_buf *b);          /* len = 0, keeps capacity */
void mfs_buf_grow(struct mfs_buf *b, size_t extra);
void mfs_buf_add(struct mfs_buf *b, const void *data, size_t len);
void mfs_buf_adds(struct mfs_buf *b, const char *s);
void mfs_buf_addch(struct mfs_buf *b, char c);
/* Standard base64 (RFC 4648, with padding) of n bytes. */
void mfs_buf_add_base64(struct mfs_buf *b, const void *data, size_t n);
void mfs_buf_addf(struct mfs_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mfs_buf_vaddf(struct mfs_buf *b, const char *fmt, va_list ap);
/* Appends s quoted for a POSIX shell ('...' with '\'' for quotes). */
void mfs_buf_add_shell_quoted(struct mfs_buf *b, const char *s);
/* Appends argv as one shell command line, every word quoted when needed. */
void mfs_buf_add_argv_quoted(struct mfs_buf *b, const char *const *argv);
/* Transfers ownership of the bytes to the caller; b becomes empty. */
char *mfs_buf_detach(struct mfs_buf *b, size_t *len);

/* NULL-terminated vector of owned strings. */
struct mfs_strv {
	char **v;
	size_t n;
	size_t cap;
};
#define MFS_STRV_INIT { NULL, 0, 0 }

void mfs_strv_init(struct mfs_strv *sv);
void mfs_strv_release(struct mfs_strv *sv);
void mfs_strv_push(struct mfs_strv *sv, const char *s);
void mfs_strv_pushf(struct mfs_strv *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mfs_strv_pushv(struct mfs_strv *sv, const char *const *argv);

/* Ordered key/value list of owned strings; set replaces an existing key. */
struct mfs_kv {
	char *key;
	char *value;
};
/* Lists past a few dozen keys get a hash index (positions + 1, 0 = empty),
 * so that n sets cost O(n), not O(n^2): an env file or a spec may hold
 * thousands of names.  items keeps the insertion order. */
struct mfs_kvlist {
	struct mfs_kv *items;
	size_t n;
	size_t cap;
	size_t *index;
	size_t index_cap;     /* 0 or a power of two >= 2 * n */
};
#define MFS_KVLIST_INIT { NULL, 0, 0, NULL, 0 }

void mfs_kvlist_init(struct mfs_kvlist *kv);
void mfs_kvlist_release(struct mfs_kvlist *kv);
void mfs_kvlist_set(struct mfs_kvlist *kv, const char *key, const char *value);
const char *mfs_kvlist_get(const struct mfs_kvlist *kv, const char *key);
bool mfs_kvlist_remove(struct mfs_kvlist *kv, const char *key);

#endif
