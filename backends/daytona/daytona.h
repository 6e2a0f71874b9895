/*
 * daytona.h - private to backends/daytona: what its files share.
 *
 * api.c     configuration, main-API and toolbox requests, error bodies, state
 * answers.c what the answers say: every body read from the API or toolbox
 * admin.c   delete, list by label, `ls` and `kill`
 * create.c  create without duplicates, wait for "started", destroy
 * files.c   upload and download through the toolbox
 * exec.c    a step as an async session command, run to its exit code
 * logs.c    the command's log, followed or polled, back into stdout/stderr
 * ops.c     the ops table: the one symbol the rest of mfsandbox sees
 *
 * Why the pieces look the way they do is written in ops.c's comment; facts
 * and their sources in shared/reference/daytona-api.md; the test double is
 * tests/emulators/daytona.
 */
#ifndef MFS_DAYTONA_H
#define MFS_DAYTONA_H

#include "mfs/backend.h"
#include "mfs/net/http.h"
#include "mfs/util/buf.h"
#include "mfs/util/err.h"

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define DEFAULT_API_URL    "https://app.daytona.io/api"
#define DEFAULT_WORKDIR    "/home/daytona"  /* when the toolbox cannot say */
#define SCRIPT_DIR_MODE    "0700"           /* the env scripts' dir: only the user */
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
#define RETRY_AFTER_MAX_S  600L     /* longest Retry-After believed */

extern const struct mfs_backend_ops mfs_daytona_ops;

struct dt_conf {
	const char *token;     /* API key or JWT; borrowed from the environment */
	const char *org;       /* with a JWT only */
	char *api_url;         /* no trailing slash */
	const char *target;
	/* Every main-API call gives up then (MFS_ERR_TIMEOUT): a create's at
	 * --timeout, a clean-up's at its bound, destroy's at destroy_by.  A
	 * call that is not cancellable (clean-up) still ends on a second
	 * signal.  0: none. */
	double deadline;
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
	long cleanup_s;        /* spec->cleanup_timeout_s: stopping a command (0: none) */
	/* Where the per-command env scripts go: a directory only the sandbox's
	 * user can enter, made by the first exec that needs one, so a script
	 * left behind (a start that failed, --keep) is not world-readable. */
	char script_dir[40];
	bool script_dir_made;
};

/* A command's log on its way to stdout/stderr (logs.c). */
struct dt_log {
	const struct mfs_io *io;
	size_t offset;          /* raw log bytes handed on */
	bool talking;           /* the last poll brought new lines */
	bool mid_line;          /* a long line was handed on in part ... */
	enum mfs_stream stream; /* ... and goes on in this stream */
	struct mfs_buf pending; /* streamed bytes after offset, not a whole line yet */
	bool streamed;          /* the follow stream brought the whole log */
};

/* A sandbox's state as GET /sandbox/{id} tells it; all owned. */
struct dt_state {
	char *state;
	char *reason;
	char *toolbox;
};

/* api.c: small helpers */
long dt_ms_until(double deadline, long cap);
bool dt_passed(double deadline);
bool dt_nap(long ms, bool honour_cancel);
long dt_retry_after_s(const char *value);

/* api.c: configuration and requests */
void dt_conf_release(struct dt_conf *c);
enum mfs_code dt_conf_load(struct dt_conf *c, struct mfs_err *err);
enum mfs_code dt_status_fail(struct mfs_err *err, const struct mfs_http_req *req,
			     const struct mfs_http_resp *resp);
enum mfs_code dt_api_call(const struct dt_conf *c, const char *method, const char *path,
			  const char *body, int retries, long timeout_ms, bool cancellable,
			  struct mfs_http_req *req_out, struct mfs_http_resp *resp,
			  struct mfs_buf *url, struct mfs_strv *hdrs, struct mfs_err *err);
void dt_toolbox_headers(const struct dt_sandbox *sb, struct mfs_strv *h);
enum mfs_code dt_toolbox_call(struct dt_sandbox *sb, const char *method, const char *path,
			      struct mfs_http_req *req, struct mfs_http_resp *resp,
			      struct mfs_buf *url, struct mfs_strv *hdrs, struct mfs_err *err);
enum mfs_code dt_get_state(const struct dt_conf *c, const char *id, struct dt_state *s,
			   bool *gone, bool cancellable, long timeout_ms, struct mfs_err *err);
enum mfs_code dt_explain_failure(struct dt_sandbox *sb, enum mfs_code rc, struct mfs_err *err);

/* answers.c: the bodies of answers, read without I/O (fuzzed by
 * tests/fuzz/fuzz_daytona_json.c).  Owned results; NULL or false when the
 * field is absent, empty or of another type. */
