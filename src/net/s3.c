/* s3.c - S3 client on libcurl SigV4 (include/mfs/net/s3.h).  The product
 * reads objects only (the relay); writing, listing and multipart live with
 * the test tool that uses them (tests/tools/s3tool.c) over mfs_s3_call. */
#include "mfs/net/s3.h"

#include "mfs/net/aws_creds.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mfs/util/cancel.h"
#include "mfs/util/clock.h"
#include "mfs/net/http.h"
#include "mfs/util/sha256.h"
#include "mfs/util/env.h"

#define HTTP_RETRIES 4
#define SERVER_ERROR_RETRIES 3
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct mfs_s3 {
	char *scheme;     /* "https://" */
	char *host;       /* "s3.us-east-1.amazonaws.com" or "127.0.0.1:9000" */
	char *region;
	char *key_id;     /* shown in errors; not a secret */
	char *userpwd;    /* "id:secret": secret */
	char *token;      /* x-amz-security-token header line, or NULL: secret */
	char *sigv4;
	bool path_style;
	bool is_r2;
	unsigned long requests;
	double deadline;  /* 0: none */
};

/* ---- configuration ---- */

static enum mfs_code load_credentials(struct mfs_s3 *s3, char **profile_region,
				      struct mfs_err *err)
{
	struct mfs_aws_creds c;
	struct mfs_buf b = MFS_BUF_INIT;
	enum mfs_code rc = mfs_aws_creds_load(&c, err);

	if (rc == MFS_ERR_NOTFOUND)
		err->code = rc = MFS_ERR_CONFIG;
	if (rc != MFS_OK)
		return rc;
	*profile_region = c.region;
	c.region = NULL;
	s3->key_id = mfs_xstrdup(c.key_id);
	mfs_buf_addf(&b, "%s:%s", c.key_id, c.secret);
	s3->userpwd = mfs_buf_detach(&b, NULL);
	/* R2 rejects STS session tokens outright. */
	if (c.token && !s3->is_r2) {
		mfs_buf_addf(&b, "x-amz-security-token: %s", c.token);
		s3->token = mfs_buf_detach(&b, NULL);
	}
	mfs_aws_creds_release(&c);
	return MFS_OK;
}

enum mfs_code mfs_s3_open(struct mfs_s3 **out, struct mfs_err *err)
{
	struct mfs_s3 *s3 = mfs_xcalloc(1, sizeof(*s3));
	const char *endpoint = mfs_env_nonempty("METAFLOW_S3_ENDPOINT_URL");
	const char *region = mfs_env_nonempty("AWS_REGION");
	const char *style = mfs_env_nonempty("MFSANDBOX_S3_ADDRESSING");
	char *profile_region = NULL;
	struct mfs_buf b = MFS_BUF_INIT;
	enum mfs_code rc;

	*out = NULL;
	if (!endpoint)
		endpoint = mfs_env_nonempty("AWS_ENDPOINT_URL_S3");
	if (!endpoint)
		endpoint = mfs_env_nonempty("AWS_ENDPOINT_URL");
	if (!region)
		region = mfs_env_nonempty("AWS_DEFAULT_REGION");
	s3->is_r2 = endpoint && strstr(endpoint, "r2.cloudflarestorage.com");

	rc = load_credentials(s3, &profile_region, err);
	if (rc != MFS_OK)
		goto fail;
	if (!region)
		region = profile_region;
	s3->region = mfs_xstrdup(s3->is_r2 ? "auto" : region ? region : "us-east-1");

	if (endpoint) {
		const char *sep = strstr(endpoint, "://");
		if (!sep || !mfs_http_url_ok(endpoint)) {
			rc = mfs_fail(err, MFS_ERR_CONFIG,
				      "S3 endpoint '%s' is not an http(s) URL (or holds a space or "
				      "line break): fix METAFLOW_S3_ENDPOINT_URL/AWS_ENDPOINT_URL_S3",
				      endpoint);
			goto fail;
		}
		s3->scheme = mfs_xstrndup(endpoint, (size_t)(sep + 3 - endpoint));
		const char *host = sep + 3;
		s3->host = mfs_xstrndup(host, strcspn(host, "/?#"));
		s3->path_style = true;
	} else {
		s3->scheme = mfs_xstrdup("https://");
		mfs_buf_addf(&b, "s3.%s.amazonaws.com", s3->region);
		s3->host = mfs_buf_detach(&b, NULL);
	}
	if (style && !strcmp(style, "path"))
		s3->path_style = true;
	else if (style && !strcmp(style, "virtual"))
		s3->path_style = false;
	else if (style) {
		rc = mfs_fail(err, MFS_ERR_CONFIG,
			      "MFSANDBOX_S3_ADDRESSING must be 'path' or 'virtual', not '%s'", style);
		goto fail;
	}
	mfs_buf_addf(&b, "aws:amz:%s:s3", s3->region);
	s3->sigv4 = mfs_buf_detach(&b, NULL);
	free(profile_region);
	*out = s3;
	return MFS_OK;
fail:
	free(profile_region);
	mfs_s3_close(s3);
	return rc;
}

