/*
 * api.c - Daytona configuration and the two HTTP services: the main API
 * ({DAYTONA_API_URL}/sandbox...) and the toolbox behind the proxy
 * ({toolboxProxyUrl}/{sandboxId}); both take the same Authorization header.
 */
#include "daytona.h"
#include "mfs/util/cancel.h"
#include "mfs/util/clock.h"
#include "mfs/util/text.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers ---- */

/* Milliseconds until deadline (an absolute mfs_now_s() time; 0: none), at most
 * cap and at least 1 (0 would mean "no timeout" to the HTTP layer). */
long dt_ms_until(double deadline, long cap)
{
	if (deadline <= 0)
		return cap;
	double left = (deadline - mfs_now_s()) * 1000;
	return left >= cap ? cap : left >= 1 ? (long)left : 1;
}

bool dt_passed(double deadline)
{
	return deadline > 0 && mfs_now_s() >= deadline;
}

/* Sleeps ms; false once cancellation arrived (when honour_cancel). */
bool dt_nap(long ms, bool honour_cancel)
{
	if (honour_cancel)
		return mfs_cancel_sleep_ms(ms);
	mfs_sleep_ms(ms);
	return true;
}

/* Seconds in a Retry-After header of the delta-seconds form, capped at
 * RETRY_AFTER_MAX_S; -1 when absent or not a number (an HTTP date is
 * treated as absent: the caller's own backoff applies).  Digit by digit with
 * saturation: a peer's "99999999999999999999" must not overflow. */
long dt_retry_after_s(const char *value)
{
	long s = 0;
	if (!value)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	if (*value < '0' || *value > '9')
		return -1;
	for (; *value >= '0' && *value <= '9'; value++)
		if (s < RETRY_AFTER_MAX_S)
			s = s * 10 + (*value - '0');
	while (*value == ' ' || *value == '\t')
		value++;
	if (*value)
		return -1;
	return s < RETRY_AFTER_MAX_S ? s : RETRY_AFTER_MAX_S;
}

/* ---- configuration ---- */

void dt_conf_release(struct dt_conf *c)
{
	free(c->api_url);
	memset(c, 0, sizeof(*c));
}

/* Reads DAYTONA_* as the official SDK does; no network. */
enum mfs_code dt_conf_load(struct dt_conf *c, struct mfs_err *err)
{
	const char *key = getenv("DAYTONA_API_KEY"), *jwt = getenv("DAYTONA_JWT_TOKEN");
	const char *v;
	memset(c, 0, sizeof(*c));
	if (key && *key) {
		c->token = key;
	} else if (jwt && *jwt) {
		c->token = jwt;
		c->org = getenv("DAYTONA_ORGANIZATION_ID");
		if (!c->org || !*c->org)
			return mfs_fail(err, MFS_ERR_CONFIG,
					"DAYTONA_ORGANIZATION_ID is not set: it is required with "
					"DAYTONA_JWT_TOKEN (or set DAYTONA_API_KEY instead)");
	} else {
		return mfs_fail(err, MFS_ERR_CONFIG,
				"DAYTONA_API_KEY is not set: export your Daytona API key "
				"(https://app.daytona.io/dashboard/keys), or DAYTONA_JWT_TOKEN "
				"with DAYTONA_ORGANIZATION_ID");
	}
	const char *name = c->token == key ? "DAYTONA_API_KEY" : "DAYTONA_JWT_TOKEN";
	if (!mfs_one_line(c->token) || (c->org && !mfs_one_line(c->org)))
		return mfs_fail(err, MFS_ERR_CONFIG, "%s holds a line break or control "
				"character (a trailing newline from a file?): set it to the "
				"value alone", mfs_one_line(c->token) ? "DAYTONA_ORGANIZATION_ID"
								  : name);
	v = getenv("DAYTONA_API_URL");
	name = "DAYTONA_API_URL";
	if (!v || !*v)
		v = getenv(name = "DAYTONA_SERVER_URL"); /* the SDK's deprecated name */
	if (!v || !*v)
		v = DEFAULT_API_URL;
	/* Else the request fails as if the service were down (203, retried)
	 * and a nonce sweep is reported for a sandbox never made. */
	if (!mfs_http_url_ok(v))
		return mfs_fail(err, MFS_ERR_CONFIG, "%s is not an http(s) URL (or holds a space "
				"or line break): set it to the API's URL, e.g. %s", name,
				DEFAULT_API_URL);
	size_t n = strlen(v);
	while (n && v[n - 1] == '/')
		n--;
	c->api_url = mfs_xstrndup(v, n);
	v = getenv("DAYTONA_TARGET");
	c->target = v && *v ? v : NULL;
	if (c->target && !mfs_one_line(c->target)) {
		dt_conf_release(c);
		return mfs_fail(err, MFS_ERR_CONFIG, "DAYTONA_TARGET holds a line break or control "
				"character: set it to a Daytona region name");
	}
	return MFS_OK;
}

static void auth_headers(struct mfs_strv *h, const struct dt_conf *c)
{
	mfs_strv_pushf(h, "Authorization: Bearer %s", c->token);
	if (c->org)
		mfs_strv_pushf(h, "X-Daytona-Organization-ID: %s", c->org);
	mfs_strv_push(h, "X-Daytona-Source: mfsandbox");
}

