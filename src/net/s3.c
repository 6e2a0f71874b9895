/* s3.c - S3 client on libcurl SigV4 (include/mfs/net/s3.h). */
#include "mfs/net/s3.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mfs/util/clock.h"
#include "mfs/net/http.h"
#include "mfs/util/sha256.h"

#define DEFAULT_PART_SIZE (16u * 1024 * 1024)
#define DEFAULT_PAGE_SIZE 1000
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
	size_t part_size;
	int page_size;
	unsigned long requests;
};

/* ---- configuration ---- */

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* Reads the keys of one [section] (or [alt]) of an AWS INI file into kv;
 * true when the file has that section. */
static bool read_ini_section(const char *path, const char *section, const char *alt,
			     struct mfs_kvlist *kv)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	bool in = false, found = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char *l = trim(line);
		if (*l == '#' || *l == ';' || !*l)
			continue;
		if (*l == '[') {
			char *end = strchr(l, ']');
			if (end)
				*end = '\0';
			char *name = trim(l + 1);
			in = !strcmp(name, section) || (alt && !strcmp(name, alt));
			found |= in;
			continue;
		}
		char *eq = strchr(l, '=');
		if (in && eq) {
			*eq = '\0';
			mfs_kvlist_set(kv, trim(l), trim(eq + 1));
		}
	}
	fclose(f);
	return found;
}

static char *home_file(const char *env, const char *rel)
{
	const char *v = env_nonempty(env), *home = env_nonempty("HOME");
	struct mfs_buf b = MFS_BUF_INIT;
	if (v)
		return mfs_xstrdup(v);
	if (!home)
		return NULL;
	mfs_buf_addf(&b, "%s/%s", home, rel);
	return mfs_buf_detach(&b, NULL);
}

static char *dup_or_null(const char *s)
{
	return s && *s ? mfs_xstrdup(s) : NULL;
}

static void wipe_free(char *s)
{
	if (s) {
		memset(s, 0, strlen(s));
		free(s);
	}
}

void mfs_aws_creds_release(struct mfs_aws_creds *c)
{
	free(c->key_id);
	wipe_free(c->secret);
	wipe_free(c->token);
	free(c->region);
	free(c->profile);
	memset(c, 0, sizeof(*c));
}

enum mfs_code mfs_aws_creds_load(struct mfs_aws_creds *c, struct mfs_err *err)
{
	const char *id = env_nonempty("AWS_ACCESS_KEY_ID");
	const char *secret = env_nonempty("AWS_SECRET_ACCESS_KEY");
	const char *token = env_nonempty("AWS_SESSION_TOKEN");
	const char *named = env_nonempty("AWS_PROFILE");
	const char *profile = named ? named : "default";
	struct mfs_kvlist creds = MFS_KVLIST_INIT, conf = MFS_KVLIST_INIT;
	struct mfs_buf sect = MFS_BUF_INIT;
	char *cred_path = home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
	char *conf_path = home_file("AWS_CONFIG_FILE", ".aws/config");
	bool in_conf = false, in_creds = false;
	enum mfs_code rc = MFS_OK;

