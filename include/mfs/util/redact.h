/*
 * redact.h - keeping secrets out of what mfsandbox prints (--dry-run, errors).
 *
 * A name "looks secret" when it contains KEY, SECRET, TOKEN, PASSWORD,
 * PASSWD, CREDENTIAL or AUTH (any case).  Over-redacting a harmless value
 * is cheap; printing an API key is not.
 */
#ifndef MFS_REDACT_H
#define MFS_REDACT_H

#include <stdbool.h>

#include "mfs/util/buf.h"

#define MFS_REDACTED "<redacted>"

bool mfs_secret_name(const char *name);
/* Appends text to out with the value of every NAME=VALUE whose NAME looks
 * secret replaced by MFS_REDACTED (VALUE ends at unquoted whitespace, ';',
 * '&' or '|'; quoted values are replaced whole). */
void mfs_redact_text(struct mfs_buf *out, const char *text);

/* Appends text for a terminal: control characters (C0, DEL, C1) and bytes
 * that are not UTF-8 become \xNN, so a provider's string or an archive's
 * member name cannot move the cursor, retitle the window or hide a line.
 * At most max characters (0: no limit), then "...".  out is NUL-terminated
 * even for empty text. */
void mfs_escape_text(struct mfs_buf *out, const char *text, size_t max);

#endif