/* The "message" of a Daytona error body (string, or array joined). */
enum mfs_code dt_status_fail(struct mfs_err *err, const struct mfs_http_req *req,
				 const struct mfs_http_resp *resp)
{
	enum mfs_code rc = mfs_http_status_fail(err, req, resp);
	struct mfs_buf msg = MFS_BUF_INIT;
	dt_answer_message(resp, &msg);
	if (msg.len) {
		struct mfs_buf where = MFS_BUF_INIT;
		mfs_http_url_for_log(&where, req->url);
		mfs_fail(err, rc, "%s %s: HTTP %ld: %.250s", req->method, where.data,
			 resp->status, msg.data);
		mfs_buf_release(&where);
	}
	mfs_buf_release(&msg);
	if (resp->status == 401 || resp->status == 403)
		mfs_err_prefix(err, "Daytona refused the credentials (check DAYTONA_API_KEY, or "
			       "DAYTONA_JWT_TOKEN and DAYTONA_ORGANIZATION_ID)");
	return rc;
}

/* One main-API call.  path is appended to the API URL as given. */
enum mfs_code dt_api_call(const struct dt_conf *c, const char *method, const char *path,
			      const char *body, int retries, long timeout_ms, bool cancellable,
			      struct mfs_http_req *req_out, struct mfs_http_resp *resp,
			      struct mfs_buf *url, struct mfs_strv *hdrs, struct mfs_err *err)
{
	mfs_buf_reset(url);
	mfs_buf_addf(url, "%s%s", c->api_url, path);
	auth_headers(hdrs, c);
	mfs_strv_push(hdrs, "Accept: application/json");
	if (body)
		mfs_strv_push(hdrs, "Content-Type: application/json");
	*req_out = (struct mfs_http_req){
		.method = method, .url = url->data, .headers = hdrs,
		.body = body, .body_len = body ? strlen(body) : 0,
		.timeout_ms = timeout_ms, .retries = retries, .cancellable = cancellable,
		.deadline = c->deadline, .cut_on_second_signal = true,
	};
	return mfs_http_do(req_out, resp, err);
}

/* GET /sandbox/{id}; *gone on 404. */
enum mfs_code dt_get_state(const struct dt_conf *c, const char *id, struct dt_state *s,
			       bool *gone, bool cancellable, long timeout_ms, struct mfs_err *err)
{
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT, path = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	struct mfs_http_req req;
	enum mfs_code rc;

	*gone = false;
	mfs_http_resp_init(&resp);
	mfs_buf_adds(&path, "/sandbox/");
	mfs_http_urlencode(&path, id, false);
	rc = dt_api_call(c, "GET", path.data, NULL, API_RETRIES, timeout_ms, cancellable, &req,
		      &resp, &url, &hdrs, err);
	if (rc == MFS_OK) {
		if (resp.status == 404) {
			*gone = true;
		} else if (resp.status != 200) {
			rc = dt_status_fail(err, &req, &resp);
		} else {
			rc = dt_answer_state(&resp, id, s, err);
		}
	}
	mfs_http_resp_release(&resp);
	mfs_buf_release(&path);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}
/* ---- toolbox ---- */

void dt_toolbox_headers(const struct dt_sandbox *sb, struct mfs_strv *h)
{
	auth_headers(h, &sb->conf);
	/* Raw session logs: per-line stdout/stderr markers kept (logs.c). */
	mfs_strv_push(h, "X-Daytona-Split-Output: true");
}

enum mfs_code dt_toolbox_call(struct dt_sandbox *sb, const char *method, const char *path,
			      struct mfs_http_req *req, struct mfs_http_resp *resp,
			      struct mfs_buf *url, struct mfs_strv *hdrs, struct mfs_err *err)
{
	mfs_buf_reset(url);
	mfs_buf_addf(url, "%s%s", sb->toolbox, path);
	dt_toolbox_headers(sb, hdrs);
	req->method = method;
	req->url = url->data;
	req->headers = hdrs;
	return mfs_http_do(req, resp, err);
}

/* After a toolbox failure: is the sandbox itself gone or broken? */
enum mfs_code dt_explain_failure(struct dt_sandbox *sb, enum mfs_code rc,
					     struct mfs_err *err)
{
	struct dt_state s = { 0 };
	struct mfs_err ignored;
	bool gone = false;
	if (rc == MFS_ERR_CANCELLED)
		return rc;
	/* Cancellable, and held to --timeout by sb->conf.deadline: only an
	 * explanation. */
	if (dt_get_state(&sb->conf, sb->base.id, &s, &gone, true, API_TIMEOUT_MS, &ignored) == MFS_OK &&
	    (gone || strcmp(s.state, "started"))) {
		rc = mfs_fail(err, MFS_ERR_BACKEND, "Daytona sandbox %s %s%s%s", sb->base.id,
			      gone ? "is gone" : s.state,
			      s.reason && *s.reason ? ": " : "", s.reason ? s.reason : "");
	}
	dt_state_release(&s);
	return rc;
}
