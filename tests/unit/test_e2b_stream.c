/* Unit tests for backends/e2b/stream.c: the Connect stream of a Start
 * call is what carries a step's output and exit status from envd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "../../backends/e2b/internal.h"
#include "mfs/util/clock.h"

struct sink {
	struct mfs_buf out, err;
};

static void sink_write(void *ctx, enum mfs_stream s, const char *data, size_t len)
{
	struct sink *k = ctx;
	mfs_buf_add(s == MFS_STDOUT ? &k->out : &k->err, data, len);
}

/* One envelope of json text with the given flag byte. */
static void frame(struct mfs_buf *b, unsigned flags, const char *json)
{
	size_t n = strlen(json);
	unsigned char p[5] = { (unsigned char)flags, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
			       (unsigned char)(n >> 8), (unsigned char)n };
	mfs_buf_add(b, p, 5);
	mfs_buf_add(b, json, n);
}

static void feed_bytewise(struct e2b_stream *st, const struct mfs_buf *b)
{
	for (size_t i = 0; i < b->len; i++)
		if (!e2b_stream_feed(st, b->data + i, 1))
			return;
}

static void split_frames_give_output_and_status(void **state)
{
	(void)state;
	struct sink k = { MFS_BUF_INIT, MFS_BUF_INIT };
	struct mfs_io io = { sink_write, &k };
	struct e2b_stream st = { .io = &io, .idle_ms = 60000, .began_ms = mfs_now_ms() };
	struct mfs_buf b = MFS_BUF_INIT;
	frame(&b, 0, "{\"event\":{\"start\":{\"pid\":42}}}");
	frame(&b, 0, "{\"event\":{\"data\":{\"stdout\":\"aGk=\"}}}");
	frame(&b, 0, "{\"event\":{\"data\":{\"stderr\":\"eA==\"}}}");
	frame(&b, 0, "{\"event\":{\"end\":{\"exitCode\":-1,\"status\":\"signal: terminated\"}}}");
	frame(&b, 2, "{}");
	feed_bytewise(&st, &b);
	assert_null(st.protocol_error);
	assert_true(st.started && st.ended && st.end_stream);
	assert_int_equal(st.pid, 42);
	assert_string_equal(k.out.data, "hi");
	assert_string_equal(k.err.data, "x");
	assert_string_equal(st.signal_name, "terminated");
	assert_int_equal(e2b_signal_number(st.signal_name), 15);
	e2b_stream_release(&st);
	mfs_buf_release(&b);
	mfs_buf_release(&k.out);
	mfs_buf_release(&k.err);
}

/* A second end event is a broken peer: refused, and nothing of the first
 * one is lost (the sanitizer and valgrind builds catch a leak here). */
static void repeated_end_event_is_refused(void **state)
{
	(void)state;
	struct e2b_stream st = { .idle_ms = 60000, .began_ms = mfs_now_ms() };
	struct mfs_buf b = MFS_BUF_INIT;
	frame(&b, 0, "{\"event\":{\"start\":{\"pid\":7}}}");
	frame(&b, 0, "{\"event\":{\"end\":{\"exitCode\":-1,\"status\":\"signal: killed\"}}}");
	frame(&b, 0, "{\"event\":{\"end\":{\"exitCode\":-1,\"status\":\"signal: killed\"}}}");
	frame(&b, 2, "{}");
	e2b_stream_feed(&st, b.data, b.len);
	assert_non_null(st.protocol_error);
	assert_non_null(strstr(st.protocol_error, "end event"));
	e2b_stream_release(&st);
	mfs_buf_release(&b);
}

/* envd's exitCode is the process's status, 0-255 (-1 with a signal).
 * Any other number once became its low 8 bits: 256 or 2^32 read as 0, a
 * failed step reported as success.  Now it reads as -1 (status 255). */
static void exit_code_out_of_range_is_not_success(void **state)
{
	(void)state;
	static const char *const codes[] = { "256", "4294967296", "-256", "9223372036854775807" };
	for (size_t i = 0; i < sizeof(codes) / sizeof(*codes); i++) {
		struct e2b_stream st = { .idle_ms = 60000, .began_ms = mfs_now_ms() };
		struct mfs_buf b = MFS_BUF_INIT, end = MFS_BUF_INIT;
		mfs_buf_addf(&end, "{\"event\":{\"end\":{\"exitCode\":%s,\"status\":\"exit "
			     "status %s\"}}}", codes[i], codes[i]);
		frame(&b, 0, "{\"event\":{\"start\":{\"pid\":7}}}");
		frame(&b, 0, end.data);
		e2b_stream_feed(&st, b.data, b.len);
		assert_true(st.ended);
		assert_int_equal(st.exit_code, -1);
		e2b_stream_release(&st);
		mfs_buf_release(&b);
		mfs_buf_release(&end);
	}
}

static void oversized_frame_is_refused_before_buffering(void **state)
{
	(void)state;
	struct e2b_stream st = { .idle_ms = 60000, .began_ms = mfs_now_ms() };
	const unsigned char hdr[5] = { 0, 0xff, 0xff, 0xff, 0xff };
	assert_false(e2b_stream_feed(&st, (const char *)hdr, sizeof(hdr)));
	assert_non_null(strstr(st.protocol_error, "oversized"));
	e2b_stream_release(&st);
}

static enum mfs_code answer(const char *body, struct e2b_sandbox *sb, struct mfs_err *err)
{
	struct e2b_conf c = { .domain = "e2b.app" };
	struct mfs_http_resp resp;
	mfs_http_resp_init(&resp);
	resp.status = 201;
	mfs_buf_adds(&resp.body, body);
	enum mfs_code rc = e2b_answer_sandbox(&c, &resp, sb, err);
	mfs_http_resp_release(&resp);
	return rc;
}

/* The id and domain become envd's host name: a '/' or '@' in either once
 * sent the step's command and environment to another host. */
static void sandbox_answer_that_moves_envd_is_refused(void **state)
{
	(void)state;
	struct mfs_err err = { MFS_OK, "" };
	struct e2b_sandbox sb;
	memset(&sb, 0, sizeof(sb));
	assert_int_equal(answer("{\"sandboxID\":\"i1a2\",\"envdVersion\":\"0.2.0\","
				"\"domain\":\"e2b.app\",\"envdAccessToken\":\"t\"}", &sb, &err),
			 MFS_OK);
	assert_string_equal(sb.envd_url, "https://49983-i1a2.e2b.app");
	free(sb.base.id);
	free(sb.envd_url);
	free(sb.token);
	const char *bad[] = {
		"{\"sandboxID\":\"x.evil.example/\",\"envdVersion\":\"0.2.0\"}",
		"{\"sandboxID\":\"i1@evil.example\",\"envdVersion\":\"0.2.0\"}",
		"{\"sandboxID\":\"i1\",\"envdVersion\":\"0.2.0\",\"domain\":\"evil.example/x?\"}",
		"{\"sandboxID\":\"i1\",\"envdVersion\":\"0.2.0\",\"envdAccessToken\":\"t\\r\\nX: 1\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		memset(&sb, 0, sizeof(sb));
		assert_int_equal(answer(bad[i], &sb, &err), MFS_ERR_PROTOCOL);
		assert_null(sb.base.id);
		assert_null(sb.envd_url);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(split_frames_give_output_and_status),
		cmocka_unit_test(repeated_end_event_is_refused),
		cmocka_unit_test(exit_code_out_of_range_is_not_success),
		cmocka_unit_test(oversized_frame_is_refused_before_buffering),
		cmocka_unit_test(sandbox_answer_that_moves_envd_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
