/*
 * logs.c - a session command's log turned back into stdout and stderr.
 *
 * With X-Daytona-Split-Output the daemon keeps its per-line markers (stdout
 * 01 01 01, stderr 02 02 02), so each line goes to its own stream.  The log
 * arrives either whole on every poll (GET .../logs, the fallback) or once,
 * as it grows, over the follow WebSocket (GET .../logs?follow=true), which
 * makes log traffic O(output) instead of O(output x polls).  Both paths
 * count the raw bytes handed on in `offset`, so a stream that breaks is
 * taken over by polling from where it stopped.
 */
#include "daytona.h"
#include "mfs/net/ws.h"

#include <stdlib.h>
#include <string.h>

#define OUT_MARK       "\x01\x01\x01"
#define ERR_MARK       "\x02\x02\x02"
#define LINE_PART_MAX  65536u     /* a longer unfinished line goes on in parts */
#define FOLLOW_IDLE_MS 120000L    /* the daemon pings; silence this long is a dead line */

void dt_log_init(struct dt_log *lg, const struct mfs_io *io)
{
	memset(lg, 0, sizeof(*lg));
	lg->io = io;
	mfs_buf_init(&lg->pending);
}

void dt_log_release(struct dt_log *lg)
{
	mfs_buf_release(&lg->pending);
}

/* Hands on the lines in buf[0..len): whole ones, a last one without its
 * newline when final, and the start of one longer than LINE_PART_MAX (its
 * stream remembered for the rest); returns the bytes used. */
static size_t emit(struct dt_log *lg, const char *buf, size_t len, bool final)
{
	size_t used = 0;
	while (used < len) {
		const char *p = buf + used, *nl = memchr(p, '\n', len - used);
		size_t n = nl ? (size_t)(nl - p) + 1 : len - used;
		if (!nl && !final && n < LINE_PART_MAX)
			break;
		enum mfs_stream st = lg->mid_line ? lg->stream : MFS_STDOUT;
		const char *d = p;
		size_t dn = n;
		if (!lg->mid_line && n >= 3 && !memcmp(p, ERR_MARK, 3))
			st = MFS_STDERR, d += 3, dn -= 3;
		else if (!lg->mid_line && n >= 3 && !memcmp(p, OUT_MARK, 3))
			d += 3, dn -= 3;
		if (dn && lg->io && lg->io->write)
			lg->io->write(lg->io->ctx, st, d, dn);
		lg->mid_line = !nl && !final;
		lg->stream = st;
		used += n;
	}
	return used;
}

bool dt_log_poll(struct dt_log *lg, const char *log, size_t len, bool final)
{
	if (len < lg->offset) { /* a log never shrinks; start over rather than skip */
		lg->offset = 0;
		lg->mid_line = false;
	}
	size_t used = emit(lg, log + lg->offset, len - lg->offset, final);
	lg->offset += used;
	return used > 0;
}

void dt_log_finish(struct dt_log *lg)
{
	lg->offset += emit(lg, lg->pending.data, lg->pending.len, true);
	mfs_buf_reset(&lg->pending);
}

bool dt_log_feed(void *ctx, const char *data, size_t len)
{
	struct dt_log *lg = ctx;
	mfs_buf_add(&lg->pending, data, len);
	size_t used = emit(lg, lg->pending.data, lg->pending.len, false);
	memmove(lg->pending.data, lg->pending.data + used, lg->pending.len - used);
	lg->pending.len -= used;
	lg->offset += used;
	return true;
}

enum mfs_code dt_log_follow(struct dt_sandbox *sb, const char *logs_path, struct dt_log *lg,
			    double deadline, struct mfs_err *err)
{
	struct mfs_strv hdrs = MFS_STRV_INIT;
	struct mfs_buf url = MFS_BUF_INIT;
	struct mfs_ws_result res;
	enum mfs_code rc;

	mfs_ws_result_init(&res);
	mfs_buf_addf(&url, "%s%s?follow=true", sb->toolbox, logs_path);
	dt_toolbox_headers(sb, &hdrs);
	struct mfs_ws_req req = {
		.url = url.data, .headers = &hdrs, .deadline = deadline, .cancellable = true,
		.idle_timeout_ms = FOLLOW_IDLE_MS, .on_data = dt_log_feed, .ctx = lg,
	};
	/* The stream starts at the log's beginning: skip nothing only if
	 * nothing was handed on yet (else polling goes on from offset). */
	rc = lg->offset ? MFS_ERR_UNSUPPORTED : mfs_ws_follow(&req, &res, err);
	lg->streamed = rc == MFS_OK && res.closed && res.close_code == 1000;
	if (rc == MFS_OK && res.status != 101)
		rc = mfs_fail(err, MFS_ERR_UNSUPPORTED, "log follow answered HTTP %ld", res.status);
	if (!lg->streamed)
		mfs_buf_reset(&lg->pending); /* polling re-reads them at offset */
	mfs_ws_result_release(&res);
	mfs_buf_release(&url);
	mfs_strv_release(&hdrs);
	return rc;
}