void mfs_s3_close(struct mfs_s3 *s3)
{
	if (!s3)
		return;
	free(s3->scheme);
	free(s3->host);
	free(s3->region);
	free(s3->key_id);
	/* The secret should not outlive the client in freed heap. */
	mfs_wipe_free(s3->userpwd);
	mfs_wipe_free(s3->token);
	free(s3->sigv4);
	free(s3);
}

void mfs_s3_set_deadline(struct mfs_s3 *s3, double deadline)
{
	s3->deadline = deadline;
}

unsigned long mfs_s3_request_count(const struct mfs_s3 *s3)
{
	return s3->requests;
}

enum mfs_code mfs_s3_parse_url(const char *url, char **bucket, char **key, struct mfs_err *err)
{
	*bucket = *key = NULL;
	if (strncmp(url, "s3://", 5) != 0 || !url[5] || url[5] == '/')
		return mfs_fail(err, MFS_ERR_CONFIG, "'%s' is not an s3://bucket/key URL", url);
	const char *b = url + 5;
	size_t n = strcspn(b, "/");
	*bucket = mfs_xstrndup(b, n);
	*key = mfs_xstrdup(b[n] ? b + n + 1 : "");
	return MFS_OK;
}

/* ---- query strings and XML ---- */

static int kv_cmp(const void *a, const void *b)
{
	return strcmp(((const struct mfs_kv *)a)->key, ((const struct mfs_kv *)b)->key);
}

void mfs_s3_query(struct mfs_buf *out, const struct mfs_kvlist *params)
{
	if (!params || !params->n)
		return;
	struct mfs_kv *sorted = mfs_xmalloc(params->n * sizeof(*sorted));
	memcpy(sorted, params->items, params->n * sizeof(*sorted));
	qsort(sorted, params->n, sizeof(*sorted), kv_cmp);
	for (size_t i = 0; i < params->n; i++) {
		if (i)
			mfs_buf_addch(out, '&');
		mfs_http_urlencode(out, sorted[i].key, false);
		mfs_buf_addch(out, '=');
		mfs_http_urlencode(out, sorted[i].value, false);
	}
	free(sorted);
}

static void add_utf8(struct mfs_buf *out, unsigned long cp)
{
	if (cp < 0x80) {
		mfs_buf_addch(out, (char)cp);
	} else if (cp < 0x800) {
		mfs_buf_addch(out, (char)(0xc0 | (cp >> 6)));
		mfs_buf_addch(out, (char)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		mfs_buf_addch(out, (char)(0xe0 | (cp >> 12)));
		mfs_buf_addch(out, (char)(0x80 | ((cp >> 6) & 0x3f)));
		mfs_buf_addch(out, (char)(0x80 | (cp & 0x3f)));
	} else {
		mfs_buf_addch(out, (char)(0xf0 | (cp >> 18)));
		mfs_buf_addch(out, (char)(0x80 | ((cp >> 12) & 0x3f)));
		mfs_buf_addch(out, (char)(0x80 | ((cp >> 6) & 0x3f)));
		mfs_buf_addch(out, (char)(0x80 | (cp & 0x3f)));
	}
}

static void xml_unescape(struct mfs_buf *out, const char *s, size_t n)
{
	static const struct { const char *ent; char c; } ents[] = {
		{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' }, { "&apos;", '\'' },
	};
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '&') {
			mfs_buf_addch(out, s[i]);
			continue;
		}
		bool done = false;
		for (size_t e = 0; e < sizeof(ents) / sizeof(ents[0]) && !done; e++) {
			size_t l = strlen(ents[e].ent);
			if (i + l <= n && !strncmp(s + i, ents[e].ent, l)) {
				mfs_buf_addch(out, ents[e].c);
				i += l - 1;
				done = true;
			}
		}
		if (!done && i + 2 < n && s[i + 1] == '#') {
			char *end;
			bool hex = s[i + 2] == 'x';
			unsigned long cp = strtoul(s + i + 2 + hex, &end, hex ? 16 : 10);
			if (end < s + n && *end == ';') {
				add_utf8(out, cp);
				i = (size_t)(end - s);
				done = true;
			}
		}
		if (!done)
			mfs_buf_addch(out, '&');
	}
}

