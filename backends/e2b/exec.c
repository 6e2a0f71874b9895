/*
 * exec.c - runs a command through envd's process.Process/Start (and
 * Connect, when its stream breaks).
 *
 * - A Start stream is declared dead after MFSANDBOX_E2B_STREAM_IDLE_S with
 *   no byte at all, or with keepalives but no start event: we ask envd for
 *   keepalives well inside that bound, so a quiet command never trips it.
 * - A Start stream that ends without the end-stream envelope, or a 502, is
 *   told apart from a network blip by probing envd's /health, which answers
 *   502 once the sandbox is gone.
 * - A Start answered 429 or 503 (or a bare 502 while /health still answers;
 *   the edge's "sandbox not found" 502 has a body) was refused before envd
 *   ran anything: it is sent again.  A Start with no
 *   answer at all is not: the command may be running, and a second Start
 *   would run it twice.
 * - A stream that breaks after its start event is followed on with
 *   process.Process/Connect to the same pid (see follow()): attaching runs
 *   nothing, so unlike a Start it may be sent again.
 * - The Start call ends at --timeout plus a short grace whatever the line
 *   does (a proxy that stalls before the stream or inside it): envd's own
 *   deadline (Connect-Timeout-Ms) normally ends the stream first.
 */
#include "internal.h"
#include "mfs/util/buf.h"
#include "mfs/util/cancel.h"
#include "mfs/util/clock.h"
#include "mfs/util/err.h"
#include "mfs/util/text.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GRACE_MS 2000
/* Connect-Timeout-Ms has at most 10 digits (envd refuses more). */
#define MAX_CONNECT_TIMEOUT_S 9999999L
#define KILL_TIMEOUT_S 30L
/* How long past --timeout the Start call waits for envd's deadline_exceeded. */
#define DEADLINE_GRACE_S 5L
/* Connects after broken streams, per command: each waits a little longer. */
#define REATTACH_MAX 8

/* Unary SendSignal; "not_found" means the process is already gone.  It
 * gives up at stop_by (0: never). */
static enum mfs_code send_signal(struct e2b_sandbox *sb, long pid, const char *sig,
				 double stop_by, struct mfs_err *err)
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
		.timeout_ms = API_TIMEOUT_MS, .retries = 2, .retry_safe = true, .deadline = stop_by,
		.cut_on_second_signal = true, /* it runs after a first signal */
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

/* The command runs as `sh -c SCRIPT mfsandbox ARGV...` whose SCRIPT ends
 * in RUN: under setsid, argv[0]'s pid is its own process group, so a kill
 * can reach the children too (envd signals only that one pid, and its
 * deadline kills only that pid).  envd does not make the process a group
 * leader, so setsid never forks and the pid envd reports is the group id. */
#define RUN "command -v setsid >/dev/null 2>&1 && exec setsid -- \"$@\"; exec \"$@\""
/* JSON carries only UTF-8: other bytes travel base64 in the environment
 * (never in argv: values may be secrets) and the script decodes them. */
#define DECODE "_mfs_d() { printf %s \"$1\" | base64 -d && printf x; }; "

struct start_args {
	json_t *args, *envs;
	struct mfs_buf script;
	bool decode;              /* the script needs DECODE */
};

