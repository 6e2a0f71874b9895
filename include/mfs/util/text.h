/*
 * text.h - small text helpers shared below the backends: random bytes and hex (nonces,
 * multipart boundaries, session ids), ISO-8601 timestamps from APIs, and the
 * UTF-8 check for text put into JSON.
 */
#ifndef MFS_TEXT_H
#define MFS_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Fills p with n bytes from getrandom(); if that fails, from the clock and
 * pid (ids and nonces, not keys). */
void mfs_random_bytes(unsigned char *p, size_t n);
/* Writes 2*nbytes lowercase hex digits and a NUL to out (nbytes <= 32).
 * From getrandom(); if that fails, from the clock and pid (ids, not keys). */
void mfs_random_hex(char *out, size_t nbytes);
/* "2024-05-01T12:34:56[.fff][Z]" as UTC seconds; 0 when NULL or not one. */
time_t mfs_parse_iso8601(const char *s);
/* Well-formed UTF-8 (no overlong forms, no surrogates, nothing above
 * U+10FFFF): what a JSON string in a request body may carry. */
bool mfs_utf8_valid(const char *s);

/* No CR, LF or other control byte but tab: what an HTTP header value may
 * hold (libcurl sends it as given, so a line break would add lines). */
bool mfs_one_line(const char *s);

#endif
