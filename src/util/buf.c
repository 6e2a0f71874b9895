/* buf.c - growable strings, argv vectors and key/value lists (include/mfs/util/buf.h). */
#include "mfs/util/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void oom(void)
{
	static const char msg[] = "mfsandbox: out of memory\n";
	ssize_t r = write(2, msg, sizeof(msg) - 1);
	(void)r;
	abort();
}

void mfs_wipe_free(char *s)
{
	if (s) {
		/* volatile: the stores must not be dropped as dead before free() */
		for (volatile char *p = s; *p; p++)
			*p = 0;
		free(s);
	}
}

void *mfs_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *mfs_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom();
	return p;
}

void *mfs_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom();
	return q;
}

char *mfs_xstrdup(const char *s)
{
	return mfs_xstrndup(s, strlen(s));
}

char *mfs_xstrndup(const char *s, size_t n)
{
	char *p = mfs_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void mfs_buf_init(struct mfs_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void mfs_buf_release(struct mfs_buf *b)
{
	free(b->data);
	mfs_buf_init(b);
}

void mfs_buf_reset(struct mfs_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void mfs_buf_grow(struct mfs_buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	if (need < b->len)
		oom();
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap * 2 > cap ? cap * 2 : need;
	b->data = mfs_xrealloc(b->data, cap);
	b->cap = cap;
}

void mfs_buf_add(struct mfs_buf *b, const void *data, size_t len)
{
	mfs_buf_grow(b, len);
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void mfs_buf_adds(struct mfs_buf *b, const char *s)
{
	mfs_buf_add(b, s, strlen(s));
}

void mfs_buf_addch(struct mfs_buf *b, char c)
{
	mfs_buf_add(b, &c, 1);
}

void mfs_buf_add_base64(struct mfs_buf *b, const void *data, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = data;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
			     (i + 2 < n ? p[i + 2] : 0);
		mfs_buf_addch(b, tab[v >> 18 & 63]);
		mfs_buf_addch(b, tab[v >> 12 & 63]);
		mfs_buf_addch(b, i + 1 < n ? tab[v >> 6 & 63] : '=');
		mfs_buf_addch(b, i + 2 < n ? tab[v & 63] : '=');
	}
}

void mfs_buf_vaddf(struct mfs_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return;
	mfs_buf_grow(b, (size_t)n);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void mfs_buf_addf(struct mfs_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	mfs_buf_vaddf(b, fmt, ap);
	va_end(ap);
}

/* Words made only of these need no quotes; anything else is single-quoted. */
static int shell_safe(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || strchr("_-+./:=@%,", c)))
			return 0;
	}
	return 1;
}

void mfs_buf_add_shell_quoted(struct mfs_buf *b, const char *s)
{
	if (shell_safe(s)) {
		mfs_buf_adds(b, s);
		return;
	}
	mfs_buf_addch(b, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			mfs_buf_adds(b, "'\\''");
		else
			mfs_buf_addch(b, *s);
	}
	mfs_buf_addch(b, '\'');
}

void mfs_buf_add_argv_quoted(struct mfs_buf *b, const char *const *argv)
{
	for (size_t i = 0; argv[i]; i++) {
		if (i)
			mfs_buf_addch(b, ' ');
		mfs_buf_add_shell_quoted(b, argv[i]);
	}
}

char *mfs_buf_detach(struct mfs_buf *b, size_t *len)
{
	char *p;
	if (!b->data)
		mfs_buf_grow(b, 0), b->data[0] = '\0';
	p = b->data;
	if (len)
		*len = b->len;
	mfs_buf_init(b);
	return p;
}

void mfs_strv_init(struct mfs_strv *sv)
{
	sv->v = NULL;
	sv->n = 0;
	sv->cap = 0;
}

void mfs_strv_release(struct mfs_strv *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	mfs_strv_init(sv);
}

static void strv_push_owned(struct mfs_strv *sv, char *s)
{
	if (sv->n + 2 > sv->cap) {
		sv->cap = sv->cap ? sv->cap * 2 : 8;
		sv->v = mfs_xrealloc(sv->v, sv->cap * sizeof(*sv->v));
	}
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
}

void mfs_strv_push(struct mfs_strv *sv, const char *s)
{
	strv_push_owned(sv, mfs_xstrdup(s));
}

void mfs_strv_pushf(struct mfs_strv *sv, const char *fmt, ...)
{
	struct mfs_buf b = MFS_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	mfs_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	strv_push_owned(sv, mfs_buf_detach(&b, NULL));
}

void mfs_strv_pushv(struct mfs_strv *sv, const char *const *argv)
{
	for (; *argv; argv++)
		mfs_strv_push(sv, *argv);
}

void mfs_kvlist_init(struct mfs_kvlist *kv)
{
	kv->items = NULL;
	kv->n = 0;
	kv->cap = 0;
	kv->index = NULL;
	kv->index_cap = 0;
}

void mfs_kvlist_release(struct mfs_kvlist *kv)
{
	for (size_t i = 0; i < kv->n; i++) {
		free(kv->items[i].key);
		free(kv->items[i].value);
	}
	free(kv->items);
	free(kv->index);
	mfs_kvlist_init(kv);
}

#define KV_INDEX_FROM 32 /* below this a scan is as fast as hashing */

static size_t kv_hash(const char *s)
{
	size_t h = 14695981039346656037ULL; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static void kv_index_put(struct mfs_kvlist *kv, size_t pos)
{
	size_t mask = kv->index_cap - 1;
	size_t slot = kv_hash(kv->items[pos].key) & mask;
	while (kv->index[slot])
		slot = (slot + 1) & mask;
	kv->index[slot] = pos + 1;
}

static void kv_index_rebuild(struct mfs_kvlist *kv)
{
	size_t want = 64;
	while (want < 4 * kv->n)
		want *= 2;
	free(kv->index);
	kv->index = mfs_xcalloc(want, sizeof(*kv->index));
	kv->index_cap = want;
	for (size_t i = 0; i < kv->n; i++)
		kv_index_put(kv, i);
}

/* Position of key in items, or kv->n when absent. */
static size_t kv_find(const struct mfs_kvlist *kv, const char *key)
{
	if (!kv->index) {
		size_t i = 0;
		while (i < kv->n && strcmp(kv->items[i].key, key) != 0)
			i++;
		return i;
	}
	size_t mask = kv->index_cap - 1;
	for (size_t slot = kv_hash(key) & mask; kv->index[slot]; slot = (slot + 1) & mask)
		if (strcmp(kv->items[kv->index[slot] - 1].key, key) == 0)
			return kv->index[slot] - 1;
	return kv->n;
}

void mfs_kvlist_set(struct mfs_kvlist *kv, const char *key, const char *value)
{
	size_t i = kv_find(kv, key);
	if (i < kv->n) {
		char *v = mfs_xstrdup(value);
		free(kv->items[i].value);
		kv->items[i].value = v;
		return;
	}
	if (kv->n == kv->cap) {
		kv->cap = kv->cap ? kv->cap * 2 : 8;
		kv->items = mfs_xrealloc(kv->items, kv->cap * sizeof(*kv->items));
	}
	kv->items[kv->n].key = mfs_xstrdup(key);
	kv->items[kv->n].value = mfs_xstrdup(value);
	kv->n++;
	if (kv->index && 2 * kv->n <= kv->index_cap)
		kv_index_put(kv, kv->n - 1);
	else if (kv->n >= KV_INDEX_FROM)
		kv_index_rebuild(kv);
}

const char *mfs_kvlist_get(const struct mfs_kvlist *kv, const char *key)
{
	size_t i = kv_find(kv, key);
	return i < kv->n ? kv->items[i].value : NULL;
}

bool mfs_kvlist_remove(struct mfs_kvlist *kv, const char *key)
{
	size_t i = kv_find(kv, key);
	if (i == kv->n)
		return false;
	free(kv->items[i].key);
	free(kv->items[i].value);
	memmove(&kv->items[i], &kv->items[i + 1], (kv->n - i - 1) * sizeof(*kv->items));
	kv->n--;
	/* Positions after i moved: rare enough to rebuild. */
	if (kv->index)
		kv_index_rebuild(kv);
	return true;
}