static bool shell_name(const char *k)
{
	if (!(*k == '_' || (*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z')))
		return false;
	for (; *k; k++)
		if (!(*k == '_' || (*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') ||
		      (*k >= '0' && *k <= '9')))
			return false;
	return true;
}

/* Sets envs[name] = base64(value); the script then has the value in
 * $_mfs_v with an "x" after it (command substitution eats newlines). */
static void add_encoded(struct start_args *a, const char *name, const char *value)
{
	struct mfs_buf b = MFS_BUF_INIT;
	mfs_buf_add_base64(&b, value, strlen(value));
	json_object_set_new(a->envs, name, json_string(b.data ? b.data : ""));
	mfs_buf_release(&b);
	mfs_buf_addf(&a->script, "_mfs_v=$(_mfs_d \"$%s\") || exit 126; unset %s; ", name, name);
	a->decode = true;
}

static enum mfs_code add_env(struct start_args *a, const char *k, const char *v,
			     struct mfs_err *err)
{
	struct mfs_buf name = MFS_BUF_INIT;
	if (mfs_utf8_valid(k) && mfs_utf8_valid(v)) {
		json_object_set_new(a->envs, k, json_string(v));
		return MFS_OK;
	}
	if (!shell_name(k))
		return mfs_fail(err, MFS_ERR_USAGE, "an environment variable's name is not a shell "
				"name and its value is not UTF-8: E2B cannot carry it; fix or "
				"drop the variable");
	mfs_buf_addf(&name, "MFS_E_%s", k);
	add_encoded(a, name.data, v);
	mfs_buf_addf(&a->script, "export %s=\"${_mfs_v%%x}\"; ", k);
	mfs_buf_release(&name);
	return MFS_OK;
}

static void add_argv(struct start_args *a, const char *const *argv)
{
	bool plain = true;
	for (size_t i = 0; argv[i]; i++)
		plain = plain && mfs_utf8_valid(argv[i]);
	if (plain) {
		for (size_t i = 0; argv[i]; i++)
			json_array_append_new(a->args, json_string(argv[i]));
		return;
	}
	mfs_buf_adds(&a->script, "set --; ");
	for (size_t i = 0; argv[i]; i++) {
		char name[32];
		snprintf(name, sizeof(name), "MFS_A%zu", i);
		add_encoded(a, name, argv[i]);
		mfs_buf_adds(&a->script, "set -- \"$@\" \"${_mfs_v%x}\"; ");
	}
}

/* The Start envelope: the script, argv and the sandbox's and the command's
 * environment (the command's wins). */
static enum mfs_code start_body(const struct e2b_sandbox *sb, const struct mfs_exec_req *r,
				struct mfs_buf *out, struct mfs_err *err)
{
	struct start_args a = { json_array(), json_object(), MFS_BUF_INIT, false };
	struct mfs_kvlist env = MFS_KVLIST_INIT;
	struct mfs_buf script = MFS_BUF_INIT;
	const char *cwd = r->cwd ? r->cwd : sb->base.workdir;
	json_t *argv = json_array(), *msg = NULL;
	enum mfs_code rc = MFS_OK;

	for (size_t i = 0; i < sb->env.n; i++)
		mfs_kvlist_set(&env, sb->env.items[i].key, sb->env.items[i].value);
	for (size_t i = 0; r->env && i < r->env->n; i++)
		mfs_kvlist_set(&env, r->env->items[i].key, r->env->items[i].value);
	for (size_t i = 0; i < env.n && rc == MFS_OK; i++)
		rc = add_env(&a, env.items[i].key, env.items[i].value, err);
	if (rc == MFS_OK && !mfs_utf8_valid(cwd))
		rc = mfs_fail(err, MFS_ERR_USAGE, "the working directory is not UTF-8: "
			      "E2B cannot carry it");
	if (rc == MFS_OK) {
		add_argv(&a, r->argv);
		mfs_buf_addf(&script, "%s%s" RUN, a.decode ? DECODE : "",
			     a.script.data ? a.script.data : "");
		json_array_append_new(argv, json_string("-c"));
		json_array_append_new(argv, json_string(script.data));
		json_array_append_new(argv, json_string("mfsandbox"));
		json_array_extend(argv, a.args);
		msg = json_pack("{s:{s:s, s:O, s:O, s:s}}", "process", "cmd", "/bin/sh",
				"args", argv, "envs", a.envs, "cwd", cwd);
	}
	/* stdin exists from envd 0.3.0; absent means an open pipe (tools hang). */
	if (msg && e2b_version_at_least(sb->envd_ver, 0, 3, 0))
		json_object_set_new(msg, "stdin", json_false());
	if (rc == MFS_OK && !e2b_add_frame(out, msg))
		rc = mfs_fail(err, MFS_ERR_PROTOCOL, "cannot encode the Start request");
	json_decref(msg);
	json_decref(argv);
	json_decref(a.args);
	json_decref(a.envs);
	mfs_buf_release(&script);
	mfs_buf_release(&a.script);
	mfs_kvlist_release(&env);
	return rc;
}

/* One Start request, or a Connect that follows its process, and what came
 * back. */
struct start_call {
	struct e2b_sandbox *sb;
	const char *rpc;           /* "Start" or "Connect", for messages */
	long timeout_s;
	long pid;                  /* the process a Connect follows */
	int reattached;            /* Connects sent after a stream broke */
	struct e2b_stream st;
	struct mfs_strv hdrs;
	struct mfs_buf url;
	struct mfs_buf body;
	struct mfs_http_req req;
	struct mfs_http_resp resp;
	enum mfs_code rc;          /* of the HTTP call */
};

/* The headers of a Start or Connect stream; timeout_ms 0: no deadline. */
static void stream_headers(struct start_call *c, long timeout_ms)
{
	/* Keepalives come well inside the idle bound, so silence means death. */
	long keepalive_s = c->sb->stream_idle_s / 3 < KEEPALIVE_S ? c->sb->stream_idle_s / 3
								  : KEEPALIVE_S;
	e2b_envd_headers(&c->hdrs, c->sb);
	mfs_strv_push(&c->hdrs, "Content-Type: application/connect+json");
	mfs_strv_push(&c->hdrs, "Connect-Protocol-Version: 1");
	mfs_strv_pushf(&c->hdrs, "Keepalive-Ping-Interval: %ld", keepalive_s > 0 ? keepalive_s : 1);
	/* "0" would mean "already expired" and more than 10 digits is
	 * refused, so the header is left out then: our own deadline and the
	 * group kill still hold. */
	if (timeout_ms > 0 && timeout_ms <= MAX_CONNECT_TIMEOUT_S * 1000L)
		mfs_strv_pushf(&c->hdrs, "Connect-Timeout-Ms: %ld", timeout_ms);
}

static enum mfs_code start_prepare(struct start_call *c, struct e2b_sandbox *sb,
				   const struct mfs_exec_req *r, const struct mfs_io *io,
				   struct mfs_err *err)
{
	c->sb = sb;
	c->rpc = "Start";
	c->timeout_s = r->timeout_s;
	c->st.io = io;
	c->st.idle_ms = sb->stream_idle_s * 1000;
	mfs_http_resp_init(&c->resp);
	enum mfs_code rc = start_body(sb, r, &c->body, err);
	if (rc != MFS_OK)
		return rc;
	/* envd bounds the process by this deadline. */
	stream_headers(c, r->timeout_s > 0 && r->timeout_s <= MAX_CONNECT_TIMEOUT_S
			  ? r->timeout_s * 1000L : 0);
	mfs_buf_addf(&c->url, "%s/process.Process/Start", sb->envd_url);
	c->req = (struct mfs_http_req){
		.method = "POST", .url = c->url.data, .headers = &c->hdrs,
		.body = c->body.data, .body_len = c->body.len,
		.on_data = e2b_stream_feed, .on_data_ctx = &c->st,
		/* In case envd never ends the stream at its deadline. */
		.deadline = r->timeout_s > 0 ? mfs_now_s() + (double)(r->timeout_s +
								       DEADLINE_GRACE_S) : 0,
		.idle_timeout_ms = c->st.idle_ms,
		.cancellable = true,
	};
	c->st.began_ms = c->st.last_frame_ms = mfs_now_ms();
	return MFS_OK;
}

static void start_release(struct start_call *c)
{
	e2b_stream_release(&c->st);
	mfs_buf_release(&c->body);
	mfs_http_resp_release(&c->resp);
	mfs_buf_release(&c->url);
	mfs_strv_release(&c->hdrs);
}

/* Signals the command's process group (see RUN) from a second Start, and
 * its own pid through SendSignal in case setsid was missing.  Runs after a
 * cancellation too, so it is not cancellable itself, but a second signal
 * gives up on it at once, and so does stop_by (the clean-up bound: deleting
 * the sandbox ends the group anyway). */
static void kill_group(struct e2b_sandbox *sb, long pid, const char *sig, double stop_by)
{
	struct start_call k = { 0 };
	struct mfs_err ignored;
	char script[96];
	snprintf(script, sizeof(script), "kill -s %s -- -%ld 2>/dev/null; true", sig, pid);
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	struct mfs_exec_req r = { .argv = argv, .timeout_s = KILL_TIMEOUT_S };
	if (start_prepare(&k, sb, &r, NULL, &ignored) == MFS_OK) {
		k.req.cancellable = false;
		k.req.cut_on_second_signal = true;
		if (stop_by > 0 && (k.req.deadline <= 0 || stop_by < k.req.deadline))
			k.req.deadline = stop_by;
		mfs_http_do(&k.req, &k.resp, &ignored);
	}
	start_release(&k);
	send_signal(sb, pid, !strcmp(sig, "TERM") ? "SIGNAL_SIGTERM" : "SIGNAL_SIGKILL", stop_by,
		    &ignored);
}

/* When stopping a command that must stop gives up (0: never). */
static double stop_bound(const struct e2b_sandbox *sb)
{
	return sb->cleanup_s > 0 ? mfs_now_s() + (double)sb->cleanup_s : 0;
}

/* Cancelled (a signal): forward it to the group, a grace period, kill it. */
static enum mfs_code stop_cancelled(struct start_call *c, struct mfs_err *err)
{
	if (c->st.pid > 0) {
		int signo = mfs_cancel_signal();
		double stop_by = stop_bound(c->sb);
		kill_group(c->sb, c->st.pid, signo == SIGINT || signo == SIGTERM || signo == 0
			   ? "TERM" : "KILL", stop_by);
		if (mfs_cancel_sleep_until_count(GRACE_MS, 2))
			kill_group(c->sb, c->st.pid, "KILL", stop_by);
	}
	return mfs_fail(err, MFS_ERR_CANCELLED, "cancelled; the E2B process was signalled");
}

static enum mfs_code sandbox_disappeared(struct start_call *c, struct mfs_err *err)
{
	return mfs_fail(err, MFS_ERR_BACKEND, "E2B sandbox %s disappeared while the command ran "
			"(killed, or past its lifetime)", c->sb->base.id);
}

/* Past the timeout: envd killed the command's own pid at its deadline (or
 * never did); what it started lives on in the group until killed here. */
static enum mfs_code stop_timed_out(struct start_call *c, const char *how, struct mfs_err *err)
{
	if (c->st.pid > 0)
		kill_group(c->sb, c->st.pid, "KILL", stop_bound(c->sb));
	return mfs_fail(err, MFS_ERR_TIMEOUT, "the command ran past its %lds timeout %s",
			c->timeout_s, how);
}

/* No byte for the idle bound, or keepalives but never a start event. */
static enum mfs_code stop_stalled(struct start_call *c, struct mfs_err *err)
{
	bool gone = sandbox_gone(c->sb);
	if (c->st.pid > 0 && !gone)
		kill_group(c->sb, c->st.pid, "KILL", stop_bound(c->sb));
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
		return mfs_fail(err, MFS_ERR_PROTOCOL, "process.Process/%s: %s", c->rpc,
				st->protocol_error);
	if (c->rc == MFS_ERR_TIMEOUT)
		return stop_timed_out(c, st->started ? "and envd did not end the stream"
				      : "before envd started it", err);
	if (st->stalled || (c->rc == MFS_ERR_HTTP && mfs_now_ms() - st->last_frame_ms >= st->idle_ms))
		return stop_stalled(c, err);
	if (c->rc != MFS_OK || (c->resp.status == 200 && !st->end_stream)) {
		if (sandbox_gone(c->sb))
			return sandbox_disappeared(c, err);
		if (c->rc == MFS_OK)
			return mfs_fail(err, MFS_ERR_PROTOCOL, "process.Process/%s: the stream "
					"ended without its end-of-stream frame", c->rpc);
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
		return stop_timed_out(c, "and was killed", err);
	if (st->error_code)
		return mfs_fail(err, MFS_ERR_BACKEND, "envd: %s: %.300s", st->error_code,
				st->error_msg);
	if (!st->started || !st->ended)
		return mfs_fail(err, MFS_ERR_PROTOCOL, "process.Process/%s: the stream %s",
				c->rpc, st->started ? "has no end event" : "has no start event");
	/* A signal death is exitCode -1 with status "signal: <name>". */
	if (st->signal_name) {
		int no = e2b_signal_number(st->signal_name);
		*status = no ? 128 + no : 255;
	} else {
		*status = st->exit_code & 0xff;
	}
	return MFS_OK;
}

/* Was the Start turned away before envd ran anything (see the file
 * comment)?  Then *wait_ms is how long to wait before sending it again. */
static bool start_refused(struct start_call *c, int attempt, long *wait_ms)
{
	long s = c->resp.status;
	if (c->rc != MFS_OK || attempt >= API_RETRIES ||
	    !(s == 429 || s == 503 || (s == 502 && !c->resp.body.len && !sandbox_gone(c->sb))))
		return false;
	*wait_ms = mfs_http_retry_after_ms(mfs_http_header(&c->resp, "retry-after"),
					   (long long)time(NULL));
	if (*wait_ms < 0)
		*wait_ms = 500L << attempt;
	return !(c->req.deadline > 0 && mfs_now_s() + (double)*wait_ms / 1000 >= c->req.deadline);
}

/* The Start call, sent again while it is refused and time is left. */
static void start_send(struct start_call *c, struct mfs_err *err)
{
	long wait_ms;
	for (int attempt = 0;; attempt++) {
		c->st.began_ms = c->st.last_frame_ms = mfs_now_ms();
		c->rc = mfs_http_do(&c->req, &c->resp, err);
		if (!start_refused(c, attempt, &wait_ms))
			return;
		if (!mfs_cancel_sleep_ms(wait_ms)) {
			c->rc = mfs_fail(err, MFS_ERR_CANCELLED, "cancelled before the command started");
			return;
		}
	}
}

/* End-of-stream codes that say the line or a proxy broke the stream, not
 * that envd is done with the process. */
static bool broken_code(const char *code)
{
	static const char *const codes[] = { "unavailable", "unknown", "internal",
					     "resource_exhausted", "aborted" };
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (!strcmp(code, codes[i]))
			return true;
	return false;
}

/* Did the stream break after its start event, with the process maybe
 * still running?  A stream that went silent (the idle bound), a timeout,
 * a cancellation or a protocol error are not breaks: check_transfer ends
 * those. */
static bool stream_broke(const struct start_call *c)
{
	const struct e2b_stream *st = &c->st;
	if (!st->started || st->pid <= 0 || st->ended || st->protocol_error || st->stalled ||
	    mfs_cancelled())
		return false;
	if (c->rc == MFS_ERR_HTTP)
		return mfs_now_ms() - st->last_frame_ms < st->idle_ms;
	if (c->rc != MFS_OK || c->resp.status != 200)
		return false;
	return !st->end_stream || (st->error_code && broken_code(st->error_code));
}

/* Turns c into a Connect to the process it followed: same sandbox, output
 * sink and deadline; the parser starts afresh, as envd sends a start event
 * again and none of the output it sent before. */
static enum mfs_code connect_prepare(struct start_call *c, struct mfs_err *err)
{
	const struct mfs_io *io = c->st.io;
	double deadline = c->req.deadline;
	long left_ms = 0;

	c->pid = c->st.pid;
	c->rpc = "Connect";
	e2b_stream_release(&c->st);
	c->st = (struct e2b_stream){ .io = io, .idle_ms = c->sb->stream_idle_s * 1000,
				     .pid = c->pid }; /* for a kill before the start event */
	mfs_buf_reset(&c->body);
	mfs_buf_reset(&c->url);
	mfs_strv_release(&c->hdrs);
	mfs_http_resp_release(&c->resp);
	mfs_http_resp_init(&c->resp);
	if (deadline > 0) {
		/* The stream ends when the process's own deadline does. */
		left_ms = (long)((deadline - (double)DEADLINE_GRACE_S - mfs_now_s()) * 1000);
		if (left_ms <= 0)
			return stop_timed_out(c, "while its output stream was broken", err);
	}
	json_t *msg = json_pack("{s:{s:I}}", "process", "pid", (json_int_t)c->pid);
	bool ok = e2b_add_frame(&c->body, msg);
	json_decref(msg);
	if (!ok)
		return mfs_fail(err, MFS_ERR_PROTOCOL, "cannot encode the Connect request");
	stream_headers(c, left_ms);
	mfs_buf_addf(&c->url, "%s/process.Process/Connect", c->sb->envd_url);
	c->req = (struct mfs_http_req){
		.method = "POST", .url = c->url.data, .headers = &c->hdrs,
		.body = c->body.data, .body_len = c->body.len,
		.on_data = e2b_stream_feed, .on_data_ctx = &c->st,
		.deadline = deadline, .idle_timeout_ms = c->st.idle_ms, .cancellable = true,
		/* Attaching runs nothing: refused or unanswered, it is sent again. */
		.retries = API_RETRIES, .retry_safe = true,
	};
	return MFS_OK;
}

/* Re-attaches to the process of a broken stream, once (its HTTP retries
 * aside); c then holds the Connect stream, checked like the Start's. */
static enum mfs_code reattach(struct start_call *c, struct mfs_err *err)
{
	/* A short pause, longer each time, lets a proxy or the line recover. */
	long wait_ms = 250L << (c->reattached < 4 ? c->reattached : 4);
	if (++c->reattached > REATTACH_MAX)
		return mfs_fail(err, MFS_ERR_BACKEND, "the E2B command's output stream broke %d "
				"times; gave up following process %ld", REATTACH_MAX, c->st.pid);
	if (sandbox_gone(c->sb))
		return sandbox_disappeared(c, err);
	if (!mfs_cancel_sleep_ms(wait_ms))
		return stop_cancelled(c, err);
	enum mfs_code rc = connect_prepare(c, err);
	if (rc != MFS_OK)
		return rc;
	c->st.began_ms = c->st.last_frame_ms = mfs_now_ms();
	c->rc = mfs_http_do(&c->req, &c->resp, err);
	const struct e2b_stream *st = &c->st;
	if (c->rc == MFS_OK && c->resp.status == 200 && !st->started && st->error_code &&
	    !strcmp(st->error_code, "not_found"))
		return mfs_fail(err, MFS_ERR_BACKEND, "the E2B command's output stream broke and "
				"process %ld ended before mfsandbox re-attached to it: its exit "
				"status is lost", c->pid);
	if (st->started && st->pid != c->pid)
		return mfs_fail(err, MFS_ERR_PROTOCOL, "process.Process/Connect: envd attached to "
				"process %ld, not %ld", st->pid, c->pid);
	return MFS_OK;
}

/* How the call ended, following the process through Connect each time
 * its stream broke (envd does not replay output: what the command wrote
 * while none was attached is lost, nothing is delivered twice). */
static enum mfs_code follow(struct start_call *c, struct mfs_err *err)
{
	enum mfs_code rc;
	while (stream_broke(c))
		if ((rc = reattach(c, err)) != MFS_OK)
			return rc;
	rc = check_transfer(c, err);
	if (rc != MFS_OK && rc != MFS_ERR_CANCELLED && rc != MFS_ERR_TIMEOUT && c->reattached)
		mfs_err_prefix(err, "the E2B command's output stream broke and re-attaching "
			       "failed: ");
	return rc;
}

enum mfs_code e2b_exec(struct mfs_sandbox *base, const struct mfs_exec_req *r,
		       const struct mfs_io *io, int *status, struct mfs_err *err)
{
	struct start_call c = { 0 };
	enum mfs_code rc;

	*status = -1;
	if (!r->argv || !r->argv[0])
		return mfs_fail(err, MFS_ERR_USAGE, "nothing to run");
	rc = start_prepare(&c, (struct e2b_sandbox *)base, r, io, err);
	if (rc == MFS_OK) {
		start_send(&c, err);
		rc = follow(&c, err);
	}
	if (rc == MFS_OK)
		rc = check_result(&c, status, err);
	start_release(&c);
	return rc;
}
