/*
 * create.c - POST /sandboxes, and the sandbox struct's one free path.
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
 */
#include "internal.h"
#include "mfs/util/buf.h"
#include "mfs/util/cancel.h"
#include "mfs/util/clock.h"
#include "mfs/util/err.h"
#include "mfs/util/text.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LIFETIME_SLACK_S   300L   /* create, upload and teardown on top of the step */
#define LIFETIME_PLAN_CAP  3600L  /* E2B's smallest plan caps a lifetime at 1 h */
#define CREATE_ATTEMPTS    4

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
		abort(); /* only on allocation: check_text made sure every string is UTF-8 */
	return s;
}

/* Sandboxes carrying this launch's nonce, except `keep`: deleted. */
struct nonce_sweep {
	const struct e2b_conf *conf;
	const char *keep;
	char *first;           /* the first one found, for adoption */
	bool delete;
	const struct mfs_say *say;  /* names a sandbox not removed */
	long bound;
};

static void nonce_seen(void *ctx, const struct mfs_sandbox_info *info)
{
	struct nonce_sweep *s = ctx;
	struct mfs_err e = { MFS_OK, "" };
	if (!s->delete) {
		if (!s->first)
			s->first = mfs_xstrdup(info->id);
	} else if (!s->keep || strcmp(info->id, s->keep)) {
		enum mfs_code rc = e2b_delete_sandbox(s->conf, info->id, NULL, &e);
		if (rc != MFS_OK)
			mfs_say_not_removed(s->say, "e2b", info->id, true, rc, s->bound, e.msg);
	}
}

static enum mfs_code visit_nonce(const struct e2b_conf *c, const char *nonce,
				 struct nonce_sweep *s, struct mfs_err *err)
{
	struct mfs_buf q = MFS_BUF_INIT;
	mfs_buf_addf(&q, NONCE_KEY "=%s", nonce);
	enum mfs_code rc = e2b_list_by_metadata(c, q.data, nonce_seen, s, err);
	mfs_buf_release(&q);
	return rc;
}

/* Deletes what carries the nonce but `keep`.  Runs after a signal or a
 * passed deadline too, so not cancellable, but held to the clean-up bound
 * and given up on a second signal; then one line names what may be left. */
static void sweep_nonce(struct e2b_conf *c, const char *nonce, const char *keep,
			const struct mfs_sandbox_spec *spec)
{
	long bound = spec->cleanup_timeout_s;
	struct nonce_sweep s = { .conf = c, .keep = keep, .delete = true, .say = spec->say,
				 .bound = bound };
	struct mfs_err e = { MFS_OK, "" };
	c->deadline = bound > 0 ? mfs_now_s() + (double)bound : 0;
	c->cancellable = false;
	enum mfs_code rc = visit_nonce(c, nonce, &s, &e);
	if (rc != MFS_OK) {
		struct mfs_buf what = MFS_BUF_INIT;
		mfs_buf_addf(&what, "labelled %s=%s", NONCE_KEY, nonce);
		mfs_say_not_removed(spec->say, "e2b", what.data, false, rc, bound, e.msg);
		mfs_buf_release(&what);
	}
}

static bool backoff(int attempt)
{
	return mfs_cancel_sleep_ms(500L << attempt);
}


/* Takes over the sandbox a create whose answer was lost made. */
static enum mfs_code adopt(const struct e2b_conf *c, const char *id, struct e2b_sandbox *sb,
			   struct mfs_err *err)
{
	static const long ok[] = { 200, 0 };
	struct mfs_http_resp resp;
	mfs_http_resp_init(&resp);
	enum mfs_code rc = e2b_sandbox_call(c, "GET", id, ok, &resp, err);
	if (rc == MFS_OK)
		rc = e2b_answer_sandbox(c, &resp, sb, err);
	if (rc != MFS_OK)
		mfs_err_prefix(err, "taking over E2B sandbox %s after a lost create answer", id);
	mfs_http_resp_release(&resp);
	return rc;
}

static enum mfs_code not_in_time(struct mfs_err *err, const char *template,
				 const struct mfs_sandbox_spec *spec)
{
	return mfs_fail(err, MFS_ERR_TIMEOUT, "the E2B sandbox (template %s) was not created "
			"within --timeout %lds", template, spec->create_timeout_s);
}

/* The lookup by nonce after an ambiguous answer failed: a signal or
 * --timeout ends the create; else it is unknown whether one was made
 * (creating again could make a second), and the create's failure stands. */
static enum mfs_code lookup_failed(const struct mfs_err *lookup, enum mfs_code rc,
				   const struct mfs_http_req *req, const struct mfs_http_resp *resp,
				   const char *template, const struct mfs_sandbox_spec *spec,
				   struct mfs_err *err)
{
	if (lookup->code == MFS_ERR_CANCELLED)
		return mfs_fail(err, MFS_ERR_CANCELLED, "cancelled while creating the E2B sandbox");
	if (lookup->code == MFS_ERR_TIMEOUT)
		return not_in_time(err, template, spec);
	return rc == MFS_OK ? e2b_status_fail(err, req, resp) : rc;
}

/* POST /sandboxes without ever keeping two: see the file comment.  On
 * failure the caller sweeps the nonce. */
static enum mfs_code post_create(const struct e2b_conf *c, const struct mfs_sandbox_spec *spec,
				 const char *nonce, struct e2b_sandbox *sb, bool *ambiguous_seen,
				 struct mfs_err *err)
{
	const char *template = spec->image && *spec->image ? spec->image : DEFAULT_TEMPLATE;
	long deadline = spec->create_timeout_s > 0 ? mfs_now_ms() + spec->create_timeout_s * 1000 : 0;
	/* The lookups and the take-over: cut at --timeout, or by a signal. */
	struct e2b_conf during = *c;
	during.deadline = deadline ? (double)deadline / 1000 : 0, during.cancellable = true;
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT;
	struct mfs_http_resp resp;
	char *body = create_body(spec, nonce);
	enum mfs_code rc;

