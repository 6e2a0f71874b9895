/*
 * clock.h - the monotonic clock and sleeps every layer uses for deadlines,
 * polls and back-off (wall-clock time would jump with NTP).
 */
#ifndef MFS_CLOCK_H
#define MFS_CLOCK_H

/* CLOCK_MONOTONIC now, in seconds and in milliseconds. */
double mfs_now_s(void);
long long mfs_now_ms(void);
/* Sleeps ms in full, resuming after signals (cancellation is not checked:
 * see mfs_cancel_sleep_ms in cancel.h for that). */
void mfs_sleep_ms(long ms);

#endif
