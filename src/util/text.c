/* text.c - random hex and ISO-8601 parsing (include/mfs/util/text.h). */
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
