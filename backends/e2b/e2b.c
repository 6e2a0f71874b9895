/*
 * e2b.c - the `e2b` backend: E2B cloud sandboxes.
 *
 * Two services are involved.  The control plane (api.<domain>, X-API-Key)
 * creates, lists and deletes sandboxes; envd, the daemon inside each sandbox
 * (port 49983, X-Access-Token), runs processes over the Connect protocol and
 * moves files over plain HTTP.  Facts and their sources:
 * shared/reference/e2b-api.md; the test double is tests/emulators/e2b.
 *
 * Why the pieces look the way they do:
 * - The environment (which may hold secrets) goes with each Start request,
 *   not into the create call's envVars: the control plane then never stores
 *   it, and `mfsandbox ls` output or E2B's dashboard cannot show it.
 * - The sandbox lifetime is set to the step timeout plus slack: omitting it
 *   gives E2B's 15 s default, and a sandbox that expires mid-step surfaces as
 *   a 502 "sandbox not found" that looks like a network fault.
 * - Create is a POST, so it is never sent twice blindly.  429/503 mean
 *   "nothing was made" and are retried.  After an ambiguous failure (a cut
 *   connection, a 502/504 from the edge) the sandbox is looked up by the
 *   launch's one-off metadata nonce: found, it is adopted (its envd token
 *   comes back from GET /sandboxes/{id}); not found, the create is tried
 *   again.  On the way out (signal, deadline, error) whatever carries the
 *   nonce is deleted, so a half-finished create never leaks a billed sandbox.
 * - A Start stream is declared dead after MFSANDBOX_E2B_STREAM_IDLE_S with
 *   no byte at all, or with keepalives but no start event: we ask envd for
 *   keepalives well inside that bound, so a quiet command never trips it.
 * - Process output arrives as Connect envelopes (flag byte, big-endian
 *   length, JSON) that libcurl splits and merges arbitrarily; we buffer and
 *   parse incrementally, decode base64 and hand bytes on immediately.
 * - A Start stream that ends without the end-stream envelope, or a 502, is
 *   told apart from a network blip by probing envd's /health, which answers
 *   502 once the sandbox is gone.
 */
#include "mfs/backend.h"
#include "mfs/util/buf.h"
#include "mfs/util/cancel.h"
#include "mfs/util/clock.h"
#include "mfs/util/err.h"
#include "mfs/net/http.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define ENVD_PORT          "49983"
#define DEFAULT_TEMPLATE   "base"
#define DEFAULT_DOMAIN     "e2b.app"
#define WORKDIR            "/home/user"
#define ENVD_USER_AUTH     "Authorization: Basic dXNlcjo=" /* "user:" */
#define LIFETIME_SLACK_S   300L   /* create, upload and teardown on top of the step */
#define LIFETIME_PLAN_CAP  3600L  /* E2B's smallest plan caps a lifetime at 1 h */
#define KEEPALIVE_S        50L    /* never 0: envd <= 0.9.0 panics on it */
#define API_TIMEOUT_MS     60000L
#define API_RETRIES        4
#define CREATE_ATTEMPTS    4
#define GRACE_MS           2000
#define MAX_FRAME          (16u << 20)
#define NONCE_KEY          "mfsandbox.e2b.nonce"
#define STREAM_IDLE_S      150L   /* three of the 50 s keepalives */
#define STREAM_IDLE_ENV    "MFSANDBOX_E2B_STREAM_IDLE_S"
#define BASE_SIZE          "2 vCPU, 512 MB"

extern const struct mfs_backend_ops mfs_e2b_ops;

struct e2b_conf {
	const char *api_key;   /* borrowed from the environment */
	char *api_url;         /* no trailing slash */
	char *domain;
	const char *sandbox_url;
	bool debug;
	long stream_idle_s;    /* MFSANDBOX_E2B_STREAM_IDLE_S */
};

struct e2b_sandbox {
	struct mfs_sandbox base;
	char *envd_url;
	char *token;              /* envdAccessToken; NULL when the sandbox is not secure */
	int envd_ver[3];
	struct mfs_kvlist env;    /* spec->env, sent with every Start */
	bool debug;               /* E2B_DEBUG: no control-plane sandbox behind it */
	char *api_url;
	long stream_idle_s;
};

/* ---- configuration ---- */

static void conf_release(struct e2b_conf *c)
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

/* Reads E2B_* exactly as the official SDK does; no network. */
static enum mfs_code conf_load(struct e2b_conf *c, struct mfs_err *err)
{
	const char *v;
	memset(c, 0, sizeof(*c));
	v = getenv("E2B_DEBUG");
	c->debug = v && !strcasecmp(v, "true");
	v = getenv("E2B_API_KEY");
	c->api_key = v && *v ? v : NULL;
	if (!c->api_key && !c->debug)
		return mfs_fail(err, MFS_ERR_CONFIG,
				"E2B_API_KEY is not set: export your E2B API key "
				"(https://e2b.dev/docs/api-key)");
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
static char *envd_base(const struct e2b_conf *c, const char *id, const char *sb_domain)
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

static void parse_version(const char *s, int v[3])
{
	v[0] = v[1] = v[2] = 0;
	for (int i = 0; i < 3 && s && *s; i++) {
		while (*s && !isdigit((unsigned char)*s))
			s++;
		v[i] = (int)strtol(s, (char **)&s, 10);
	}
}

static bool version_at_least(const int v[3], int a, int b, int c)
{
	if (v[0] != a)
		return v[0] > a;
	if (v[1] != b)
		return v[1] > b;
	return v[2] >= c;
}

/* ---- HTTP helpers ---- */

static void api_headers(struct mfs_strv *h, const struct e2b_conf *c, bool json)
{
	mfs_strv_pushf(h, "X-API-Key: %s", c->api_key ? c->api_key : "");
	if (json)
		mfs_strv_push(h, "Content-Type: application/json");
	mfs_strv_push(h, "Accept: application/json");
}

static void envd_headers(struct mfs_strv *h, const struct e2b_sandbox *sb)
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
	json_t *j = json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, NULL);
	const char *msg = json_string_value(json_object_get(j, "message"));
	if (msg) {
		struct mfs_buf where = MFS_BUF_INIT;
		mfs_http_url_for_log(&where, req->url);
		mfs_fail(err, rc, "%s %s: HTTP %ld: %.200s", req->method, where.data,
			 resp->status, msg);
		mfs_buf_release(&where);
	}
	json_decref(j);
	return rc;
}

