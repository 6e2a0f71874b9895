/* SHA-256 against FIPS 180-4 vectors: S3 rejects any payload whose
 * x-amz-content-sha256 is off by a bit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "mfs/util/sha256.h"

static void known_vectors(void **state)
{
	(void)state;
	char hex[65];
	mfs_sha256_hex("", 0, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	mfs_sha256_hex("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	mfs_sha256_hex(two, strlen(two), hex);
	assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void chunked_updates_equal_one_shot(void **state)
{
	(void)state;
	size_t n = 1000000;
	char *a = malloc(n);
	memset(a, 'a', n);
	struct mfs_sha256 c;
	unsigned char d[32];
	char hex[65];
	mfs_sha256_init(&c);
	/* Odd chunk sizes cross the 64-byte block boundary at every offset. */
	for (size_t off = 0, step = 1; off < n; off += step, step = step % 131 + 7)
		mfs_sha256_update(&c, a + off, off + step > n ? n - off : step);
	mfs_sha256_final(&c, d);
	mfs_hex(d, 32, hex);
	assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(known_vectors),
		cmocka_unit_test(chunked_updates_equal_one_shot),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
