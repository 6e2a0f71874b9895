/* err.c - formatting for the one error type (see include/mfs/util/err.h). */
#include "mfs/util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum mfs_code mfs_fail(struct mfs_err *err, enum mfs_code code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
		err->code = code;
	}
	return code;
}

enum mfs_code mfs_err_prefix(struct mfs_err *err, const char *fmt, ...)
{
	char prefix[MFS_ERR_MSG_MAX];
	char old[MFS_ERR_MSG_MAX];
	va_list ap;

	if (!err)
		return MFS_OK;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* Truncation is acceptable: the message is one line for a person. */
	size_t n = strlen(prefix);
	if (n > sizeof(err->msg) - 3)
		n = sizeof(err->msg) - 3;
	memcpy(err->msg, prefix, n);
	memcpy(err->msg + n, ": ", 2);
	size_t room = sizeof(err->msg) - n - 3;
	size_t olen = strnlen(old, sizeof(old));
	if (olen > room)
		olen = room;
	memcpy(err->msg + n + 2, old, olen);
	err->msg[n + 2 + olen] = '\0';
	return err->code;
}

void mfs_err_clear(struct mfs_err *err)
{
	if (err) {
		err->code = MFS_OK;
		err->msg[0] = '\0';
	}
}

const char *mfs_code_name(enum mfs_code code)
{
	switch (code) {
	case MFS_OK: return "ok";
	case MFS_ERR_USAGE: return "usage";
	case MFS_ERR_CONFIG: return "config";
	case MFS_ERR_NOMEM: return "nomem";
	case MFS_ERR_IO: return "io";
	case MFS_ERR_HTTP: return "http";
	case MFS_ERR_AUTH: return "auth";
	case MFS_ERR_NOTFOUND: return "notfound";
	case MFS_ERR_BACKEND: return "backend";
	case MFS_ERR_PROTOCOL: return "protocol";
	case MFS_ERR_UNSUPPORTED: return "unsupported";
	case MFS_ERR_TIMEOUT: return "timeout";
	case MFS_ERR_CANCELLED: return "cancelled";
	}
	return "unknown";
}
