/*
 * exec.c - a step as an async session command whose log is read to the end.
 */
#include "daytona.h"
#include "mfs/util/cancel.h"
#include "mfs/util/clock.h"
#include "mfs/util/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MIN_MS        20L
#define POLL_MAX_MS        150L
#define POLL_IDLE_MAX_MS   500L     /* after POLL_IDLE_S without a line */
#define POLL_IDLE_S        10.0

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

/* Deletes the session if open, which kills whatever its command started.
 * Not cancellable (it runs because of a signal, or --timeout), but held to
 * the clean-up bound and given up on a second signal: deleting the sandbox
 * next ends the command too. */
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
	struct mfs_http_req req = {
		.retries = 2, .timeout_ms = API_TIMEOUT_MS, .cut_on_second_signal = true,
		.deadline = sb->cleanup_s > 0 ? mfs_now_s() + (double)sb->cleanup_s : 0,
	};
	dt_toolbox_call(sb, "DELETE", path.data, &req, &resp, &url, &hdrs, &ignored);
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
	rc = dt_toolbox_call(sb, method, path, &req, resp, &url, &hdrs, err);
	if (rc == MFS_OK && want && resp->status != want)
		rc = dt_status_fail(err, &req, resp);
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

/* A failure worth another try: no answer, the proxy's/throttler's, or the
 * daemon's exit-code race. */
static bool transient(enum mfs_code rc, const struct mfs_http_resp *resp)
{
	if (rc == MFS_ERR_HTTP)
		return true;
	return resp->status == 429 || resp->status == 502 || resp->status == 503 ||
	       resp->status == 504 || dt_answer_exit_code_race(resp);
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
	long s = dt_retry_after_s(ra);
	if (s > 0)
		ms = s * 1000;
	if (ms > 10000)
		ms = 10000;
	if (ms > ms_left(ck))
		ms = ms_left(ck);
	return dt_nap(ms, true);
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
		      &ignored) == MFS_OK)
		id = dt_answer_session_command(&resp, command);
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
			*cmd_id = dt_answer_cmd_id(resp);
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

/* One exec in flight: what its steps share. */
struct exec_run {
	struct dt_sandbox *sb;
	const struct mfs_exec_req *r;
	struct exec_clock ck;
	struct dt_log lg;
	struct mfs_http_resp resp;
	char *cmd_id;
};

/* GET the command: *exited, and *code once its exit code is in. */
static enum mfs_code read_status(struct exec_run *x, const char *path, bool *exited, int *code,
				 struct mfs_err *err)
{
	enum mfs_code rc = exec_call(x->sb, "GET", path, NULL, 200, call_timeout_ms(&x->ck),
				     &x->resp, err);
	*exited = rc == MFS_OK && dt_answer_exit_code(&x->resp, code);
	return rc;
}

/* GET the whole log and hand on what is new. */
static enum mfs_code read_log(struct exec_run *x, const char *path, bool final, bool *fresh,
			      struct mfs_err *err)
{
	enum mfs_code rc = exec_call(x->sb, "GET", path, NULL, 200, call_timeout_ms(&x->ck),
				     &x->resp, err);
	if (rc == MFS_OK)
		*fresh = dt_log_poll(&x->lg, x->resp.body.data ? x->resp.body.data : "",
				     x->resp.body.len, final);
	return rc;
}

/* One poll.  After a whole follow stream only the exit code is missing.
 * Else, a quiet command: its exit code, then the log (whole once the exit
 * code is in).  A command that printed at the last poll: the log first,
 * and only if nothing came, the exit code (and then the log once more).
 * Output that keeps coming thus costs one request a poll, a quiet command
 * two. */
static enum mfs_code poll_once(struct exec_run *x, bool *done, int *code, bool *fresh,
			       struct mfs_err *err)
{
	struct mfs_buf status = MFS_BUF_INIT, logs = MFS_BUF_INIT;
	struct dt_log *lg = &x->lg;
	enum mfs_code rc = MFS_OK;
	bool exited = false;
	*done = *fresh = false;
	mfs_buf_addf(&status, "/process/session/%s/command/%s", x->sb->sid, x->cmd_id);
	mfs_buf_addf(&logs, "%s/logs", status.data);
	if (lg->streamed) {
		rc = read_status(x, status.data, &exited, code, err);
		if (rc == MFS_OK && exited)
			dt_log_finish(lg);
		else if (rc == MFS_OK)
			lg->streamed = false; /* the stream ended early: poll the log */
		*done = rc == MFS_OK && exited;
	} else if (lg->talking && (rc = read_log(x, logs.data, false, fresh, err)) == MFS_OK &&
		   *fresh) {
		/* output keeps coming: this poll is done */
	} else if (rc == MFS_OK && (rc = read_status(x, status.data, &exited, code, err)) ==
		   MFS_OK && (exited || !lg->talking)) {
		rc = read_log(x, logs.data, exited, fresh, err);
		*done = rc == MFS_OK && exited; /* else the log is not whole yet */
	}
	lg->talking = rc == MFS_OK && *fresh;
	mfs_buf_release(&status);
	mfs_buf_release(&logs);
	return rc;
}

