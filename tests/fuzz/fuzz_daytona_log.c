/* fuzz_daytona_log.c - the Daytona split-output log demultiplexer
 * (backends/daytona/logs.c, through the backend's private daytona.h).
 *
 * Input: a byte n (chunks = n % 16), that many chunk lengths (one byte
 * each), then the log.  The log goes through every way the backend reads
 * it: whole in one final poll (the reference); over the follow stream in
 * those chunks, then finished; polled as it grows at the same points; and
 * streamed for the first chunks (n / 16 of them), then cut and taken over
 * by polling from the offset the stream reached.  Each way must hand on
 * the same bytes to the same streams in the same order, else the user's
 * stdout/stderr would lose or double lines: a difference aborts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "../../backends/daytona/daytona.h"

/* What reached stdout/stderr, as one byte string: a stream switch is
 * written as 0xff and the stream's number, so order counts too. */
struct transcript {
	struct mfs_buf out;
	int last;
};

static void sink(void *ctx, enum mfs_stream stream, const char *data, size_t len)
{
	struct transcript *t = ctx;
	if ((int)stream != t->last) {
		mfs_buf_addch(&t->out, '\xff');
		mfs_buf_addch(&t->out, (char)('0' + (int)stream));
		t->last = (int)stream;
	}
	mfs_buf_add(&t->out, data, len);
}

struct run {
	struct transcript t;
	struct mfs_io io;
	struct dt_log lg;
};

static void run_begin(struct run *r)
{
	mfs_buf_init(&r->t.out);
	r->t.last = -1;
	r->io = (struct mfs_io){ sink, &r->t };
	dt_log_init(&r->lg, &r->io);
}

/* Ends r: aborts when its transcript differs from want's. */
static void run_check(struct run *r, const struct run *want, const char *how)
{
	dt_log_release(&r->lg);
	if (r->t.out.len != want->t.out.len ||
	    (r->t.out.len && memcmp(r->t.out.data, want->t.out.data, r->t.out.len))) {
		fprintf(stderr, "daytona log: %s handed on %zu bytes, the whole log %zu\n", how,
			r->t.out.len, want->t.out.len);
		abort();
	}
	mfs_buf_release(&r->t.out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t chunks = data[0] % 16, cut_after = data[0] / 16, at = 1 + chunks;
	if (size < at)
		return 0;
	const char *log = (const char *)data + at;
	size_t len = size - at, ends[17], n = 0, pos = 0;
	for (size_t i = 0; i < chunks && pos < len; i++) {
		pos += data[1 + i];
		ends[n++] = pos < len ? pos : len;
	}
	ends[n++] = len;

	struct run ref, stream, poll, takeover;
	run_begin(&ref);
	dt_log_poll(&ref.lg, log, len, true);

	run_begin(&stream);
	for (size_t i = 0, from = 0; i < n; from = ends[i++])
		dt_log_feed(&stream.lg, log + from, ends[i] - from);
	dt_log_finish(&stream.lg);
	run_check(&stream, &ref, "the follow stream");

	run_begin(&poll);
	for (size_t i = 0; i < n; i++)
		dt_log_poll(&poll.lg, log, ends[i], false);
	dt_log_poll(&poll.lg, log, len, true);
	run_check(&poll, &ref, "polling");

	/* What dt_log_follow does when the stream breaks: drop the unfinished
	 * line, then polling goes on from offset. */
	run_begin(&takeover);
	for (size_t i = 0, from = 0; i < n && i < cut_after; from = ends[i++])
		dt_log_feed(&takeover.lg, log + from, ends[i] - from);
	mfs_buf_reset(&takeover.lg.pending);
	dt_log_poll(&takeover.lg, log, len, true);
	run_check(&takeover, &ref, "a stream taken over by polling");

	dt_log_release(&ref.lg);
	mfs_buf_release(&ref.t.out);
	return 0;
}