/* A control-plane answer: a 401 there is about the user's key. */
static enum mfs_code status_fail(struct mfs_err *err, const struct mfs_http_req *req,
				 const struct mfs_http_resp *resp)
{
	enum mfs_code rc = body_fail(err, req, resp);
	if (resp->status == 401)
		mfs_err_prefix(err, "E2B refused the credentials (check E2B_API_KEY)");
	return rc;
}

/* ---- create ---- */

static void random_hex(char *out, size_t nbytes)
{
	unsigned char r[32];
	if (nbytes > sizeof(r))
		nbytes = sizeof(r);
	if (getrandom(r, nbytes, 0) != (ssize_t)nbytes) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		for (size_t i = 0; i < nbytes; i++)
			r[i] = (unsigned char)((ts.tv_nsec >> (i % 4 * 8)) ^ (getpid() >> (i % 2 * 8)) ^ i);
	}
	for (size_t i = 0; i < nbytes; i++)
		sprintf(out + 2 * i, "%02x", r[i]);
}

/* Step timeout plus slack, but a step that fits in the smallest plan's 1 h
 * cap keeps fitting (the slack shrinks instead): the API rejects a longer
 * lifetime outright on that plan. */
static long lifetime_s(const struct mfs_sandbox_spec *spec)
{
	long t = spec->timeout_s;
	if (t <= 0)
		return LIFETIME_PLAN_CAP;
	if (t <= LIFETIME_PLAN_CAP && t + LIFETIME_SLACK_S > LIFETIME_PLAN_CAP)
		return LIFETIME_PLAN_CAP;
	return t + LIFETIME_SLACK_S;
}

static char *create_body(const struct mfs_sandbox_spec *spec, const char *nonce)
{
	json_t *meta = json_object();
	if (spec->labels)
		for (size_t i = 0; i < spec->labels->n; i++)
			json_object_set_new(meta, spec->labels->items[i].key,
					    json_string(spec->labels->items[i].value));
	json_object_set_new(meta, NONCE_KEY, json_string(nonce));
	bool offline = spec->network && !strcmp(spec->network, "none");
	json_t *body = json_pack("{s:s, s:I, s:b, s:b, s:o, s:{}}",
				 "templateID", spec->image && *spec->image ? spec->image : DEFAULT_TEMPLATE,
				 "timeout", (json_int_t)lifetime_s(spec),
				 "secure", 1,
				 "allow_internet_access", !offline,
				 "metadata", meta,
				 "envVars");
	char *s = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!s)
		abort(); /* jansson only fails here on allocation */
	return s;
}

/* METHOD /sandboxes/{id} on the control plane (idempotent, so retried);
 * a status not in the 0-terminated `ok` is an error. */
static enum mfs_code sandbox_call(const struct e2b_conf *c, const char *method, const char *id,
				  const long *ok, struct mfs_http_resp *resp, struct mfs_err *err)
{
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT;
	api_headers(&hdrs, c, false);
	mfs_buf_addf(&url, "%s/sandboxes/", c->api_url);
	mfs_http_urlencode(&url, id, false);
	struct mfs_http_req req = {
		.method = method, .url = url.data, .headers = &hdrs,
		.timeout_ms = API_TIMEOUT_MS, .retries = API_RETRIES,
	};
	enum mfs_code rc = mfs_http_do(&req, resp, err);
	if (rc == MFS_OK) {
		while (*ok && *ok != resp->status)
			ok++;
		if (!*ok)
			rc = status_fail(err, &req, resp);
	}
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

static enum mfs_code delete_sandbox(const struct e2b_conf *c, const char *id, bool *gone,
				    struct mfs_err *err);
static enum mfs_code list_by_metadata(const struct e2b_conf *c, const char *query,
				      mfs_list_fn fn, void *ctx, struct mfs_err *err);

/* Sandboxes carrying this launch's nonce, except `keep`: deleted. */
struct nonce_sweep {
	const struct e2b_conf *conf;
	const char *keep;
	char *first;           /* the first one found, for adoption */
	bool delete;
};

static void nonce_seen(void *ctx, const struct mfs_sandbox_info *info)
{
	struct nonce_sweep *s = ctx;
	struct mfs_err ignored;
	if (!s->delete) {
		if (!s->first)
			s->first = mfs_xstrdup(info->id);
	} else if (!s->keep || strcmp(info->id, s->keep)) {
		delete_sandbox(s->conf, info->id, NULL, &ignored);
	}
}

/* Runs after a signal or a passed deadline too: never cancellable. */
static enum mfs_code visit_nonce(const struct e2b_conf *c, const char *nonce,
				 struct nonce_sweep *s, struct mfs_err *err)
{
	struct mfs_buf q = MFS_BUF_INIT;
	mfs_buf_addf(&q, NONCE_KEY "=%s", nonce);
	enum mfs_code rc = list_by_metadata(c, q.data, nonce_seen, s, err);
	mfs_buf_release(&q);
	return rc;
}

static void sweep_nonce(const struct e2b_conf *c, const char *nonce, const char *keep)
{
	struct nonce_sweep s = { .conf = c, .keep = keep, .delete = true };
	struct mfs_err ignored;
	visit_nonce(c, nonce, &s, &ignored);
}

static bool backoff(int attempt)
{
	return mfs_cancel_sleep_ms(500L << attempt);
}

/* A Sandbox (201) or SandboxDetail (GET) answer: both carry the id, the
 * envd version and token, and the domain. */
static enum mfs_code parse_sandbox(const struct e2b_conf *c, const struct mfs_http_resp *resp,
				   struct e2b_sandbox *sb, struct mfs_err *err)
{
	json_t *j = json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, NULL);
	const char *id = json_string_value(json_object_get(j, "sandboxID"));
	const char *ver = json_string_value(json_object_get(j, "envdVersion"));
	const char *tok = json_string_value(json_object_get(j, "envdAccessToken"));
	const char *dom = json_string_value(json_object_get(j, "domain"));
	enum mfs_code rc = MFS_OK;

	if (!id || !*id || !ver) {
		rc = mfs_fail(err, MFS_ERR_PROTOCOL, "E2B answered HTTP %ld without "
			      "sandboxID/envdVersion", resp->status);
		goto out;
	}
	sb->base.id = mfs_xstrdup(id);
	parse_version(ver, sb->envd_ver);
	sb->token = tok ? mfs_xstrdup(tok) : NULL;
	sb->envd_url = envd_base(c, id, dom);
out:
	json_decref(j);
	return rc;
}