/* MFSANDBOX_DAYTONA_FOLLOW=0 reads logs by polling only. */
static bool follow_enabled(void)
{
	const char *v = getenv("MFSANDBOX_DAYTONA_FOLLOW");
	return !v || strcmp(v, "0") != 0;
}

/* Follows the log over the WebSocket; whatever else happens to it, the
 * polling in follow() takes over from where it got. */
static enum mfs_code stream_log(struct exec_run *x)
{
	struct mfs_buf path = MFS_BUF_INIT;
	struct mfs_err ignored;
	double deadline = x->ck.timeout_s > 0 ? x->ck.t0 + (double)x->ck.timeout_s : 0;
	mfs_buf_addf(&path, "/process/session/%s/command/%s/logs", x->sb->sid, x->cmd_id);
	enum mfs_code rc = dt_log_follow(x->sb, path.data, &x->lg, deadline, &ignored);
	mfs_buf_release(&path);
	if (rc == MFS_ERR_CANCELLED || mfs_cancelled())
		return MFS_ERR_CANCELLED;
	return rc == MFS_ERR_TIMEOUT || past_deadline(&x->ck) ? MFS_ERR_TIMEOUT : MFS_OK;
}

/* The command text that runs this exec's script.  Either way it is unique
 * (it names the script path), which is how a lost exec answer finds its
 * command in the session. */
static void command_text(struct mfs_buf *cmd, const char *script, const char *script_path,
			 bool uploaded)
{
	if (uploaded) {
		mfs_buf_adds(cmd, "sh ");
		mfs_buf_add_shell_quoted(cmd, script_path);
		return;
	}
	mfs_buf_adds(cmd, "sh -c ");
	mfs_buf_add_shell_quoted(cmd, script);
	mfs_buf_addch(cmd, ' ');
	mfs_buf_add_shell_quoted(cmd, script_path);
}

/* Builds the command text for this exec; with env, the script it runs is
 * uploaded first. */
static enum mfs_code prepare(struct exec_run *x, struct mfs_buf *cmd, struct mfs_err *err)
{
	struct dt_sandbox *sb = x->sb;
	struct mfs_buf script_path = MFS_BUF_INIT;
	enum mfs_code rc = MFS_OK;

	if (!sb->session) {
		snprintf(sb->sid, sizeof(sb->sid), "mfs-");
		mfs_random_hex(sb->sid + 4, 12);
	}
	/* Without env there is nothing to keep out of the session's command
	 * records, so the script goes inline and costs no upload, unless it
	 * holds bytes that are not UTF-8 (an argument, the cwd): the command
	 * travels as JSON text, the uploaded file as bytes. */
	bool upload = sb->env.n || (x->r->env && x->r->env->n);
	mfs_buf_addf(&script_path, "%s/%s-%u.sh", sb->script_dir, sb->sid, sb->seq++);
	char *script = command_script(sb, x->r, upload);
	if (!upload && !mfs_utf8_valid(script)) {
		upload = true;
		free(script);
		script = command_script(sb, x->r, upload);
	}
	if (upload && !sb->script_dir_made) {
		rc = dt_private_dir(sb, sb->script_dir, err);
		sb->script_dir_made = rc == MFS_OK;
	}
	if (upload && rc == MFS_OK)
		rc = dt_upload_bytes(sb, script_path.data, script, strlen(script),
				     "the command script", err);
	if (rc == MFS_OK)
		command_text(cmd, script, script_path.data, upload);
	free(script);
	mfs_buf_release(&script_path);
	return rc;
}

/* Opens the session if none is open, then starts the command. */
static enum mfs_code launch(struct exec_run *x, const char *cmd, struct mfs_err *err)
{
	struct dt_sandbox *sb = x->sb;
	enum mfs_code rc = MFS_OK;
	if (!sb->session) {
		rc = open_session(sb, sb->sid, &x->ck, &x->resp, err);
		sb->session = rc == MFS_OK;
	}
	if (rc == MFS_OK)
		rc = start_command(sb, sb->sid, cmd, &x->ck, &x->cmd_id, &x->resp, err);
	return rc;
}

