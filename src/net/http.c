/*
 * http.c - the one libcurl client (include/mfs/net/http.h).
 *
 * One easy handle per thread is kept and curl_easy_reset() between calls:
 * reset clears every option (so no credential or SigV4 setting leaks into the
 * next request) but keeps the connection cache, which is what makes polling
 * loops and S3 part uploads cheap.
 *
 * Response bodies of non-2xx answers always go to resp->body (bounded), even
 * when the caller asked for out_file/on_data: an S3 error document must not
 * end up in the caller's file, and callers need it to explain the failure.
 */
#include "mfs/net/http.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>

#include "lazy_curl.h"
#include "mfs/util/cancel.h"
#include "mfs/util/clock.h"
#include "mfs/util/text.h"

#define ERROR_BODY_MAX (64 * 1024)
#define BACKOFF_BASE_MS 200L
#define BACKOFF_MAX_MS 10000L
#define RETRY_AFTER_MAX_MS 60000L

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static _Thread_local CURL *tl_handle;

static void global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static CURL *get_handle(void)
{
	pthread_once(&global_once, global_init);
	if (!tl_handle)
		tl_handle = curl_easy_init();
	else
		curl_easy_reset(tl_handle);
	return tl_handle;
}

void mfs_http_cleanup(void)
{
	if (tl_handle) {
		curl_easy_cleanup(tl_handle);
		tl_handle = NULL;
	}
}

void mfs_http_resp_init(struct mfs_http_resp *resp)
{
	resp->status = 0;
	resp->attempts = 0;
	mfs_buf_init(&resp->body);
	mfs_kvlist_init(&resp->headers);
}

void mfs_http_resp_release(struct mfs_http_resp *resp)
{
	mfs_buf_release(&resp->body);
	mfs_kvlist_release(&resp->headers);
	resp->status = 0;
	resp->attempts = 0;
}

const char *mfs_http_header(const struct mfs_http_resp *resp, const char *name)
{
	for (size_t i = 0; i < resp->headers.n; i++)
		if (strcasecmp(resp->headers.items[i].key, name) == 0)
			return resp->headers.items[i].value;
	return NULL;
}

void mfs_http_urlencode(struct mfs_buf *out, const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char c = *p;
		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
		    (keep_slash && c == '/')) {
			mfs_buf_addch(out, (char)c);
		} else {
			mfs_buf_addch(out, '%');
			mfs_buf_addch(out, hex[c >> 4]);
			mfs_buf_addch(out, hex[c & 15]);
		}
	}
}

void mfs_http_url_for_log(struct mfs_buf *out, const char *url)
{
	const char *scheme_end = strstr(url, "://");
	const char *host = scheme_end ? scheme_end + 3 : url;
	const char *path = host + strcspn(host, "/?#");
	const char *at = memchr(host, '@', (size_t)(path - host));

	/* user:password@ in a URL is a credential; the query may hold a token. */
	if (scheme_end)
		mfs_buf_add(out, url, (size_t)(host - url));
	if (at)
		host = at + 1;
	mfs_buf_add(out, host, (size_t)(path - host));
	mfs_buf_add(out, path, strcspn(path, "?#"));
}

/* A peer that answers the token it was sent, or pages without end, would
 * hold `ls` and a clean-up's lookup forever: 1,000 pages of 100 is more
 * sandboxes than any account holds. */
enum mfs_code mfs_http_page_check(const char *sent, const char *next, int *pages,
				  const char *what, struct mfs_err *err)
{
	if (next && ((sent && !strcmp(sent, next)) || ++*pages >= MFS_HTTP_MAX_PAGES))
		return mfs_fail(err, MFS_ERR_PROTOCOL, "%s: the listing does not end (a page token "
				"answered again, or %d pages)", what, MFS_HTTP_MAX_PAGES);
	return MFS_OK;
}

