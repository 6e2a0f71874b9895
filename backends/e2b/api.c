/*
 * api.c - the e2b backend's configuration and its control-plane calls.
 *
 * E2B_* is read exactly as the official SDK reads it (no network here).
 * The control plane (api.<domain>, X-API-Key) is asked per sandbox
 * (GET/DELETE /sandboxes/{id}, both idempotent, so retried) and for lists
 * by metadata (GET /v2/sandboxes, paged by X-Next-Token).  Error bodies
 * are JSON with a "message" on both services, but never assumed to be.
 */
#include "internal.h"
#include "mfs/util/buf.h"
#include "mfs/util/err.h"
#include "mfs/util/text.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ---- configuration ---- */

void e2b_conf_release(struct e2b_conf *c)
{
	free(c->api_url);
	free(c->domain);
	memset(c, 0, sizeof(*c));
}

static char *without_trailing_slash(const char *s)
{
	size_t n = strlen(s);
	while (n && s[n - 1] == '/')
		n--;
	return mfs_xstrndup(s, n);
}

/* A URL or domain that cannot be one is the user's to fix (202): else the
 * request fails as if E2B were down (203, retried) and a nonce sweep is
 * reported for a sandbox never made. */
static enum mfs_code check_urls(const struct e2b_conf *c, struct mfs_err *err)
{
	const char *bad = NULL;
	for (const char *s = c->domain; *s && !bad; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '-' && *s != ':')
			bad = "E2B_DOMAIN";
	if (!bad && !mfs_http_url_ok(c->api_url))
		bad = "E2B_API_URL";
	if (!bad && c->sandbox_url && !mfs_http_url_ok(c->sandbox_url))
		bad = "E2B_SANDBOX_URL";
	if (bad)
		return mfs_fail(err, MFS_ERR_CONFIG, "%s is not %s (or holds a space or line "
				"break): fix it or unset it", bad, !strcmp(bad, "E2B_DOMAIN")
				? "a domain name" : "an http(s) URL");
	return MFS_OK;
}

/* Reads E2B_* exactly as the official SDK does; no network. */
enum mfs_code e2b_conf_load(struct e2b_conf *c, struct mfs_err *err)
{
	const char *v;
	enum mfs_code rc;
	memset(c, 0, sizeof(*c));
	v = getenv("E2B_DEBUG");
	c->debug = v && !strcasecmp(v, "true");
	v = getenv("E2B_API_KEY");
	c->api_key = v && *v ? v : NULL;
	if (!c->api_key && !c->debug)
		return mfs_fail(err, MFS_ERR_CONFIG,
				"E2B_API_KEY is not set: export your E2B API key "
				"(https://e2b.dev/docs/api-key)");
	if (c->api_key && !mfs_one_line(c->api_key))
		return mfs_fail(err, MFS_ERR_CONFIG, "E2B_API_KEY holds a line break or control "
				"character (a trailing newline from a file?): set it to the key "
				"alone");
	v = getenv("E2B_DOMAIN");
	c->domain = mfs_xstrdup(v && *v ? v : DEFAULT_DOMAIN);
	v = getenv("E2B_API_URL");
	if (v && *v) {
		c->api_url = without_trailing_slash(v);
	} else if (c->debug) {
		c->api_url = mfs_xstrdup("http://localhost:3000");
	} else {
		struct mfs_buf b = MFS_BUF_INIT;
		mfs_buf_addf(&b, "https://api.%s", c->domain);
		c->api_url = mfs_buf_detach(&b, NULL);
	}
	v = getenv("E2B_SANDBOX_URL");
	c->sandbox_url = v && *v ? v : NULL;
	if ((rc = check_urls(c, err)) != MFS_OK)
		return rc;
	c->stream_idle_s = STREAM_IDLE_S;
	v = getenv(STREAM_IDLE_ENV);
	if (v && *v) {
		char *end;
		errno = 0;
		c->stream_idle_s = strtol(v, &end, 10);
		if (errno || *end || c->stream_idle_s <= 0 || c->stream_idle_s > 86400)
			return mfs_fail(err, MFS_ERR_CONFIG, STREAM_IDLE_ENV " '%.20s': expected "
					"whole seconds from 1 to 86400 (docs/configuration.md)", v);
	}
	return MFS_OK;
}

/* envd's base URL: E2B_SANDBOX_URL, debug's localhost, or the per-sandbox
 * host, which works on every domain without routing headers. */
char *e2b_envd_base(const struct e2b_conf *c, const char *id, const char *sb_domain)
{
	struct mfs_buf b = MFS_BUF_INIT;
	if (c->sandbox_url)
		return without_trailing_slash(c->sandbox_url);
	if (c->debug)
		return mfs_xstrdup("http://localhost:" ENVD_PORT);
	mfs_buf_addf(&b, "https://" ENVD_PORT "-%s.%s", id,
		     sb_domain && *sb_domain ? sb_domain : c->domain);
	return mfs_buf_detach(&b, NULL);
}

/* ---- HTTP helpers ---- */

void e2b_api_headers(struct mfs_strv *h, const struct e2b_conf *c, bool json)
{
	mfs_strv_pushf(h, "X-API-Key: %s", c->api_key ? c->api_key : "");
	if (json)
		mfs_strv_push(h, "Content-Type: application/json");
	mfs_strv_push(h, "Accept: application/json");
}

void e2b_envd_headers(struct mfs_strv *h, const struct e2b_sandbox *sb)
{
	/* The routing headers matter on a shared host (E2B_SANDBOX_URL); on the
	 * per-sandbox host they are harmless, which is what the SDK relies on. */
	mfs_strv_pushf(h, "E2b-Sandbox-Id: %s", sb->base.id);
	mfs_strv_push(h, "E2b-Sandbox-Port: " ENVD_PORT);
	if (sb->token)
		mfs_strv_pushf(h, "X-Access-Token: %s", sb->token);
	mfs_strv_push(h, ENVD_USER_AUTH);
}

