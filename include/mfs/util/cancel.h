/*
 * cancel.h - cooperative cancellation for every layer.
 *
 * The CLI installs signal handlers (SIGINT/SIGTERM/SIGHUP) that call
 * mfs_cancel_request().  Backends never install handlers: they poll
 * mfs_cancelled() in their loops, or include mfs_cancel_fd() in poll(2)
 * (it becomes readable once cancellation is requested), then stop the
 * command, and return MFS_ERR_CANCELLED.  Async-signal-safe: request only.
 */
#ifndef MFS_CANCEL_H
#define MFS_CANCEL_H

#include <stdbool.h>

/* Creates the self-pipe; call once before installing handlers. 0 on success. */
int mfs_cancel_init(void);
/* Async-signal-safe. Records the first signal and wakes mfs_cancel_fd(). */
void mfs_cancel_request(int signo);
bool mfs_cancelled(void);
/* The signal that requested cancellation, 0 if none. */
int mfs_cancel_signal(void);
/* Signals received so far: clean-up that the first one started gives up
 * on the second. */
int mfs_cancel_count(void);
/* Read end of the self-pipe, or -1 before mfs_cancel_init(). Never read it. */
int mfs_cancel_fd(void);
/* Sleeps ms, returning early once cancellation is requested; false then. */
bool mfs_cancel_sleep_ms(long ms);
/* Sleeps ms, returning early (false) once `count` signals have arrived:
 * clean-up after a first signal waits with count 2. */
bool mfs_cancel_sleep_until_count(long ms, int count);
/* Test-only: forget a previous request. */
void mfs_cancel_reset(void);

#endif
