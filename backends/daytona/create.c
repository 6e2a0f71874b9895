/*
 * create.c - a sandbox made exactly once, waited for, and deleted again.
 */
#include "daytona.h"
#include "mfs/util/clock.h"
#include "mfs/util/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* ---- create ---- */

static void sandbox_free(struct dt_sandbox *sb)
{
	if (!sb)
		return;
	free(sb->base.id);
	free(sb->base.workdir);
	free(sb->toolbox);
	mfs_kvlist_release(&sb->env);
	dt_conf_release(&sb->conf);
	free(sb);
}

/* --cpu 1.5 asks for 2: Daytona sizes in whole vCPUs (no libm for ceil). */
static json_int_t whole_cpus(double cpu)
{
	json_int_t n = (json_int_t)cpu;
	return (double)n < cpu ? n + 1 : n;
}

/* What the create body carries as JSON text must be UTF-8, or jansson
 * drops it without a word: a label `kill --stale` looks for, or --image,
 * which would leave the default snapshot in its place. */
static enum mfs_code check_text(const struct mfs_sandbox_spec *spec, const struct dt_conf *c,
				struct mfs_err *err)
{
	if (spec->image && !mfs_utf8_valid(spec->image))
		return mfs_fail(err, MFS_ERR_USAGE, "--image is not valid UTF-8: Daytona image "
				"names are text");
	if (c->target && !mfs_utf8_valid(c->target))
		return mfs_fail(err, MFS_ERR_CONFIG, "DAYTONA_TARGET is not valid UTF-8: set it "
				"to a Daytona region name");
	/* The API takes a GPU count: "A100" was sent as 1 GPU, without a word. */
	if (spec->image && *spec->image && spec->gpu && *spec->gpu &&
	    (strspn(spec->gpu, "0123456789") != strlen(spec->gpu) || strlen(spec->gpu) > 3 ||
	     atoi(spec->gpu) < 1))
		return mfs_fail(err, MFS_ERR_USAGE, "--gpu '%.20s': Daytona takes a number of "
				"GPUs, e.g. --gpu 1", spec->gpu);
	for (size_t i = 0; spec->labels && i < spec->labels->n; i++)
		if (!mfs_utf8_valid(spec->labels->items[i].key) ||
		    !mfs_utf8_valid(spec->labels->items[i].value))
			return mfs_fail(err, MFS_ERR_USAGE, "a label is not valid UTF-8, which "
					"Daytona cannot carry: fix or drop it");
	return MFS_OK;
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
			json_object_set_new(body, "gpu", json_integer(atoi(spec->gpu)));
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

/* The sandbox an ambiguous create made, if any (*id NULL: none yet). */
static enum mfs_code lookup_nonce(const struct dt_conf *c, const char *nonce, bool cancellable,
				  char **id, struct mfs_err *err)
{
	struct found f = { NULL, 0 };
	enum mfs_code rc = dt_list_by_label(c, NONCE_KEY, nonce, cancellable, found_one, &f, err);
	if (rc != MFS_OK) {
		free(f.id);
		f.id = NULL;
	}
	*id = f.id;
	return rc;
}

/* Removes what a failed create made: `id`, or what carries the nonce (a
 * cut create may have made one).  Runs after a signal or --timeout too, so
 * not cancellable, but held to the clean-up bound and given up on a second
 * signal; then one line names what may be left. */
static void remove_failed(struct dt_sandbox *sb, const struct mfs_sandbox_spec *spec,
			  const char *id, const char *nonce)
{
	struct mfs_err e = { MFS_OK, "" };
	struct mfs_buf what = MFS_BUF_INIT;
	char *found = NULL;
	enum mfs_code rc = MFS_OK;
	long bound = spec->cleanup_timeout_s;
	sb->conf.deadline = bound > 0 ? mfs_now_s() + (double)bound : 0;
	if (!id && (rc = lookup_nonce(&sb->conf, nonce, false, &found, &e)) == MFS_OK)
		id = found;
	if (rc == MFS_OK && id)
		rc = dt_delete_sandbox(&sb->conf, id, NULL, &e);
	if (rc != MFS_OK) {
		if (id)
			mfs_buf_adds(&what, id);
		else
			mfs_buf_addf(&what, "labelled %s=%s", NONCE_KEY, nonce);
		mfs_say_not_removed(spec->say, "daytona", what.data, id != NULL, rc, bound, e.msg);
	}
	mfs_buf_release(&what);
	free(found);
}

static enum mfs_code start_timed_out(struct mfs_err *err, const char *id, const char *state)
{
	if (!id)
		return mfs_fail(err, MFS_ERR_TIMEOUT, "--timeout reached before Daytona answered "
				"the create call");
	return mfs_fail(err, MFS_ERR_TIMEOUT, "--timeout reached while Daytona sandbox %s was "
			"still %s", id, state);
}

/* The create's progress: a status line the executor's channel redraws on a
 * terminal, and one summary line when the wait was long enough to notice. */
struct progress {
	const struct mfs_say *say;
	bool shown;
	double t0;
	char last[32];
};

static void progress_update(struct progress *p, const char *id, const char *state)
{
	if (!strcmp(p->last, state))
		return;
	snprintf(p->last, sizeof(p->last), "%s", state);
	mfs_sayf(p->say, MFS_SAY_PROGRESS, "daytona sandbox %.12s: %s (%.1f s)", id, state,
		 mfs_now_s() - p->t0);
	p->shown = true;
}

static void progress_end(struct progress *p, const char *id, const char *state)
{
	if (p->shown) {
		p->last[0] = '\0';
		progress_update(p, id, state);
		mfs_sayf(p->say, MFS_SAY_PROGRESS, "%s", "");
	}
	if (mfs_now_s() - p->t0 >= 1.0)
		mfs_sayf(p->say, MFS_SAY_INFO, "daytona sandbox %.12s %s after %.1f s", id, state,
			 mfs_now_s() - p->t0);
}

/* Polls until "started" on the SDK's schedule (0.1 s, x1.1 after 5 s, 1 s
 * cap), until deadline at the latest (MFS_ERR_TIMEOUT). */
static enum mfs_code wait_started(const struct dt_conf *c, const char *id, struct dt_state *s,
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
		if (dt_passed(deadline)) {
			rc = start_timed_out(err, id, s->state);
			break;
		}
		if (!dt_nap(dt_ms_until(deadline, (long)(interval * 1000)), true)) {
			rc = mfs_fail(err, MFS_ERR_CANCELLED, "cancelled while the Daytona sandbox "
				      "was starting");
			break;
		}
		if (mfs_now_s() - t0 > 5.0)
			interval = interval * 1.1 > 1.0 ? 1.0 : interval * 1.1;
		rc = dt_get_state(c, id, s, &gone, true, dt_ms_until(deadline, API_TIMEOUT_MS), err);
		if (rc != MFS_OK) {
			if (dt_passed(deadline))
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
	char *asked = NULL;

	mfs_http_resp_init(&resp);
	if (!given) {
		mfs_buf_adds(&path, "/sandbox/");
		mfs_http_urlencode(&path, id, false);
		mfs_buf_adds(&path, "/toolbox-proxy-url");
		rc = dt_api_call(c, "GET", path.data, NULL, API_RETRIES, API_TIMEOUT_MS, true, &req,
			      &resp, &url, &hdrs, err);
		if (rc == MFS_OK && resp.status != 200)
			rc = dt_status_fail(err, &req, &resp);
		if (rc == MFS_OK) {
			given = asked = dt_answer_toolbox_url(&resp);
			if (!given)
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
	free(asked);
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
	long s = dt_retry_after_s(ra), ms = s > 0 ? s * 1000 : 0;
	if (ms <= 0)
		ms = 1000L << (tries < 5 ? tries : 5);
	if (ms > 60000)
		ms = 60000;
	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = (unsigned)getpid() * 2654435761u;
	return ms + (long)(r % (unsigned long)(ms / 2 + 1));
}

/* After an answer that may or may not have made a sandbox: the one made
 * (*id set, its state in *s), or MFS_OK with *id NULL when none was. */
static enum mfs_code find_made(const struct dt_conf *c, const char *nonce, double deadline,
			       char **id, struct dt_state *s, struct mfs_err *err)
{
	bool gone;
	char *made;
	enum mfs_code rc = lookup_nonce(c, nonce, true, &made, err);
	if (rc != MFS_OK || !made)
		return rc;
	*id = made;
	rc = dt_get_state(c, made, s, &gone, true, dt_ms_until(deadline, API_TIMEOUT_MS), err);
	if (rc == MFS_OK && gone)
		rc = mfs_fail(err, MFS_ERR_BACKEND, "Daytona sandbox %s vanished right after its "
			      "create", made);
	return rc;
}

/* Waits ms (cut to the deadline) before another create; an error when
 * cancelled or when the deadline passed meanwhile. */
static enum mfs_code create_pause(long ms, double deadline, struct mfs_err *err)
{
	if (!dt_nap(dt_ms_until(deadline, ms), true))
		return mfs_fail(err, MFS_ERR_CANCELLED, "cancelled while creating");
	if (dt_passed(deadline))
		return start_timed_out(err, NULL, NULL);
	return MFS_OK;
}

/* POST /sandbox without ever making two: see the file comment. */
static enum mfs_code post_create(const struct dt_conf *c, const char *body, const char *nonce,
				 double deadline, char **id, struct dt_state *s, struct mfs_err *err)
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
		rc = dt_api_call(c, "POST", "/sandbox", body, 0,
				 dt_ms_until(deadline, CREATE_TIMEOUT_MS), true, &req, &resp, &url,
				 &hdrs, err);
		if (rc == MFS_ERR_CANCELLED)
			break;
		if ((rc == MFS_ERR_HTTP || rc == MFS_ERR_TIMEOUT) && dt_passed(deadline)) {
			/* Cut by the deadline: the caller finds and deletes it by nonce. */
			rc = start_timed_out(err, NULL, NULL);
			break;
		}
		if (rc == MFS_ERR_HTTP || (rc == MFS_OK && (resp.status == 502 ||
			       resp.status == 503 || resp.status == 504))) {
			enum mfs_code answer = rc;
			rc = find_made(c, nonce, deadline, id, s, err);
			if (rc != MFS_OK && rc != MFS_ERR_CANCELLED && dt_passed(deadline))
				rc = start_timed_out(err, *id, s->state ? s->state : "creating");
			if (rc != MFS_OK || *id)
				break;
			if (++attempt >= CREATE_ATTEMPTS) {
				rc = answer == MFS_OK ? dt_status_fail(err, &req, &resp) : answer;
				break;
			}
			rc = create_pause(500L << (attempt - 1), deadline, err);
		} else if (rc == MFS_OK && resp.status == 429 && mfs_now_s() < throttle_end) {
			/* The throttler refuses before anything is made, so asking
			 * again is safe; a fan-out may be told so for minutes. */
			rc = create_pause(throttle_wait_ms(&resp, throttled++), deadline, err);
		} else if (rc == MFS_OK) {
			rc = resp.status == 200 ? dt_answer_created(&resp, id, s, err)
						: dt_status_fail(err, &req, &resp);
			break;
		}
		if (rc != MFS_OK)
			break;
	}
	mfs_http_resp_release(&resp);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}

enum mfs_code dt_create(const struct mfs_sandbox_spec *spec, struct mfs_sandbox **out,
				    struct mfs_err *err)
{
	struct dt_sandbox *sb = NULL;
	struct dt_state s = { 0 };
	struct progress pg = { .say = spec->say, .t0 = mfs_now_s() };
	char nonce[33], *body = NULL, *id = NULL;
	bool image = spec->image && *spec->image;
	double deadline = spec->create_timeout_s > 0 ? mfs_now_s() + spec->create_timeout_s : 0;
	enum mfs_code rc;

	*out = NULL;
	sb = mfs_xcalloc(1, sizeof(*sb));
	sb->base.ops = &mfs_daytona_ops;
	rc = dt_conf_load(&sb->conf, err);
	if (rc == MFS_OK)
		rc = check_text(spec, &sb->conf, err);
	if (rc != MFS_OK)
		goto out;
	mfs_kvlist_init(&sb->env);
	if (spec->env)
		for (size_t i = 0; i < spec->env->n; i++)
			mfs_kvlist_set(&sb->env, spec->env->items[i].key, spec->env->items[i].value);

	mfs_random_hex(nonce, 16);
	body = create_body(spec, &sb->conf, nonce);
	sb->conf.deadline = deadline; /* every API call of the create, polls included */
	sb->cleanup_s = spec->cleanup_timeout_s;
	rc = post_create(&sb->conf, body, nonce, deadline, &id, &s, err);
	if (rc != MFS_OK) {
		/* A 400 "failed to start" or a cut line may still have made one. */
		if (id || rc == MFS_ERR_CANCELLED || rc == MFS_ERR_BACKEND || rc == MFS_ERR_HTTP ||
		    rc == MFS_ERR_TIMEOUT)
			remove_failed(sb, spec, id, nonce);
		goto out;
	}
	sb->base.id = id;
	sb->deadline = deadline;
	snprintf(sb->script_dir, sizeof(sb->script_dir), "/tmp/.mfs-");
	mfs_random_hex(sb->script_dir + 10, 12);
	id = NULL;
	rc = wait_started(&sb->conf, sb->base.id, &s, image, deadline, &pg, err);
	if (rc == MFS_OK)
		rc = toolbox_url(&sb->conf, sb->base.id, s.toolbox, &sb->toolbox, err);
	if (rc == MFS_OK)
		rc = dt_work_dir(sb, err);
	if (rc != MFS_OK) {
		remove_failed(sb, spec, sb->base.id, nonce);
		goto out;
	}
	*out = &sb->base;
	sb = NULL;
out:
	if (rc != MFS_OK && image)
		mfs_err_prefix(err, "image %s", spec->image);
	dt_state_release(&s);
	free(id);
	free(body);
	sandbox_free(sb);
	return rc;
}

void dt_release(struct mfs_sandbox *base)
{
	sandbox_free((struct dt_sandbox *)base);
}

enum mfs_code dt_destroy(struct mfs_sandbox *base, struct mfs_err *err)
{
	struct dt_sandbox *sb = (struct dt_sandbox *)base;
	enum mfs_code rc = MFS_OK;
	if (!sb)
		return MFS_OK;
	sb->conf.deadline = base->destroy_by;
	if (sb->base.id)
		rc = dt_delete_sandbox(&sb->conf, sb->base.id, NULL, err);
	sandbox_free(sb);
	return rc;
}