/* Takes over the sandbox a create whose answer was lost made. */
static enum mfs_code adopt(const struct e2b_conf *c, const char *id, struct e2b_sandbox *sb,
			   struct mfs_err *err)
{
	static const long ok[] = { 200, 0 };
	struct mfs_http_resp resp;
	mfs_http_resp_init(&resp);
	enum mfs_code rc = sandbox_call(c, "GET", id, ok, &resp, err);
	if (rc == MFS_OK)
		rc = parse_sandbox(c, &resp, sb, err);
	if (rc != MFS_OK)
		mfs_err_prefix(err, "taking over E2B sandbox %s after a lost create answer", id);
	mfs_http_resp_release(&resp);
	return rc;
}

/* POST /sandboxes without ever keeping two: see the file comment.  On
 * failure the caller sweeps the nonce. */
static enum mfs_code post_create(const struct e2b_conf *c, const struct mfs_sandbox_spec *spec,
				 const char *nonce, struct e2b_sandbox *sb, bool *ambiguous_seen,
				 struct mfs_err *err)
{
	const char *template = spec->image && *spec->image ? spec->image : DEFAULT_TEMPLATE;
	long deadline = spec->create_timeout_s > 0 ? mfs_now_ms() + spec->create_timeout_s * 1000 : 0;
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	char *body = create_body(spec, nonce);
	enum mfs_code rc;

	mfs_http_resp_init(&resp);
	api_headers(&hdrs, c, true);
	mfs_buf_addf(&url, "%s/sandboxes", c->api_url);
	struct mfs_http_req req = {
		.method = "POST", .url = url.data, .headers = &hdrs,
		.body = body, .body_len = strlen(body), .cancellable = true,
	};
	for (int attempt = 0;; attempt++) {
		req.timeout_ms = API_TIMEOUT_MS * 3;
		if (deadline && deadline - mfs_now_ms() < req.timeout_ms)
			req.timeout_ms = deadline - mfs_now_ms() > 1 ? deadline - mfs_now_ms() : 1;
		rc = mfs_http_do(&req, &resp, err);
		if (rc == MFS_ERR_CANCELLED)
			break;
		if (rc == MFS_ERR_HTTP && deadline && mfs_now_ms() >= deadline) {
			rc = mfs_fail(err, MFS_ERR_TIMEOUT, "the E2B sandbox (template %s) was not "
				      "created within --timeout %lds", template, spec->create_timeout_s);
			break;
		}
		if (rc != MFS_OK && rc != MFS_ERR_HTTP)
			break;
		if (rc == MFS_OK && resp.status == 201) {
			rc = parse_sandbox(c, &resp, sb, err);
			break;
		}
		/* The request may have made a sandbox: find it before trying again. */
		if (rc == MFS_ERR_HTTP || resp.status == 502 || resp.status == 504) {
			struct nonce_sweep s = { .conf = c };
			struct mfs_err lookup_err;
			*ambiguous_seen = true;
			if (visit_nonce(c, nonce, &s, &lookup_err) != MFS_OK) {
				if (rc == MFS_OK)
					rc = status_fail(err, &req, &resp);
				break; /* unknown: creating again could make a second one */
			}
			if (s.first) {
				rc = adopt(c, s.first, sb, err);
				free(s.first);
				break;
			}
		} else if (resp.status != 429 && resp.status != 503) {
			rc = status_fail(err, &req, &resp); /* refused: nothing was made */
			break;
		}
		if (attempt + 1 >= CREATE_ATTEMPTS) {
			if (rc == MFS_OK)
				rc = status_fail(err, &req, &resp);
			break;
		}
		if (!backoff(attempt)) {
			rc = mfs_fail(err, MFS_ERR_CANCELLED, "cancelled while creating the E2B sandbox");
			break;
		}
		if (deadline && mfs_now_ms() >= deadline) {
			rc = mfs_fail(err, MFS_ERR_TIMEOUT, "the E2B sandbox (template %s) was not "
				      "created within --timeout %lds", template, spec->create_timeout_s);
			break;
		}
	}
	if (rc != MFS_OK && rc != MFS_ERR_CANCELLED && rc != MFS_ERR_TIMEOUT)
		mfs_err_prefix(err, "creating the E2B sandbox (template %s)", template);
	free(body);
	mfs_http_resp_release(&resp);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

static void sandbox_free(struct e2b_sandbox *sb)
{
	if (!sb)
		return;
	free(sb->base.id);
	free(sb->base.workdir);
	free(sb->envd_url);
	if (sb->token) {
		memset(sb->token, 0, strlen(sb->token));
		free(sb->token);
	}
	mfs_kvlist_release(&sb->env);
	free(sb->api_url);
	free(sb);
}

/* E2B has no GPUs and sizes a sandbox by its template: a GPU request
 * cannot be met at all (a usage error), a size only approximately (one
 * line saying so, once per sandbox). */
static enum mfs_code check_size(const struct mfs_sandbox_spec *spec, struct mfs_err *err)
{
	if (spec->gpu && *spec->gpu)
		return mfs_fail(err, MFS_ERR_USAGE, "E2B sandboxes have no GPUs: drop --gpu (or "
				"the step's gpu=) or choose another --backend");
	if (!spec->quiet && (spec->cpu > 0 || spec->memory_mb > 0 || spec->disk_gb > 0)) {
		struct mfs_buf b = MFS_BUF_INIT;
		if (spec->image && *spec->image)
			mfs_buf_addf(&b, "mfsandbox: e2b: --cpu, --memory and --disk are not applied: "
				     "template %s decides the sandbox size\n", spec->image);
		else
			mfs_buf_adds(&b, "mfsandbox: e2b: --cpu, --memory and --disk are not applied: "
				     "the default template " DEFAULT_TEMPLATE " has " BASE_SIZE
				     "; pass --image with a template built to the size you need\n");
		if (write(STDERR_FILENO, b.data, b.len) < 0) {
			/* nowhere left to report it */
		}
		mfs_buf_release(&b);
	}
	return MFS_OK;
}

static enum mfs_code e2b_create(const struct mfs_sandbox_spec *spec, struct mfs_sandbox **out,
				struct mfs_err *err)
{
	struct e2b_conf c;
	struct e2b_sandbox *sb = NULL;
	char nonce[33];
	bool ambiguous = false;
	enum mfs_code rc;

