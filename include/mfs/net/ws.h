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
#include <stdint.h>

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

/* The two parsers of the server's bytes, without I/O (mfs_ws_follow's
 * reading; tests/fuzz/fuzz_ws.c feeds them arbitrary bytes). */
enum mfs_ws_parse { MFS_WS_MORE, MFS_WS_OK, MFS_WS_BAD };

/* The handshake answer's head at the start of data[0..len), which is
 * NUL-terminated at len: MFS_WS_OK with the status, the head's length
 * (through the blank line) and Content-Length (0 if none); MFS_WS_MORE
 * while the blank line is missing; MFS_WS_BAD for a head over 16 KiB
 * (*head_len untouched) or one that is not an HTTP answer. */
enum mfs_ws_parse mfs_ws_head_parse(const char *data, size_t len, long *status,
				    size_t *head_len, size_t *content_length);

struct mfs_ws_frame {
	unsigned opcode;
	unsigned char *payload;  /* inside the parsed bytes, unmasked in place */
	size_t len;
	size_t size;             /* header and payload: the bytes to skip */
	uint64_t claimed;        /* the length the header gave */
};

/* One frame at the start of p[0..have): MFS_WS_OK, MFS_WS_MORE until it is
 * whole, MFS_WS_BAD when it claims over 16 MiB (f->claimed). */
enum mfs_ws_parse mfs_ws_frame_parse(unsigned char *p, size_t have, struct mfs_ws_frame *f);

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
