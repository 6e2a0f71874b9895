/*
 * ws.c - a receive-only WebSocket client over a libcurl CONNECT_ONLY
 * connection (see ws.h for why by hand).
 *
 * The handshake's Sec-WebSocket-Accept is not checked: it guards against
 * intermediaries that do not speak WebSocket, and such an answer is not a
 * 101 here anyway; checking it would need SHA-1 for nothing else.  Every
 * length read from the peer is bounded (headers 16 KiB, a frame 16 MiB).
 */
#include "mfs/net/ws.h"
#include "mfs/net/http.h"
#include "lazy_curl.h"
#include "mfs/util/cancel.h"
#include "mfs/util/clock.h"
#include "mfs/util/text.h"

#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#define WS_MAX_HEAD   16384u          /* the handshake answer's head */
#define WS_MAX_FRAME  (16u << 20)     /* one frame's payload */
#define WS_BODY_KEEP  65536u          /* of a refused handshake's body */
#define WS_SLICE_MS   200             /* cancellation is checked this often */

struct ws_conn {
	CURL *h;
	curl_socket_t fd;
	const struct mfs_ws_req *req;
	struct mfs_buf in;    /* received bytes; those before pos are used */
	size_t pos;
	double last_byte;
	const char *where;    /* the URL as logs show it */
};

void mfs_ws_result_init(struct mfs_ws_result *res)
{
	memset(res, 0, sizeof(*res));
	mfs_buf_init(&res->body);
}

void mfs_ws_result_release(struct mfs_ws_result *res)
{
	mfs_buf_release(&res->body);
	memset(res, 0, sizeof(*res));
}

/* Waits until the socket is ready for events, a slice at a time, so that
 * cancellation, the deadline and the idle bound are noticed. */
static enum mfs_code wait_io(struct ws_conn *c, short events, struct mfs_err *err)
{
	const struct mfs_ws_req *r = c->req;
	for (;;) {
		if (r->cancellable && mfs_cancelled())
			return mfs_fail(err, MFS_ERR_CANCELLED, "%s: cancelled", c->where);
		if (r->deadline > 0 && mfs_now_s() >= r->deadline)
			return mfs_fail(err, MFS_ERR_TIMEOUT, "%s: timed out", c->where);
		if (r->idle_timeout_ms > 0 &&
		    (mfs_now_s() - c->last_byte) * 1000 >= (double)r->idle_timeout_ms)
			return mfs_fail(err, MFS_ERR_HTTP, "%s: nothing received for %ld ms",
					c->where, r->idle_timeout_ms);
		struct pollfd p = { .fd = (int)c->fd, .events = events };
		int n = poll(&p, 1, WS_SLICE_MS);
		if (n > 0)
			return MFS_OK;
	}
}

static enum mfs_code send_all(struct ws_conn *c, const unsigned char *data, size_t len,
			      struct mfs_err *err)
{
	while (len) {
		size_t n = 0;
		CURLcode cc = curl_easy_send(c->h, data, len, &n);
		if (cc == CURLE_AGAIN) {
			enum mfs_code rc = wait_io(c, POLLOUT, err);
			if (rc != MFS_OK)
				return rc;
			continue;
		}
		if (cc != CURLE_OK)
			return mfs_fail(err, MFS_ERR_HTTP, "%s: %s", c->where, curl_easy_strerror(cc));
		data += n;
		len -= n;
	}
	return MFS_OK;
}

/* Appends what arrives next to c->in; MFS_ERR_HTTP once the peer is gone. */
static enum mfs_code recv_more(struct ws_conn *c, struct mfs_err *err)
{
	char chunk[65536];
	for (;;) {
		size_t n = 0;
		CURLcode cc = curl_easy_recv(c->h, chunk, sizeof(chunk), &n);
		if (cc == CURLE_AGAIN) {
			enum mfs_code rc = wait_io(c, POLLIN, err);
			if (rc != MFS_OK)
				return rc;
			continue;
		}
		if (cc != CURLE_OK)
			return mfs_fail(err, MFS_ERR_HTTP, "%s: %s", c->where, curl_easy_strerror(cc));
		if (n == 0)
			return mfs_fail(err, MFS_ERR_HTTP, "%s: the connection was closed", c->where);
		mfs_buf_add(&c->in, chunk, n);
		c->last_byte = mfs_now_s();
		return MFS_OK;
	}
}

