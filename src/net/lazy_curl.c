/*
 * lazy_curl.c - libcurl, loaded on first use instead of at program start.
 *
 * Linking -lcurl makes every mfsandbox start map libcurl and its ~40
 * dependencies (TLS, LDAP, Kerberos, SSH ...): about 4 ms and several MB of
 * RSS before main(), paid by every `run --backend local` that never speaks
 * HTTP.  So the binary is not linked against libcurl; these definitions of
 * the curl_* functions we use dlopen() it on the first call and forward.
 * Callers include <curl/curl.h>, call mfs_need_curl() once (which turns a
 * missing library into an error) and then curl as usual.  Only the functions
 * we call are listed: using another fails at link time; add it below (one
 * line).  `make LAZY=0` links libcurl normally and leaves only the stub.
 */
#include "lazy_curl.h"

#include "../util/lazy_lib.h"

#if !MFS_LAZY
enum mfs_code mfs_need_curl(struct mfs_err *err)
{
	(void)err;
	return MFS_OK;
}
#else
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>

/* The SONAME, found by the Makefile in the installed libcurl. */
#ifndef MFS_LIBCURL_SONAME
#define MFS_LIBCURL_SONAME "libcurl.so.4"
#endif

static struct {
	CURLcode (*global_init)(long);
	CURL *(*easy_init)(void);
	void (*easy_cleanup)(CURL *);
	void (*easy_reset)(CURL *);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	const char *(*easy_strerror)(CURLcode);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
	time_t (*getdate)(const char *, const time_t *);
	curl_mime *(*mime_init)(CURL *);
	void (*mime_free)(curl_mime *);
	curl_mimepart *(*mime_addpart)(curl_mime *);
	CURLcode (*mime_name)(curl_mimepart *, const char *);
	CURLcode (*mime_data)(curl_mimepart *, const char *, size_t);
	CURLcode (*mime_filedata)(curl_mimepart *, const char *);
	CURLcode (*mime_filename)(curl_mimepart *, const char *);
	CURLcode (*mime_type)(curl_mimepart *, const char *);
	CURLcode (*easy_send)(CURL *, const void *, size_t, size_t *);
	CURLcode (*easy_recv)(CURL *, void *, size_t, size_t *);
} fn;

static bool loaded;
static char load_error[256];

