/*
 * daytona.c - the `daytona` backend: Daytona cloud sandboxes.
 *
 * Two services are involved.  The main API ({DAYTONA_API_URL}/sandbox...)
 * creates, lists and deletes sandboxes; the toolbox, reached through the
 * proxy at {toolboxProxyUrl}/{sandboxId}, moves files and runs processes.
 * Both take the same Authorization header.  Facts and their sources:
 * shared/reference/daytona-api.md; the test double is tests/emulators/daytona.
 *
 * Why the pieces look the way they do:
 * - Without --image the sandbox comes from the default snapshot, the warm
 *   pool's fast path.  A snapshot fixes the size, and the API refuses
 *   cpu/memory/disk with one, so those flags apply only with --image (a
 *   build from `FROM <image>`); without it daytona_caps_for tells the
 *   executor, which warns or refuses.  The environment never goes into the create call either (it
 *   would miss the warm pool, and the API would store secrets): each command
 *   gets it through a script uploaded next to it, which removes itself.
 *   Without env the script goes inline in the command (one request less).
 * - autoStopInterval + autoDeleteInterval 0 make an orphan (launcher killed
 *   with SIGKILL) stop after idling and then delete itself.
 * - Create is a POST that may make a sandbox even when its answer is lost.
 *   Every create carries a one-off nonce label; after an ambiguous failure
 *   (transport error, 502/503/504) we look the nonce up before trying again,
 *   so a lost response never yields two sandboxes.  429 means nothing was
 *   made and is retried after Retry-After.
 * - The step runs as an async session command: synchronous calls die at the
 *   proxy's idle timeout on long steps.  Output comes from polling the
 *   command's log with X-Daytona-Split-Output, which keeps the daemon's
 *   per-line stdout/stderr markers so the two streams stay apart.  The poll
 *   interval starts at 20 ms and backs off to 150 ms while the command is
 *   quiet, which keeps a line's median wait under 100 ms, and to 500 ms
 *   once it has been silent for 10 s.
 */
#include "mfs/backend.h"
#include "mfs/util/buf.h"
#include "mfs/util/cancel.h"
#include "mfs/util/clock.h"
#include "mfs/util/err.h"
#include "mfs/net/http.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#define DEFAULT_API_URL    "https://app.daytona.io/api"
#define WORKDIR            "/home/daytona"
#define NONCE_KEY          "mfsandbox.nonce"
#define SNAPSHOT_CPU       1.0      /* daytona-small, the usual default snapshot */
#define SNAPSHOT_MEMORY_MB 1024L
#define SNAPSHOT_DISK_GB   3L
#define AUTO_STOP_MIN      15
#define API_TIMEOUT_MS     60000L
#define CREATE_TIMEOUT_MS  90000L   /* the server waits up to 30 s for "started" */
#define API_RETRIES        4
#define CREATE_ATTEMPTS    5        /* after ambiguous failures */
#define THROTTLE_WAIT_S    600.0    /* how long 429s on create are waited out */
#define START_WAIT_S       120.0    /* snapshot sandboxes */
#define BUILD_WAIT_S       1800.0   /* --image builds */
#define DELETE_WAIT_S      120.0    /* 409 "state change in progress" */
#define POLL_MIN_MS        20L
#define POLL_MAX_MS        150L
#define POLL_IDLE_MAX_MS   500L     /* after POLL_IDLE_S without a line */
#define POLL_IDLE_S        10.0
#define OUT_MARK           "\x01\x01\x01"
#define ERR_MARK           "\x02\x02\x02"

extern const struct mfs_backend_ops mfs_daytona_ops;

struct dt_conf {
	const char *token;     /* API key or JWT; borrowed from the environment */
	const char *org;       /* with a JWT only */
	char *api_url;         /* no trailing slash */
	const char *target;
};

struct dt_sandbox {
	struct mfs_sandbox base;
	struct dt_conf conf;   /* api_url owned; the rest borrowed from the environment */
	char *toolbox;         /* {toolboxProxyUrl}/{id} */
	struct mfs_kvlist env; /* spec->env, sent with every command */
	unsigned seq;
	/* The session commands run in, opened by the first exec and kept for
	 * the next: deleting the sandbox ends it, so a finished command costs
	 * no DELETE.  Deleted (and reopened later) only to kill a command. */
	char sid[40];
	bool session;
	double deadline;       /* --timeout as a mfs_now_s() time (0: none), for uploads */
};

/* ---- small helpers ---- */

/* Milliseconds until deadline (an absolute mfs_now_s() time; 0: none), at most
 * cap and at least 1 (0 would mean "no timeout" to the HTTP layer). */
static long ms_until(double deadline, long cap)
{
	if (deadline <= 0)
		return cap;
	double left = (deadline - mfs_now_s()) * 1000;
	return left >= cap ? cap : left >= 1 ? (long)left : 1;
}

static bool passed(double deadline)
{
	return deadline > 0 && mfs_now_s() >= deadline;
}

/* Sleeps ms; false once cancellation arrived (when honour_cancel). */
static bool nap(long ms, bool honour_cancel)
{
	if (honour_cancel)
		return mfs_cancel_sleep_ms(ms);
	mfs_sleep_ms(ms);
	return true;
}

static void random_hex(char *out, size_t nbytes)
{
	unsigned char r[16];
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

/* One line on stderr in one write, so it does not interleave with output. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	struct mfs_buf b = MFS_BUF_INIT;
	va_list ap;
	mfs_buf_adds(&b, "mfsandbox: ");
	va_start(ap, fmt);
	mfs_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	if (write(STDERR_FILENO, b.data, b.len) < 0) {
		/* nowhere left to report it */
	}
	mfs_buf_release(&b);
}

static json_t *body_json(const struct mfs_http_resp *resp)
{
	return json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, NULL);
}

/* ---- configuration ---- */

static void conf_release(struct dt_conf *c)
{
	free(c->api_url);
	memset(c, 0, sizeof(*c));
}

/* Reads DAYTONA_* as the official SDK does; no network. */
static enum mfs_code conf_load(struct dt_conf *c, struct mfs_err *err)
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
	v = getenv("DAYTONA_API_URL");
	if (!v || !*v)
		v = getenv("DAYTONA_SERVER_URL"); /* the SDK's deprecated name */
	if (!v || !*v)
		v = DEFAULT_API_URL;
	size_t n = strlen(v);
	while (n && v[n - 1] == '/')
		n--;
	c->api_url = mfs_xstrndup(v, n);
	v = getenv("DAYTONA_TARGET");
	c->target = v && *v ? v : NULL;
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
static enum mfs_code status_fail(struct mfs_err *err, const struct mfs_http_req *req,
				 const struct mfs_http_resp *resp)
{
	enum mfs_code rc = mfs_http_status_fail(err, req, resp);
	json_t *j = body_json(resp), *m = json_object_get(j, "message");
	struct mfs_buf msg = MFS_BUF_INIT;
	if (json_is_string(m)) {
		mfs_buf_adds(&msg, json_string_value(m));
	} else if (json_is_array(m)) {
		size_t i;
		json_t *x;
		json_array_foreach(m, i, x)
			if (json_is_string(x))
				mfs_buf_addf(&msg, "%s%s", i ? ", " : "", json_string_value(x));
	}
	if (msg.len) {
		struct mfs_buf where = MFS_BUF_INIT;
		mfs_http_url_for_log(&where, req->url);
		mfs_fail(err, rc, "%s %s: HTTP %ld: %.250s", req->method, where.data,
			 resp->status, msg.data);
		mfs_buf_release(&where);
	}
	mfs_buf_release(&msg);
	json_decref(j);
	if (resp->status == 401 || resp->status == 403)
		mfs_err_prefix(err, "Daytona refused the credentials (check DAYTONA_API_KEY, or "
			       "DAYTONA_JWT_TOKEN and DAYTONA_ORGANIZATION_ID)");
	return rc;
}

