/*
 * http.h - one libcurl-based HTTP client for S3, Daytona, E2B and the
 * metadata service.
 *
 * Owns a reused easy handle per thread so keep-alive and HTTP/2 survive
 * between calls (polling loops depend on it).  Retries with backoff on
 * connection failures, 429, 502, 503 and 504 when req->retries > 0 and the
 * request is idempotent (or the caller marks it retry_safe); 429/503 honour
 * Retry-After.  Errors name the method, the URL without its query string,
 * and the status; they never include request headers (credentials).
 */
#ifndef MFS_HTTP_H
#define MFS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "mfs/util/buf.h"
#include "mfs/util/err.h"

/* One part of a multipart/form-data body (mfs_http_req.form).  libcurl
 * writes the framing and streams a file part while sending, so a file is
 * never held in memory whole. */
struct mfs_http_part {
	const char *name;
	const char *data;               /* the part's bytes ... */
	size_t len;
	const char *file;               /* ... or this file's, read as sent */
	const char *filename;           /* NULL: no filename= */
	const char *type;               /* NULL: libcurl's default */
};

struct mfs_http_req {
	const char *method;             /* "GET", "PUT", "POST", "DELETE", "HEAD" */
	const char *url;
	const struct mfs_strv *headers; /* "Name: value" lines; may hold secrets */

	const void *body;               /* request body in memory ... */
	size_t body_len;
	const char *body_file;          /* ... or streamed from this file ... */
	/* ... or a multipart/form-data body of these parts, in order (POST;
	 * Content-Type with its boundary is set here). */
	const struct mfs_http_part *form;
	size_t form_n;

	const char *out_file;           /* response body to this file instead of memory */
	/* A 2xx body kept in memory past this many bytes ends the transfer
	 * (MFS_ERR_PROTOCOL, not retried): a peer's object read whole; 0: none. */
	size_t max_body;
	/* Streaming response body: called per chunk; return false to abort. */
	bool (*on_data)(void *ctx, const char *data, size_t len);
	void *on_data_ctx;

	const char *aws_sigv4;          /* CURLOPT_AWS_SIGV4, e.g. "aws:amz:us-east-1:s3" */
	const char *userpwd;            /* "key:secret" with aws_sigv4; secret */

	long timeout_ms;                /* whole transfer; 0: none */
	/* CLOCK_MONOTONIC seconds (0: none): every attempt is cut to it and no
	 * retry starts after it; past it the call fails with MFS_ERR_TIMEOUT. */
	double deadline;
	/* Abort (MFS_ERR_HTTP, not retried) when no response byte arrives for
	 * this long: a stream that should at least send keepalives; 0: never. */
	long idle_timeout_ms;
	long connect_timeout_ms;        /* 0: 10 s */
	int retries;                    /* extra attempts after the first; 0: none */
	bool retry_safe;                /* non-idempotent request that may be retried */
	bool cancellable;               /* abort with MFS_ERR_CANCELLED on mfs_cancelled() */
	/* Clean-up a first signal may have started (a delete): not cancellable,
	 * but aborted with MFS_ERR_CANCELLED once a second signal arrives. */
	bool cut_on_second_signal;
};

struct mfs_http_resp {
	long status;                    /* 0 if no response */
	/* The body unless out_file/on_data; for a non-2xx status always here
	 * (first 64 KiB), so an error document never lands in out_file. */
	struct mfs_buf body;
	struct mfs_kvlist headers;      /* lower-cased names */
	int attempts;                   /* requests sent, retries included */
};

void mfs_http_resp_init(struct mfs_http_resp *resp);
void mfs_http_resp_release(struct mfs_http_resp *resp);

/* MFS_OK when a response arrived (any status: check resp->status).
 * MFS_ERR_HTTP on transport failure after retries, MFS_ERR_CANCELLED,
 * MFS_ERR_IO on local file trouble. */
enum mfs_code mfs_http_do(const struct mfs_http_req *req, struct mfs_http_resp *resp,
			  struct mfs_err *err);

/* Case-insensitive header lookup; NULL if absent. */
const char *mfs_http_header(const struct mfs_http_resp *resp, const char *name);

/* A Retry-After value (delta-seconds or an HTTP-date, now in epoch seconds)
 * as milliseconds to wait, capped at 60 s whatever the peer sent; -1 when
 * absent or unusable. */
long mfs_http_retry_after_ms(const char *value, long long now);

/* One header line as libcurl hands it (not NUL-terminated): a status line
 * sets *status (0 when it has no 3-digit code) and drops earlier headers;
 * "Name: value" is stored lower-cased in resp->headers. */
void mfs_http_take_header(struct mfs_http_resp *resp, long *status, const char *data, size_t len);

/* Percent-encodes s (RFC 3986 unreserved kept); keep_slash for S3 keys. */
void mfs_http_urlencode(struct mfs_buf *out, const char *s, bool keep_slash);

/* Appends url without user:password@, query or fragment: the form every
 * log line and error message uses. */
void mfs_http_url_for_log(struct mfs_buf *out, const char *url);

/* Fills err with "METHOD url-for-log: HTTP <status>: <first body line>" and
 * returns MFS_ERR_AUTH (401/403), MFS_ERR_NOTFOUND (404) or MFS_ERR_BACKEND. */
enum mfs_code mfs_http_status_fail(struct mfs_err *err, const struct mfs_http_req *req,
				   const struct mfs_http_resp *resp);

/* MFS_ERR_CONFIG when a header line holds CR, LF or another control byte
 * but tab (it would add lines of its own); the error names the header, never
 * its value.  mfs_http_do and the WebSocket client check every request. */
enum mfs_code mfs_http_check_headers(const struct mfs_strv *headers, const char *where,
				     struct mfs_err *err);
/* "http://" or "https://" and a host, with no space or control byte: what a
 * URL read from the environment must be before a request is built on it. */
bool mfs_http_url_ok(const char *url);
/* After page *pages of a listing whose answer named `next` (NULL: the
 * last) as the page to ask for after `sent`: MFS_ERR_PROTOCOL when the
 * listing does not end, `next` being `sent` again or the page count
 * reaching MFS_HTTP_MAX_PAGES; `what` names the request in the error. */
#define MFS_HTTP_MAX_PAGES 1000
enum mfs_code mfs_http_page_check(const char *sent, const char *next, int *pages,
				  const char *what, struct mfs_err *err);
/* Frees the cached handles (at exit, for valgrind). */
void mfs_http_cleanup(void);

#endif