/* scheme://[user@]authority/target -> the origin curl connects to, the
 * Host header's value and the request target; false if not http(s). */
static bool split_url(const char *url, struct mfs_buf *origin, struct mfs_buf *host,
		      struct mfs_buf *target)
{
	const char *s = strstr(url, "://");
	if (!s || !((s - url == 4 && !strncasecmp(url, "http", 4)) ||
		    (s - url == 5 && !strncasecmp(url, "https", 5))))
		return false;
	const char *a = s + 3, *end = a + strcspn(a, "/?#");
	const char *at = memchr(a, '@', (size_t)(end - a));
	if (at)
		a = at + 1;
	if (end == a)
		return false;
	mfs_buf_add(origin, url, (size_t)(s + 3 - url));
	mfs_buf_add(origin, a, (size_t)(end - a));
	mfs_buf_add(host, a, (size_t)(end - a));
	if (*end != '/')
		mfs_buf_addch(target, '/');
	mfs_buf_add(target, end, strcspn(end, "#"));
	return true;
}

/* The handshake is written by hand, so a URL part with a space or line
 * break (a path piece from a peer's answer) would rewrite the request. */
static bool request_line_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return false;
	return true;
}

enum mfs_ws_parse mfs_ws_head_parse(const char *data, size_t len, long *status,
				    size_t *head_len, size_t *content_length)
{
	const char *end = len ? memmem(data, len, "\r\n\r\n", 4) : NULL;
	const char *cl = NULL;
	if (!end)
		return len > WS_MAX_HEAD ? MFS_WS_BAD : MFS_WS_MORE;
	*head_len = (size_t)(end - data) + 4;
	if (sscanf(data, "HTTP/%*s %ld", status) != 1 || *status < 100 || *status > 999)
		return MFS_WS_BAD;
	for (size_t i = 0; i + 16 < *head_len && !cl; i++)
		if (data[i] == '\n' && !strncasecmp(data + i + 1, "content-length:", 15))
			cl = data + i + 16;
	*content_length = cl ? strtoul(cl, NULL, 10) : 0;
	return MFS_WS_OK;
}

/* The start of a refused handshake's body (its error document). */
static void keep_body(struct ws_conn *c, size_t head_len, size_t want,
		      struct mfs_ws_result *res)
{
	struct mfs_err ignored;
	if (want > WS_BODY_KEEP)
		want = WS_BODY_KEEP;
	while (c->in.len - head_len < want && recv_more(c, &ignored) == MFS_OK)
		;
	size_t have = c->in.len - head_len;
	mfs_buf_add(&res->body, c->in.data + head_len, have < want ? have : want);
}

/* Sends the upgrade request and reads the answer's head; leaves c->pos
 * at the first frame byte. */
static enum mfs_code handshake(struct ws_conn *c, const char *host, const char *target,
			       struct mfs_ws_result *res, struct mfs_err *err)
{
	struct mfs_buf rq = MFS_BUF_INIT;
	unsigned char key[16];
	enum mfs_code rc;
	enum mfs_ws_parse got = MFS_WS_MORE;
	size_t head_len = 0, body_len = 0;

