/* redact.c - hide values of secret-looking names (include/mfs/util/redact.h). */
#include "mfs/util/redact.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static const char *const secret_words[] = {
	"KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", NULL,
};

static bool contains_ci(const char *s, size_t n, const char *word)
{
	size_t m = strlen(word);
	for (size_t i = 0; i + m <= n; i++)
		if (strncasecmp(s + i, word, m) == 0)
			return true;
	return false;
}

static bool secret_span(const char *name, size_t n)
{
	for (const char *const *w = secret_words; *w; w++)
		if (contains_ci(name, n, *w))
			return true;
	return false;
}

bool mfs_secret_name(const char *name)
{
	return secret_span(name, strlen(name));
}

static bool ident_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* Length of the value starting at p, honouring shell quotes. */
static size_t value_len(const char *p)
{
	const char *q = p;
	while (*q && !strchr(" \t\n;&|", *q)) {
		if (*q == '\'' || *q == '"') {
			char quote = *q++;
			while (*q && *q != quote) {
				if (quote == '"' && *q == '\\' && q[1])
					q++;
				q++;
			}
			if (*q)
				q++;
		} else if (*q == '\\' && q[1]) {
			q += 2;
		} else {
			q++;
		}
	}
	return (size_t)(q - p);
}

void mfs_redact_text(struct mfs_buf *out, const char *text)
{
	const char *p = text;
	while (*p) {
		if (ident_char(*p) && (p == text || !ident_char(p[-1]))) {
			const char *start = p;
			while (ident_char(*p))
				p++;
			size_t n = (size_t)(p - start);
			mfs_buf_add(out, start, n);
			if (*p == '=' && secret_span(start, n)) {
				size_t v = value_len(p + 1);
				mfs_buf_addch(out, '=');
				if (v)
					mfs_buf_adds(out, MFS_REDACTED);
				p += 1 + v;
			}
			continue;
		}
		mfs_buf_addch(out, *p++);
	}
}

/* Length of the valid UTF-8 sequence at p, 0 when it is invalid or a C1
 * control (U+0080..U+009F: a terminal may read U+009B as CSI). */
static size_t utf8_len(const unsigned char *p)
{
	unsigned cp, min;
	size_t n;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0)
		n = 2, cp = p[0] & 0x1fu, min = 0x80;
	else if ((p[0] & 0xf0) == 0xe0)
		n = 3, cp = p[0] & 0x0fu, min = 0x800;
	else if ((p[0] & 0xf8) == 0xf0)
		n = 4, cp = p[0] & 0x07u, min = 0x10000;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80) /* also stops at the NUL */
			return 0;
		cp = (cp << 6) | (p[i] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp < 0xa0)
		return 0;
	return n;
}

void mfs_escape_text(struct mfs_buf *out, const char *text, size_t max)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t shown = 0;

	mfs_buf_add(out, "", 0);
	for (; *p; shown++) {
		if (max && shown == max) {
			mfs_buf_adds(out, "...");
			break;
		}
		size_t n = *p >= 0x20 && *p != 0x7f ? utf8_len(p) : 0;
		if (n) {
			mfs_buf_add(out, p, n);
			p += n;
		} else {
			mfs_buf_addf(out, "\\x%02x", *p++);
		}
	}
}