	memset(c, 0, sizeof(*c));
	c->profile = mfs_xstrdup(profile);
	if (conf_path) {
		/* The config file names profiles "[profile x]", except [default]. */
		mfs_buf_addf(&sect, "profile %s", profile);
		in_conf = read_ini_section(conf_path, sect.data,
					   !strcmp(profile, "default") ? "default" : NULL, &conf);
		c->region = dup_or_null(mfs_kvlist_get(&conf, "region"));
	}
	/* Explicit keys in the environment win over any profile, as in the SDKs. */
	if (!(id && secret)) {
		if (cred_path)
			in_creds = read_ini_section(cred_path, profile, NULL, &creds);
		id = mfs_kvlist_get(&creds, "aws_access_key_id");
		secret = mfs_kvlist_get(&creds, "aws_secret_access_key");
		token = mfs_kvlist_get(&creds, "aws_session_token");
		if (!id || !secret) {
			id = mfs_kvlist_get(&conf, "aws_access_key_id");
			secret = mfs_kvlist_get(&conf, "aws_secret_access_key");
			token = mfs_kvlist_get(&conf, "aws_session_token");
		}
		c->from_profile = id && secret;
	}
	if (!id || !secret || !*id || !*secret) {
		if (named && !in_creds && !in_conf)
			rc = mfs_fail(err, MFS_ERR_CONFIG,
				      "AWS_PROFILE=%s: no such profile in %s or %s: fix AWS_PROFILE, "
				      "AWS_SHARED_CREDENTIALS_FILE or AWS_CONFIG_FILE (see "
				      "docs/configuration.md)", profile,
				      cred_path ? cred_path : "~/.aws/credentials",
				      conf_path ? conf_path : "~/.aws/config");
		else if (named)
			rc = mfs_fail(err, MFS_ERR_CONFIG,
				      "AWS_PROFILE=%s has no aws_access_key_id and "
				      "aws_secret_access_key (SSO and role profiles are not supported): "
				      "export the keys as AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (see "
				      "docs/configuration.md)", profile);
		else
			rc = mfs_fail(err, MFS_ERR_NOTFOUND,
				      "no S3 credentials: set AWS_ACCESS_KEY_ID and "
				      "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with %s (see "
				      "docs/configuration.md)",
				      cred_path ? cred_path : "~/.aws/credentials");
		goto out;
	}
	c->key_id = mfs_xstrdup(id);
	c->secret = mfs_xstrdup(secret);
	c->token = dup_or_null(token);
out:
	if (rc != MFS_OK)
		mfs_aws_creds_release(c);
	mfs_kvlist_release(&creds);
	mfs_kvlist_release(&conf);
	mfs_buf_release(&sect);
	free(cred_path);
	free(conf_path);
	return rc;
}

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
	const char *endpoint = env_nonempty("METAFLOW_S3_ENDPOINT_URL");
	const char *region = env_nonempty("AWS_REGION");
	const char *style = env_nonempty("MFSANDBOX_S3_ADDRESSING");
	char *profile_region = NULL;
	struct mfs_buf b = MFS_BUF_INIT;
	enum mfs_code rc;

	*out = NULL;
	if (!endpoint)
		endpoint = env_nonempty("AWS_ENDPOINT_URL_S3");
	if (!endpoint)
		endpoint = env_nonempty("AWS_ENDPOINT_URL");
	if (!region)
		region = env_nonempty("AWS_DEFAULT_REGION");
	s3->is_r2 = endpoint && strstr(endpoint, "r2.cloudflarestorage.com");
	s3->part_size = DEFAULT_PART_SIZE;
	s3->page_size = DEFAULT_PAGE_SIZE;

	rc = load_credentials(s3, &profile_region, err);
	if (rc != MFS_OK)
		goto fail;
	if (!region)
		region = profile_region;
	s3->region = mfs_xstrdup(s3->is_r2 ? "auto" : region ? region : "us-east-1");

	if (endpoint) {
		const char *sep = strstr(endpoint, "://");
		if (!sep || (strncmp(endpoint, "http://", 7) && strncmp(endpoint, "https://", 8))) {
			rc = mfs_fail(err, MFS_ERR_CONFIG,
				      "S3 endpoint '%s' is not an http(s) URL: fix "
				      "METAFLOW_S3_ENDPOINT_URL/AWS_ENDPOINT_URL_S3", endpoint);
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
	wipe_free(s3->userpwd);
	wipe_free(s3->token);
	free(s3->sigv4);
	free(s3);
}

void mfs_s3_set_part_size(struct mfs_s3 *s3, size_t bytes)
{
	s3->part_size = bytes ? bytes : DEFAULT_PART_SIZE;
}

void mfs_s3_set_page_size(struct mfs_s3 *s3, int keys)
{
	s3->page_size = keys > 0 ? keys : DEFAULT_PAGE_SIZE;
}

unsigned long mfs_s3_request_count(const struct mfs_s3 *s3)
{
	return s3->requests;
}

const char *mfs_s3_region(const struct mfs_s3 *s3)
{
	return s3->region;
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
static bool xml_slice(const char *xml, size_t *pos, const char *tag, const char **start,
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

	if (!xml_slice(xml, pos, tag, &start, &len))
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

struct s3_call {
	const char *method;
	const char *bucket;
	const char *key;                  /* NULL or "" for bucket-level calls */
	const struct mfs_kvlist *query;
	const void *body;
	size_t body_len;
	const char *content_type;         /* NULL: application/octet-stream */
	const char *out_file;
	bool retry_safe;
};

static void build_url(const struct mfs_s3 *s3, const struct s3_call *c, struct mfs_buf *url)
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

static enum mfs_code s3_send(struct mfs_s3 *s3, const struct s3_call *c, struct mfs_http_resp *resp,
			     struct mfs_err *err)
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
		.aws_sigv4 = s3->sigv4,
		.userpwd = s3->userpwd,
		.retries = HTTP_RETRIES,
		.retry_safe = c->retry_safe,
		.cancellable = true,
	};
	/* 503 SlowDown and resets are retried inside http; S3's 500
	 * InternalError is documented as retryable too. */
	for (int attempt = 0;; attempt++) {
		rc = mfs_http_do(&req, resp, err);
		s3->requests += (unsigned long)resp->attempts;
		if (rc != MFS_OK || resp->status != 500 || attempt >= SERVER_ERROR_RETRIES)
			break;
		mfs_sleep_ms(200L << attempt);
	}
	if (rc != MFS_OK)
		mfs_err_prefix(err, "S3");
	mfs_strv_release(&headers);
	mfs_buf_release(&url);
	return rc;
}

/* One line that says what went wrong and what to change. */
static enum mfs_code s3_fail(const struct mfs_s3 *s3, const struct s3_call *c,
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

static enum mfs_code call(struct mfs_s3 *s3, const struct s3_call *c, struct mfs_http_resp *resp,
			  struct mfs_err *err)
{
	enum mfs_code rc = s3_send(s3, c, resp, err);
	if (rc == MFS_OK && !ok(resp))
		rc = s3_fail(s3, c, resp, err);
	return rc;
}

/* ---- object operations ---- */

enum mfs_code mfs_s3_get_buf(struct mfs_s3 *s3, const char *bucket, const char *key,
			     struct mfs_buf *out, struct mfs_err *err)
{
	struct s3_call c = { .method = "GET", .bucket = bucket, .key = key };
	struct mfs_http_resp resp;
	mfs_http_resp_init(&resp);
	enum mfs_code rc = call(s3, &c, &resp, err);
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

enum mfs_code mfs_s3_get_file(struct mfs_s3 *s3, const char *bucket, const char *key,
			      const char *path, struct mfs_err *err)
{
	struct mfs_buf tmp = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	enum mfs_code rc;

	/* A failed download must not leave a half-written file under path. */
	mfs_buf_addf(&tmp, "%s.part-%ld", path, (long)getpid());
	struct s3_call c = { .method = "GET", .bucket = bucket, .key = key, .out_file = tmp.data };
	mfs_http_resp_init(&resp);
	rc = call(s3, &c, &resp, err);
	if (rc == MFS_OK && rename(tmp.data, path) != 0)
		rc = mfs_fail(err, MFS_ERR_IO, "cannot rename %s to %s: %s", tmp.data, path,
			      strerror(errno));
	if (rc != MFS_OK)
		unlink(tmp.data);
	mfs_http_resp_release(&resp);
	mfs_buf_release(&tmp);
	return rc;
}

enum mfs_code mfs_s3_put_buf(struct mfs_s3 *s3, const char *bucket, const char *key,
			     const void *data, size_t len, struct mfs_err *err)
{
	struct s3_call c = { .method = "PUT", .bucket = bucket, .key = key, .body = data,
			     .body_len = len };
	struct mfs_http_resp resp;
	mfs_http_resp_init(&resp);
	enum mfs_code rc = call(s3, &c, &resp, err);
	mfs_http_resp_release(&resp);
	return rc;
}

enum mfs_code mfs_s3_head(struct mfs_s3 *s3, const char *bucket, const char *key,
			  struct mfs_s3_stat *st, struct mfs_err *err)
{
	struct s3_call c = { .method = "HEAD", .bucket = bucket, .key = key };
	struct mfs_http_resp resp;
	mfs_http_resp_init(&resp);
	enum mfs_code rc = call(s3, &c, &resp, err);
	if (rc == MFS_OK && st) {
		const char *len = mfs_http_header(&resp, "content-length");
		const char *etag = mfs_http_header(&resp, "etag");
		st->size = len ? strtoull(len, NULL, 10) : 0;
		snprintf(st->etag, sizeof(st->etag), "%s", etag ? etag : "");
	}
	mfs_http_resp_release(&resp);
	return rc;
}

enum mfs_code mfs_s3_delete(struct mfs_s3 *s3, const char *bucket, const char *key,
			    struct mfs_err *err)
{
	struct s3_call c = { .method = "DELETE", .bucket = bucket, .key = key };
	struct mfs_http_resp resp;
	mfs_http_resp_init(&resp);
	enum mfs_code rc = call(s3, &c, &resp, err);
	mfs_http_resp_release(&resp);
	return rc;
}

/* ---- multipart upload ---- */

static void abort_upload(struct mfs_s3 *s3, const char *bucket, const char *key,
			 const char *upload_id)
{
	struct mfs_kvlist q = MFS_KVLIST_INIT;
	struct mfs_http_resp resp;
	struct mfs_err ignored;

	/* Best effort: an unaborted upload only costs storage until a lifecycle rule. */
	mfs_kvlist_set(&q, "uploadId", upload_id);
	struct s3_call c = { .method = "DELETE", .bucket = bucket, .key = key, .query = &q };
	mfs_http_resp_init(&resp);
	s3_send(s3, &c, &resp, &ignored);
	mfs_http_resp_release(&resp);
	mfs_kvlist_release(&q);
}

static void xml_escape(struct mfs_buf *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': mfs_buf_adds(out, "&amp;"); break;
		case '<': mfs_buf_adds(out, "&lt;"); break;
		case '>': mfs_buf_adds(out, "&gt;"); break;
		case '"': mfs_buf_adds(out, "&quot;"); break;
		default: mfs_buf_addch(out, *s);
		}
	}
}

static enum mfs_code put_multipart(struct mfs_s3 *s3, const char *bucket, const char *key,
				   FILE *f, const char *path, uint64_t size, struct mfs_err *err)
{
	struct mfs_kvlist q = MFS_KVLIST_INIT;
	struct mfs_buf upload_id = MFS_BUF_INIT, done = MFS_BUF_INIT, num = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	char *part = mfs_xmalloc(s3->part_size);
	enum mfs_code rc;

	mfs_http_resp_init(&resp);
	/* Rule 2: value-less ?uploads is sent as "uploads=". */
	mfs_kvlist_set(&q, "uploads", "");
	struct s3_call c = { .method = "POST", .bucket = bucket, .key = key, .query = &q,
			     .retry_safe = true };
	rc = call(s3, &c, &resp, err);
	if (rc != MFS_OK)
		goto out;
	if (!xml_get(&resp.body, "UploadId", &upload_id) || !upload_id.len) {
		rc = mfs_fail(err, MFS_ERR_PROTOCOL,
			      "S3 POST s3://%s/%s?uploads: no UploadId in the response", bucket, key);
		goto out;
	}

	mfs_buf_adds(&done, "<CompleteMultipartUpload>");
	for (unsigned n = 1; (uint64_t)(n - 1) * s3->part_size < size; n++) {
		size_t got = fread(part, 1, s3->part_size, f);
		if (got == 0 && ferror(f)) {
			rc = mfs_fail(err, MFS_ERR_IO, "cannot read %s: %s", path, strerror(errno));
			goto abort;
		}
		mfs_kvlist_release(&q);
		mfs_buf_reset(&num);
		mfs_buf_addf(&num, "%u", n);
		mfs_kvlist_set(&q, "partNumber", num.data);
		mfs_kvlist_set(&q, "uploadId", upload_id.data);
		struct s3_call pc = { .method = "PUT", .bucket = bucket, .key = key, .query = &q,
				      .body = part, .body_len = got };
		mfs_http_resp_release(&resp);
		rc = call(s3, &pc, &resp, err);
		if (rc != MFS_OK)
			goto abort;
		const char *etag = mfs_http_header(&resp, "etag");
		if (!etag) {
			rc = mfs_fail(err, MFS_ERR_PROTOCOL,
				      "S3 PUT s3://%s/%s part %u: no ETag in the response", bucket,
				      key, n);
			goto abort;
		}
		mfs_buf_addf(&done, "<Part><PartNumber>%u</PartNumber><ETag>", n);
		xml_escape(&done, etag);
		mfs_buf_adds(&done, "</ETag></Part>");
	}
	mfs_buf_adds(&done, "</CompleteMultipartUpload>");

	mfs_kvlist_release(&q);
	mfs_kvlist_set(&q, "uploadId", upload_id.data);
	struct s3_call cc = { .method = "POST", .bucket = bucket, .key = key, .query = &q,
			      .body = done.data, .body_len = done.len, .retry_safe = true,
			      .content_type = "application/xml" };
	mfs_http_resp_release(&resp);
	rc = call(s3, &cc, &resp, err);
	/* Complete can answer 200 and still fail, with an <Error> document. */
	if (rc == MFS_OK && resp.body.data && strstr(resp.body.data, "<Error>")) {
		struct mfs_buf code = MFS_BUF_INIT;
		xml_get(&resp.body, "Code", &code);
		rc = mfs_fail(err, MFS_ERR_BACKEND, "S3 POST s3://%s/%s?uploadId: %s", bucket, key,
			      code.len ? code.data : "completion failed");
		mfs_buf_release(&code);
	}
	if (rc == MFS_OK)
		goto out;
abort:
	abort_upload(s3, bucket, key, upload_id.data);
out:
	mfs_http_resp_release(&resp);
	mfs_kvlist_release(&q);
	mfs_buf_release(&upload_id);
	mfs_buf_release(&done);
	mfs_buf_release(&num);
	free(part);
	return rc;
}

enum mfs_code mfs_s3_put_file(struct mfs_s3 *s3, const char *bucket, const char *key,
			      const char *path, struct mfs_err *err)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	enum mfs_code rc;

	if (!f)
		return mfs_fail(err, MFS_ERR_IO, "cannot read %s: %s", path, strerror(errno));
	if (fstat(fileno(f), &st) != 0) {
		rc = mfs_fail(err, MFS_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
		goto out;
	}
	if ((uint64_t)st.st_size > s3->part_size) {
		rc = put_multipart(s3, bucket, key, f, path, (uint64_t)st.st_size, err);
		goto out;
	}
	/* Small enough to hash in memory: one signed PUT. */
	char *data = mfs_xmalloc((size_t)st.st_size);
	if (fread(data, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		free(data);
		rc = mfs_fail(err, MFS_ERR_IO, "cannot read %s: short read", path);
		goto out;
	}
	rc = mfs_s3_put_buf(s3, bucket, key, data, (size_t)st.st_size, err);
	free(data);
out:
	fclose(f);
	return rc;
}

/* ---- listing ---- */

enum mfs_code mfs_s3_list(struct mfs_s3 *s3, const char *bucket, const char *prefix,
			  bool (*on_key)(void *ctx, const char *key, uint64_t size), void *ctx,
			  struct mfs_err *err)
{
	struct mfs_kvlist q = MFS_KVLIST_INIT;
	struct mfs_buf token = MFS_BUF_INIT, item = MFS_BUF_INIT, k = MFS_BUF_INIT,
		       sz = MFS_BUF_INIT, trunc = MFS_BUF_INIT, pagesz = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	enum mfs_code rc = MFS_OK;

	mfs_http_resp_init(&resp);
	mfs_buf_addf(&pagesz, "%d", s3->page_size);
	for (;;) {
		mfs_kvlist_release(&q);
		mfs_kvlist_set(&q, "list-type", "2");
		mfs_kvlist_set(&q, "max-keys", pagesz.data);
		if (prefix && *prefix)
			mfs_kvlist_set(&q, "prefix", prefix);
		if (token.len)
			mfs_kvlist_set(&q, "continuation-token", token.data);
		struct s3_call c = { .method = "GET", .bucket = bucket, .query = &q };
		mfs_http_resp_release(&resp);
		rc = call(s3, &c, &resp, err);
		if (rc != MFS_OK)
			goto out;
		size_t pos = 0;
		const char *start;
		size_t len;
		while (resp.body.data && xml_slice(resp.body.data, &pos, "Contents", &start, &len)) {
			size_t ip = 0, sp = 0;
			mfs_buf_reset(&item);
			mfs_buf_add(&item, start, len);
			if (!mfs_s3_xml_next(item.data, &ip, "Key", &k))
				continue;
			mfs_s3_xml_next(item.data, &sp, "Size", &sz);
			if (!on_key(ctx, k.data, sz.len ? strtoull(sz.data, NULL, 10) : 0))
				goto out;
		}
		mfs_buf_reset(&token);
		bool more = xml_get(&resp.body, "IsTruncated", &trunc) && !strcmp(trunc.data, "true");
		if (!more || !xml_get(&resp.body, "NextContinuationToken", &token) || !token.len)
			break;
	}
out:
	mfs_http_resp_release(&resp);
	mfs_kvlist_release(&q);
	mfs_buf_release(&token);
	mfs_buf_release(&item);
	mfs_buf_release(&k);
	mfs_buf_release(&sz);
	mfs_buf_release(&trunc);
	mfs_buf_release(&pagesz);
	return rc;
}
