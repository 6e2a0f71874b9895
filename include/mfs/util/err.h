/*
 * err.h - the one error type of mfsandbox.
 *
 * Every fallible function returns an enum mfs_code and, on failure, fills a
 * caller-owned struct mfs_err with a one-line message that names the fix
 * (flag, env var or doc).  Library code never prints; only the CLI decides
 * what to print and which exit code to use (see mfs_exit_for in cli.h).
 * Messages must never contain secrets (API keys, AWS keys, tokens).
 */
#ifndef MFS_ERR_H
#define MFS_ERR_H

#include <stddef.h>

enum mfs_code {
	MFS_OK = 0,
	MFS_ERR_USAGE,       /* bad flag, argument or combination of them */
	MFS_ERR_CONFIG,      /* missing or invalid env var, file, credential */
	MFS_ERR_NOMEM,
	MFS_ERR_IO,          /* local file, pipe or process failure */
	MFS_ERR_HTTP,        /* transport failure talking to a service */
	MFS_ERR_AUTH,        /* the service refused our credentials (401/403) */
	MFS_ERR_NOTFOUND,    /* the object or sandbox does not exist (404) */
	MFS_ERR_BACKEND,     /* the provider failed or refused the request */
	MFS_ERR_PROTOCOL,    /* a response we could not make sense of */
	MFS_ERR_UNSUPPORTED, /* this backend cannot do that (yet) */
	MFS_ERR_TIMEOUT,     /* a deadline (--timeout) passed */
	MFS_ERR_CANCELLED,   /* a signal asked us to stop */
};

#define MFS_ERR_MSG_MAX 512

struct mfs_err {
	enum mfs_code code;
	char msg[MFS_ERR_MSG_MAX];
};

/* Sets err (if non-NULL) and returns code, so callers can write
 * `return mfs_fail(err, MFS_ERR_IO, "cannot read %s: %s", p, strerror(errno));` */
enum mfs_code mfs_fail(struct mfs_err *err, enum mfs_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes context to an existing message: "uploading code: <old message>". */
enum mfs_code mfs_err_prefix(struct mfs_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void mfs_err_clear(struct mfs_err *err);

/* Stable short name of a code, e.g. "usage", "timeout". */
const char *mfs_code_name(enum mfs_code code);

#endif
