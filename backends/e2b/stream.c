/*
 * stream.c - the Connect stream of process.Process/Start.
 *
 * Process output arrives as Connect envelopes (flag byte, big-endian
 * length, JSON) that libcurl splits and merges arbitrarily; we buffer and
 * parse incrementally, decode base64 and hand bytes on immediately.  Every
 * length is checked against MAX_FRAME before anything is buffered for it.
 */
#include "internal.h"
#include "mfs/util/buf.h"
#include "mfs/util/clock.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* Standard base64 (padding optional); false on a foreign byte. */
static bool b64_decode(const char *s, struct mfs_buf *out)
{
	uint32_t acc = 0;
	int bits = 0;
	mfs_buf_reset(out);
	for (; *s && *s != '='; s++) {
		int v = b64_value((unsigned char)*s);
		if (v < 0)
			return false;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			mfs_buf_addch(out, (char)((acc >> bits) & 0xff));
		}
	}
	return true;
}

static void stream_fail(struct e2b_stream *st, const char *what)
{
	if (!st->protocol_error)
		st->protocol_error = mfs_xstrdup(what);
}

static void handle_event(struct e2b_stream *st, json_t *ev)
{
	json_t *x;
	if ((x = json_object_get(ev, "start"))) {
		st->started = true;
		st->pid = (long)json_integer_value(json_object_get(x, "pid"));
	} else if ((x = json_object_get(ev, "data"))) {
		const char *names[] = { "stdout", "stderr" };
		enum mfs_stream ids[] = { MFS_STDOUT, MFS_STDERR };
		for (int i = 0; i < 2; i++) {
			const char *b64 = json_string_value(json_object_get(x, names[i]));
			if (!b64)
				continue;
			if (!b64_decode(b64, &st->decoded)) {
				stream_fail(st, "envd sent output that is not base64");
				return;
			}
			if (st->decoded.len && st->io && st->io->write)
				st->io->write(st->io->ctx, ids[i], st->decoded.data, st->decoded.len);
		}
	} else if ((x = json_object_get(ev, "end"))) {
		const char *status = json_string_value(json_object_get(x, "status"));
		/* A process ends once; a second end would overwrite the first. */
		if (st->ended) {
			stream_fail(st, "envd sent a second end event");
			return;
		}
		st->ended = true;
		/* 0-255, or -1 with a signal; any other number is no status and
		 * must not wrap into one (256 & 0xff would be success): -1. */
		json_int_t code = json_integer_value(json_object_get(x, "exitCode"));
		st->exit_code = code >= 0 && code <= 255 ? (int)code : -1;
		if (status && !strncmp(status, "signal: ", 8))
			st->signal_name = mfs_xstrdup(status + 8);
	}
	/* keepalive, and event kinds we do not know: nothing to do */
}

static void handle_message(struct e2b_stream *st, unsigned flags, const char *p, size_t n)
{
	json_error_t jerr;
	json_t *j = json_loadb(p, n, 0, &jerr);
	if (!json_is_object(j)) {
		stream_fail(st, "envd sent a frame that is not a JSON object");
	} else if (flags & 0x02) {
		json_t *e = json_object_get(j, "error");
		st->end_stream = true;
		if (e) {
			const char *code = json_string_value(json_object_get(e, "code"));
			const char *msg = json_string_value(json_object_get(e, "message"));
			st->error_code = mfs_xstrdup(code ? code : "unknown");
			st->error_msg = mfs_xstrdup(msg ? msg : "");
		}
	} else if (!json_is_object(json_object_get(j, "event"))) {
		stream_fail(st, "envd sent a frame without an event");
	} else {
		handle_event(st, json_object_get(j, "event"));
	}
	json_decref(j);
}

/* Called by the HTTP client per received chunk: frames may be split or merged. */
bool e2b_stream_feed(void *ctx, const char *data, size_t len)
{
	struct e2b_stream *st = ctx;
	size_t off = 0;
	mfs_buf_add(&st->pending, data, len);
	while (st->pending.len - off >= 5 && !st->protocol_error) {
		const unsigned char *h = (const unsigned char *)st->pending.data + off;
		uint32_t n = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
		if (h[0] & 0x01) {
			stream_fail(st, "envd sent a compressed frame we did not ask for");
			break;
		}
		if (n > MAX_FRAME) {
			stream_fail(st, "envd sent an oversized frame");
			break;
		}
		if (st->pending.len - off < 5 + (size_t)n)
			break;
		if (st->end_stream) {
			stream_fail(st, "envd sent frames after the end of the stream");
			break;
		}
		handle_message(st, h[0], (const char *)h + 5, n);
		st->last_frame_ms = mfs_now_ms();
		off += 5 + n;
	}
	/* Keepalives but never a start event: envd took the request and is
	 * not running it.  (A quiet command after its start is fine.) */
	if (!st->started && !st->end_stream && mfs_now_ms() - st->began_ms >= st->idle_ms) {
		st->stalled = true;
		return false;
	}
	if (off) {
		memmove(st->pending.data, st->pending.data + off, st->pending.len - off);
		st->pending.len -= off;
		st->pending.data[st->pending.len] = '\0';
	}
	return st->protocol_error == NULL;
}

void e2b_stream_release(struct e2b_stream *st)
{
	mfs_buf_release(&st->pending);
	mfs_buf_release(&st->decoded);
	free(st->signal_name);
	free(st->error_code);
	free(st->error_msg);
	free(st->protocol_error);
}

/* Go's names for the signals a process is likely to die of. */
int e2b_signal_number(const char *name)
{
	static const struct { const char *name; int no; } tab[] = {
		{ "hangup", 1 }, { "interrupt", 2 }, { "quit", 3 }, { "illegal instruction", 4 },
		{ "aborted", 6 }, { "bus error", 7 }, { "floating point exception", 8 },
		{ "killed", 9 }, { "segmentation fault", 11 }, { "broken pipe", 13 },
		{ "alarm clock", 14 }, { "terminated", 15 },
	};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (!strcmp(name, tab[i].name))
			return tab[i].no;
	return 0;
}

bool e2b_add_frame(struct mfs_buf *out, json_t *msg)
{
	char *s = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	if (!s)
		return false;
	size_t n = strlen(s);
	unsigned char prefix[5] = { 0, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
				    (unsigned char)(n >> 8), (unsigned char)n };
	mfs_buf_add(out, prefix, 5);
	mfs_buf_add(out, s, n);
	free(s);
	return true;
}