json_t *dt_body_json(const struct mfs_http_resp *resp);
void dt_state_release(struct dt_state *s);
void dt_state_from(struct dt_state *s, json_t *j);
/* GET /sandbox/{id}'s 200 (MFS_ERR_PROTOCOL if not an object). */
enum mfs_code dt_answer_state(const struct mfs_http_resp *resp, const char *id,
			      struct dt_state *s, struct mfs_err *err);
/* POST /sandbox's 200: the new id and its state. */
enum mfs_code dt_answer_created(const struct mfs_http_resp *resp, char **id,
				struct dt_state *s, struct mfs_err *err);
/* GET /sandbox/{id}/toolbox-proxy-url: "url". */
char *dt_answer_toolbox_url(const struct mfs_http_resp *resp);
/* An error body's "message" (a string, or an array's strings joined). */
void dt_answer_message(const struct mfs_http_resp *resp, struct mfs_buf *msg);
/* One page of GET /sandbox: each row carrying key=value and not being
 * destroyed to fn; *cursor the next page's, NULL on the last. */
enum mfs_code dt_answer_list_page(const struct mfs_http_resp *resp, const char *key,
				  const char *value, mfs_list_fn fn, void *ctx, char **cursor,
				  struct mfs_err *err);
/* A toolbox directory answer ({"dir": "/abs"}) to path (for the error). */
enum mfs_code dt_answer_dir(const struct mfs_http_resp *resp, const char *path, char **dir,
			    struct mfs_err *err);
/* GET /process/session/{sid}: the id of the last command whose text is command. */
char *dt_answer_session_command(const struct mfs_http_resp *resp, const char *command);
/* POST .../exec's 202: "cmdId". */
char *dt_answer_cmd_id(const struct mfs_http_resp *resp);
/* GET .../command/{id}: true once "exitCode" is in, *code 0-255 or -1
 * when the daemon gave a number no exit status can be. */
bool dt_answer_exit_code(const struct mfs_http_resp *resp, int *code);
/* The daemon's 500 while the exit-code file is still empty (exec.c). */
bool dt_answer_exit_code_race(const struct mfs_http_resp *resp);

/* admin.c */
enum mfs_code dt_delete_sandbox(const struct dt_conf *c, const char *id, bool *gone,
				struct mfs_err *err);
enum mfs_code dt_list_by_label(const struct dt_conf *c, const char *key, const char *value,
			       bool cancellable, mfs_list_fn fn, void *ctx, struct mfs_err *err);
enum mfs_code dt_list(mfs_list_fn fn, void *ctx, struct mfs_err *err);
enum mfs_code dt_kill(const char *id, struct mfs_err *err);

/* create.c */
enum mfs_code dt_create(const struct mfs_sandbox_spec *spec, struct mfs_sandbox **out,
			struct mfs_err *err);
enum mfs_code dt_destroy(struct mfs_sandbox *base, struct mfs_err *err);
void dt_release(struct mfs_sandbox *base);

/* files.c */
enum mfs_code dt_work_dir(struct dt_sandbox *sb, struct mfs_err *err);
enum mfs_code dt_private_dir(struct dt_sandbox *sb, const char *dir, struct mfs_err *err);
void dt_abs_path(struct mfs_buf *out, const struct dt_sandbox *sb, const char *remote);
enum mfs_code dt_upload_bytes(struct dt_sandbox *sb, const char *remote, const char *data,
			      size_t len, const char *local_name, struct mfs_err *err);
enum mfs_code dt_upload(struct mfs_sandbox *base, const char *local_path,
			const char *remote_path, struct mfs_err *err);
enum mfs_code dt_download(struct mfs_sandbox *base, const char *remote_path,
			  const char *local_path, struct mfs_err *err);

/* logs.c */
void dt_log_init(struct dt_log *lg, const struct mfs_io *io);
void dt_log_release(struct dt_log *lg);
/* The lines of the whole log after offset (and a last one without newline
 * when final) handed on; true if there were any. */
bool dt_log_poll(struct dt_log *lg, const char *log, size_t len, bool final);
/* The follow stream's bytes, split anywhere (a mfs_ws_req on_data; ctx
 * is the dt_log): whole lines handed on, the rest kept in pending. */
bool dt_log_feed(void *ctx, const char *data, size_t len);
/* Hands on what the stream left without a newline (the log is whole). */
void dt_log_finish(struct dt_log *lg);
/* Follows the log over the WebSocket until it closes; lg->streamed when it
 * brought the whole log.  MFS_ERR_TIMEOUT at deadline, MFS_ERR_CANCELLED;
 * any other error means: poll instead. */
enum mfs_code dt_log_follow(struct dt_sandbox *sb, const char *logs_path, struct dt_log *lg,
			    double deadline, struct mfs_err *err);

/* exec.c */
enum mfs_code dt_exec(struct mfs_sandbox *base, const struct mfs_exec_req *r,
		      const struct mfs_io *io, int *status, struct mfs_err *err);

#endif