	*out = NULL;
	rc = conf_load(&c, err);
	if (rc == MFS_OK)
		rc = check_size(spec, err);
	if (rc != MFS_OK)
		goto out;

	sb = mfs_xcalloc(1, sizeof(*sb));
	sb->base.ops = &mfs_e2b_ops;
	sb->base.workdir = mfs_xstrdup(WORKDIR);
	sb->api_url = mfs_xstrdup(c.api_url);
	sb->stream_idle_s = c.stream_idle_s;
	mfs_kvlist_init(&sb->env);
	if (spec->env)
		for (size_t i = 0; i < spec->env->n; i++)
			mfs_kvlist_set(&sb->env, spec->env->items[i].key, spec->env->items[i].value);

	if (c.debug) {
		/* What the SDK does in debug mode: a local envd, no control plane. */
		sb->debug = true;
		sb->base.id = mfs_xstrdup("debug_sandbox_id");
		parse_version("99.99.99", sb->envd_ver);
		sb->envd_url = envd_base(&c, sb->base.id, NULL);
		goto done;
	}

	random_hex(nonce, 16);
	rc = post_create(&c, spec, nonce, sb, &ambiguous, err);
	if (rc != MFS_OK) {
		/* A cut line, a signal or the deadline may have left one behind. */
		sweep_nonce(&c, nonce, NULL);
		goto out;
	}
	/* A create we retried may have landed twice after all: keep ours only. */
	if (ambiguous)
		sweep_nonce(&c, nonce, sb->base.id);
done:
	*out = &sb->base;
	sb = NULL;
	rc = MFS_OK;
out:
	sandbox_free(sb);
	conf_release(&c);
	return rc;
}

/* ---- destroy / kill / list ---- */

static enum mfs_code delete_sandbox(const struct e2b_conf *c, const char *id, bool *gone,
				    struct mfs_err *err)
{
	static const long ok[] = { 204, 200, 404, 0 };
	struct mfs_http_resp resp;
	mfs_http_resp_init(&resp);
	enum mfs_code rc = sandbox_call(c, "DELETE", id, ok, &resp, err);
	if (rc == MFS_OK && gone)
		*gone = resp.status == 404;
	if (rc != MFS_OK)
		mfs_err_prefix(err, "deleting E2B sandbox %s", id);
	mfs_http_resp_release(&resp);
	return rc;
}

static enum mfs_code e2b_destroy(struct mfs_sandbox *base, struct mfs_err *err)
{
	struct e2b_sandbox *sb = (struct e2b_sandbox *)base;
	struct e2b_conf c;
	enum mfs_code rc = MFS_OK;

	if (!sb)
		return MFS_OK;
	if (!sb->debug) {
		rc = conf_load(&c, err);
		if (rc == MFS_OK) {
			/* The URL the sandbox was made through, even if env changed. */
			free(c.api_url);
			c.api_url = mfs_xstrdup(sb->api_url);
			rc = delete_sandbox(&c, sb->base.id, NULL, err);
		}
		conf_release(&c);
	}
	sandbox_free(sb);
	return rc;
}

static enum mfs_code e2b_kill(const char *id, struct mfs_err *err)
{
	struct e2b_conf c;
	bool gone = false;
	enum mfs_code rc = conf_load(&c, err);
	if (rc == MFS_OK)
		rc = delete_sandbox(&c, id, &gone, err);
	if (rc == MFS_OK && gone)
		rc = mfs_fail(err, MFS_ERR_NOTFOUND, "E2B sandbox %s does not exist (already gone)",
			      id);
	conf_release(&c);
	return rc;
}

static time_t parse_iso8601(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return timegm(&tm);
}

static enum mfs_code list_by_metadata(const struct e2b_conf *c, const char *query,
				      mfs_list_fn fn, void *ctx, struct mfs_err *err)
{
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	char *next = NULL;
	enum mfs_code rc = MFS_OK;

	mfs_http_resp_init(&resp);
	api_headers(&hdrs, c, false);
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
			.timeout_ms = API_TIMEOUT_MS, .retries = API_RETRIES,
		};
		rc = mfs_http_do(&req, &resp, err);
		if (rc != MFS_OK)
			break;
		if (resp.status != 200) {
			rc = status_fail(err, &req, &resp);
			break;
		}
		json_t *arr = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
		if (!json_is_array(arr)) {
			json_decref(arr);
			rc = mfs_fail(err, MFS_ERR_PROTOCOL, "GET /v2/sandboxes: not a JSON array");
			break;
		}
		size_t i;
		json_t *row;
		json_array_foreach(arr, i, row) {
			struct mfs_kvlist labels = MFS_KVLIST_INIT;
			const char *k;
			json_t *v;
			json_object_foreach(json_object_get(row, "metadata"), k, v)
				if (json_is_string(v))
					mfs_kvlist_set(&labels, k, json_string_value(v));
			struct mfs_sandbox_info info = {
				.id = json_string_value(json_object_get(row, "sandboxID")),
				.state = json_string_value(json_object_get(row, "state")),
				.labels = &labels,
				.created = parse_iso8601(json_string_value(
					json_object_get(row, "startedAt"))),
			};
			if (info.id)
				fn(ctx, &info);
			mfs_kvlist_release(&labels);
		}
		json_decref(arr);
		free(next);
		next = NULL;
		const char *nt = mfs_http_header(&resp, "x-next-token");
		if (nt && *nt)
			next = mfs_xstrdup(nt);
	} while (next);
	free(next);
	mfs_http_resp_release(&resp);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