	mfs_random_bytes(key, sizeof(key));
	mfs_buf_addf(&rq, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ",
		     target, host);
	mfs_buf_add_base64(&rq, key, sizeof(key));
	mfs_buf_adds(&rq, "\r\n");
	for (size_t i = 0; c->req->headers && i < c->req->headers->n; i++)
		mfs_buf_addf(&rq, "%s\r\n", c->req->headers->v[i]);
	mfs_buf_adds(&rq, "\r\n");
	rc = send_all(c, (const unsigned char *)rq.data, rq.len, err);
	mfs_buf_release(&rq);
	/* c->in.data is NULL until the first byte (the parser never sees it). */
	while (rc == MFS_OK && (got = c->in.len ? mfs_ws_head_parse(c->in.data, c->in.len,
			&res->status, &head_len, &body_len) : MFS_WS_MORE) == MFS_WS_MORE)
		rc = recv_more(c, err);
	if (rc != MFS_OK)
		return rc;
	if (got == MFS_WS_BAD && !head_len)
		return mfs_fail(err, MFS_ERR_PROTOCOL, "%s: the answer's head is over %u "
				"bytes", c->where, WS_MAX_HEAD);
	if (got == MFS_WS_BAD)
		return mfs_fail(err, MFS_ERR_PROTOCOL, "%s: not an HTTP answer", c->where);
	if (res->status != 101)
		keep_body(c, head_len, body_len, res);
	c->pos = head_len;
	return MFS_OK;
}

/* One masked frame (clients must mask); control payloads are <= 125. */
static enum mfs_code send_frame(struct ws_conn *c, unsigned opcode, const unsigned char *data,
				size_t len, struct mfs_err *err)
{
	unsigned char f[2 + 4 + 125];
	if (len > 125)
		len = 125;
	f[0] = (unsigned char)(0x80 | opcode);
	f[1] = (unsigned char)(0x80 | len);
	mfs_random_bytes(f + 2, 4);
	for (size_t i = 0; i < len; i++)
		f[6 + i] = data[i] ^ f[2 + i % 4];
	return send_all(c, f, 6 + len, err);
}

enum mfs_ws_parse mfs_ws_frame_parse(unsigned char *p, size_t have, struct mfs_ws_frame *f)
{
	size_t hdr = 2;
	uint64_t n;
	if (have < 2)
		return MFS_WS_MORE;
	n = p[1] & 0x7f;
	hdr += n == 126 ? 2 : n == 127 ? 8 : 0;
	hdr += p[1] & 0x80 ? 4 : 0;
	if (have < hdr)
		return MFS_WS_MORE;
	if (n >= 126) {
		size_t end = n == 126 ? 4 : 10;
		n = 0;
		for (size_t i = 2; i < end; i++)
			n = n << 8 | p[i];
	}
	f->claimed = n;
	if (n > WS_MAX_FRAME)
		return MFS_WS_BAD;
	if (have < hdr + n)
		return MFS_WS_MORE;
	unsigned char *d = p + hdr;
	if (p[1] & 0x80)
		for (size_t i = 0; i < n; i++)
			d[i] ^= p[hdr - 4 + i % 4];
	f->opcode = p[0] & 0x0f;
	f->payload = d;
	f->len = (size_t)n;
	f->size = hdr + (size_t)n;
	return MFS_WS_OK;
}

/* The next whole frame at c->pos, reading more as needed. */
static enum mfs_code next_frame(struct ws_conn *c, struct mfs_ws_frame *f, struct mfs_err *err)
{
	for (;;) {
		enum mfs_ws_parse got = mfs_ws_frame_parse((unsigned char *)c->in.data + c->pos,
							   c->in.len - c->pos, f);
		if (got == MFS_WS_BAD)
			return mfs_fail(err, MFS_ERR_PROTOCOL, "%s: a frame of %llu bytes "
					"(over %u)", c->where, (unsigned long long)f->claimed,
					WS_MAX_FRAME);
		if (got == MFS_WS_OK) {
			c->pos += f->size;
			return MFS_OK;
		}
		if (c->pos > 65536) { /* keep the buffer to what is not used yet */
			memmove(c->in.data, c->in.data + c->pos, c->in.len - c->pos);
			c->in.len -= c->pos;
			c->pos = 0;
		}
		enum mfs_code rc = recv_more(c, err);
		if (rc != MFS_OK)
			return rc;
	}
}

