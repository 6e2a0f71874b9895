/* text.c - random hex, ISO-8601 parsing, the UTF-8 and one-line checks
 * (include/mfs/util/text.h). */
#include "mfs/util/text.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

void mfs_random_bytes(unsigned char *p, size_t n)
{
	if (getrandom(p, n, 0) == (ssize_t)n)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)((ts.tv_nsec >> (i % 4 * 8)) ^ (getpid() >> (i % 2 * 8)) ^ i);
}

void mfs_random_hex(char *out, size_t nbytes)
{
	unsigned char r[32];
	if (nbytes > sizeof(r))
		nbytes = sizeof(r);
	mfs_random_bytes(r, nbytes);
	for (size_t i = 0; i < nbytes; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
	out[2 * nbytes] = '\0';
}

time_t mfs_parse_iso8601(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return timegm(&tm);
}

/* jansson's rule, checked before a request is built: it refuses any other
 * string, and a refused string silently vanishes from a request body. */
bool mfs_utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned c = *p++, n, cp;
		if (c < 0x80)
			continue;
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, cp = c & 0x07;
		else
			return false;
		for (unsigned i = 0; i < n; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (*p & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
	}
	return true;
}

bool mfs_one_line(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return false;
	return true;
}