/* Raw bytes between <tag> and </tag> after *pos; advances *pos past it. */
bool mfs_s3_xml_slice(const char *xml, size_t *pos, const char *tag, const char **start,
		      size_t *len)
{
	struct mfs_buf open = MFS_BUF_INIT, close = MFS_BUF_INIT;
	bool found = false;

	mfs_buf_addf(&open, "<%s>", tag);
	mfs_buf_addf(&close, "</%s>", tag);
	const char *a = strstr(xml + *pos, open.data);
	const char *b = a ? strstr(a + open.len, close.data) : NULL;
	if (a && b) {
		*start = a + open.len;
		*len = (size_t)(b - *start);
		*pos = (size_t)(b - xml) + close.len;
		found = true;
	}
	mfs_buf_release(&open);
	mfs_buf_release(&close);
	return found;
}

bool mfs_s3_xml_next(const char *xml, size_t *pos, const char *tag, struct mfs_buf *out)
{
	const char *start;
	size_t len;

	if (!mfs_s3_xml_slice(xml, pos, tag, &start, &len))
		return false;
	mfs_buf_reset(out);
	mfs_buf_grow(out, 0);
	out->data[out->len] = '\0';
	xml_unescape(out, start, len);
	return true;
}

static bool xml_get(const struct mfs_buf *doc, const char *tag, struct mfs_buf *out)
{
	size_t pos = 0;
	return doc->data && mfs_s3_xml_next(doc->data, &pos, tag, out);
}

/* ---- requests ---- */


static void build_url(const struct mfs_s3 *s3, const struct mfs_s3_call *c, struct mfs_buf *url)
{
	/* Dotted bucket names break TLS for virtual hosts; use path-style. */
	bool path = s3->path_style || strchr(c->bucket, '.');
	mfs_buf_adds(url, s3->scheme);
	if (path) {
		mfs_buf_adds(url, s3->host);
		mfs_buf_addch(url, '/');
		mfs_http_urlencode(url, c->bucket, false);
	} else {
		mfs_buf_addf(url, "%s.%s", c->bucket, s3->host);
	}
	mfs_buf_addch(url, '/');
	if (c->key)
		mfs_http_urlencode(url, c->key, true);
	if (c->query && c->query->n) {
		mfs_buf_addch(url, '?');
		mfs_s3_query(url, c->query);
	}
}

enum mfs_code mfs_s3_send(struct mfs_s3 *s3, const struct mfs_s3_call *c,
			  struct mfs_http_resp *resp, struct mfs_err *err)
{
	struct mfs_buf url = MFS_BUF_INIT;
	struct mfs_strv headers = MFS_STRV_INIT;
	char hash[65];
	enum mfs_code rc = MFS_OK;

	build_url(s3, c, &url);
	/* Rule 1: libcurl 7.88 does not add the payload hash itself. */
	if (c->body_len)
		mfs_sha256_hex(c->body, c->body_len, hash);
	else
		memcpy(hash, EMPTY_SHA256, sizeof(hash));
	mfs_strv_pushf(&headers, "x-amz-content-sha256: %s", hash);
	if (s3->token)
		mfs_strv_push(&headers, s3->token);
	/* Otherwise libcurl labels in-memory bodies as form data, and S3 keeps
	 * that as the object's Content-Type. */
	if (c->body || !strcmp(c->method, "PUT"))
		mfs_strv_pushf(&headers, "Content-Type: %s",
			       c->content_type ? c->content_type : "application/octet-stream");

	struct mfs_http_req req = {
		.method = c->method,
		.url = url.data,
		.headers = &headers,
		.body = c->body,
		.body_len = c->body_len,
		.out_file = c->out_file,
		.max_body = c->max_body,
		.aws_sigv4 = s3->sigv4,
		.userpwd = s3->userpwd,
		.retries = HTTP_RETRIES,
		.retry_safe = c->retry_safe,
		.cancellable = true,
		.deadline = s3->deadline,
		.timeout_ms = s3->deadline > 0 ? MFS_S3_REQUEST_TIMEOUT_MS : 0,
	};
	/* 503 SlowDown and resets are retried inside http; S3's 500
	 * InternalError is documented as retryable too. */
	for (int attempt = 0;; attempt++) {
		rc = mfs_http_do(&req, resp, err);
		s3->requests += (unsigned long)resp->attempts;
		if (rc != MFS_OK || resp->status != 500 || attempt >= SERVER_ERROR_RETRIES)
			break;
		long wait = 200L << attempt;
		/* The 500 stands when the wait would pass the deadline or a signal
		 * cuts it. */
		if (s3->deadline > 0 && mfs_now_s() + (double)wait / 1000 >= s3->deadline)
			break;
		if (!mfs_cancel_sleep_ms(wait))
			break;
	}
	if (rc != MFS_OK)
		mfs_err_prefix(err, "S3");
	mfs_strv_release(&headers);
	mfs_buf_release(&url);
	return rc;
}

