/*
 * sha256.h - SHA-256 (FIPS 180-4) for S3 payload hashes.
 *
 * libcurl does not expose its hash and the project links no crypto library,
 * so this small implementation is ours.  Not constant-time: it hashes
 * payloads, never secrets (libcurl does the HMAC signing).
 */
#ifndef MFS_SHA256_H
#define MFS_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct mfs_sha256 {
	uint32_t h[8];
	uint64_t total;          /* bytes hashed so far */
	unsigned char block[64];
	size_t fill;
};

void mfs_sha256_init(struct mfs_sha256 *c);
void mfs_sha256_update(struct mfs_sha256 *c, const void *data, size_t len);
void mfs_sha256_final(struct mfs_sha256 *c, unsigned char out[32]);
/* One-shot, written as 64 lowercase hex digits plus NUL. */
void mfs_sha256_hex(const void *data, size_t len, char out[65]);
void mfs_hex(const unsigned char *in, size_t len, char *out);

#endif
