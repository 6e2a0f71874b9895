/* cancel.c - signal-driven cancellation shared by all layers (include/mfs/util/cancel.h). */
#include "mfs/util/cancel.h"
#include "mfs/util/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t cancel_signo;
static volatile sig_atomic_t cancel_count;
static int pipe_fds[2] = { -1, -1 };

int mfs_cancel_init(void)
{
	if (pipe_fds[0] >= 0)
		return 0;
	if (pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0)
		return -1;
	return 0;
}

void mfs_cancel_request(int signo)
{
	int saved = errno;
	if (!cancel_signo)
		cancel_signo = signo ? signo : SIGTERM;
	if (cancel_count < 1000)
		cancel_count++;
	if (pipe_fds[1] >= 0) {
		ssize_t r = write(pipe_fds[1], "x", 1);
		(void)r;
	}
	errno = saved;
}

bool mfs_cancelled(void)
{
	return cancel_signo != 0;
}

int mfs_cancel_signal(void)
{
	return cancel_signo;
}

int mfs_cancel_count(void)
{
	return cancel_count;
}

int mfs_cancel_fd(void)
{
	return pipe_fds[0];
}

bool mfs_cancel_sleep_ms(long ms)
{
	if (pipe_fds[0] >= 0) {
		struct pollfd p = { .fd = pipe_fds[0], .events = POLLIN };
		long long end = mfs_now_ms() + ms;
		for (;;) {
			long long left = end - mfs_now_ms();
			if (mfs_cancelled())
				return false;
			if (left <= 0)
				return true;
			if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
				return !mfs_cancelled();
		}
	}
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
		if (mfs_cancelled())
			return false;
	}
	return !mfs_cancelled();
}

bool mfs_cancel_sleep_until_count(long ms, int count)
{
	/* The pipe stays readable after the first signal, so short naps
	 * instead; a signal also cuts a nap short (no SA_RESTART). */
	for (long long end = mfs_now_ms() + ms; cancel_count < count;) {
		long long left = end - mfs_now_ms();
		if (left <= 0)
			break;
		long nap = left < 100 ? (long)left : 100;
		struct timespec ts = { 0, nap * 1000000L };
		nanosleep(&ts, NULL);
	}
	return cancel_count < count;
}

void mfs_cancel_reset(void)
{
	char drain[64];
	cancel_signo = 0;
	cancel_count = 0;
	if (pipe_fds[0] >= 0)
		while (read(pipe_fds[0], drain, sizeof(drain)) > 0)
			;
}