/* One line that says what went wrong and what to change. */
static enum mfs_code s3_fail(const struct mfs_s3 *s3, const struct mfs_s3_call *c,
			     const struct mfs_http_resp *resp, struct mfs_err *err)
{
	struct mfs_buf code = MFS_BUF_INIT, msg = MFS_BUF_INIT, region = MFS_BUF_INIT,
		       what = MFS_BUF_INIT;
	const char *hdr_region = mfs_http_header(resp, "x-amz-bucket-region");
	enum mfs_code rc;
	long st = resp->status;

	mfs_buf_addf(&what, "S3 %s s3://%s/%s", c->method, c->bucket, c->key ? c->key : "");
	xml_get(&resp->body, "Code", &code);
	xml_get(&resp->body, "Message", &msg);
	if (!xml_get(&resp->body, "Region", &region) && hdr_region)
		mfs_buf_adds(&region, hdr_region);

	if ((st == 301 || st == 307 || st == 400) && region.len &&
	    strcmp(region.data, s3->region) != 0) {
		rc = mfs_fail(err, MFS_ERR_CONFIG,
			      "%s: bucket %s is in region %s, not %s: set AWS_REGION=%s", what.data,
			      c->bucket, region.data, s3->region, region.data);
	} else if (st == 301) {
		rc = mfs_fail(err, MFS_ERR_CONFIG,
			      "%s: bucket %s is in another region than %s: set AWS_REGION to its "
			      "region", what.data, c->bucket, s3->region);
	} else if (st == 401 || st == 403) {
		rc = mfs_fail(err, MFS_ERR_AUTH,
			      "%s: access denied%s%s%s for access key %s on bucket %s: check "
			      "AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN or AWS_PROFILE and the bucket "
			      "policy", what.data, code.len ? " (" : "", code.len ? code.data : "",
			      code.len ? ")" : "", s3->key_id, c->bucket);
	} else if (st == 404 && code.len && !strcmp(code.data, "NoSuchBucket")) {
		rc = mfs_fail(err, MFS_ERR_NOTFOUND,
			      "%s: bucket %s does not exist at %s%s: check the datastore root "
			      "(METAFLOW_DATASTORE_SYSROOT_S3) and METAFLOW_S3_ENDPOINT_URL", what.data,
			      c->bucket, s3->scheme, s3->host);
	} else if (st == 404) {
		rc = mfs_fail(err, MFS_ERR_NOTFOUND, "%s: no such key", what.data);
	} else {
		rc = mfs_fail(err, MFS_ERR_BACKEND, "%s: HTTP %ld%s%s%s%s", what.data, st,
			      code.len ? " " : "", code.len ? code.data : "", msg.len ? ": " : "",
			      msg.len ? msg.data : "");
	}
	mfs_buf_release(&code);
	mfs_buf_release(&msg);
	mfs_buf_release(&region);
	mfs_buf_release(&what);
	return rc;
}

static bool ok(const struct mfs_http_resp *resp)
{
	return resp->status >= 200 && resp->status < 300;
}

enum mfs_code mfs_s3_call(struct mfs_s3 *s3, const struct mfs_s3_call *c,
			  struct mfs_http_resp *resp, struct mfs_err *err)
{
	enum mfs_code rc = mfs_s3_send(s3, c, resp, err);
	if (rc == MFS_OK && !ok(resp))
		rc = s3_fail(s3, c, resp, err);
	return rc;
}

/* ---- object operations ---- */

enum mfs_code mfs_s3_get_buf(struct mfs_s3 *s3, const char *bucket, const char *key,
			     size_t max, struct mfs_buf *out, struct mfs_err *err)
{
	struct mfs_s3_call c = { .method = "GET", .bucket = bucket, .key = key, .max_body = max };
	struct mfs_http_resp resp;
	mfs_http_resp_init(&resp);
	enum mfs_code rc = mfs_s3_call(s3, &c, &resp, err);
	if (rc == MFS_OK) {
		mfs_buf_release(out);
		*out = resp.body;
		mfs_buf_init(&resp.body);
		if (!out->data)
			mfs_buf_grow(out, 0), out->data[0] = '\0';
	}
	mfs_http_resp_release(&resp);
	return rc;
}