/* One main-API call.  path is appended to the API URL as given. */
static enum mfs_code api_call(const struct dt_conf *c, const char *method, const char *path,
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
	};
	return mfs_http_do(req_out, resp, err);
}

/* ---- delete / kill / list ---- */

/* DELETE with 409 (a transition is pending) retried; *gone when 404. */
static enum mfs_code delete_sandbox(const struct dt_conf *c, const char *id, bool *gone,
				    struct mfs_err *err)
{
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT, path = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	struct mfs_http_req req;
	double until = mfs_now_s() + DELETE_WAIT_S;
	enum mfs_code rc;
	long wait = 200;

	mfs_http_resp_init(&resp);
	mfs_buf_adds(&path, "/sandbox/");
	mfs_http_urlencode(&path, id, false);
	if (gone)
		*gone = false;
	for (;;) {
		mfs_strv_release(&hdrs);
		/* Not cancellable: this runs on the way out of a cancelled run. */
		rc = api_call(c, "DELETE", path.data, NULL, API_RETRIES, API_TIMEOUT_MS, false,
			      &req, &resp, &url, &hdrs, err);
		if (rc != MFS_OK)
			break;
		if (resp.status == 404) {
			if (gone)
				*gone = true;
			break;
		}
		if (resp.status == 409 && mfs_now_s() < until) {
			nap(wait, false);
			wait = wait * 2 > 2000 ? 2000 : wait * 2;
			continue;
		}
		if (resp.status != 200 && resp.status != 204)
			rc = status_fail(err, &req, &resp);
		break;
	}
	if (rc != MFS_OK)
		mfs_err_prefix(err, "deleting Daytona sandbox %s", id);
	mfs_http_resp_release(&resp);
	mfs_buf_release(&path);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
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

/* Every sandbox whose labels include key=value, page by page.  Not
 * cancellable when it looks for a sandbox to clean up after a signal. */
static enum mfs_code list_by_label(const struct dt_conf *c, const char *key, const char *value,
				   bool cancellable, mfs_list_fn fn, void *ctx,
				   struct mfs_err *err)
{
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT, path = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	struct mfs_http_req req;
	char *cursor = NULL;
	enum mfs_code rc = MFS_OK;
	json_t *want = json_pack("{s:s}", key, value);
	char *want_s = json_dumps(want, JSON_COMPACT);
	json_decref(want);
	if (!want_s)
		abort(); /* jansson fails here only on allocation */

