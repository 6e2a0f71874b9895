/*
 * sha256.h - SHA-256 (FIPS 180-4) for S3 payload hashes and the launcher
 * id in every sandbox's labels (src/util/launcher_id.c).
 *
 * Why ours and not libcrypto's, which libcurl loads anyway: libcurl does
 * not expose its hash, and every run, the local ones too, hashes the
 * launcher id before creating its sandbox.  Taking SHA-256 from libcrypto
 * would map libcrypto (about 4.5 MiB, its own start-up work) into every
 * local run, the cost the lazy loading of libcurl exists to avoid
 * (docs/architecture.md, "Start-up cost"); linking it would also pin
 * OpenSSL where libcurl's TLS library is a build choice.  100 lines, tested
 * against the FIPS vectors (tests/unit/test_sha256.c).  Not constant-time:
 * it hashes payloads and ids, never secrets (libcurl does the HMAC signing).
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
