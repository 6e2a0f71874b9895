/* redact.c - the one redaction rule set (include/mfs/util/redact.h). */
#include "mfs/util/redact.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Anywhere in a name. */
static const char *const secret_parts[] = {
	"KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "PASSPHRASE", "CREDENTIAL", "AUTH",
	"PRIVATE", "COOKIE", "HEADERS", NULL,
};

/* Whole words only: "PAT" inside PATH or "PW" inside PWD are not secrets. */
static const char *const secret_words[] = { "PAT", "PASS", "PW", "DSN", "SESSION", NULL };

static bool contains_ci(const char *s, size_t n, const char *word)
{
	size_t m = strlen(word);
	for (size_t i = 0; i + m <= n; i++)
		if (strncasecmp(s + i, word, m) == 0)
			return true;
	return false;
}

static bool is_word_ci(const char *s, size_t n, const char *word)
{
	return n == strlen(word) && strncasecmp(s, word, n) == 0;
}

static bool secret_span(const char *name, size_t n)
{
	for (const char *const *w = secret_parts; *w; w++)
		if (contains_ci(name, n, *w))
			return true;
	for (size_t i = 0; i < n;) {
		size_t len = 0;
		while (i + len < n && !strchr("_-.", name[i + len]))
			len++;
		for (const char *const *w = secret_words; *w; w++)
			if (is_word_ci(name + i, len, *w))
				return true;
		i += len + 1;
	}
	return false;
}

bool mfs_secret_name(const char *name)
{
	return secret_span(name, strlen(name));
}

void mfs_redactor_init(struct mfs_redactor *r)
{
	mfs_strv_init(&r->values);
}

void mfs_redactor_release(struct mfs_redactor *r)
{
	for (size_t i = 0; i < r->values.n; i++) {
		volatile char *p = r->values.v[i];
		while (*p)
			*p++ = '\0';
	}
	mfs_strv_release(&r->values);
}

void mfs_redactor_add(struct mfs_redactor *r, const char *value)
{
	if (!value || strlen(value) < MFS_REDACT_MIN_VALUE)
		return;
	for (size_t i = 0; i < r->values.n; i++)
		if (!strcmp(r->values.v[i], value))
			return;
	mfs_strv_push(&r->values, value);
}

void mfs_redactor_add_env(struct mfs_redactor *r, const struct mfs_kvlist *env)
{
	for (size_t i = 0; i < env->n; i++)
		if (mfs_secret_name(env->items[i].key))
			mfs_redactor_add(r, env->items[i].value);
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

/* At p just past "://": the userinfo "user:pass@" or "token@", if any, is
 * copied with its secret part redacted.  Returns the characters consumed. */
static size_t url_userinfo(struct mfs_buf *out, const char *p)
{
	size_t n = strcspn(p, "/?#@ \t\n'\"");
	if (p[n] != '@' || n == 0)
		return 0;
	const char *colon = memchr(p, ':', n);
	if (colon)
		mfs_buf_add(out, p, (size_t)(colon - p) + 1);
	mfs_buf_adds(out, MFS_REDACTED);
	return n;
}

/* Names and URLs: the rules that need no known values. */
static void redact_names(struct mfs_buf *out, const char *text)
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
			} else if (!strncmp(p, "://", 3)) {
				mfs_buf_adds(out, "://");
				p += 3;
				p += url_userinfo(out, p);
			}
			continue;
		}
		mfs_buf_addch(out, *p++);
	}
}

void mfs_redact(const struct mfs_redactor *r, struct mfs_buf *out, const char *text)
{
	struct mfs_buf named = MFS_BUF_INIT;
	redact_names(&named, text);
	mfs_buf_add(&named, "", 0);
	const char *p = named.data;
	while (*p) {
		size_t hit = 0;
		/* The longest match, so a value inside another leaves no tail. */
		for (size_t i = 0; r && i < r->values.n; i++) {
			size_t m = strlen(r->values.v[i]);
			if (m > hit && !strncmp(p, r->values.v[i], m))
				hit = m;
		}
		if (hit) {
			mfs_buf_adds(out, MFS_REDACTED);
			p += hit;
		} else {
			mfs_buf_addch(out, *p++);
		}
	}
	mfs_buf_add(out, "", 0);
	memset(named.data, 0, named.len);
	mfs_buf_release(&named);
}

void mfs_redact_text(struct mfs_buf *out, const char *text)
{
	mfs_redact(NULL, out, text);
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
