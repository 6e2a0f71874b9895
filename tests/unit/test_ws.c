/*
 * Unit tests of the WebSocket client's parsers of the server's bytes
 * (src/net/ws.c); the client against a real server is tested through the
 * Daytona emulator's log follow in pytest.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mfs/net/ws.h"

/* A masked frame is unmasked in place; every shorter prefix asks for more. */
static void masked_frame_whole_and_in_parts(void **state)
{
	(void)state;
	unsigned char f[] = { 0x82, 0x83, 1, 2, 3, 4, 'a' ^ 1, 'b' ^ 2, 'c' ^ 3, 0xff };
	struct mfs_ws_frame fr;
	for (size_t have = 0; have < 9; have++)
		assert_int_equal(mfs_ws_frame_parse(f, have, &fr), MFS_WS_MORE);
	assert_int_equal(mfs_ws_frame_parse(f, sizeof(f), &fr), MFS_WS_OK);
	assert_int_equal(fr.opcode, 2);
	assert_int_equal(fr.len, 3);
	assert_int_equal(fr.size, 9);
	assert_memory_equal(fr.payload, "abc", 3);
}

static void extended_lengths(void **state)
{
	(void)state;
	unsigned char f[4 + 300] = { 0x81, 126, 300 >> 8, 300 & 0xff };
	struct mfs_ws_frame fr;
	assert_int_equal(mfs_ws_frame_parse(f, sizeof(f) - 1, &fr), MFS_WS_MORE);
	assert_int_equal(mfs_ws_frame_parse(f, sizeof(f), &fr), MFS_WS_OK);
	assert_int_equal(fr.len, 300);
	assert_int_equal(fr.size, sizeof(f));
}

/* A length over 16 MiB (or one that would wrap a size_t) is refused
 * before any payload is waited for. */
static void huge_frame_is_refused(void **state)
{
	(void)state;
	unsigned char big[10] = { 0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1 };
	unsigned char over[10] = { 0x82, 127, 0, 0, 0, 0, 0x01, 0, 0, 1 };
	struct mfs_ws_frame fr;
	assert_int_equal(mfs_ws_frame_parse(big, sizeof(big), &fr), MFS_WS_BAD);
	assert_true(fr.claimed == 0x8000000000000001ull);
	assert_int_equal(mfs_ws_frame_parse(over, sizeof(over), &fr), MFS_WS_BAD);
}

static void head_of_an_upgrade_and_a_refusal(void **state)
{
	(void)state;
	const char *up = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x82\x00";
	const char *no = "HTTP/1.1 401 Unauthorized\r\ncontent-length: 27\r\n\r\n{";
	long status = 0;
	size_t head = 0, body = 0;
	assert_int_equal(mfs_ws_head_parse(up, 20, &status, &head, &body), MFS_WS_MORE);
	assert_int_equal(mfs_ws_head_parse(up, strlen(up) + 1, &status, &head, &body), MFS_WS_OK);
	assert_int_equal(status, 101);
	assert_int_equal(head, strlen(up) - 1);
	assert_int_equal(body, 0);
	assert_int_equal(mfs_ws_head_parse(no, strlen(no), &status, &head, &body), MFS_WS_OK);
	assert_int_equal(status, 401);
	assert_int_equal(body, 27);
}

static void head_that_is_not_http_or_too_long(void **state)
{
	(void)state;
	static char big[20000];
	long status = 0;
	size_t head = 0, body = 0;
	const char *ssh = "SSH-2.0-OpenSSH_9.6\r\n\r\n";
	assert_int_equal(mfs_ws_head_parse(ssh, strlen(ssh), &status, &head, &body), MFS_WS_BAD);
	memset(big, 'x', sizeof(big) - 1);
	head = 0;
	assert_int_equal(mfs_ws_head_parse(big, sizeof(big) - 1, &status, &head, &body),
			 MFS_WS_BAD);
	assert_int_equal(head, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(masked_frame_whole_and_in_parts),
		cmocka_unit_test(extended_lengths),
		cmocka_unit_test(huge_frame_is_refused),
		cmocka_unit_test(head_of_an_upgrade_and_a_refusal),
		cmocka_unit_test(head_that_is_not_http_or_too_long),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