static enum mfs_code e2b_list(mfs_list_fn fn, void *ctx, struct mfs_err *err)
{
	struct e2b_conf c;
	enum mfs_code rc = conf_load(&c, err);
	if (rc == MFS_OK && c.debug)
		rc = mfs_fail(err, MFS_ERR_UNSUPPORTED, "E2B_DEBUG=true has no control plane to list");
	if (rc == MFS_OK)
		rc = list_by_metadata(&c, MFS_LABEL_OWNER "=1", fn, ctx, err);
	conf_release(&c);
	return rc;
}

/* ---- files ---- */

static void files_url(struct mfs_buf *url, const struct e2b_sandbox *sb, const char *remote)
{
	mfs_buf_addf(url, "%s/files?path=", sb->envd_url);
	if (remote[0] == '/') {
		mfs_http_urlencode(url, remote, true);
	} else {
		struct mfs_buf p = MFS_BUF_INIT;
		mfs_buf_addf(&p, "%s/%s", sb->base.workdir, remote);
		mfs_http_urlencode(url, p.data, true);
		mfs_buf_release(&p);
	}
	mfs_buf_adds(url, "&username=user");
}

static enum mfs_code envd_status_fail(struct mfs_err *err, const struct e2b_sandbox *sb,
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

/* multipart/form-data with one part named "file": what envd < 0.5.7 takes. */
static enum mfs_code multipart_body(const char *local, struct mfs_buf *body,
				    struct mfs_strv *hdrs, struct mfs_err *err)
{
	char boundary[40] = "mfsandbox-";
	char chunk[65536];
	size_t n;
	FILE *f = fopen(local, "rb");
	if (!f)
		return mfs_fail(err, MFS_ERR_IO, "cannot read %s: %s", local, strerror(errno));
	random_hex(boundary + 10, 12);
	mfs_buf_addf(body, "--%s\r\nContent-Disposition: form-data; name=\"file\"; "
		     "filename=\"upload\"\r\nContent-Type: application/octet-stream\r\n\r\n",
		     boundary);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		mfs_buf_add(body, chunk, n);
	bool bad = ferror(f);
	fclose(f);
	if (bad)
		return mfs_fail(err, MFS_ERR_IO, "cannot read %s", local);
	mfs_buf_addf(body, "\r\n--%s--\r\n", boundary);
	mfs_strv_pushf(hdrs, "Content-Type: multipart/form-data; boundary=%s", boundary);
	return MFS_OK;
}

static enum mfs_code e2b_upload(struct mfs_sandbox *base, const char *local_path,
				const char *remote_path, struct mfs_err *err)
{
	struct e2b_sandbox *sb = (struct e2b_sandbox *)base;
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT, body = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	enum mfs_code rc = MFS_OK;

	mfs_http_resp_init(&resp);
	envd_headers(&hdrs, sb);
	files_url(&url, sb, remote_path);
	/* Overwriting a file is idempotent, so the POST may be retried. */
	struct mfs_http_req req = {
		.method = "POST", .url = url.data, .headers = &hdrs,
		.timeout_ms = 0, .retries = API_RETRIES, .retry_safe = true, .cancellable = true,
	};
	if (version_at_least(sb->envd_ver, 0, 5, 7)) {
		mfs_strv_push(&hdrs, "Content-Type: application/octet-stream");
		req.body_file = local_path;
	} else {
		rc = multipart_body(local_path, &body, &hdrs, err);
		if (rc != MFS_OK)
			goto out;
		req.body = body.data;
		req.body_len = body.len;
	}
	rc = mfs_http_do(&req, &resp, err);
	if (rc == MFS_OK && resp.status != 200)
		rc = envd_status_fail(err, sb, &req, &resp);
out:
	if (rc != MFS_OK)
		mfs_err_prefix(err, "uploading %s to %s", local_path, remote_path);
	mfs_http_resp_release(&resp);
	mfs_buf_release(&body);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

static enum mfs_code e2b_download(struct mfs_sandbox *base, const char *remote_path,
				  const char *local_path, struct mfs_err *err)
{
	struct e2b_sandbox *sb = (struct e2b_sandbox *)base;
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	enum mfs_code rc;

	mfs_http_resp_init(&resp);
	envd_headers(&hdrs, sb);
	files_url(&url, sb, remote_path);
	struct mfs_http_req req = {
		.method = "GET", .url = url.data, .headers = &hdrs, .out_file = local_path,
		.retries = API_RETRIES, .cancellable = true,
	};
	rc = mfs_http_do(&req, &resp, err);
	if (rc == MFS_OK && resp.status != 200)
		rc = envd_status_fail(err, sb, &req, &resp);
	if (rc != MFS_OK)
		mfs_err_prefix(err, "downloading %s", remote_path);
	mfs_http_resp_release(&resp);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

/* ---- exec: process.Process/Start over Connect ---- */

struct stream {
	const struct mfs_io *io;
	struct mfs_buf pending;    /* bytes of an incomplete envelope */
	struct mfs_buf decoded;
	long pid;
	bool started, ended, end_stream;
	int exit_code;             /* from the end event; a missing exitCode is 0 */
	char *signal_name;         /* "killed" from status "signal: killed" */
	char *error_code;          /* end-stream error */
	char *error_msg;
	char *protocol_error;
	long began_ms;             /* when the request went out */
	long last_frame_ms;        /* when the last whole frame arrived */
	long idle_ms;              /* no start event by began_ms + this: stalled */
	bool stalled;
};

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* Standard base64 (padding optional); false on a foreign byte. */
static bool b64_decode(const char *s, struct mfs_buf *out)
{
	uint32_t acc = 0;
	int bits = 0;
	mfs_buf_reset(out);
	for (; *s && *s != '='; s++) {
		int v = b64_value((unsigned char)*s);
		if (v < 0)
			return false;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			mfs_buf_addch(out, (char)((acc >> bits) & 0xff));
		}
	}
	return true;
}

static void stream_fail(struct stream *st, const char *what)
{
	if (!st->protocol_error)
		st->protocol_error = mfs_xstrdup(what);
}

static void handle_event(struct stream *st, json_t *ev)
{
	json_t *x;
	if ((x = json_object_get(ev, "start"))) {
		st->started = true;
		st->pid = (long)json_integer_value(json_object_get(x, "pid"));
	} else if ((x = json_object_get(ev, "data"))) {
		const char *names[] = { "stdout", "stderr" };
		enum mfs_stream ids[] = { MFS_STDOUT, MFS_STDERR };
		for (int i = 0; i < 2; i++) {
			const char *b64 = json_string_value(json_object_get(x, names[i]));
			if (!b64)
				continue;
			if (!b64_decode(b64, &st->decoded)) {
				stream_fail(st, "envd sent output that is not base64");
				return;
			}
			if (st->decoded.len && st->io && st->io->write)
				st->io->write(st->io->ctx, ids[i], st->decoded.data, st->decoded.len);
		}
	} else if ((x = json_object_get(ev, "end"))) {
		const char *status = json_string_value(json_object_get(x, "status"));
		st->ended = true;
		st->exit_code = (int)json_integer_value(json_object_get(x, "exitCode"));
		if (status && !strncmp(status, "signal: ", 8))
			st->signal_name = mfs_xstrdup(status + 8);
	}
	/* keepalive, and event kinds we do not know: nothing to do */
}

static void handle_message(struct stream *st, unsigned flags, const char *p, size_t n)
{
	json_error_t jerr;
	json_t *j = json_loadb(p, n, 0, &jerr);
	if (!json_is_object(j)) {
		stream_fail(st, "envd sent a frame that is not a JSON object");
	} else if (flags & 0x02) {
		json_t *e = json_object_get(j, "error");
		st->end_stream = true;
		if (e) {
			const char *code = json_string_value(json_object_get(e, "code"));
			const char *msg = json_string_value(json_object_get(e, "message"));
			st->error_code = mfs_xstrdup(code ? code : "unknown");
			st->error_msg = mfs_xstrdup(msg ? msg : "");
		}
	} else if (!json_is_object(json_object_get(j, "event"))) {
		stream_fail(st, "envd sent a frame without an event");
	} else {
		handle_event(st, json_object_get(j, "event"));
	}
	json_decref(j);
}

/* Called by the HTTP client per received chunk: frames may be split or merged. */
static bool on_stream_data(void *ctx, const char *data, size_t len)
{
	struct stream *st = ctx;
	size_t off = 0;
	mfs_buf_add(&st->pending, data, len);
	while (st->pending.len - off >= 5 && !st->protocol_error) {
		const unsigned char *h = (const unsigned char *)st->pending.data + off;
		uint32_t n = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
		if (h[0] & 0x01) {
			stream_fail(st, "envd sent a compressed frame we did not ask for");
			break;
		}
		if (n > MAX_FRAME) {
			stream_fail(st, "envd sent an oversized frame");
			break;
		}
		if (st->pending.len - off < 5 + (size_t)n)
			break;
		if (st->end_stream) {
			stream_fail(st, "envd sent frames after the end of the stream");
			break;
		}
		handle_message(st, h[0], (const char *)h + 5, n);
		st->last_frame_ms = mfs_now_ms();
		off += 5 + n;
	}
	/* Keepalives but never a start event: envd took the request and is
	 * not running it.  (A quiet command after its start is fine.) */
	if (!st->started && !st->end_stream && mfs_now_ms() - st->began_ms >= st->idle_ms) {
		st->stalled = true;
		return false;
	}
	if (off) {
		memmove(st->pending.data, st->pending.data + off, st->pending.len - off);
		st->pending.len -= off;
		st->pending.data[st->pending.len] = '\0';
	}
	return st->protocol_error == NULL;
}

static void stream_release(struct stream *st)
{
	mfs_buf_release(&st->pending);
	mfs_buf_release(&st->decoded);
	free(st->signal_name);
	free(st->error_code);
	free(st->error_msg);
	free(st->protocol_error);
}

/* Go's names for the signals a process is likely to die of. */
static int signal_number(const char *name)
{
	static const struct { const char *name; int no; } tab[] = {
		{ "hangup", 1 }, { "interrupt", 2 }, { "quit", 3 }, { "illegal instruction", 4 },
		{ "aborted", 6 }, { "bus error", 7 }, { "floating point exception", 8 },
		{ "killed", 9 }, { "segmentation fault", 11 }, { "broken pipe", 13 },
		{ "alarm clock", 14 }, { "terminated", 15 },
	};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (!strcmp(name, tab[i].name))
			return tab[i].no;
	return 0;
}

static void add_json_body_frame(struct mfs_buf *out, json_t *msg)
{
	char *s = json_dumps(msg, JSON_COMPACT);
	if (!s)
		abort();
	size_t n = strlen(s);
	unsigned char prefix[5] = { 0, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
				    (unsigned char)(n >> 8), (unsigned char)n };
	mfs_buf_add(out, prefix, 5);
	mfs_buf_add(out, s, n);
	free(s);
}

/* Unary SendSignal; "not_found" means the process is already gone. */
static enum mfs_code send_signal(struct e2b_sandbox *sb, long pid, const char *sig,
				 struct mfs_err *err)
{
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	enum mfs_code rc;
	json_t *msg = json_pack("{s:{s:I}, s:s}", "process", "pid", (json_int_t)pid, "signal", sig);
	char *body = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);

	mfs_http_resp_init(&resp);
	envd_headers(&hdrs, sb);
	mfs_strv_push(&hdrs, "Content-Type: application/json");
	mfs_strv_push(&hdrs, "Connect-Protocol-Version: 1");
	mfs_buf_addf(&url, "%s/process.Process/SendSignal", sb->envd_url);
	struct mfs_http_req req = {
		.method = "POST", .url = url.data, .headers = &hdrs,
		.body = body, .body_len = body ? strlen(body) : 0,
		.timeout_ms = API_TIMEOUT_MS, .retries = 2, .retry_safe = true,
	};
	rc = mfs_http_do(&req, &resp, err);
	if (rc == MFS_OK && resp.status != 200 && resp.status != 404)
		rc = envd_status_fail(err, sb, &req, &resp);
	free(body);
	mfs_http_resp_release(&resp);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

/* Is envd still there?  502 from /health means the sandbox is gone. */
static bool sandbox_gone(struct e2b_sandbox *sb)
{
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	struct mfs_err ignored;
	mfs_http_resp_init(&resp);
	envd_headers(&hdrs, sb);
	mfs_buf_addf(&url, "%s/health", sb->envd_url);
	struct mfs_http_req req = { .method = "GET", .url = url.data, .headers = &hdrs,
				    .timeout_ms = 10000 };
	bool gone = mfs_http_do(&req, &resp, &ignored) == MFS_OK && resp.status == 502;
	mfs_http_resp_release(&resp);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return gone;
}

static char *start_body(const struct e2b_sandbox *sb, const struct mfs_exec_req *r,
			size_t *len)
{
	json_t *args = json_array(), *envs = json_object();
	struct mfs_buf out = MFS_BUF_INIT;
	for (size_t i = 1; r->argv[0] && r->argv[i]; i++)
		json_array_append_new(args, json_string(r->argv[i]));
	for (size_t i = 0; i < sb->env.n; i++)
		json_object_set_new(envs, sb->env.items[i].key, json_string(sb->env.items[i].value));
	if (r->env)
		for (size_t i = 0; i < r->env->n; i++)
			json_object_set_new(envs, r->env->items[i].key,
					    json_string(r->env->items[i].value));
	json_t *msg = json_pack("{s:{s:s, s:o, s:o, s:s}}", "process", "cmd", r->argv[0],
				"args", args, "envs", envs,
				"cwd", r->cwd ? r->cwd : sb->base.workdir);
	/* stdin exists from envd 0.3.0; absent means an open pipe (tools hang). */
	if (version_at_least(sb->envd_ver, 0, 3, 0))
		json_object_set_new(msg, "stdin", json_false());
	add_json_body_frame(&out, msg);
	json_decref(msg);
	return mfs_buf_detach(&out, len);
}

static enum mfs_code e2b_exec(struct mfs_sandbox *base, const struct mfs_exec_req *r,
			      const struct mfs_io *io, int *status, struct mfs_err *err)
{
	struct e2b_sandbox *sb = (struct e2b_sandbox *)base;
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	struct stream st = { .io = io, .idle_ms = sb->stream_idle_s * 1000 };
	/* Keepalives come well inside the idle bound, so silence means death. */
	long keepalive_s = sb->stream_idle_s / 3 < KEEPALIVE_S ? sb->stream_idle_s / 3 : KEEPALIVE_S;
	size_t body_len = 0;
	char *body = NULL;
	enum mfs_code rc;

	*status = -1;
	if (!r->argv || !r->argv[0])
		return mfs_fail(err, MFS_ERR_USAGE, "nothing to run");
	mfs_http_resp_init(&resp);
	body = start_body(sb, r, &body_len);
	envd_headers(&hdrs, sb);
	mfs_strv_push(&hdrs, "Content-Type: application/connect+json");
	mfs_strv_push(&hdrs, "Connect-Protocol-Version: 1");
	mfs_strv_pushf(&hdrs, "Keepalive-Ping-Interval: %ld", keepalive_s > 0 ? keepalive_s : 1);
	/* envd bounds the process by this deadline; "0" would mean "already
	 * expired", so the header is left out when there is no limit. */
	if (r->timeout_s > 0)
		mfs_strv_pushf(&hdrs, "Connect-Timeout-Ms: %ld", r->timeout_s * 1000L);
	mfs_buf_addf(&url, "%s/process.Process/Start", sb->envd_url);
	struct mfs_http_req req = {
		.method = "POST", .url = url.data, .headers = &hdrs,
		.body = body, .body_len = body_len,
		.on_data = on_stream_data, .on_data_ctx = &st,
		/* A backstop in case envd never ends the stream after its deadline. */
		.timeout_ms = r->timeout_s > 0 ? (r->timeout_s + 60) * 1000L : 0,
		.idle_timeout_ms = st.idle_ms,
		.cancellable = true,
	};
	time_t began = time(NULL);
	st.began_ms = st.last_frame_ms = mfs_now_ms();
	rc = mfs_http_do(&req, &resp, err);

	if (rc == MFS_ERR_CANCELLED || (rc == MFS_OK && mfs_cancelled())) {
		struct mfs_err ignored;
		if (st.pid > 0) {
			int signo = mfs_cancel_signal();
			send_signal(sb, st.pid, signo == SIGINT || signo == SIGTERM || signo == 0
				    ? "SIGNAL_SIGTERM" : "SIGNAL_SIGKILL", &ignored);
			mfs_sleep_ms(GRACE_MS);
			send_signal(sb, st.pid, "SIGNAL_SIGKILL", &ignored);
		}
		rc = mfs_fail(err, MFS_ERR_CANCELLED, "cancelled; the E2B process was signalled");
		goto out;
	}
	if (st.protocol_error) {
		rc = mfs_fail(err, MFS_ERR_PROTOCOL, "process.Process/Start: %s", st.protocol_error);
		goto out;
	}
	if (rc == MFS_ERR_HTTP && r->timeout_s > 0 && st.started && !st.ended &&
	    time(NULL) - began >= r->timeout_s + 60) {
		rc = mfs_fail(err, MFS_ERR_TIMEOUT, "the command outlived its %lds timeout "
			      "and envd did not end the stream", r->timeout_s);
		goto out;
	}
	if (st.stalled || (rc == MFS_ERR_HTTP && mfs_now_ms() - st.last_frame_ms >= st.idle_ms)) {
		struct mfs_err ignored;
		bool gone = sandbox_gone(sb);
		if (st.pid > 0 && !gone)
			send_signal(sb, st.pid, "SIGNAL_SIGKILL", &ignored);
		if (gone)
			rc = mfs_fail(err, MFS_ERR_BACKEND, "E2B sandbox %s disappeared while the "
				      "command ran (killed, or past its lifetime)", sb->base.id);
		else
			rc = mfs_fail(err, MFS_ERR_BACKEND, "envd %s for %ld s; gave up on the "
				      "stream (bound: " STREAM_IDLE_ENV ")", st.stalled
				      ? "sent only keepalives and never started the command"
				      : "sent nothing, not even a keepalive", sb->stream_idle_s);
		goto out;
	}
	if (rc != MFS_OK || (resp.status == 200 && !st.end_stream)) {
		if (sandbox_gone(sb))
			rc = mfs_fail(err, MFS_ERR_BACKEND,
				      "E2B sandbox %s disappeared while the command ran (killed, "
				      "or past its lifetime)", sb->base.id);
		else if (rc == MFS_OK)
			rc = mfs_fail(err, MFS_ERR_PROTOCOL,
				      "process.Process/Start: the stream ended without its "
				      "end-of-stream frame");
		goto out;
	}
	if (resp.status != 200) {
		rc = envd_status_fail(err, sb, &req, &resp);
		goto out;
	}
	if (st.error_code) {
		if (!strcmp(st.error_code, "deadline_exceeded"))
			rc = mfs_fail(err, MFS_ERR_TIMEOUT, "the command ran past its %lds timeout "
				      "and was killed", r->timeout_s);
		else
			rc = mfs_fail(err, MFS_ERR_BACKEND, "envd: %s: %.300s", st.error_code,
				      st.error_msg);
		goto out;
	}
	if (!st.started || !st.ended) {
		rc = mfs_fail(err, MFS_ERR_PROTOCOL, "process.Process/Start: the stream %s",
			      st.started ? "has no end event" : "has no start event");
		goto out;
	}
	if (st.signal_name) {
		int no = signal_number(st.signal_name);
		*status = no ? 128 + no : 255;
	} else {
		*status = st.exit_code & 0xff;
	}
	rc = MFS_OK;
out:
	stream_release(&st);
	free(body);
	mfs_http_resp_release(&resp);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

/* ---- probe / describe ---- */

static enum mfs_code e2b_probe(struct mfs_buf *notes, struct mfs_err *err)
{
	struct e2b_conf c;
	enum mfs_code rc = conf_load(&c, err);
	if (rc == MFS_OK && notes) {
		mfs_buf_adds(notes, "sandbox size comes from the template (--image, default "
			     DEFAULT_TEMPLATE ", " BASE_SIZE "): --cpu, --memory and --disk are "
			     "not applied; --gpu is refused (E2B has no GPUs)\n");
		if (c.debug)
			mfs_buf_adds(notes, "E2B_DEBUG=true: envd on localhost:" ENVD_PORT
				     ", no control plane\n");
	}
	conf_release(&c);
	return rc;
}

static void e2b_describe(const struct mfs_sandbox *base, struct mfs_buf *out)
{
	const struct e2b_sandbox *sb = (const struct e2b_sandbox *)base;
	mfs_buf_addf(out, "E2B sandbox %s (envd %s); connect with: e2b sandbox connect %s\n",
		     sb->base.id, sb->envd_url, sb->base.id);
}

const struct mfs_backend_ops mfs_e2b_ops = {
	.name = "e2b",
	.summary = "E2B cloud sandboxes (Firecracker microVMs; needs E2B_API_KEY)",
	/* CPU/MEMORY: not enforced, but create says so itself in one line that
	 * names the template, instead of the executor's line per flag. */
	.caps = MFS_CAP_CPU | MFS_CAP_MEMORY | MFS_CAP_IMAGE | MFS_CAP_NETWORK |
		MFS_CAP_STREAM | MFS_CAP_DOWNLOAD | MFS_CAP_LIST,
	.probe = e2b_probe,
	.create = e2b_create,
	.upload = e2b_upload,
	.download = e2b_download,
	.exec = e2b_exec,
	.destroy = e2b_destroy,
	.list = e2b_list,
	.kill = e2b_kill,
	.describe = e2b_describe,
};
