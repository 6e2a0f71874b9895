/*
 * lazy_curl.c - libcurl, loaded on first use instead of at program start.
 *
 * Linking -lcurl makes every mfsandbox start map libcurl and its ~40
 * dependencies (TLS, LDAP, Kerberos, SSH ...): about 4 ms and several MB of
 * RSS before main(), paid by every `run --backend local` that never speaks
 * HTTP.  So the binary is not linked against libcurl; these definitions of
 * the curl_* functions we use dlopen() it on the first call and forward.
 * Callers include <curl/curl.h> and call curl as usual.  Using a curl
 * function not listed here fails at link time: add it below (one line).
 */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>

#include "../util/lazy_lib.h"

#ifndef MFS_LIBCURL_SONAME
#define MFS_LIBCURL_SONAME "libcurl.so.4"
#endif

static struct {
	CURLcode (*global_init)(long);
	void (*global_cleanup)(void);
	CURL *(*easy_init)(void);
	void (*easy_cleanup)(CURL *);
	void (*easy_reset)(CURL *);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	const char *(*easy_strerror)(CURLcode);
	char *(*easy_escape)(CURL *, const char *, int);
	void (*free_)(void *);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
	time_t (*getdate)(const char *, const time_t *);
	char *(*version)(void);
} fn;

static void load(void)
{
	static const struct mfs_lazy_sym syms[] = {
		{ "curl_global_init", (void **)&fn.global_init },
		{ "curl_global_cleanup", (void **)&fn.global_cleanup },
		{ "curl_easy_init", (void **)&fn.easy_init },
		{ "curl_easy_cleanup", (void **)&fn.easy_cleanup },
		{ "curl_easy_reset", (void **)&fn.easy_reset },
		{ "curl_easy_perform", (void **)&fn.easy_perform },
		{ "curl_easy_setopt", (void **)&fn.easy_setopt },
		{ "curl_easy_getinfo", (void **)&fn.easy_getinfo },
		{ "curl_easy_strerror", (void **)&fn.easy_strerror },
		{ "curl_easy_escape", (void **)&fn.easy_escape },
		{ "curl_free", (void **)&fn.free_ },
		{ "curl_slist_append", (void **)&fn.slist_append },
		{ "curl_slist_free_all", (void **)&fn.slist_free_all },
		{ "curl_getdate", (void **)&fn.getdate },
		{ "curl_version", (void **)&fn.version },
		{ NULL, NULL },
	};
	mfs_lazy_load(MFS_LIBCURL_SONAME, "libcurl4", syms);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
#define LOAD() pthread_once(&once, load)

CURLcode curl_global_init(long flags) { LOAD(); return fn.global_init(flags); }
void curl_global_cleanup(void) { LOAD(); fn.global_cleanup(); }
CURL *curl_easy_init(void) { LOAD(); return fn.easy_init(); }
void curl_easy_cleanup(CURL *h) { LOAD(); fn.easy_cleanup(h); }
void curl_easy_reset(CURL *h) { LOAD(); fn.easy_reset(h); }
CURLcode curl_easy_perform(CURL *h) { LOAD(); return fn.easy_perform(h); }
const char *curl_easy_strerror(CURLcode c) { LOAD(); return fn.easy_strerror(c); }
char *curl_easy_escape(CURL *h, const char *s, int n) { LOAD(); return fn.easy_escape(h, s, n); }
void curl_free(void *p) { LOAD(); fn.free_(p); }
struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s) { LOAD(); return fn.slist_append(l, s); }
void curl_slist_free_all(struct curl_slist *l) { LOAD(); fn.slist_free_all(l); }
time_t curl_getdate(const char *p, const time_t *unused) { LOAD(); return fn.getdate(p, unused); }
char *curl_version(void) { LOAD(); return fn.version(); }

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