bool mfs_http_url_ok(const char *url)
{
	size_t n = !strncmp(url, "http://", 7) ? 7 : !strncmp(url, "https://", 8) ? 8 : 0;
	if (!n || !url[n] || url[n] == '/')
		return false;
	for (const unsigned char *p = (const unsigned char *)url; *p; p++)
		if (*p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

/* Only the name is quoted: the value may be a key. */
enum mfs_code mfs_http_check_headers(const struct mfs_strv *headers, const char *where,
				     struct mfs_err *err)
{
	for (size_t i = 0; headers && i < headers->n; i++)
		if (!mfs_one_line(headers->v[i]))
			return mfs_fail(err, MFS_ERR_CONFIG, "%s: the value of header %.*s holds a "
					"line break or control character (a key or token with a "
					"trailing newline?): remove it where it is set", where,
					(int)strcspn(headers->v[i], ":\r\n"), headers->v[i]);
	return MFS_OK;
}

enum mfs_code mfs_http_status_fail(struct mfs_err *err, const struct mfs_http_req *req,
				   const struct mfs_http_resp *resp)
{
	struct mfs_buf url = MFS_BUF_INIT;
	char snippet[161];
	size_t n = 0;
	enum mfs_code code = MFS_ERR_BACKEND;

	mfs_http_url_for_log(&url, req->url);
	/* First line of the body, printable bytes only: servers explain here. */
	for (size_t i = 0; i < resp->body.len && n < sizeof(snippet) - 1; i++) {
		unsigned char c = (unsigned char)resp->body.data[i];
		if (c == '\n' || c == '\r') {
			if (n)
				break;
			continue;
		}
		snippet[n++] = isprint(c) ? (char)c : '?';
	}
	snippet[n] = '\0';
	if (resp->status == 401 || resp->status == 403)
		code = MFS_ERR_AUTH;
	else if (resp->status == 404)
		code = MFS_ERR_NOTFOUND;
	mfs_fail(err, code, "%s %s: HTTP %ld%s%s", req->method, url.data, resp->status,
		 n ? ": " : "", snippet);
	mfs_buf_release(&url);
	return code;
}

/* ---- one transfer ---- */

struct xfer {
	const struct mfs_http_req *req;
	struct mfs_http_resp *resp;
	long status;          /* of the response being received */
	FILE *in;             /* body_file */
	size_t mem_off;       /* read offset into req->body for uploads */
	FILE *out;            /* out_file, opened on the first 2xx byte */
	bool delivered;       /* on_data/out_file got bytes: not retryable */
	bool receiver_abort;  /* on_data said stop */
	bool too_big;         /* the body passed req->max_body */
	curl_off_t seen_dl;   /* bytes received at the last progress call ... */
	long seen_at_ms;      /* ... and when that count last grew */
	bool idle_abort;      /* idle_timeout_ms passed without a byte */
	bool out_failed;
	int out_errno;
	bool in_failed;
	curl_mime *mime;      /* req->form, freed after the try */
};

static bool is_2xx(long s)
{
	return s >= 200 && s < 300;
}

void mfs_http_take_header(struct mfs_http_resp *resp, long *status, const char *data, size_t len)
{
	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		/* A new response (after 100 Continue): drop what came before. */
		mfs_kvlist_release(&resp->headers);
		const char *sp = memchr(data, ' ', len);
		char code[4] = "";
		/* The status is three digits; strtol on the raw line could read
		 * past it (the line is not NUL-terminated). */
		if (sp && (size_t)(data + len - sp) > 3) {
			memcpy(code, sp + 1, 3);
			if (!isdigit((unsigned char)code[0]) || !isdigit((unsigned char)code[1]) ||
			    !isdigit((unsigned char)code[2]))
				code[0] = '\0';
		}
		*status = code[0] ? strtol(code, NULL, 10) : 0;
		return;
	}
	const char *colon = memchr(data, ':', len);
	if (!colon)
		return;
	char *name = mfs_xstrndup(data, (size_t)(colon - data));
	for (char *p = name; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	const char *v = colon + 1, *end = data + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	char *value = mfs_xstrndup(v, (size_t)(end - v));
	mfs_kvlist_set(&resp->headers, name, value);
	free(name);
	free(value);
}

static size_t on_header(char *data, size_t size, size_t nitems, void *ctx)
{
	struct xfer *x = ctx;
	size_t len = size * nitems;
	mfs_http_take_header(x->resp, &x->status, data, len);
	return len;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct xfer *x = ctx;
	const struct mfs_http_req *req = x->req;
	size_t len = size * nmemb;

	if (!is_2xx(x->status) || (!req->out_file && !req->on_data)) {
		if (!is_2xx(x->status) && x->resp->body.len + len > ERROR_BODY_MAX)
			return len; /* keep the head of an error page only */
		if (is_2xx(x->status) && req->max_body && x->resp->body.len + len > req->max_body) {
			x->too_big = true;
			return 0;
		}
		mfs_buf_add(&x->resp->body, data, len);
		return len;
	}
	if (req->on_data) {
		x->delivered = true;
		if (!req->on_data(req->on_data_ctx, data, len)) {
			x->receiver_abort = true;
			return 0;
		}
		return len;
	}
	if (!x->out) {
		x->out = fopen(req->out_file, "wb");
		if (!x->out) {
			x->out_failed = true;
			x->out_errno = errno;
			return 0;
		}
	}
	x->delivered = true;
	if (fwrite(data, 1, len, x->out) != len) {
		x->out_failed = true;
		x->out_errno = errno;
		return 0;
	}
	return len;
}

static size_t on_read(char *dst, size_t size, size_t nitems, void *ctx)
{
	struct xfer *x = ctx;
	size_t want = size * nitems;

	if (x->in) {
		size_t n = fread(dst, 1, want, x->in);
		if (n == 0 && ferror(x->in)) {
			x->in_failed = true;
			return CURL_READFUNC_ABORT;
		}
		return n;
	}
	size_t left = x->req->body_len - x->mem_off;
	if (want > left)
		want = left;
	memcpy(dst, (const char *)x->req->body + x->mem_off, want);
	x->mem_off += want;
	return want;
}

static int on_seek(void *ctx, curl_off_t offset, int origin)
{
	struct xfer *x = ctx;
	if (origin != SEEK_SET)
		return CURL_SEEKFUNC_CANTSEEK;
	if (x->in)
		return fseeko(x->in, (off_t)offset, SEEK_SET) == 0 ? CURL_SEEKFUNC_OK
								    : CURL_SEEKFUNC_FAIL;
	if ((size_t)offset > x->req->body_len)
		return CURL_SEEKFUNC_FAIL;
	x->mem_off = (size_t)offset;
	return CURL_SEEKFUNC_OK;
}

static bool second_signal(const struct mfs_http_req *req)
{
	return req->cut_on_second_signal && mfs_cancel_count() >= 2;
}

/* libcurl calls this about once a second even on a silent connection,
 * which is what makes the idle bound work. */
static int on_progress(void *ctx, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)dt, (void)ut, (void)un;
	struct xfer *x = ctx;
	if (x->req->cancellable && mfs_cancelled())
		return 1;
	if (second_signal(x->req))
		return 1;
	if (x->req->idle_timeout_ms > 0) {
		long now = (long)mfs_now_ms();
		if (!x->seen_at_ms || dn != x->seen_dl) {
			x->seen_dl = dn;
			x->seen_at_ms = now;
		} else if (now - x->seen_at_ms >= x->req->idle_timeout_ms) {
			x->idle_abort = true;
			return 1;
		}
	}
	return 0;
}

static bool is_idempotent(const char *method)
{
	return !strcmp(method, "GET") || !strcmp(method, "HEAD") || !strcmp(method, "PUT") ||
	       !strcmp(method, "DELETE") || !strcmp(method, "OPTIONS");
}

static bool transport_retryable(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	default:
		return false;
	}
}