static void load(void)
{
	static const struct mfs_lazy_sym syms[] = {
		{ "curl_global_init", (void **)&fn.global_init },
		{ "curl_easy_init", (void **)&fn.easy_init },
		{ "curl_easy_cleanup", (void **)&fn.easy_cleanup },
		{ "curl_easy_reset", (void **)&fn.easy_reset },
		{ "curl_easy_perform", (void **)&fn.easy_perform },
		{ "curl_easy_setopt", (void **)&fn.easy_setopt },
		{ "curl_easy_getinfo", (void **)&fn.easy_getinfo },
		{ "curl_easy_strerror", (void **)&fn.easy_strerror },
		{ "curl_slist_append", (void **)&fn.slist_append },
		{ "curl_slist_free_all", (void **)&fn.slist_free_all },
		{ "curl_getdate", (void **)&fn.getdate },
		{ "curl_mime_init", (void **)&fn.mime_init },
		{ "curl_mime_free", (void **)&fn.mime_free },
		{ "curl_mime_addpart", (void **)&fn.mime_addpart },
		{ "curl_mime_name", (void **)&fn.mime_name },
		{ "curl_mime_data", (void **)&fn.mime_data },
		{ "curl_mime_filedata", (void **)&fn.mime_filedata },
		{ "curl_mime_filename", (void **)&fn.mime_filename },
		{ "curl_mime_type", (void **)&fn.mime_type },
		{ "curl_easy_send", (void **)&fn.easy_send },
		{ "curl_easy_recv", (void **)&fn.easy_recv },
		{ NULL, NULL },
	};
	loaded = mfs_lazy_load(MFS_LIBCURL_SONAME, syms, load_error, sizeof(load_error)) == 0;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

enum mfs_code mfs_need_curl(struct mfs_err *err)
{
	pthread_once(&once, load);
	return loaded ? MFS_OK : mfs_fail(err, MFS_ERR_IO, "%s", load_error);
}

#define LOAD() do { pthread_once(&once, load); if (!loaded) abort(); } while (0)

CURLcode curl_global_init(long flags) { LOAD(); return fn.global_init(flags); }
CURL *curl_easy_init(void) { LOAD(); return fn.easy_init(); }
void curl_easy_cleanup(CURL *h) { LOAD(); fn.easy_cleanup(h); }
void curl_easy_reset(CURL *h) { LOAD(); fn.easy_reset(h); }
CURLcode curl_easy_perform(CURL *h) { LOAD(); return fn.easy_perform(h); }
const char *curl_easy_strerror(CURLcode c) { LOAD(); return fn.easy_strerror(c); }
struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s) { LOAD(); return fn.slist_append(l, s); }
void curl_slist_free_all(struct curl_slist *l) { LOAD(); fn.slist_free_all(l); }
time_t curl_getdate(const char *p, const time_t *unused) { LOAD(); return fn.getdate(p, unused); }
curl_mime *curl_mime_init(CURL *h) { LOAD(); return fn.mime_init(h); }
void curl_mime_free(curl_mime *m) { LOAD(); fn.mime_free(m); }
curl_mimepart *curl_mime_addpart(curl_mime *m) { LOAD(); return fn.mime_addpart(m); }
CURLcode curl_mime_name(curl_mimepart *p, const char *s) { LOAD(); return fn.mime_name(p, s); }
CURLcode curl_mime_data(curl_mimepart *p, const char *d, size_t n) { LOAD(); return fn.mime_data(p, d, n); }
CURLcode curl_mime_filedata(curl_mimepart *p, const char *f) { LOAD(); return fn.mime_filedata(p, f); }
CURLcode curl_mime_filename(curl_mimepart *p, const char *f) { LOAD(); return fn.mime_filename(p, f); }
CURLcode curl_mime_type(curl_mimepart *p, const char *t) { LOAD(); return fn.mime_type(p, t); }
CURLcode curl_easy_send(CURL *h, const void *b, size_t n, size_t *sent) { LOAD(); return fn.easy_send(h, b, n, sent); }
CURLcode curl_easy_recv(CURL *h, void *b, size_t n, size_t *got) { LOAD(); return fn.easy_recv(h, b, n, got); }

/* The option number says which type the one variadic argument has
 * (CURLOPTTYPE_* ranges): forward it with that type. */
CURLcode curl_easy_setopt(CURL *h, CURLoption opt, ...)
{
	va_list ap;
	CURLcode rc;
	LOAD();
	va_start(ap, opt);
	if (opt < CURLOPTTYPE_OBJECTPOINT)
		rc = fn.easy_setopt(h, opt, va_arg(ap, long));
	else if (opt < CURLOPTTYPE_FUNCTIONPOINT)
		rc = fn.easy_setopt(h, opt, va_arg(ap, void *));
	else if (opt < CURLOPTTYPE_OFF_T)
		rc = fn.easy_setopt(h, opt, va_arg(ap, void (*)(void)));
	else if (opt < CURLOPTTYPE_BLOB)
		rc = fn.easy_setopt(h, opt, va_arg(ap, curl_off_t));
	else
		rc = fn.easy_setopt(h, opt, va_arg(ap, void *));
	va_end(ap);
	return rc;
}

/* Every CURLINFO takes one pointer. */
CURLcode curl_easy_getinfo(CURL *h, CURLINFO info, ...)
{
	va_list ap;
	CURLcode rc;
	LOAD();
	va_start(ap, info);
	rc = fn.easy_getinfo(h, info, va_arg(ap, void *));
	va_end(ap);
	return rc;
}
#endif /* MFS_LAZY */
