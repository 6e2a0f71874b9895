/*
 * redact.h - keeping secrets out of what mfsandbox prints (--dry-run, errors),
 * and terminal escapes out of what others wrote (provider strings, archive
 * member names).  The one rule set; docs/configuration.md lists it.
 *
 * A name "looks secret" when (any case)
 *  - it contains KEY, SECRET, TOKEN, PASSWORD, PASSWD, PASSPHRASE,
 *    CREDENTIAL, AUTH, PRIVATE, COOKIE or HEADERS anywhere, or
 *  - one of its words (split at '_', '-' and '.') is PAT, PASS, PW, DSN or
 *    SESSION (so GITHUB_PAT and DB_PASS, not PATH).
 * Text is redacted in three ways:
 *  - NAME=VALUE with a secret-looking NAME: VALUE becomes MFS_REDACTED;
 *  - a URL with credentials, scheme://user:pass@host: the password (or a
 *    lone user part, usually a token) becomes MFS_REDACTED;
 *  - any occurrence of a known secret value (mfs_redactor_add), whatever
 *    name it travels under.
 * Over-redacting a harmless value is cheap; printing an API key is not.
 */
#ifndef MFS_REDACT_H
#define MFS_REDACT_H

#include <stdbool.h>

#include "mfs/util/buf.h"

#define MFS_REDACTED "<redacted>"

/* Values shorter than this are not hunted for by value ("1", "true"). */
#define MFS_REDACT_MIN_VALUE 4

bool mfs_secret_name(const char *name);

/* Known secret values.  Owns copies, wiped on release. */
struct mfs_redactor {
	struct mfs_strv values;
};

void mfs_redactor_init(struct mfs_redactor *r);
void mfs_redactor_release(struct mfs_redactor *r);
/* Remembers value (ignored when shorter than MFS_REDACT_MIN_VALUE). */
void mfs_redactor_add(struct mfs_redactor *r, const char *value);
/* Remembers the value of every secret-looking name in env. */
void mfs_redactor_add_env(struct mfs_redactor *r, const struct mfs_kvlist *env);

/* Appends text to out with the three rules applied (r may be NULL: names
 * and URLs only).  VALUE of NAME=VALUE ends at unquoted whitespace, ';', '&'
 * or '|'; quoted values are replaced whole. */
void mfs_redact(const struct mfs_redactor *r, struct mfs_buf *out, const char *text);
/* mfs_redact(NULL, out, text). */
void mfs_redact_text(struct mfs_buf *out, const char *text);

/* Appends text for a terminal: control characters (C0, DEL, C1) and bytes
 * that are not UTF-8 become \xNN, so a provider's string or an archive's
 * member name cannot move the cursor, retitle the window or hide a line.
 * At most max characters (0: no limit), then "...".  out is NUL-terminated
 * even for empty text. */
void mfs_escape_text(struct mfs_buf *out, const char *text, size_t max);

#endif