static bool status_retryable(long s)
{
	return s == 429 || s == 502 || s == 503 || s == 504;
}

long mfs_http_retry_after_ms(const char *v, long long now)
{
	if (!v || !*v)
		return -1;
	char *end;
	errno = 0;
	long long secs = strtoll(v, &end, 10);
	/* A peer's number: compare before multiplying, so no huge value wraps. */
	if (end != v && *end == '\0' && secs >= 0)
		return errno || secs > RETRY_AFTER_MAX_MS / 1000 ? RETRY_AFTER_MAX_MS : (long)secs * 1000;
	time_t when = curl_getdate(v, NULL);
	if (when < 0)
		return -1;
	if ((long long)when <= now)
		return 0;
	long long delta = (long long)when - now;
	return delta > RETRY_AFTER_MAX_MS / 1000 ? RETRY_AFTER_MAX_MS : (long)delta * 1000;
}

/* Sleeps ms; false if the request's cancellation arrived first. */
static bool backoff_sleep(long ms, const struct mfs_http_req *req)
{
	if (req->cancellable)
		return mfs_cancel_sleep_ms(ms);
	if (req->cut_on_second_signal)
		return mfs_cancel_sleep_until_count(ms, 2);
	mfs_sleep_ms(ms);
	return true;
}

static long backoff_ms(int attempt)
{
	long ms = BACKOFF_BASE_MS << (attempt < 6 ? attempt : 6);
	if (ms > BACKOFF_MAX_MS)
		ms = BACKOFF_MAX_MS;
	/* Jitter in [ms/2, ms] keeps parallel tasks from retrying in lockstep. */
	return ms / 2 + (long)(rand() % (ms / 2 + 1));
}

