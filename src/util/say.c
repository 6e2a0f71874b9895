/* say.c - formatting for the message channel (include/mfs/util/say.h). */
#include "mfs/util/say.h"

#include <stdarg.h>

#include "mfs/util/buf.h"

void mfs_sayf(const struct mfs_say *say, enum mfs_say_level level, const char *fmt, ...)
{
	if (!say || !say->fn)
		return;
	struct mfs_buf b = MFS_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	mfs_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	say->fn(say->ctx, level, b.data ? b.data : "");
	mfs_buf_release(&b);
}
