/*
 * text.h - small text helpers shared below the backends: random bytes and hex (nonces,
 * multipart boundaries, session ids) and ISO-8601 timestamps from APIs.
 */
#ifndef MFS_TEXT_H
#define MFS_TEXT_H

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

#endif