static double deadline_left_s(const struct mfs_http_req *req)
{
	return req->deadline - mfs_now_s();
}

/* Milliseconds left before req->deadline, rounded up so that a transfer
 * libcurl cuts at it ends past it (and is told as MFS_ERR_TIMEOUT), at
 * least 1 (0 would mean no timeout to libcurl); -1 without a deadline. */
static long deadline_left_ms(const struct mfs_http_req *req)
{
	if (req->deadline <= 0)
		return -1;
	double left = deadline_left_s(req) * 1000;
	return left >= 1 ? (long)left + 1 : 1;
}

static bool deadline_passed(const struct mfs_http_req *req)
{
	return req->deadline > 0 && deadline_left_s(req) <= 0;
}

/* The parts as a curl_mime, which libcurl frames and streams (a file part
 * is read while sent, and read again on a retry). */
static enum mfs_code set_form(CURL *h, const struct mfs_http_req *req, struct xfer *x,
			      struct mfs_err *err)
{
	x->mime = curl_mime_init(h);
	if (!x->mime)
		return mfs_fail(err, MFS_ERR_NOMEM, "out of memory building a form");
	for (size_t i = 0; i < req->form_n; i++) {
		const struct mfs_http_part *p = &req->form[i];
		curl_mimepart *part = curl_mime_addpart(x->mime);
		CURLcode cc = part ? curl_mime_name(part, p->name) : CURLE_OUT_OF_MEMORY;
		if (cc == CURLE_OK)
			cc = p->file ? curl_mime_filedata(part, p->file)
				     : curl_mime_data(part, p->data ? p->data : "", p->len);
		/* filedata names the part after the file: say what we mean. */
		if (cc == CURLE_OK && (p->file || p->filename))
			cc = curl_mime_filename(part, p->filename);
		if (cc == CURLE_OK && p->type)
			cc = curl_mime_type(part, p->type);
		if (cc != CURLE_OK)
			return mfs_fail(err, p->file ? MFS_ERR_IO : MFS_ERR_NOMEM, "form part %s%s%s: %s",
					p->name, p->file ? " from " : "", p->file ? p->file : "",
					curl_easy_strerror(cc));
	}
	curl_easy_setopt(h, CURLOPT_MIMEPOST, x->mime);
	if (strcmp(req->method, "POST"))
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
	return MFS_OK;
}

/* URLs come from providers' answers too (Daytona's toolbox URL): a
 * file://, dict:// or smtp:// one must not make libcurl read a launcher
 * file or speak to another service. */
static void http_only(CURL *h)
{
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
}

static enum mfs_code setup(CURL *h, const struct mfs_http_req *req, struct xfer *x,
			   struct curl_slist **hdrs, char *errbuf, struct mfs_err *err)
{
	const char *m = req->method;

