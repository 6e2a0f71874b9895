"""Connect protocol envelopes (https://connectrpc.com/docs/protocol):
one flag byte, a big-endian uint32 length, then the JSON message.  Kept
apart so the framing rules live in one place and can be unit-tested."""
import json
import struct

FLAG_COMPRESSED = 0x01
FLAG_END_STREAM = 0x02


def envelope(message, flags=0):
    payload = json.dumps(message, separators=(",", ":")).encode()
    return struct.pack(">BI", flags, len(payload)) + payload


def parse_envelopes(data):
    """Splits a complete body into [(flags, message)]; raises ValueError on a
    truncated or malformed frame (what a strict server does)."""
    frames = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 5:
            raise ValueError("truncated envelope prefix")
        flags, length = struct.unpack(">BI", data[pos:pos + 5])
        pos += 5
        if len(data) - pos < length:
            raise ValueError("envelope shorter than its length prefix")
        if flags & FLAG_COMPRESSED:
            raise ValueError("compressed envelope without Connect-Content-Encoding")
        frames.append((flags, json.loads(data[pos:pos + length] or b"{}")))
        pos += length
    return frames


class FrameReader:
    """Incremental parser for a streamed response (client side, tests)."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data
        out = []
        while len(self.buf) >= 5:
            flags, length = struct.unpack(">BI", self.buf[:5])
            if len(self.buf) < 5 + length:
                break
            out.append((flags, json.loads(self.buf[5:5 + length] or b"{}")))
            self.buf = self.buf[5 + length:]
        return out
