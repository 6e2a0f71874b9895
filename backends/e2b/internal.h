/*
 * internal.h - what the files of the e2b backend share, and nothing else
 * includes.  Each file holds one job:
 *
 *   api.c     configuration (E2B_*), headers, error bodies, and the
 *             control plane's per-sandbox calls, list and delete
 *   answers.c what the JSON answers say (read without I/O; fuzzed)
 *   create.c  POST /sandboxes without ever keeping two (nonce, adoption)
 *   admin.c   destroy, kill and list: the ops that remove or find sandboxes
 *   files.c   envd's /files: upload and download
 *   stream.c  Connect framing: a Start or Connect stream's envelopes and events
 *   exec.c    process.Process/Start, re-attaching with Connect, signals,
 *             the process-group kill
 *   e2b.c     probe, describe and the ops table
 *
 * Facts about the wire and their sources: shared/reference/e2b-api.md.
 */
#ifndef MFS_E2B_INTERNAL_H
#define MFS_E2B_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "mfs/backend.h"
#include "mfs/net/http.h"
#include "mfs/util/buf.h"
#include "mfs/util/err.h"

#define ENVD_PORT          "49983"
#define DEFAULT_TEMPLATE   "base"
#define DEFAULT_DOMAIN     "e2b.app"
#define WORKDIR            "/home/user"
#define ENVD_USER_AUTH     "Authorization: Basic dXNlcjo=" /* "user:" */
#define KEEPALIVE_S        50L    /* never 0: envd <= 0.9.0 panics on it */
#define API_TIMEOUT_MS     60000L
#define API_RETRIES        4
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
	/* Control-plane calls give up then (MFS_ERR_TIMEOUT): a create's at
	 * --timeout, a clean-up's at its bound, destroy's at destroy_by; those
	 * not cancellable (clean-up) still end on a second signal.  0: none. */
	double deadline;
	bool cancellable;      /* a first signal ends them too (during a create) */
};

struct e2b_sandbox {
	struct mfs_sandbox base;
	char *envd_url;
	char *token;              /* envdAccessToken; NULL when the sandbox is not secure */
	int envd_ver[3];
	struct mfs_kvlist env;    /* spec->env, sent with every Start */
	bool debug;               /* E2B_DEBUG: no control plane sandbox behind it */
	char *api_url;
	long stream_idle_s;
	double deadline;          /* --timeout as a mfs_now_s() time (0: none), for uploads */
	long cleanup_s;           /* spec->cleanup_timeout_s: stopping a command (0: none) */
};

/* api.c */
enum mfs_code e2b_conf_load(struct e2b_conf *c, struct mfs_err *err);
void e2b_conf_release(struct e2b_conf *c);
char *e2b_envd_base(const struct e2b_conf *c, const char *id, const char *sb_domain);
void e2b_api_headers(struct mfs_strv *h, const struct e2b_conf *c, bool json);
void e2b_envd_headers(struct mfs_strv *h, const struct e2b_sandbox *sb);
enum mfs_code e2b_status_fail(struct mfs_err *err, const struct mfs_http_req *req,
			      const struct mfs_http_resp *resp);
enum mfs_code e2b_envd_status_fail(struct mfs_err *err, const struct e2b_sandbox *sb,
				   const struct mfs_http_req *req,
				   const struct mfs_http_resp *resp);
enum mfs_code e2b_sandbox_call(const struct e2b_conf *c, const char *method, const char *id,
			       const long *ok, struct mfs_http_resp *resp, struct mfs_err *err);
enum mfs_code e2b_delete_sandbox(const struct e2b_conf *c, const char *id, bool *gone,
				 struct mfs_err *err);
enum mfs_code e2b_list_by_metadata(const struct e2b_conf *c, const char *query,
				   mfs_list_fn fn, void *ctx, struct mfs_err *err);

/* answers.c: the bodies of answers, read without I/O (fuzzed by
 * tests/fuzz/fuzz_e2b_json.c). */
/* "0.5.7" (or "v0.5", anything with digits) -> {0, 5, 7}; missing parts 0. */
void e2b_parse_version(const char *s, int v[3]);
bool e2b_version_at_least(const int v[3], int a, int b, int c);
/* An error body's "message" (either service): false when it has none. */
bool e2b_answer_message(const struct mfs_http_resp *resp, struct mfs_buf *msg);
/* A Sandbox (201 of POST /sandboxes) or SandboxDetail (GET /sandboxes/{id})
 * answer: id, envd version and token, envd URL set in sb. */
enum mfs_code e2b_answer_sandbox(const struct e2b_conf *c, const struct mfs_http_resp *resp,
				 struct e2b_sandbox *sb, struct mfs_err *err);
/* One page of GET /v2/sandboxes: each row with an id to fn; *next from
 * X-Next-Token, NULL on the last page. */
enum mfs_code e2b_answer_list_page(const struct mfs_http_resp *resp, mfs_list_fn fn,
				   void *ctx, char **next, struct mfs_err *err);

/* create.c */
enum mfs_code e2b_create(const struct mfs_sandbox_spec *spec, struct mfs_sandbox **out,
			 struct mfs_err *err);
void e2b_sandbox_free(struct e2b_sandbox *sb);

/* admin.c */
enum mfs_code e2b_destroy(struct mfs_sandbox *base, struct mfs_err *err);
void e2b_release(struct mfs_sandbox *base);
enum mfs_code e2b_kill(const char *id, struct mfs_err *err);
enum mfs_code e2b_list(mfs_list_fn fn, void *ctx, struct mfs_err *err);

/* files.c */
enum mfs_code e2b_upload(struct mfs_sandbox *base, const char *local_path,
			 const char *remote_path, struct mfs_err *err);
enum mfs_code e2b_download(struct mfs_sandbox *base, const char *remote_path,
			   const char *local_path, struct mfs_err *err);

/* stream.c: one Start (or Connect) response stream being parsed. */
struct e2b_stream {
	const struct mfs_io *io;   /* NULL: output is dropped */
	struct mfs_buf pending;    /* bytes of an incomplete envelope */
	struct mfs_buf decoded;
	long pid;
	bool started, ended, end_stream;
	int exit_code;             /* from the end event: 0-255, -1 (signal or no status); missing: 0 */
	char *signal_name;         /* "killed" from status "signal: killed" */
	char *error_code;          /* end-stream error */
	char *error_msg;
	char *protocol_error;
	long began_ms;             /* when the request went out */
	long last_frame_ms;        /* when the last whole frame arrived */
	long idle_ms;              /* no start event by began_ms + this: stalled */
	bool stalled;
};

/* The HTTP client's on_data: frames may be split or merged arbitrarily. */
bool e2b_stream_feed(void *ctx, const char *data, size_t len);
void e2b_stream_release(struct e2b_stream *st);
/* Go's name of a signal ("terminated") to its number; 0 if unknown. */
int e2b_signal_number(const char *name);
/* Appends msg as one Connect envelope; false if jansson cannot encode it. */
bool e2b_add_frame(struct mfs_buf *out, json_t *msg);

/* exec.c */
enum mfs_code e2b_exec(struct mfs_sandbox *base, const struct mfs_exec_req *r,
		       const struct mfs_io *io, int *status, struct mfs_err *err);

#endif