	curl_easy_setopt(h, CURLOPT_URL, req->url);
	http_only(h);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "mfsandbox/0.1");
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	/* libcurl silently sends a request again when the reused connection it
	 * went out on closes before any answer: for a POST the server may
	 * already have carried out (a sandbox made, a command started, a
	 * metadata row written), that is a second time.  Such requests get a
	 * fresh connection, which libcurl never re-sends on; callers decide. */
	if (!is_idempotent(m) && !req->retry_safe)
		curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
	long total = req->timeout_ms, left = deadline_left_ms(req);
	if (left > 0 && (total <= 0 || left < total))
		total = left;
	long conn = req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 10000L;
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, total > 0 && total < conn ? total : conn);
	if (total > 0)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, total);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);

	if (req->headers)
		for (size_t i = 0; i < req->headers->n; i++) {
			struct curl_slist *n = curl_slist_append(*hdrs, req->headers->v[i]);
			if (!n)
				return mfs_fail(err, MFS_ERR_NOMEM, "out of memory building headers");
			*hdrs = n;
		}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);

	if (req->aws_sigv4)
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, req->aws_sigv4);
	if (req->userpwd)
		curl_easy_setopt(h, CURLOPT_USERPWD, req->userpwd);

	if (!strcmp(m, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (req->body_file) {
		struct stat st;
		if (fstat(fileno(x->in), &st) != 0)
			return mfs_fail(err, MFS_ERR_IO, "cannot stat %s: %s", req->body_file,
					strerror(errno));
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, x);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, x);
		if (strcmp(m, "PUT"))
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
	} else if (req->form) {
		return set_form(h, req, x, err);
	} else if (req->body || !strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH")) {
		/* POSTFIELDS is what libcurl's SigV4 code hashes when the caller
		 * gives no x-amz-content-sha256; keep in-memory bodies there. */
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
		if (strcmp(m, "POST"))
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
	} else if (strcmp(m, "GET")) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
	}
	return MFS_OK;
}

/* What the retry loop does after one try. */
enum next { DONE, RETRY, CANCELLED };

/* One try on a reset handle: *cc is libcurl's verdict, the return value
 * our own (options, the out_file). */
static enum mfs_code try_once(CURL *h, const struct mfs_http_req *req, struct mfs_http_resp *resp,
			      struct xfer *x, char *errbuf, CURLcode *cc, struct mfs_err *err)
{
	struct curl_slist *hdrs = NULL;
	mfs_buf_reset(&resp->body);
	mfs_kvlist_release(&resp->headers);
	resp->status = 0;
	if (x->in)
		rewind(x->in);
	enum mfs_code rc = setup(h, req, x, &hdrs, errbuf, err);
	*cc = rc == MFS_OK ? curl_easy_perform(h) : CURLE_OK;
	curl_slist_free_all(hdrs);
	/* The handle keeps a pointer to the form until reset: drop it first. */
	if (x->mime) {
		curl_easy_setopt(h, CURLOPT_MIMEPOST, (curl_mime *)NULL);
		curl_mime_free(x->mime);
		x->mime = NULL;
	}
	if (x->out && fclose(x->out) != 0 && !x->out_failed) {
		x->out_failed = true;
		x->out_errno = errno;
	}
	return rc;
}

/* An answer came: keep it, or wait (Retry-After, else back-off) and retry
 * a retryable status while retries and the deadline allow. */
static enum next after_answer(CURL *h, const struct mfs_http_req *req, struct mfs_http_resp *resp,
			      const struct xfer *x, bool may_retry, int *attempt, const char *where,
			      enum mfs_code *rc, struct mfs_err *err)
{
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	/* A 2xx with an empty body still means "the object is empty". */
	if (req->out_file && is_2xx(resp->status) && !x->out) {
		FILE *f = fopen(req->out_file, "wb");
		if (!f || fclose(f) != 0) {
			*rc = mfs_fail(err, MFS_ERR_IO, "%s %s: cannot write %s: %s", req->method, where,
				       req->out_file, strerror(errno));
			return DONE;
		}
	}
	if (!may_retry || *attempt >= req->retries || !status_retryable(resp->status))
		return DONE;
	long wait = mfs_http_retry_after_ms(mfs_http_header(resp, "retry-after"), (long long)time(NULL));
	if (wait < 0)
		wait = backoff_ms(*attempt);
	if (deadline_left_ms(req) > 0 && wait >= deadline_left_ms(req))
		return DONE; /* no time for another try: this answer stands */
	(*attempt)++;
	return backoff_sleep(wait, req) ? RETRY : CANCELLED;
}

/* No answer: our own side's failure, a cancellation, a retryable
 * transport error, or the one-line error naming what libcurl saw. */