/* The "message" of an E2B error body, else its first line. */
static enum mfs_code body_fail(struct mfs_err *err, const struct mfs_http_req *req,
			       const struct mfs_http_resp *resp)
{
	enum mfs_code rc = mfs_http_status_fail(err, req, resp);
	struct mfs_buf msg = MFS_BUF_INIT;
	if (e2b_answer_message(resp, &msg)) {
		struct mfs_buf where = MFS_BUF_INIT;
		mfs_http_url_for_log(&where, req->url);
		mfs_fail(err, rc, "%s %s: HTTP %ld: %.200s", req->method, where.data,
			 resp->status, msg.data ? msg.data : "");
		mfs_buf_release(&where);
	}
	mfs_buf_release(&msg);
	return rc;
}

/* A control-plane answer: a 401 there is about the user's key. */
enum mfs_code e2b_status_fail(struct mfs_err *err, const struct mfs_http_req *req,
				 const struct mfs_http_resp *resp)
{
	enum mfs_code rc = body_fail(err, req, resp);
	if (resp->status == 401)
		mfs_err_prefix(err, "E2B refused the credentials (check E2B_API_KEY)");
	return rc;
}

/* An envd answer: 502 is the edge saying the sandbox is gone. */
enum mfs_code e2b_envd_status_fail(struct mfs_err *err, const struct e2b_sandbox *sb,
				      const struct mfs_http_req *req,
				      const struct mfs_http_resp *resp)
{
	enum mfs_code rc = body_fail(err, req, resp);
	if (resp->status == 502)
		mfs_err_prefix(err, "E2B sandbox %s is gone (killed or past its lifetime)",
			       sb->base.id);
	/* envd refusing the token the create call handed out is E2B's fault,
	 * not a setting the user can fix: infrastructure, so @retry may help. */
	if (resp->status == 401 || resp->status == 403) {
		mfs_err_prefix(err, "envd of E2B sandbox %s refused its access token", sb->base.id);
		rc = MFS_ERR_BACKEND;
	}
	return rc;
}

/* METHOD /sandboxes/{id} on the control plane (idempotent, so retried);
 * a status not in the 0-terminated `ok` is an error. */
enum mfs_code e2b_sandbox_call(const struct e2b_conf *c, const char *method, const char *id,
				  const long *ok, struct mfs_http_resp *resp, struct mfs_err *err)
{
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT;
	e2b_api_headers(&hdrs, c, false);
	mfs_buf_addf(&url, "%s/sandboxes/", c->api_url);
	mfs_http_urlencode(&url, id, false);
	struct mfs_http_req req = {
		.method = method, .url = url.data, .headers = &hdrs,
		.timeout_ms = API_TIMEOUT_MS, .retries = API_RETRIES,
		.deadline = c->deadline, .cancellable = c->cancellable, .cut_on_second_signal = true,
	};
	enum mfs_code rc = mfs_http_do(&req, resp, err);
	if (rc == MFS_OK) {
		while (*ok && *ok != resp->status)
			ok++;
		if (!*ok)
			rc = e2b_status_fail(err, &req, resp);
	}
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

/* ---- control plane calls ---- */

enum mfs_code e2b_delete_sandbox(const struct e2b_conf *c, const char *id, bool *gone,
				    struct mfs_err *err)
{
	static const long ok[] = { 204, 200, 404, 0 };
	struct mfs_http_resp resp;
	mfs_http_resp_init(&resp);
	enum mfs_code rc = e2b_sandbox_call(c, "DELETE", id, ok, &resp, err);
	if (rc == MFS_OK && gone)
		*gone = resp.status == 404;
	if (rc != MFS_OK)
		mfs_err_prefix(err, "deleting E2B sandbox %s", id);
	mfs_http_resp_release(&resp);
	return rc;
}

enum mfs_code e2b_list_by_metadata(const struct e2b_conf *c, const char *query,
				      mfs_list_fn fn, void *ctx, struct mfs_err *err)
{
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	char *next = NULL;
	int pages = 0;
	enum mfs_code rc = MFS_OK;

	mfs_http_resp_init(&resp);
	e2b_api_headers(&hdrs, c, false);
	do {
		mfs_buf_reset(&url);
		mfs_buf_addf(&url, "%s/v2/sandboxes?state=running%%2Cpaused&limit=100&metadata=",
			     c->api_url);
		mfs_http_urlencode(&url, query, false);
		if (next) {
			mfs_buf_adds(&url, "&nextToken=");
			mfs_http_urlencode(&url, next, false);
		}
		struct mfs_http_req req = {
			.method = "GET", .url = url.data, .headers = &hdrs,
			.timeout_ms = API_TIMEOUT_MS, .retries = API_RETRIES, .deadline = c->deadline,
			.cancellable = c->cancellable, .cut_on_second_signal = true,
		};
		rc = mfs_http_do(&req, &resp, err);
		if (rc != MFS_OK)
			break;
		if (resp.status != 200) {
			rc = e2b_status_fail(err, &req, &resp);
			break;
		}
		char *prev = next;
		rc = e2b_answer_list_page(&resp, fn, ctx, &next, err);
		if (rc == MFS_OK)
			rc = mfs_http_page_check(prev, next, &pages, "GET /v2/sandboxes", err);
		free(prev);
		if (rc != MFS_OK)
			break;
	} while (next);
	free(next);
	mfs_http_resp_release(&resp);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}
