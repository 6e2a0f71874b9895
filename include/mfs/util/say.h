/*
 * say.h - the channel for one-line messages to the person running us.
 *
 * Library code and backends never write to stderr: they hand a line and its
 * level to a sink the executor owns, which decides whether it is shown
 * (--quiet), how (a progress line is redrawn in place on a terminal) and
 * where.  The line has no "mfsandbox: " prefix and no newline; never a
 * secret.
 */
#ifndef MFS_SAY_H
#define MFS_SAY_H

enum mfs_say_level {
	MFS_SAY_INFO,     /* a fact worth a line (header, a slow create's summary) */
	MFS_SAY_WARN,     /* something not done as asked; the sink adds "warning: " */
	/* A transient status that replaces the previous one; shown on a
	 * terminal only.  An empty line ends it (the last status stays). */
	MFS_SAY_PROGRESS,
	MFS_SAY_ALWAYS,   /* shown even with --quiet (--keep instructions) */
};

struct mfs_say {
	void (*fn)(void *ctx, enum mfs_say_level level, const char *line);
	void *ctx;
};

/* Formats one line and hands it to say; a NULL say or fn drops it. */
void mfs_sayf(const struct mfs_say *say, enum mfs_say_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