static enum next after_failure(const struct mfs_http_req *req, struct mfs_http_resp *resp,
			       const struct xfer *x, CURLcode cc, const char *errbuf, bool may_retry,
			       int *attempt, const char *where, enum mfs_code *rc, struct mfs_err *err)
{
	if (x->out_failed)
		*rc = mfs_fail(err, MFS_ERR_IO, "%s %s: cannot write %s: %s", req->method, where,
			       req->out_file, strerror(x->out_errno));
	else if (x->receiver_abort)
		*rc = mfs_fail(err, MFS_ERR_IO, "%s %s: the receiver stopped the transfer",
			       req->method, where);
	else if (x->too_big)
		*rc = mfs_fail(err, MFS_ERR_PROTOCOL, "%s %s: the answer is larger than %zu bytes",
			       req->method, where, req->max_body);
	else if (x->in_failed || cc == CURLE_READ_ERROR)
		*rc = mfs_fail(err, MFS_ERR_IO, "%s %s: cannot read %s", req->method, where,
			       req->body_file ? req->body_file : "request body");
	if (*rc != MFS_OK)
		return DONE;
	if (x->idle_abort) {
		resp->status = 0;
		*rc = mfs_fail(err, MFS_ERR_HTTP, "%s %s: nothing received for %ld s", req->method,
			       where, req->idle_timeout_ms / 1000);
		return DONE;
	}
	if (cc == CURLE_ABORTED_BY_CALLBACK || (req->cancellable && mfs_cancelled()))
		return CANCELLED;
	/* Bytes already handed to on_data cannot be taken back. */
	if (may_retry && *attempt < req->retries && transport_retryable(cc) &&
	    !(x->delivered && req->on_data) && !deadline_passed(req)) {
		long wait = backoff_ms(*attempt), left = deadline_left_ms(req);
		(*attempt)++;
		return backoff_sleep(left > 0 && left < wait ? left : wait, req) ? RETRY
											   : CANCELLED;
	}
	resp->status = 0;
	if (deadline_passed(req))
		*rc = mfs_fail(err, MFS_ERR_TIMEOUT, "%s %s: cut at the deadline (%d attempt%s)",
			       req->method, where, *attempt + 1, *attempt ? "s" : "");
	else /* errbuf names the host or the OS error, never headers. */
		*rc = mfs_fail(err, MFS_ERR_HTTP, "%s %s: %s%s%s (%d attempt%s)", req->method, where,
			       curl_easy_strerror(cc), errbuf[0] ? ": " : "", errbuf, *attempt + 1,
			       *attempt ? "s" : "");
	return DONE;
}

enum mfs_code mfs_http_do(const struct mfs_http_req *req, struct mfs_http_resp *resp,
			  struct mfs_err *err)
{
	struct mfs_buf where = MFS_BUF_INIT;
	enum mfs_code rc = MFS_OK;
	bool may_retry = req->retries > 0 && (is_idempotent(req->method) || req->retry_safe);
	int attempt = 0;
	enum next next = RETRY;
	FILE *in = NULL;

	if ((rc = mfs_need_curl(err)) != MFS_OK)
		return rc;
	mfs_http_url_for_log(&where, req->url);
	rc = mfs_http_check_headers(req->headers, where.data, err);
	if (rc == MFS_OK && req->body_file && !(in = fopen(req->body_file, "rb")))
		rc = mfs_fail(err, MFS_ERR_IO, "%s %s: cannot read %s: %s", req->method, where.data,
			      req->body_file, strerror(errno));
	while (rc == MFS_OK && next == RETRY) {
		char errbuf[CURL_ERROR_SIZE] = "";
		struct xfer x = { .req = req, .resp = resp, .in = in };
		CURLcode cc;
		CURL *h = get_handle();
		if (!h) {
			rc = mfs_fail(err, MFS_ERR_NOMEM, "cannot create a libcurl handle");
			break;
		}
		if (second_signal(req)) {
			next = CANCELLED;
			break;
		}
		resp->attempts = attempt + 1;
		if ((rc = try_once(h, req, resp, &x, errbuf, &cc, err)) != MFS_OK)
			break;
		next = cc == CURLE_OK
			       ? after_answer(h, req, resp, &x, may_retry, &attempt, where.data, &rc, err)
			       : after_failure(req, resp, &x, cc, errbuf, may_retry, &attempt, where.data,
					       &rc, err);
	}
	if (next == CANCELLED)
		rc = mfs_fail(err, MFS_ERR_CANCELLED, "%s %s: cancelled", req->method, where.data);
	if (in)
		fclose(in);
	mfs_buf_release(&where);
	return rc;
}
