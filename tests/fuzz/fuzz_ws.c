/* fuzz_ws.c - the WebSocket client's two parsers of the server's bytes
 * (src/net/ws.c): the handshake answer's head, then the frames after it.
 *
 * Input: a byte whose low 7 bits give the arrival step (how many bytes
 * each read brings, 1 to 128) and whose top bit skips the head (frames
 * from the first byte on), then what the server sends.  The bytes arrive a step at a
 * time as from a socket; the head parser and then the frame parser are
 * asked after each arrival, as mfs_ws_follow asks them.  Whatever they say
 * must lie within the bytes that arrived (ASan checks the reads; the
 * lengths are checked here). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "mfs/net/ws.h"

static void check(int ok)
{
	if (!ok)
		abort();
}

/* The frames in buf[pos..): false once the parser refuses one. */
static bool frames(unsigned char *buf, size_t *pos, size_t arrived)
{
	for (;;) {
		struct mfs_ws_frame f;
		enum mfs_ws_parse got = mfs_ws_frame_parse(buf + *pos, arrived - *pos, &f);
		if (got == MFS_WS_BAD) {
			check(f.claimed > (16u << 20));
			return false;
		}
		if (got == MFS_WS_MORE)
			return true;
		check(f.size >= 2 && f.size <= arrived - *pos && f.len <= f.size - 2);
		check(f.payload + f.len == buf + *pos + f.size && f.opcode < 16);
		*pos += f.size;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = (size_t)(data[0] & 0x7f) + 1, len = size - 1, arrived = 0, pos = 0;
	/* NUL-terminated like the client's receive buffer. */
	unsigned char *buf = (unsigned char *)fuzz_cstr(data + 1, len);
	bool head = data[0] & 0x80;
	while (arrived < len) {
		arrived = arrived + step < len ? arrived + step : len;
		char keep = (char)buf[arrived];
		buf[arrived] = '\0';
		if (!head) {
			long status = 0;
			size_t head_len = 0, body = 0;
			enum mfs_ws_parse got = mfs_ws_head_parse((char *)buf, arrived, &status,
								  &head_len, &body);
			buf[arrived] = (unsigned char)keep;
			if (got == MFS_WS_BAD)
				break;
			if (got == MFS_WS_MORE)
				continue;
			check(head_len >= 4 && head_len <= arrived && status >= 100 && status <= 999);
			head = true;
			pos = head_len;
		}
		buf[arrived] = (unsigned char)keep;
		if (!frames(buf, &pos, arrived))
			break;
	}
	free(buf);
	return 0;
}
