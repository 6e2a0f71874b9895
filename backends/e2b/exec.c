/*
 * exec.c - runs a command through envd's process.Process/Start.
 *
 * - A Start stream is declared dead after MFSANDBOX_E2B_STREAM_IDLE_S with
 *   no byte at all, or with keepalives but no start event: we ask envd for
 *   keepalives well inside that bound, so a quiet command never trips it.
 * - A Start stream that ends without the end-stream envelope, or a 502, is
 *   told apart from a network blip by probing envd's /health, which answers
 *   502 once the sandbox is gone.
 */
#include "internal.h"
#include "mfs/util/buf.h"
#include "mfs/util/cancel.h"
#include "mfs/util/clock.h"
#include "mfs/util/err.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GRACE_MS 2000

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
	e2b_envd_headers(&hdrs, sb);
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
		rc = e2b_envd_status_fail(err, sb, &req, &resp);
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
	e2b_envd_headers(&hdrs, sb);
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
	if (e2b_version_at_least(sb->envd_ver, 0, 3, 0))
		json_object_set_new(msg, "stdin", json_false());
	if (!e2b_add_frame(&out, msg))
		abort();
	json_decref(msg);
	return mfs_buf_detach(&out, len);
}

/* One Start request, and what came back. */
struct start_call {
	struct e2b_sandbox *sb;
	long timeout_s;
	struct e2b_stream st;
	struct mfs_strv hdrs;
	struct mfs_buf url;
	char *body;
	struct mfs_http_req req;
	struct mfs_http_resp resp;
	time_t began;
	enum mfs_code rc;          /* of the HTTP call */
};

static void start_prepare(struct start_call *c, struct e2b_sandbox *sb,
			  const struct mfs_exec_req *r, const struct mfs_io *io)
{
	size_t body_len = 0;
	/* Keepalives come well inside the idle bound, so silence means death. */
	long keepalive_s = sb->stream_idle_s / 3 < KEEPALIVE_S ? sb->stream_idle_s / 3 : KEEPALIVE_S;

	c->sb = sb;
	c->timeout_s = r->timeout_s;
	c->st.io = io;
	c->st.idle_ms = sb->stream_idle_s * 1000;
	mfs_http_resp_init(&c->resp);
	c->body = start_body(sb, r, &body_len);
	e2b_envd_headers(&c->hdrs, sb);
	mfs_strv_push(&c->hdrs, "Content-Type: application/connect+json");
	mfs_strv_push(&c->hdrs, "Connect-Protocol-Version: 1");
	mfs_strv_pushf(&c->hdrs, "Keepalive-Ping-Interval: %ld", keepalive_s > 0 ? keepalive_s : 1);
	/* envd bounds the process by this deadline; "0" would mean "already
	 * expired", so the header is left out when there is no limit. */
	if (r->timeout_s > 0)
		mfs_strv_pushf(&c->hdrs, "Connect-Timeout-Ms: %ld", r->timeout_s * 1000L);
	mfs_buf_addf(&c->url, "%s/process.Process/Start", sb->envd_url);
	c->req = (struct mfs_http_req){
		.method = "POST", .url = c->url.data, .headers = &c->hdrs,
		.body = c->body, .body_len = body_len,
		.on_data = e2b_stream_feed, .on_data_ctx = &c->st,
		/* A backstop in case envd never ends the stream after its deadline. */
		.timeout_ms = r->timeout_s > 0 ? (r->timeout_s + 60) * 1000L : 0,
		.idle_timeout_ms = c->st.idle_ms,
		.cancellable = true,
	};
}

static void start_release(struct start_call *c)
{
	e2b_stream_release(&c->st);
	free(c->body);
	mfs_http_resp_release(&c->resp);
	mfs_buf_release(&c->url);
	mfs_strv_release(&c->hdrs);
}

/* Cancelled (a signal): forward it, give the command a grace period, kill. */
static enum mfs_code stop_cancelled(struct start_call *c, struct mfs_err *err)
{
	struct mfs_err ignored;
	if (c->st.pid > 0) {
		int signo = mfs_cancel_signal();
		send_signal(c->sb, c->st.pid, signo == SIGINT || signo == SIGTERM || signo == 0
			    ? "SIGNAL_SIGTERM" : "SIGNAL_SIGKILL", &ignored);
		mfs_sleep_ms(GRACE_MS);
		send_signal(c->sb, c->st.pid, "SIGNAL_SIGKILL", &ignored);
	}
	return mfs_fail(err, MFS_ERR_CANCELLED, "cancelled; the E2B process was signalled");
}

