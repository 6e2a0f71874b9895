/*
 * ws.h - a receive-only WebSocket client (RFC 6455) for log streams.
 *
 * The libcurl this project builds against (7.88, Debian 12) has no
 * WebSocket support, so the upgrade is done by hand over a connection that
 * libcurl opens (CURLOPT_CONNECT_ONLY: proxy, TLS and timeouts as for any
 * other request) and then reads and writes raw.  Only what a server-to-client
 * byte stream needs: data frames handed on, pings answered, close answered.
 * Errors never include request headers (credentials).
 */
#ifndef MFS_WS_H
#define MFS_WS_H

#include <stdbool.h>
#include <stddef.h>

#include "mfs/util/buf.h"
#include "mfs/util/err.h"

struct mfs_ws_req {
	const char *url;                /* http:// or https://, upgraded */
	const struct mfs_strv *headers; /* "Name: value" lines; may hold secrets */
	long connect_timeout_ms;        /* 0: 10 s */
	double deadline;                /* mfs_now_s() time (0: none): MFS_ERR_TIMEOUT past it */
	long idle_timeout_ms;           /* no byte for this long: MFS_ERR_HTTP; 0: never */
	bool cancellable;               /* MFS_ERR_CANCELLED on mfs_cancelled() */
	/* Each data frame's payload, in order; return false to stop. */
	bool (*on_data)(void *ctx, const char *data, size_t len);
	void *ctx;
};

struct mfs_ws_result {
	long status;        /* the handshake's HTTP status (101 when upgraded); 0: none */
	int close_code;     /* the server's close code; 0 when it closed without one */
	bool closed;        /* a close frame arrived (else the line was cut) */
	size_t bytes;       /* payload bytes handed to on_data */
	struct mfs_buf body;  /* for a status other than 101: the start of its body */
};

void mfs_ws_result_init(struct mfs_ws_result *res);
void mfs_ws_result_release(struct mfs_ws_result *res);

/* Connects, upgrades and reads frames until the server closes.  MFS_OK once
 * the stream ended with a close frame, or when the handshake got an answer
 * other than 101 (check res->status); MFS_ERR_HTTP when the connection
 * failed or was cut, MFS_ERR_PROTOCOL on a malformed frame, MFS_ERR_TIMEOUT,
 * MFS_ERR_CANCELLED. */
enum mfs_code mfs_ws_follow(const struct mfs_ws_req *req, struct mfs_ws_result *res,
			    struct mfs_err *err);

#endif