	mfs_http_resp_init(&resp);
	do {
		mfs_buf_reset(&path);
		mfs_buf_adds(&path, "/sandbox?limit=100&labels=");
		mfs_http_urlencode(&path, want_s, false);
		if (cursor) {
			mfs_buf_adds(&path, "&cursor=");
			mfs_http_urlencode(&path, cursor, false);
		}
		mfs_strv_release(&hdrs);
		rc = api_call(c, "GET", path.data, NULL, API_RETRIES, API_TIMEOUT_MS, cancellable,
			      &req, &resp, &url, &hdrs, err);
		if (rc != MFS_OK)
			break;
		if (resp.status != 200) {
			rc = status_fail(err, &req, &resp);
			break;
		}
		json_t *j = body_json(&resp), *items = json_object_get(j, "items");
		if (!json_is_array(items)) {
			json_decref(j);
			rc = mfs_fail(err, MFS_ERR_PROTOCOL, "GET /sandbox: no \"items\" array");
			break;
		}
		size_t i;
		json_t *row;
		json_array_foreach(items, i, row) {
			struct mfs_kvlist labels = MFS_KVLIST_INIT;
			const char *k;
			json_t *v;
			json_object_foreach(json_object_get(row, "labels"), k, v)
				if (json_is_string(v))
					mfs_kvlist_set(&labels, k, json_string_value(v));
			struct mfs_sandbox_info info = {
				.id = json_string_value(json_object_get(row, "id")),
				.state = json_string_value(json_object_get(row, "state")),
				.labels = &labels,
				.created = parse_iso8601(json_string_value(
					json_object_get(row, "createdAt"))),
			};
			/* Filtered here too: an API that ignored the filter must
			 * not make us touch sandboxes that are not ours. */
			const char *have = mfs_kvlist_get(&labels, key);
			if (info.id && have && !strcmp(have, value) &&
			    (!info.state || (strcmp(info.state, "destroyed") &&
					     strcmp(info.state, "destroying"))))
				fn(ctx, &info);
			mfs_kvlist_release(&labels);
		}
		free(cursor);
		cursor = NULL;
		const char *nc = json_string_value(json_object_get(j, "nextCursor"));
		if (nc && *nc)
			cursor = mfs_xstrdup(nc);
		json_decref(j);
	} while (cursor);
	free(cursor);
	free(want_s);
	mfs_http_resp_release(&resp);
	mfs_buf_release(&path);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

static enum mfs_code daytona_list(mfs_list_fn fn, void *ctx, struct mfs_err *err)
{
	struct dt_conf c;
	enum mfs_code rc = conf_load(&c, err);
	if (rc == MFS_OK)
		rc = list_by_label(&c, MFS_LABEL_OWNER, "1", true, fn, ctx, err);
	conf_release(&c);
	return rc;
}

static enum mfs_code daytona_kill(const char *id, struct mfs_err *err)
{
	struct dt_conf c;
	bool gone = false;
	enum mfs_code rc = conf_load(&c, err);
	if (rc == MFS_OK)
		rc = delete_sandbox(&c, id, &gone, err);
	if (rc == MFS_OK && gone)
		rc = mfs_fail(err, MFS_ERR_NOTFOUND, "Daytona sandbox %s does not exist (already gone)",
			      id);
	conf_release(&c);
	return rc;
}

/* ---- create ---- */

static void sandbox_free(struct dt_sandbox *sb)
{
	if (!sb)
		return;
	free(sb->base.id);
	free(sb->base.workdir);
	free(sb->toolbox);
	mfs_kvlist_release(&sb->env);
	conf_release(&sb->conf);
	free(sb);
}

/* --cpu 1.5 asks for 2: Daytona sizes in whole vCPUs (no libm for ceil). */
static json_int_t whole_cpus(double cpu)
{
	json_int_t n = (json_int_t)cpu;
	return (double)n < cpu ? n + 1 : n;
}

static char *create_body(const struct mfs_sandbox_spec *spec, const struct dt_conf *c,
			 const char *nonce)
{
	json_t *labels = json_object();
	if (spec->labels)
		for (size_t i = 0; i < spec->labels->n; i++)
			json_object_set_new(labels, spec->labels->items[i].key,
					    json_string(spec->labels->items[i].value));
	json_object_set_new(labels, NONCE_KEY, json_string(nonce));
	json_t *body = json_pack("{s:o, s:{}, s:i, s:i}", "labels", labels, "env",
				 "autoStopInterval", AUTO_STOP_MIN,
				 /* 0: delete as soon as it stops (an idle orphan) */
				 "autoDeleteInterval", 0);
	if (c->target)
		json_object_set_new(body, "target", json_string(c->target));
	if (spec->network && !strcmp(spec->network, "none"))
		json_object_set_new(body, "networkBlockAll", json_true());
	if (spec->image && *spec->image) {
		struct mfs_buf df = MFS_BUF_INIT;
		mfs_buf_addf(&df, "FROM %s\n", spec->image);
		json_object_set_new(body, "buildInfo",
				    json_pack("{s:s, s:[]}", "dockerfileContent", df.data,
					      "contextHashes"));
		mfs_buf_release(&df);
		if (spec->cpu > 0)
			json_object_set_new(body, "cpu", json_integer(whole_cpus(spec->cpu)));
		if (spec->memory_mb > 0)
			json_object_set_new(body, "memory",
					    json_integer((spec->memory_mb + 1023) / 1024));
		if (spec->disk_gb > 0)
			json_object_set_new(body, "disk", json_integer(spec->disk_gb));
		if (spec->gpu && *spec->gpu)
			json_object_set_new(body, "gpu", json_integer(atoi(spec->gpu) > 0
								       ? atoi(spec->gpu) : 1));
	}
	char *s = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!s)
		abort();
	return s;
}

struct found {
	char *id;
	int n;
};

static void found_one(void *ctx, const struct mfs_sandbox_info *info)
{
	struct found *f = ctx;
	if (!f->id)
		f->id = mfs_xstrdup(info->id);
	f->n++;
}

/* The sandbox an ambiguous create made, if any (NULL: none yet). */
static char *lookup_nonce(const struct dt_conf *c, const char *nonce, bool cancellable)
{
	struct found f = { NULL, 0 };
	struct mfs_err ignored;
	if (list_by_label(c, NONCE_KEY, nonce, cancellable, found_one, &f, &ignored) != MFS_OK) {
		free(f.id);
		return NULL;
	}
	return f.id;
}

static void delete_nonce(const struct dt_conf *c, const char *nonce)
{
	struct mfs_err ignored;
	char *id = lookup_nonce(c, nonce, false); /* runs after a signal too */
	if (id)
		delete_sandbox(c, id, NULL, &ignored);
	free(id);
}

struct sb_state {
	char *state;
	char *reason;
	char *toolbox;
};

static void sb_state_release(struct sb_state *s)
{
	free(s->state);
	free(s->reason);
	free(s->toolbox);
	memset(s, 0, sizeof(*s));
}

static void sb_state_from(struct sb_state *s, json_t *j)
{
	const char *v;
	sb_state_release(s);
	v = json_string_value(json_object_get(j, "state"));
	s->state = mfs_xstrdup(v ? v : "unknown");
	v = json_string_value(json_object_get(j, "errorReason"));
	s->reason = v ? mfs_xstrdup(v) : NULL;
	v = json_string_value(json_object_get(j, "toolboxProxyUrl"));
	s->toolbox = v && *v ? mfs_xstrdup(v) : NULL;
}

/* GET /sandbox/{id}; *gone on 404. */
static enum mfs_code get_state(const struct dt_conf *c, const char *id, struct sb_state *s,
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
	rc = api_call(c, "GET", path.data, NULL, API_RETRIES, timeout_ms, cancellable, &req,
		      &resp, &url, &hdrs, err);
	if (rc == MFS_OK) {
		if (resp.status == 404) {
			*gone = true;
		} else if (resp.status != 200) {
			rc = status_fail(err, &req, &resp);
		} else {
			json_t *j = body_json(&resp);
			if (!json_is_object(j))
				rc = mfs_fail(err, MFS_ERR_PROTOCOL, "GET /sandbox/%s: not JSON", id);
			else
				sb_state_from(s, j);
			json_decref(j);
		}
	}
	mfs_http_resp_release(&resp);
	mfs_buf_release(&path);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

static enum mfs_code start_timed_out(struct mfs_err *err, const char *id, const char *state)
{
	if (!id)
		return mfs_fail(err, MFS_ERR_TIMEOUT, "--timeout reached before Daytona answered "
				"the create call");
	return mfs_fail(err, MFS_ERR_TIMEOUT, "--timeout reached while Daytona sandbox %s was "
			"still %s", id, state);
}

/* The progress line: in place on a terminal, one summary line otherwise. */
struct progress {
	bool quiet, tty, shown;
	double t0;
	char last[32];
};

static void progress_update(struct progress *p, const char *id, const char *state)
{
	if (p->quiet || !strcmp(p->last, state))
		return;
	snprintf(p->last, sizeof(p->last), "%s", state);
	if (p->tty) {
		struct mfs_buf b = MFS_BUF_INIT;
		mfs_buf_addf(&b, "\rmfsandbox: daytona sandbox %.12s: %s (%.1f s)\033[K", id, state,
			     mfs_now_s() - p->t0);
		if (write(STDERR_FILENO, b.data, b.len) < 0) {
			/* nowhere to report it */
		}
		mfs_buf_release(&b);
		p->shown = true;
	}
}

static void progress_end(struct progress *p, const char *id, const char *state)
{
	if (p->quiet)
		return;
	if (p->tty && p->shown) {
		p->last[0] = '\0';
		progress_update(p, id, state);
		if (write(STDERR_FILENO, "\n", 1) < 0) {
			/* nowhere to report it */
		}
	} else if (!p->tty && mfs_now_s() - p->t0 >= 1.0) {
		say("daytona sandbox %.12s %s after %.1f s\n", id, state, mfs_now_s() - p->t0);
	}
}

/* Polls until "started" on the SDK's schedule (0.1 s, x1.1 after 5 s, 1 s
 * cap), until deadline at the latest (MFS_ERR_TIMEOUT). */
static enum mfs_code wait_started(const struct dt_conf *c, const char *id, struct sb_state *s,
				  bool build, double deadline, struct progress *pg,
				  struct mfs_err *err)
{
	double interval = 0.1, t0 = mfs_now_s(), limit = build ? BUILD_WAIT_S : START_WAIT_S;
	enum mfs_code rc = MFS_OK;
	bool gone = false;

	for (;;) {
		progress_update(pg, id, s->state);
		if (!strcmp(s->state, "started"))
			break;
		if (!strcmp(s->state, "error") || !strcmp(s->state, "build_failed")) {
			rc = mfs_fail(err, MFS_ERR_BACKEND, "Daytona sandbox %s went to %s: %s", id,
				      s->state, s->reason && *s->reason ? s->reason : "no reason given");
			break;
		}
		if (!strcmp(s->state, "destroyed") || !strcmp(s->state, "destroying")) {
			rc = mfs_fail(err, MFS_ERR_BACKEND, "Daytona sandbox %s was deleted while "
				      "starting", id);
			break;
		}
		if (mfs_now_s() - t0 > limit) {
			rc = mfs_fail(err, MFS_ERR_BACKEND, "Daytona sandbox %s still %s after %.0f s",
				      id, s->state, limit);
			break;
		}
		if (passed(deadline)) {
			rc = start_timed_out(err, id, s->state);
			break;
		}
		if (!nap(ms_until(deadline, (long)(interval * 1000)), true)) {
			rc = mfs_fail(err, MFS_ERR_CANCELLED, "cancelled while the Daytona sandbox "
				      "was starting");
			break;
		}
		if (mfs_now_s() - t0 > 5.0)
			interval = interval * 1.1 > 1.0 ? 1.0 : interval * 1.1;
		rc = get_state(c, id, s, &gone, true, ms_until(deadline, API_TIMEOUT_MS), err);
		if (rc != MFS_OK) {
			if (passed(deadline))
				rc = start_timed_out(err, id, s->state);
			break;
		}
		if (gone) {
			rc = mfs_fail(err, MFS_ERR_BACKEND, "Daytona sandbox %s disappeared while "
				      "starting", id);
			break;
		}
	}
	progress_end(pg, id, rc == MFS_OK ? "started" : s->state);
	return rc;
}

/* toolboxProxyUrl, or the lookup the SDK falls back to when it is empty. */
static enum mfs_code toolbox_url(const struct dt_conf *c, const char *id, const char *given,
				 char **out, struct mfs_err *err)
{
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT, path = MFS_BUF_INIT, tb = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	struct mfs_http_req req;
	enum mfs_code rc = MFS_OK;
	json_t *j = NULL;

	mfs_http_resp_init(&resp);
	if (!given) {
		mfs_buf_adds(&path, "/sandbox/");
		mfs_http_urlencode(&path, id, false);
		mfs_buf_adds(&path, "/toolbox-proxy-url");
		rc = api_call(c, "GET", path.data, NULL, API_RETRIES, API_TIMEOUT_MS, true, &req,
			      &resp, &url, &hdrs, err);
		if (rc == MFS_OK && resp.status != 200)
			rc = status_fail(err, &req, &resp);
		if (rc == MFS_OK) {
			j = body_json(&resp);
			given = json_string_value(json_object_get(j, "url"));
			if (!given || !*given)
				rc = mfs_fail(err, MFS_ERR_PROTOCOL,
					      "Daytona gave no toolbox URL for sandbox %s", id);
		}
	}
	if (rc == MFS_OK) {
		size_t n = strlen(given);
		while (n && given[n - 1] == '/')
			n--;
		mfs_buf_add(&tb, given, n);
		mfs_buf_addch(&tb, '/');
		mfs_http_urlencode(&tb, id, false);
		*out = mfs_buf_detach(&tb, NULL);
	}
	json_decref(j);
	mfs_http_resp_release(&resp);
	mfs_buf_release(&tb);
	mfs_buf_release(&path);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

/* How long to wait after a create's 429: Retry-After(-sandbox-create) when
 * given, else 1 s doubling to 32 s; plus up to half as much again at random,
 * so that a fan-out told to come back at the same second does not. */
static long throttle_wait_ms(const struct mfs_http_resp *resp, int tries)
{
	const char *ra = mfs_http_header(resp, "retry-after-sandbox-create");
	unsigned r = 0;
	if (!ra)
		ra = mfs_http_header(resp, "retry-after");
	long ms = ra ? strtol(ra, NULL, 10) * 1000 : 0;
	if (ms <= 0)
		ms = 1000L << (tries < 5 ? tries : 5);
	if (ms > 60000)
		ms = 60000;
	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = (unsigned)getpid() * 2654435761u;
	return ms + (long)(r % (unsigned long)(ms / 2 + 1));
}

/* POST /sandbox without ever making two: see the file comment. */
static enum mfs_code post_create(const struct dt_conf *c, const char *body, const char *nonce,
				 double deadline, char **id, struct sb_state *s, struct mfs_err *err)
{
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	struct mfs_http_req req;
	enum mfs_code rc;

	double throttle_end = mfs_now_s() + THROTTLE_WAIT_S;
	int attempt = 0, throttled = 0;

	mfs_http_resp_init(&resp);
	for (;;) {
		mfs_strv_release(&hdrs);
		rc = api_call(c, "POST", "/sandbox", body, 0, ms_until(deadline, CREATE_TIMEOUT_MS),
			      true, &req, &resp, &url, &hdrs, err);
		if (rc == MFS_ERR_CANCELLED)
			break;
		if (rc == MFS_ERR_HTTP && passed(deadline)) {
			/* Cut by the deadline: the caller finds and deletes it by nonce. */
			rc = start_timed_out(err, NULL, NULL);
			break;
		}
		bool ambiguous = rc == MFS_ERR_HTTP ||
			(rc == MFS_OK && (resp.status == 502 || resp.status == 503 ||
					  resp.status == 504));
		if (ambiguous) {
			char *made = lookup_nonce(c, nonce, true);
			if (made) {
				bool gone;
				*id = made;
				rc = get_state(c, made, s, &gone, true, ms_until(deadline, API_TIMEOUT_MS),
					       err);
				if (rc == MFS_OK && gone)
					rc = mfs_fail(err, MFS_ERR_BACKEND, "Daytona sandbox %s "
						      "vanished right after its create", made);
				break;
			}
			if (++attempt >= CREATE_ATTEMPTS) {
				if (rc == MFS_OK)
					rc = status_fail(err, &req, &resp);
				break;
			}
			if (!nap(ms_until(deadline, 500L << (attempt - 1)), true)) {
				rc = mfs_fail(err, MFS_ERR_CANCELLED, "cancelled while creating");
				break;
			}
			if (passed(deadline)) {
				rc = start_timed_out(err, NULL, NULL);
				break;
			}
			continue;
		}
		if (rc != MFS_OK)
			break;
		if (resp.status == 429 && mfs_now_s() < throttle_end) {
			/* The throttler refuses before anything is made, so asking
			 * again is safe; a fan-out may be told so for minutes. */
			if (!nap(ms_until(deadline, throttle_wait_ms(&resp, throttled++)), true)) {
				rc = mfs_fail(err, MFS_ERR_CANCELLED, "cancelled while creating");
				break;
			}
			if (passed(deadline)) {
				rc = start_timed_out(err, NULL, NULL);
				break;
			}
			continue;
		}
		if (resp.status != 200) {
			rc = status_fail(err, &req, &resp);
			break;
		}
		json_t *j = body_json(&resp);
		const char *v = json_string_value(json_object_get(j, "id"));
		if (!v || !*v) {
			json_decref(j);
			rc = mfs_fail(err, MFS_ERR_PROTOCOL, "POST /sandbox answered 200 without an id");
			break;
		}
		*id = mfs_xstrdup(v);
		sb_state_from(s, j);
		json_decref(j);
		break;
	}
	mfs_http_resp_release(&resp);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

static enum mfs_code daytona_create(const struct mfs_sandbox_spec *spec, struct mfs_sandbox **out,
				    struct mfs_err *err)
{
	struct dt_sandbox *sb = NULL;
	struct sb_state s = { 0 };
	struct progress pg = { .quiet = spec->quiet, .tty = isatty(STDERR_FILENO) == 1,
			       .t0 = mfs_now_s() };
	char nonce[33], *body = NULL, *id = NULL;
	bool image = spec->image && *spec->image;
	double deadline = spec->create_timeout_s > 0 ? mfs_now_s() + spec->create_timeout_s : 0;
	enum mfs_code rc;

	*out = NULL;
	sb = mfs_xcalloc(1, sizeof(*sb));
	sb->base.ops = &mfs_daytona_ops;
	rc = conf_load(&sb->conf, err);
	if (rc != MFS_OK)
		goto out;
	sb->base.workdir = mfs_xstrdup(WORKDIR);
	mfs_kvlist_init(&sb->env);
	if (spec->env)
		for (size_t i = 0; i < spec->env->n; i++)
			mfs_kvlist_set(&sb->env, spec->env->items[i].key, spec->env->items[i].value);

	random_hex(nonce, 16);
	body = create_body(spec, &sb->conf, nonce);
	rc = post_create(&sb->conf, body, nonce, deadline, &id, &s, err);
	if (rc != MFS_OK) {
		if (id) {
			struct mfs_err ignored;
			delete_sandbox(&sb->conf, id, NULL, &ignored);
		} else if (rc == MFS_ERR_CANCELLED || rc == MFS_ERR_BACKEND || rc == MFS_ERR_HTTP ||
			   rc == MFS_ERR_TIMEOUT) {
			/* A 400 "failed to start" or a cut line may still have made one. */
			delete_nonce(&sb->conf, nonce);
		}
		goto out;
	}
	sb->base.id = id;
	sb->deadline = deadline;
	id = NULL;
	rc = wait_started(&sb->conf, sb->base.id, &s, image, deadline, &pg, err);
	if (rc == MFS_OK)
		rc = toolbox_url(&sb->conf, sb->base.id, s.toolbox, &sb->toolbox, err);
	if (rc != MFS_OK) {
		struct mfs_err ignored;
		delete_sandbox(&sb->conf, sb->base.id, NULL, &ignored);
		goto out;
	}
	*out = &sb->base;
	sb = NULL;
out:
	if (rc != MFS_OK && image)
		mfs_err_prefix(err, "image %s", spec->image);
	sb_state_release(&s);
	free(id);
	free(body);
	sandbox_free(sb);
	return rc;
}

static enum mfs_code daytona_destroy(struct mfs_sandbox *base, struct mfs_err *err)
{
	struct dt_sandbox *sb = (struct dt_sandbox *)base;
	enum mfs_code rc = MFS_OK;
	if (!sb)
		return MFS_OK;
	if (sb->base.id)
		rc = delete_sandbox(&sb->conf, sb->base.id, NULL, err);
	sandbox_free(sb);
	return rc;
}

/* ---- toolbox ---- */

static enum mfs_code toolbox_call(struct dt_sandbox *sb, const char *method, const char *path,
				  struct mfs_http_req *req, struct mfs_http_resp *resp,
				  struct mfs_buf *url, struct mfs_strv *hdrs, struct mfs_err *err)
{
	mfs_buf_reset(url);
	mfs_buf_addf(url, "%s%s", sb->toolbox, path);
	auth_headers(hdrs, &sb->conf);
	/* Raw session logs: per-line stdout/stderr markers kept (see file comment). */
	mfs_strv_push(hdrs, "X-Daytona-Split-Output: true");
	req->method = method;
	req->url = url->data;
	req->headers = hdrs;
	return mfs_http_do(req, resp, err);
}

/* After a toolbox failure: is the sandbox itself gone or broken? */
static enum mfs_code explain_toolbox_failure(struct dt_sandbox *sb, enum mfs_code rc,
					     struct mfs_err *err)
{
	struct sb_state s = { 0 };
	struct mfs_err ignored;
	bool gone = false;
	if (rc == MFS_ERR_CANCELLED)
		return rc;
	if (get_state(&sb->conf, sb->base.id, &s, &gone, false, API_TIMEOUT_MS, &ignored) == MFS_OK &&
	    (gone || strcmp(s.state, "started"))) {
		rc = mfs_fail(err, MFS_ERR_BACKEND, "Daytona sandbox %s %s%s%s", sb->base.id,
			      gone ? "is gone" : s.state,
			      s.reason && *s.reason ? ": " : "", s.reason ? s.reason : "");
	}
	sb_state_release(&s);
	return rc;
}

static void abs_path(struct mfs_buf *out, const struct dt_sandbox *sb, const char *remote)
{
	if (remote[0] == '/')
		mfs_buf_adds(out, remote);
	else
		mfs_buf_addf(out, "%s/%s", sb->base.workdir, remote);
}

/* POST /files/bulk-upload with one file: "files[0].path" before "files[0].file". */
static enum mfs_code upload_bytes(struct dt_sandbox *sb, const char *remote, const char *data,
				  size_t len, const char *local_name, struct mfs_err *err)
{
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT, body = MFS_BUF_INIT, dest = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	char boundary[40] = "mfsandbox-";
	enum mfs_code rc;

	mfs_http_resp_init(&resp);
	random_hex(boundary + 10, 12);
	abs_path(&dest, sb, remote);
	mfs_buf_addf(&body, "--%s\r\nContent-Disposition: form-data; name=\"files[0].path\"\r\n\r\n"
		     "%s\r\n--%s\r\nContent-Disposition: form-data; name=\"files[0].file\"; "
		     "filename=\"upload\"\r\nContent-Type: application/octet-stream\r\n\r\n",
		     boundary, dest.data, boundary);
	mfs_buf_add(&body, data, len);
	mfs_buf_addf(&body, "\r\n--%s--\r\n", boundary);
	mfs_strv_pushf(&hdrs, "Content-Type: multipart/form-data; boundary=%s", boundary);
	/* Overwriting a file is idempotent, so the POST may be retried. */
	struct mfs_http_req req = {
		.body = body.data, .body_len = body.len, .retries = API_RETRIES,
		.retry_safe = true, .cancellable = true, .deadline = sb->deadline,
	};
	rc = toolbox_call(sb, "POST", "/files/bulk-upload", &req, &resp, &url, &hdrs, err);
	if (rc == MFS_OK && resp.status != 200)
		rc = status_fail(err, &req, &resp);
	if (rc != MFS_OK && rc != MFS_ERR_CANCELLED && passed(sb->deadline)) {
		rc = mfs_fail(err, MFS_ERR_TIMEOUT, "--timeout reached while uploading %s to %s",
			      local_name, dest.data);
	} else if (rc != MFS_OK) {
		rc = explain_toolbox_failure(sb, rc, err);
		mfs_err_prefix(err, "uploading %s to %s", local_name, dest.data);
	}
	mfs_http_resp_release(&resp);
	mfs_buf_release(&dest);
	mfs_buf_release(&body);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

static enum mfs_code daytona_upload(struct mfs_sandbox *base, const char *local_path,
				    const char *remote_path, struct mfs_err *err)
{
	struct dt_sandbox *sb = (struct dt_sandbox *)base;
	struct mfs_buf data = MFS_BUF_INIT;
	char chunk[65536];
	size_t n;
	enum mfs_code rc;
	FILE *f = fopen(local_path, "rb");
	if (!f)
		return mfs_fail(err, MFS_ERR_IO, "cannot read %s: %s", local_path, strerror(errno));
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		mfs_buf_add(&data, chunk, n);
	bool bad = ferror(f);
	fclose(f);
	if (bad)
		rc = mfs_fail(err, MFS_ERR_IO, "cannot read %s", local_path);
	else
		rc = upload_bytes(sb, remote_path, data.data ? data.data : "", data.len, local_path,
				  err);
	mfs_buf_release(&data);
	return rc;
}

static enum mfs_code daytona_download(struct mfs_sandbox *base, const char *remote_path,
				      const char *local_path, struct mfs_err *err)
{
	struct dt_sandbox *sb = (struct dt_sandbox *)base;
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT, path = MFS_BUF_INIT, dest = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	enum mfs_code rc;

	mfs_http_resp_init(&resp);
	abs_path(&dest, sb, remote_path);
	mfs_buf_adds(&path, "/files/download?path=");
	mfs_http_urlencode(&path, dest.data, true);
	struct mfs_http_req req = { .out_file = local_path, .retries = API_RETRIES,
				    .cancellable = true };
	rc = toolbox_call(sb, "GET", path.data, &req, &resp, &url, &hdrs, err);
	if (rc == MFS_OK && resp.status != 200) {
		rc = status_fail(err, &req, &resp);
		if (resp.status != 404)
			rc = explain_toolbox_failure(sb, rc, err);
	} else if (rc != MFS_OK) {
		rc = explain_toolbox_failure(sb, rc, err);
	}
	if (rc != MFS_OK) {
		unlink(local_path);
		mfs_err_prefix(err, "downloading %s", dest.data);
	}
	mfs_http_resp_release(&resp);
	mfs_buf_release(&dest);
	mfs_buf_release(&path);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

/* ---- exec: an async session command, its log polled ---- */

struct logpoll {
	const struct mfs_io *io;
	size_t offset;        /* bytes of the raw log already handed on */
	bool talking;         /* the last poll brought new lines */
};

/* Hands on the complete lines after offset (and, when final, a last line
 * without its newline); true if there were any. */
static bool emit_new_lines(struct logpoll *lp, const char *log, size_t len, bool final)
{
	bool any = false;
	if (len < lp->offset)
		lp->offset = 0; /* a log never shrinks; start over rather than skip */
	while (lp->offset < len) {
		const char *p = log + lp->offset;
		const char *nl = memchr(p, '\n', len - lp->offset);
		if (!nl && !final)
			break;
		if (!nl)
			nl = log + len - 1;
		size_t n = (size_t)(nl - p) + 1;
		enum mfs_stream st = MFS_STDOUT;
		if (n >= 3 && !memcmp(p, ERR_MARK, 3)) {
			st = MFS_STDERR;
			p += 3, n -= 3;
		} else if (n >= 3 && !memcmp(p, OUT_MARK, 3)) {
			p += 3, n -= 3;
		}
		if (lp->io && lp->io->write)
			lp->io->write(lp->io->ctx, st, p, n);
		lp->offset = (size_t)(nl - log) + 1;
		any = true;
	}
	return any;
}

/* The per-command script: env, cwd, then exec the argv exactly.  It runs as
 * its own `sh` process, so nothing it does changes the session's shell.  An
 * uploaded one removes itself first, so the secrets in it live only until
 * the command starts. */
static char *command_script(const struct dt_sandbox *sb, const struct mfs_exec_req *r,
			    bool uploaded)
{
	struct mfs_buf s = MFS_BUF_INIT;
	if (uploaded)
		mfs_buf_adds(&s, "rm -f \"$0\"\n");
	const struct mfs_kvlist *lists[2] = { &sb->env, r->env };
	for (int l = 0; l < 2; l++)
		for (size_t i = 0; lists[l] && i < lists[l]->n; i++) {
			mfs_buf_addf(&s, "export %s=", lists[l]->items[i].key);
			mfs_buf_add_shell_quoted(&s, lists[l]->items[i].value);
			mfs_buf_addch(&s, '\n');
		}
	mfs_buf_adds(&s, "cd ");
	mfs_buf_add_shell_quoted(&s, r->cwd ? r->cwd : sb->base.workdir);
	mfs_buf_adds(&s, " || exit 1\nexec ");
	mfs_buf_add_argv_quoted(&s, r->argv);
	/* An async session command's stdin stays open; the step gets none, as
	 * with the other backends. */
	mfs_buf_adds(&s, " </dev/null\n");
	return mfs_buf_detach(&s, NULL);
}

/* Deletes the session if open, which kills whatever its command started. */
static void drop_session(struct dt_sandbox *sb)
{
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT, path = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	struct mfs_err ignored;
	if (!sb->session)
		return;
	sb->session = false;
	mfs_http_resp_init(&resp);
	mfs_buf_addf(&path, "/process/session/%s", sb->sid);
	struct mfs_http_req req = { .retries = 2, .timeout_ms = API_TIMEOUT_MS };
	toolbox_call(sb, "DELETE", path.data, &req, &resp, &url, &hdrs, &ignored);
	mfs_http_resp_release(&resp);
	mfs_buf_release(&path);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
}

/* A toolbox call in the exec loop: not retried by the HTTP layer (the
 * loop retries, so the deadline is checked between tries).  MFS_OK when
 * any answer came; want != 0 turns another status into an error.  A POST
 * goes on a fresh connection (libcurl silently re-sends on a reused one
 * found dead) unless replay_safe: sent twice, it does no harm. */
static enum mfs_code toolbox_json_call(struct dt_sandbox *sb, const char *method,
				       const char *path, json_t *msg, long want, long timeout_ms,
				       bool replay_safe, struct mfs_http_resp *resp,
				       struct mfs_err *err)
{
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT;
	char *body = NULL;
	enum mfs_code rc;
	if (msg) {
		body = json_dumps(msg, JSON_COMPACT);
		if (!body)
			abort();
		mfs_strv_push(&hdrs, "Content-Type: application/json");
	}
	struct mfs_http_req req = { .body = body, .body_len = body ? strlen(body) : 0,
				    .timeout_ms = timeout_ms, .cancellable = true,
				    .retry_safe = replay_safe };
	rc = toolbox_call(sb, method, path, &req, resp, &url, &hdrs, err);
	if (rc == MFS_OK && want && resp->status != want)
		rc = status_fail(err, &req, resp);
	free(body);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

static enum mfs_code exec_call(struct dt_sandbox *sb, const char *method, const char *path,
			       json_t *msg, long want, long timeout_ms,
			       struct mfs_http_resp *resp, struct mfs_err *err)
{
	return toolbox_json_call(sb, method, path, msg, want, timeout_ms, false, resp, err);
}

/* A failure worth another try: no answer, or the proxy's/throttler's. */
static bool transient(enum mfs_code rc, const struct mfs_http_resp *resp)
{
	if (rc == MFS_ERR_HTTP)
		return true;
	return resp->status == 429 || resp->status == 502 || resp->status == 503 ||
	       resp->status == 504;
}

/* The deadline of one exec, and what every call in it may take. */
struct exec_clock {
	double t0;
	long timeout_s;       /* 0: none */
};

static bool past_deadline(const struct exec_clock *ck)
{
	return ck->timeout_s > 0 && mfs_now_s() - ck->t0 >= (double)ck->timeout_s;
}

/* Milliseconds left before the deadline (LONG_MAX without one). */
static long ms_left(const struct exec_clock *ck)
{
	if (ck->timeout_s <= 0)
		return 0x7fffffffL;
	double left = (ck->t0 + (double)ck->timeout_s - mfs_now_s()) * 1000;
	return left > 0 ? (long)left : 0;
}

/* The API timeout, cut to the time left (plus a second) so that a hung
 * toolbox call cannot outlast --timeout. */
static long call_timeout_ms(const struct exec_clock *ck)
{
	long left = ms_left(ck);
	return left < API_TIMEOUT_MS - 1000 ? left + 1000 : API_TIMEOUT_MS;
}

/* Waits before try number `attempt` (1, 2, ...), honouring Retry-After and
 * the deadline; false when cancelled. */
static bool retry_nap(const struct mfs_http_resp *resp, int attempt, const struct exec_clock *ck)
{
	long ms = 200L << (attempt - 1);
	const char *ra = resp->status == 429 || resp->status == 503
		? mfs_http_header(resp, "retry-after") : NULL;
	if (ra && strtol(ra, NULL, 10) > 0)
		ms = strtol(ra, NULL, 10) * 1000;
	if (ms > 10000)
		ms = 10000;
	if (ms > ms_left(ck))
		ms = ms_left(ck);
	return nap(ms, true);
}

/* POST /process/session.  The id is new and random, so a 409 can only
 * mean that this request got through before (its answer lost, or re-sent
 * by libcurl): done.  That makes it safe on a reused connection too. */
static enum mfs_code open_session(struct dt_sandbox *sb, const char *sid,
				  const struct exec_clock *ck, struct mfs_http_resp *resp,
				  struct mfs_err *err)
{
	json_t *msg = json_pack("{s:s}", "sessionId", sid);
	enum mfs_code rc;
	for (int attempt = 0;; attempt++) {
		rc = toolbox_json_call(sb, "POST", "/process/session", msg, 201, call_timeout_ms(ck),
				       true, resp, err);
		if (rc != MFS_OK && resp->status == 409)
			rc = MFS_OK;
		if (rc == MFS_OK || rc == MFS_ERR_CANCELLED || !transient(rc, resp) ||
		    attempt >= API_RETRIES || past_deadline(ck))
			break;
		if (!retry_nap(resp, attempt + 1, ck)) {
			rc = MFS_ERR_CANCELLED;
			break;
		}
	}
	json_decref(msg);
	return rc;
}

/* The id of the session's command whose text is `command` (unique: it
 * names this exec's script), if the session has it: after an exec whose
 * answer was lost, so that the step never starts twice. */
static char *started_command(struct dt_sandbox *sb, const char *sid, const char *command,
			     const struct exec_clock *ck)
{
	struct mfs_http_resp resp;
	struct mfs_buf path = MFS_BUF_INIT;
	struct mfs_err ignored;
	char *id = NULL;
	mfs_http_resp_init(&resp);
	mfs_buf_addf(&path, "/process/session/%s", sid);
	if (exec_call(sb, "GET", path.data, NULL, 200, call_timeout_ms(ck), &resp,
		      &ignored) == MFS_OK) {
		json_t *j = body_json(&resp), *c;
		size_t i;
		json_array_foreach(json_object_get(j, "commands"), i, c) {
			const char *text = json_string_value(json_object_get(c, "command"));
			const char *v = json_string_value(json_object_get(c, "id"));
			if (text && !strcmp(text, command) && v && *v) {
				free(id);
				id = mfs_xstrdup(v);
			}
		}
		json_decref(j);
	}
	mfs_http_resp_release(&resp);
	mfs_buf_release(&path);
	return id;
}

/* POST /process/session/{sid}/exec with runAsync.  Not idempotent: after
 * a failure with no clear answer the session is asked what it runs before
 * another try. */
static enum mfs_code start_command(struct dt_sandbox *sb, const char *sid, const char *command,
				   const struct exec_clock *ck, char **cmd_id,
				   struct mfs_http_resp *resp, struct mfs_err *err)
{
	struct mfs_buf path = MFS_BUF_INIT;
	json_t *msg = json_pack("{s:s, s:b}", "command", command, "runAsync", 1);
	enum mfs_code rc;
	mfs_buf_addf(&path, "/process/session/%s/exec", sid);
	*cmd_id = NULL;
	for (int attempt = 0;; attempt++) {
		rc = exec_call(sb, "POST", path.data, msg, 202, call_timeout_ms(ck), resp, err);
		if (rc == MFS_OK) {
			json_t *j = body_json(resp);
			const char *v = json_string_value(json_object_get(j, "cmdId"));
			*cmd_id = v && *v ? mfs_xstrdup(v) : NULL;
			json_decref(j);
			if (!*cmd_id)
				rc = mfs_fail(err, MFS_ERR_PROTOCOL,
					      "session exec answered 202 without cmdId");
			break;
		}
		if (rc == MFS_ERR_CANCELLED || !transient(rc, resp) || past_deadline(ck))
			break;
		if ((*cmd_id = started_command(sb, sid, command, ck)) != NULL) {
			rc = MFS_OK;
			break;
		}
		if (attempt >= API_RETRIES)
			break;
		if (!retry_nap(resp, attempt + 1, ck)) {
			rc = MFS_ERR_CANCELLED;
			break;
		}
	}
	json_decref(msg);
	mfs_buf_release(&path);
	return rc;
}

/* One poll.  Quiet command: its exit code, then the log (whole once the
 * exit code is in).  A command that printed at the last poll: the log
 * first, and only if nothing came, the exit code (and then the log once
 * more).  Output that keeps coming thus costs one request a poll, a quiet
 * command two, as before. */
static enum mfs_code poll_once(struct dt_sandbox *sb, const char *sid, const char *cmd_id,
			       struct logpoll *lp, const struct exec_clock *ck, bool *done,
			       int *code, bool *fresh, struct mfs_http_resp *resp,
			       struct mfs_err *err)
{
	struct mfs_buf status = MFS_BUF_INIT, logs = MFS_BUF_INIT;
	enum mfs_code rc = MFS_OK;
	bool exited = false;
	*done = false;
	*fresh = false;
	mfs_buf_addf(&status, "/process/session/%s/command/%s", sid, cmd_id);
	mfs_buf_addf(&logs, "%s/logs", status.data);
	if (lp->talking) {
		rc = exec_call(sb, "GET", logs.data, NULL, 200, call_timeout_ms(ck), resp, err);
		if (rc != MFS_OK)
			goto out;
		*fresh = emit_new_lines(lp, resp->body.data ? resp->body.data : "",
					resp->body.len, false);
		if (*fresh)
			goto out;
	}
	rc = exec_call(sb, "GET", status.data, NULL, 200, call_timeout_ms(ck), resp, err);
	if (rc != MFS_OK)
		goto out;
	{
		json_t *j = body_json(resp), *ec = json_object_get(j, "exitCode");
		if (json_is_integer(ec)) {
			exited = true;
			*code = (int)json_integer_value(ec);
		}
		json_decref(j);
	}
	if (lp->talking && !exited)
		goto out; /* the log was read just now */
	rc = exec_call(sb, "GET", logs.data, NULL, 200, call_timeout_ms(ck), resp, err);
	if (rc == MFS_OK) { /* else the log is not whole yet: poll again */
		*done = exited;
		*fresh = emit_new_lines(lp, resp->body.data ? resp->body.data : "",
					resp->body.len, exited);
	}
out:
	lp->talking = rc == MFS_OK && *fresh;
	mfs_buf_release(&status);
	mfs_buf_release(&logs);
	return rc;
}

static enum mfs_code daytona_exec(struct mfs_sandbox *base, const struct mfs_exec_req *r,
				  const struct mfs_io *io, int *status, struct mfs_err *err)
{
	struct dt_sandbox *sb = (struct dt_sandbox *)base;
	struct mfs_http_resp resp;
	struct mfs_buf script_path = MFS_BUF_INIT, cmd = MFS_BUF_INIT;
	struct logpoll lp = { .io = io };
	struct exec_clock ck = { .t0 = mfs_now_s(), .timeout_s = r->timeout_s };
	char *script = NULL, *cmd_id = NULL;
	long interval = POLL_MIN_MS;
	double last_line = mfs_now_s();
	int failures = 0;
	enum mfs_code rc;

	*status = -1;
	if (!r->argv || !r->argv[0])
		return mfs_fail(err, MFS_ERR_USAGE, "nothing to run");
	mfs_http_resp_init(&resp);
	if (!sb->session) {
		snprintf(sb->sid, sizeof(sb->sid), "mfs-");
		random_hex(sb->sid + 4, 12);
	}
	/* Without env there is nothing to keep out of the session's command
	 * records, so the script goes inline and costs no upload. */
	bool upload = sb->env.n || (r->env && r->env->n);
	mfs_buf_addf(&script_path, "/tmp/.%s-%u.sh", sb->sid, sb->seq++);
	script = command_script(sb, r, upload);
	if (upload) {
		rc = upload_bytes(sb, script_path.data, script, strlen(script), "the command script",
				  err);
		if (rc != MFS_OK)
			goto out;
	}

	if (!sb->session) {
		rc = open_session(sb, sb->sid, &ck, &resp, err);
		if (rc != MFS_OK)
			goto fail;
		sb->session = true;
	}
	/* Either way the text is unique (it names the script path), which is
	 * how a lost exec answer finds its command in the session. */
	if (upload) {
		mfs_buf_adds(&cmd, "sh ");
		mfs_buf_add_shell_quoted(&cmd, script_path.data);
	} else {
		mfs_buf_adds(&cmd, "sh -c ");
		mfs_buf_add_shell_quoted(&cmd, script);
		mfs_buf_addch(&cmd, ' ');
		mfs_buf_add_shell_quoted(&cmd, script_path.data);
	}
	rc = start_command(sb, sb->sid, cmd.data, &ck, &cmd_id, &resp, err);
	if (rc != MFS_OK)
		goto fail;

	for (;;) {
		bool done, fresh;
		int code = 0;
		rc = poll_once(sb, sb->sid, cmd_id, &lp, &ck, &done, &code, &fresh, &resp, err);
		if (rc == MFS_OK && done) {
			*status = code < 0 ? 255 : code & 0xff;
			break;
		}
		if (past_deadline(&ck))
			goto timed_out;
		if (rc != MFS_OK) {
			/* The loop is the retry: the deadline is checked between tries. */
			if (rc == MFS_ERR_CANCELLED || !transient(rc, &resp) || ++failures > API_RETRIES)
				goto fail;
			if (!retry_nap(&resp, failures, &ck)) {
				rc = MFS_ERR_CANCELLED;
				goto fail;
			}
			continue;
		}
		failures = 0;
		/* Lines come in bursts: right after one the log is read every
		 * 150 ms at most, so a line's median wait stays under 100 ms; a
		 * command silent for 10 s (a long computation) is read every
		 * 500 ms, which costs a third of the CPU per second. */
		if (fresh)
			last_line = mfs_now_s();
		long cap = mfs_now_s() - last_line > POLL_IDLE_S ? POLL_IDLE_MAX_MS : POLL_MAX_MS;
		interval = fresh ? POLL_MIN_MS : (interval * 3 / 2 > cap ? cap : interval * 3 / 2);
		if (!nap(interval < ms_left(&ck) ? interval : ms_left(&ck), true)) {
			rc = MFS_ERR_CANCELLED;
			goto fail;
		}
	}
	rc = MFS_OK;
	goto done;
timed_out:
	drop_session(sb); /* ends the command's process tree */
	rc = mfs_fail(err, MFS_ERR_TIMEOUT, "the command ran past its %lds timeout and was killed",
		      r->timeout_s);
	goto out;
fail:
	if (rc == MFS_ERR_CANCELLED || mfs_cancelled()) {
		drop_session(sb);
		rc = mfs_fail(err, MFS_ERR_CANCELLED, "cancelled; the Daytona command was killed");
	} else if (past_deadline(&ck)) {
		goto timed_out; /* the calls were cut short to keep it */
	} else {
		rc = explain_toolbox_failure(sb, rc, err);
	}
out:
	/* The command may still run: end it (the next exec opens a new session). */
	drop_session(sb);
done:
	free(cmd_id);
	free(script);
	mfs_http_resp_release(&resp);
	mfs_buf_release(&cmd);
	mfs_buf_release(&script_path);
	return rc;
}

/* ---- probe / describe ---- */

static enum mfs_code daytona_probe(struct mfs_buf *notes, struct mfs_err *err)
{
	struct dt_conf c;
	enum mfs_code rc = conf_load(&c, err);
	if (rc == MFS_OK && notes)
		mfs_buf_adds(notes, "without --image the default snapshot fixes the size: --cpu, "
			     "--memory, --disk and --gpu apply only with --image\n");
	conf_release(&c);
	return rc;
}

static void daytona_describe(const struct mfs_sandbox *base, struct mfs_buf *out)
{
	const struct dt_sandbox *sb = (const struct dt_sandbox *)base;
	mfs_buf_addf(out, "Daytona sandbox %s (toolbox %s); connect with: daytona ssh %s\n",
		     sb->base.id, sb->toolbox ? sb->toolbox : "?", sb->base.id);
}

/* Sizes apply only with --image (a snapshot fixes them).  Without it a
 * request within the default snapshot's size (1 vCPU, 1 GiB, 3 GiB) is met
 * anyway, which matters since @daytona always passes its defaults. */
static unsigned daytona_caps_for(const struct mfs_sandbox_spec *spec, struct mfs_buf *why)
{
	unsigned caps = mfs_daytona_ops.caps;
	if (spec->image && *spec->image)
		return caps;
	caps &= ~(unsigned)(MFS_CAP_CPU | MFS_CAP_MEMORY | MFS_CAP_DISK | MFS_CAP_GPU);
	if (spec->cpu <= SNAPSHOT_CPU)
		caps |= MFS_CAP_CPU;
	if (spec->memory_mb <= SNAPSHOT_MEMORY_MB)
		caps |= MFS_CAP_MEMORY;
	if (spec->disk_gb <= SNAPSHOT_DISK_GB)
		caps |= MFS_CAP_DISK;
	mfs_buf_adds(why, "without --image the default snapshot's size (1 vCPU, 1 GiB, 3 GiB) "
		     "is used and no GPU; sizes and --gpu apply with --image");
	return caps;
}

const struct mfs_backend_ops mfs_daytona_ops = {
	.name = "daytona",
	.summary = "Daytona cloud sandboxes (REST + toolbox API; needs DAYTONA_API_KEY)",
	.caps = MFS_CAP_CPU | MFS_CAP_MEMORY | MFS_CAP_DISK | MFS_CAP_GPU | MFS_CAP_IMAGE |
		MFS_CAP_NETWORK | MFS_CAP_STREAM | MFS_CAP_DOWNLOAD | MFS_CAP_LIST,
	.caps_for = daytona_caps_for,
	.probe = daytona_probe,
	.create = daytona_create,
	.upload = daytona_upload,
	.download = daytona_download,
	.exec = daytona_exec,
	.destroy = daytona_destroy,
	.list = daytona_list,
	.kill = daytona_kill,
	.describe = daytona_describe,
};