static enum mfs_code read_frames(struct ws_conn *c, struct mfs_ws_result *res,
				 struct mfs_err *err)
{
	for (;;) {
		struct mfs_ws_frame f;
		enum mfs_code rc = next_frame(c, &f, err);
		if (rc != MFS_OK)
			return rc;
		unsigned op = f.opcode;
		unsigned char *d = f.payload;
		size_t n = f.len;
		if (op <= 2) {          /* continuation, text, binary */
			res->bytes += n;
			if (n && c->req->on_data && !c->req->on_data(c->req->ctx, (char *)d, n))
				return MFS_OK;
		} else if (op == 8) {   /* close: answered with the same code */
			struct mfs_err ignored;
			res->closed = true;
			res->close_code = n >= 2 ? d[0] << 8 | d[1] : 0;
			send_frame(c, 8, d, n >= 2 ? 2 : 0, &ignored);
			return MFS_OK;
		} else if (op == 9) {   /* ping */
			rc = send_frame(c, 10, d, n, err);
			if (rc != MFS_OK)
				return rc;
		} else if (op != 10) {
			return mfs_fail(err, MFS_ERR_PROTOCOL, "%s: unknown frame opcode %u",
					c->where, op);
		}
	}
}

static enum mfs_code connect_only(struct ws_conn *c, const char *origin, struct mfs_err *err)
{
	long ct = c->req->connect_timeout_ms > 0 ? c->req->connect_timeout_ms : 10000;
	CURLcode cc;
	enum mfs_code rc = mfs_need_curl(err);
	if (rc != MFS_OK)
		return rc;
	if (c->req->deadline > 0) {
		double left = (c->req->deadline - mfs_now_s()) * 1000;
		if (left < 1)
			return mfs_fail(err, MFS_ERR_TIMEOUT, "%s: timed out", c->where);
		if (left < ct)
			ct = (long)left;
	}
	c->h = curl_easy_init();
	if (!c->h)
		return mfs_fail(err, MFS_ERR_NOMEM, "cannot create a libcurl handle");
	curl_easy_setopt(c->h, CURLOPT_URL, origin);
	curl_easy_setopt(c->h, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS, ct);
	curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
	cc = curl_easy_perform(c->h);
	if (cc == CURLE_OK)
		cc = curl_easy_getinfo(c->h, CURLINFO_ACTIVESOCKET, &c->fd);
	if (cc != CURLE_OK)
		return mfs_fail(err, MFS_ERR_HTTP, "%s: %s", c->where, curl_easy_strerror(cc));
	c->last_byte = mfs_now_s();
	return MFS_OK;
}

enum mfs_code mfs_ws_follow(const struct mfs_ws_req *req, struct mfs_ws_result *res,
			    struct mfs_err *err)
{
	struct ws_conn c = { .req = req, .fd = CURL_SOCKET_BAD };
	struct mfs_buf origin = MFS_BUF_INIT, host = MFS_BUF_INIT, target = MFS_BUF_INIT;
	struct mfs_buf where = MFS_BUF_INIT;
	enum mfs_code rc;

	mfs_buf_init(&c.in);
	mfs_http_url_for_log(&where, req->url);
	c.where = where.data ? where.data : "";
	if (!split_url(req->url, &origin, &host, &target))
		rc = mfs_fail(err, MFS_ERR_USAGE, "%s: not an http(s) URL", c.where);
	else if (!request_line_ok(host.data) || !request_line_ok(target.data))
		rc = mfs_fail(err, MFS_ERR_PROTOCOL, "%s: the URL holds a space or control "
			      "character", c.where);
	else
		rc = mfs_http_check_headers(req->headers, c.where, err);
	if (rc == MFS_OK)
		rc = connect_only(&c, origin.data, err);
	if (rc == MFS_OK)
		rc = handshake(&c, host.data, target.data, res, err);
	if (rc == MFS_OK && res->status == 101)
		rc = read_frames(&c, res, err);
	if (c.h)
		curl_easy_cleanup(c.h);
	mfs_buf_release(&c.in);
	mfs_buf_release(&origin);
	mfs_buf_release(&host);
	mfs_buf_release(&target);
	mfs_buf_release(&where);
	return rc;
}