	mfs_http_resp_init(&resp);
	e2b_api_headers(&hdrs, c, true);
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
			rc = not_in_time(err, template, spec);
			break;
		}
		if (rc != MFS_OK && rc != MFS_ERR_HTTP)
			break;
		if (rc == MFS_OK && resp.status == 201) {
			rc = e2b_answer_sandbox(c, &resp, sb, err);
			break;
		}
		/* The request may have made a sandbox: find it before trying again. */
		if (rc == MFS_ERR_HTTP || resp.status == 502 || resp.status == 504) {
			struct nonce_sweep s = { .conf = &during };
			struct mfs_err lookup_err;
			*ambiguous_seen = true;
			if (visit_nonce(&during, nonce, &s, &lookup_err) != MFS_OK) {
				rc = lookup_failed(&lookup_err, rc, &req, &resp, template, spec, err);
				break;
			}
			if (s.first) {
				rc = adopt(&during, s.first, sb, err);
				free(s.first);
				break;
			}
		} else if (resp.status != 429 && resp.status != 503) {
			rc = e2b_status_fail(err, &req, &resp); /* refused: nothing was made */
			break;
		}
		if (attempt + 1 >= CREATE_ATTEMPTS) {
			if (rc == MFS_OK)
				rc = e2b_status_fail(err, &req, &resp);
			break;
		}
		if (!backoff(attempt)) {
			rc = mfs_fail(err, MFS_ERR_CANCELLED, "cancelled while creating the E2B sandbox");
			break;
		}
		if (deadline && mfs_now_ms() >= deadline) {
			rc = not_in_time(err, template, spec);
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

void e2b_sandbox_free(struct e2b_sandbox *sb)
{
	if (!sb)
		return;
	free(sb->base.id);
	free(sb->base.workdir);
	free(sb->envd_url);
	mfs_wipe_free(sb->token);
	mfs_kvlist_release(&sb->env);
	free(sb->api_url);
	free(sb);
}

/* What JSON cannot carry is refused before anything exists; an env value
 * that is not UTF-8 is carried another way by every Start (exec.c). */
static enum mfs_code check_text(const struct mfs_sandbox_spec *spec, struct mfs_err *err)
{
	const struct mfs_kvlist *lists[] = { spec->labels, spec->env };
	if (spec->image && !mfs_utf8_valid(spec->image))
		return mfs_fail(err, MFS_ERR_USAGE, "--image is not valid UTF-8: E2B template "
				"names are text");
	for (size_t l = 0; l < 2; l++)
		for (size_t i = 0; lists[l] && i < lists[l]->n; i++)
			if (!mfs_utf8_valid(lists[l]->items[i].key) ||
			    (l == 0 && !mfs_utf8_valid(lists[l]->items[i].value)))
				return mfs_fail(err, MFS_ERR_USAGE, "%s is not valid UTF-8, which "
						"E2B cannot carry: fix or drop it",
						l ? "an environment variable's name" : "a label");
	return MFS_OK;
}

enum mfs_code e2b_create(const struct mfs_sandbox_spec *spec, struct mfs_sandbox **out,
			 struct mfs_err *err)
{
	struct e2b_conf c;
	struct e2b_sandbox *sb = NULL;
	char nonce[33];
	bool ambiguous = false;
	enum mfs_code rc;

	*out = NULL;
	rc = e2b_conf_load(&c, err);
	if (rc == MFS_OK)
		rc = check_text(spec, err);
	if (rc != MFS_OK)
		goto out;

	sb = mfs_xcalloc(1, sizeof(*sb));
	sb->base.ops = &mfs_e2b_ops;
	sb->base.workdir = mfs_xstrdup(WORKDIR);
	sb->api_url = mfs_xstrdup(c.api_url);
	sb->stream_idle_s = c.stream_idle_s;
	if (spec->create_timeout_s > 0)
		sb->deadline = mfs_now_s() + (double)spec->create_timeout_s;
	mfs_kvlist_init(&sb->env);
	if (spec->env)
		for (size_t i = 0; i < spec->env->n; i++)
			mfs_kvlist_set(&sb->env, spec->env->items[i].key, spec->env->items[i].value);

	if (c.debug) {
		/* What the SDK does in debug mode: a local envd, no control plane. */
		sb->debug = true;
		sb->base.id = mfs_xstrdup("debug_sandbox_id");
		e2b_parse_version("99.99.99", sb->envd_ver);
		sb->envd_url = e2b_envd_base(&c, sb->base.id, NULL);
		goto done;
	}

	mfs_random_hex(nonce, 16);
	sb->cleanup_s = spec->cleanup_timeout_s;
	rc = post_create(&c, spec, nonce, sb, &ambiguous, err);
	if (rc != MFS_OK) {
		/* A cut line, a signal or the deadline may have left one behind;
		 * a refused key made nothing and could not look anyway. */
		if (rc != MFS_ERR_AUTH)
			sweep_nonce(&c, nonce, NULL, spec);
		goto out;
	}
	/* A create we retried may have landed twice after all: keep ours only. */
	if (ambiguous)
		sweep_nonce(&c, nonce, sb->base.id, spec);
done:
	*out = &sb->base;
	sb = NULL;
	rc = MFS_OK;
out:
	e2b_sandbox_free(sb);
	e2b_conf_release(&c);
	return rc;
}