static enum mfs_code sandbox_disappeared(struct start_call *c, struct mfs_err *err)
{
	return mfs_fail(err, MFS_ERR_BACKEND, "E2B sandbox %s disappeared while the command ran "
			"(killed, or past its lifetime)", c->sb->base.id);
}

/* No byte for the idle bound, or keepalives but never a start event. */
static enum mfs_code stop_stalled(struct start_call *c, struct mfs_err *err)
{
	struct mfs_err ignored;
	bool gone = sandbox_gone(c->sb);
	if (c->st.pid > 0 && !gone)
		send_signal(c->sb, c->st.pid, "SIGNAL_SIGKILL", &ignored);
	if (gone)
		return sandbox_disappeared(c, err);
	return mfs_fail(err, MFS_ERR_BACKEND, "envd %s for %ld s; gave up on the stream (bound: "
			STREAM_IDLE_ENV ")", c->st.stalled
			? "sent only keepalives and never started the command"
			: "sent nothing, not even a keepalive", c->sb->stream_idle_s);
}

/* How the transfer itself ended: MFS_OK when a whole stream came back. */
static enum mfs_code check_transfer(struct start_call *c, struct mfs_err *err)
{
	const struct e2b_stream *st = &c->st;
	if (c->rc == MFS_ERR_CANCELLED || (c->rc == MFS_OK && mfs_cancelled()))
		return stop_cancelled(c, err);
	if (st->protocol_error)
		return mfs_fail(err, MFS_ERR_PROTOCOL, "process.Process/Start: %s",
				st->protocol_error);
	if (c->rc == MFS_ERR_HTTP && c->timeout_s > 0 && st->started && !st->ended &&
	    time(NULL) - c->began >= c->timeout_s + 60)
		return mfs_fail(err, MFS_ERR_TIMEOUT, "the command outlived its %lds timeout "
				"and envd did not end the stream", c->timeout_s);
	if (st->stalled || (c->rc == MFS_ERR_HTTP && mfs_now_ms() - st->last_frame_ms >= st->idle_ms))
		return stop_stalled(c, err);
	if (c->rc != MFS_OK || (c->resp.status == 200 && !st->end_stream)) {
		if (sandbox_gone(c->sb))
			return sandbox_disappeared(c, err);
		if (c->rc == MFS_OK)
			return mfs_fail(err, MFS_ERR_PROTOCOL, "process.Process/Start: the stream "
					"ended without its end-of-stream frame");
		return c->rc;
	}
	if (c->resp.status != 200)
		return e2b_envd_status_fail(err, c->sb, &c->req, &c->resp);
	return MFS_OK;
}

/* A whole stream: its end-of-stream error, or the command's status. */
static enum mfs_code check_result(struct start_call *c, int *status, struct mfs_err *err)
{
	const struct e2b_stream *st = &c->st;
	if (st->error_code && !strcmp(st->error_code, "deadline_exceeded"))
		return mfs_fail(err, MFS_ERR_TIMEOUT, "the command ran past its %lds timeout "
				"and was killed", c->timeout_s);
	if (st->error_code)
		return mfs_fail(err, MFS_ERR_BACKEND, "envd: %s: %.300s", st->error_code,
				st->error_msg);
	if (!st->started || !st->ended)
		return mfs_fail(err, MFS_ERR_PROTOCOL, "process.Process/Start: the stream %s",
				st->started ? "has no end event" : "has no start event");
	if (st->signal_name) {
		int no = e2b_signal_number(st->signal_name);
		*status = no ? 128 + no : 255;
	} else {
		*status = st->exit_code & 0xff;
	}
	return MFS_OK;
}

enum mfs_code e2b_exec(struct mfs_sandbox *base, const struct mfs_exec_req *r,
		       const struct mfs_io *io, int *status, struct mfs_err *err)
{
	struct start_call c = { 0 };
	enum mfs_code rc;

	*status = -1;
	if (!r->argv || !r->argv[0])
		return mfs_fail(err, MFS_ERR_USAGE, "nothing to run");
	start_prepare(&c, (struct e2b_sandbox *)base, r, io);
	c.began = time(NULL);
	c.st.began_ms = c.st.last_frame_ms = mfs_now_ms();
	c.rc = mfs_http_do(&c.req, &c.resp, err);
	rc = check_transfer(&c, err);
	if (rc == MFS_OK)
		rc = check_result(&c, status, err);
	start_release(&c);
	return rc;
}