/* The next poll interval.  Lines come in bursts: right after one the log is
 * read every 150 ms at most, so a line's median wait stays under 100 ms; a
 * command silent for 10 s (a long computation) is read every 500 ms, which
 * costs a third of the CPU per second. */
static long next_interval(long interval, bool fresh, double last_line)
{
	long cap = mfs_now_s() - last_line > POLL_IDLE_S ? POLL_IDLE_MAX_MS : POLL_MAX_MS;
	if (fresh)
		return POLL_MIN_MS;
	return interval * 3 / 2 > cap ? cap : interval * 3 / 2;
}

/* Polls the command until it ends: MFS_OK with *status set, MFS_ERR_TIMEOUT
 * (no message yet) at the deadline, or the error that ended the polling. */
static enum mfs_code follow(struct exec_run *x, int *status, struct mfs_err *err)
{
	long interval = POLL_MIN_MS;
	double last_line = mfs_now_s();
	int failures = 0;
	if (follow_enabled()) {
		enum mfs_code rc = stream_log(x);
		if (rc != MFS_OK)
			return rc;
	}
	for (;;) {
		bool done, fresh;
		int code = 0;
		enum mfs_code rc = poll_once(x, &done, &code, &fresh, err);
		if (rc == MFS_OK && done) {
			*status = code < 0 ? 255 : code & 0xff;
			return MFS_OK;
		}
		if (past_deadline(&x->ck))
			return MFS_ERR_TIMEOUT;
		if (rc != MFS_OK) {
			/* The loop is the retry: the deadline is checked between tries. */
			if (rc == MFS_ERR_CANCELLED || !transient(rc, &x->resp) ||
			    ++failures > API_RETRIES)
				return rc;
			if (!retry_nap(&x->resp, failures, &x->ck))
				return MFS_ERR_CANCELLED;
			continue;
		}
		failures = 0;
		if (fresh)
			last_line = mfs_now_s();
		interval = next_interval(interval, fresh, last_line);
		if (!dt_nap(interval < ms_left(&x->ck) ? interval : ms_left(&x->ck), true))
			return MFS_ERR_CANCELLED;
	}
}

/* After a failed launch or follow: the command may still run, so its
 * session goes (the next exec opens a new one); the error says why. */
static enum mfs_code failed(struct exec_run *x, enum mfs_code rc, struct mfs_err *err)
{
	bool cancelled = rc != MFS_ERR_TIMEOUT && (rc == MFS_ERR_CANCELLED || mfs_cancelled());
	/* A deadline cuts the calls short, so their failure is the timeout. */
	if (!cancelled && (rc == MFS_ERR_TIMEOUT || past_deadline(&x->ck))) {
		drop_session(x->sb); /* ends the command's process tree */
		return mfs_fail(err, MFS_ERR_TIMEOUT,
				"the command ran past its %lds timeout and was killed",
				x->r->timeout_s);
	}
	drop_session(x->sb);
	if (cancelled)
		return mfs_fail(err, MFS_ERR_CANCELLED, "cancelled; the Daytona command was killed");
	return dt_explain_failure(x->sb, rc, err);
}

enum mfs_code dt_exec(struct mfs_sandbox *base, const struct mfs_exec_req *r,
		      const struct mfs_io *io, int *status, struct mfs_err *err)
{
	struct exec_run x = { .sb = (struct dt_sandbox *)base, .r = r,
			      .ck = { .t0 = mfs_now_s(), .timeout_s = r->timeout_s } };
	struct mfs_buf cmd = MFS_BUF_INIT;
	enum mfs_code rc;

	*status = -1;
	if (!r->argv || !r->argv[0])
		return mfs_fail(err, MFS_ERR_USAGE, "nothing to run");
	mfs_http_resp_init(&x.resp);
	dt_log_init(&x.lg, io);
	rc = prepare(&x, &cmd, err);
	if (rc != MFS_OK) {
		drop_session(x.sb);
	} else {
		rc = launch(&x, cmd.data, err);
		if (rc == MFS_OK)
			rc = follow(&x, status, err);
		if (rc != MFS_OK)
			rc = failed(&x, rc, err);
	}
	free(x.cmd_id);
	dt_log_release(&x.lg);
	mfs_http_resp_release(&x.resp);
	mfs_buf_release(&cmd);
	return rc;
}
