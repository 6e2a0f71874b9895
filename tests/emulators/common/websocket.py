"""The server end of a WebSocket on a connection that http.server has already
parsed the request of: the 101 handshake written by hand, frames through
wsproto (sans-IO, and a dependency of the `daytona` SDK the venv pins), so
what goes on the wire is validated RFC 6455 rather than home-made framing.

One thread writes (the handler, through the methods below); a reader thread
answers the client's pings at once (the SDKs' keepalive closes a connection
whose pong is late) and notices when the client closes or goes away.
"""
import base64
import binascii
import socket
import threading

from wsproto import Connection, ConnectionType
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong
from wsproto.utilities import LocalProtocolError, generate_accept_token


def _handshake_error(headers, method):
    """Why the request is no WebSocket opening handshake, or None."""
    def tokens(name):
        return {t.strip().lower() for t in (headers.get(name) or "").split(",")}
    if method != "GET":
        return "request method is not GET"
    if "upgrade" not in tokens("Connection"):
        return "'upgrade' token not found in 'Connection' header"
    if "websocket" not in tokens("Upgrade"):
        return "'websocket' token not found in 'Upgrade' header"
    if (headers.get("Sec-WebSocket-Version") or "").strip() != "13":
        return "unsupported version: 13 not found in 'Sec-Websocket-Version' header"
    try:
        key = base64.b64decode(headers.get("Sec-WebSocket-Key") or "", validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 16:
        return "'Sec-WebSocket-Key' header must be Base64 encoded value of 16-byte"
    return None


class WebSocket:
    def __init__(self, handler):
        self.sock = handler.connection
        self.rfile = handler.rfile
        self.conn = Connection(ConnectionType.SERVER)
        self.lock = threading.Lock()       # wsproto state and socket writes
        self.peer_gone = threading.Event()  # client closed, or the line dropped
        self.pongs = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    @classmethod
    def accept(cls, handler, subprotocol=None):
        """Answers 101 (naming `subprotocol` if given, which must be one the
        client offered) and returns the open socket; a request that is no
        valid handshake gets the 400 it deserves and None."""
        why = _handshake_error(handler.headers, handler.command)
        if why is not None:
            body = ("Bad Request: websocket: %s\n" % why).encode()
            handler.send_response(400)
            handler.send_header("Content-Type", "text/plain; charset=utf-8")
            handler.send_header("Sec-WebSocket-Version", "13")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return None
        token = generate_accept_token(handler.headers["Sec-WebSocket-Key"].strip().encode())
        handler.close_connection = True   # no HTTP after this on the connection
        handler.send_response(101, "Switching Protocols")
        handler.send_header("Upgrade", "websocket")
        handler.send_header("Connection", "Upgrade")
        handler.send_header("Sec-WebSocket-Accept", token.decode())
        if subprotocol:
            handler.send_header("Sec-WebSocket-Protocol", subprotocol)
        handler.end_headers()
        handler.wfile.flush()
        return cls(handler)

    @property
    def closed(self):
        return self.peer_gone.is_set()

    def _write(self, event):
        with self.lock:
            try:
                self.sock.sendall(self.conn.send(event))
            except LocalProtocolError:   # not open any more
                return False
            except OSError:
                self.peer_gone.set()
                return False
        return True

    def _read(self):
        while True:
            try:
                data = self.rfile.read1(65536)
            except (OSError, ValueError):
                data = b""
            with self.lock:
                if self.conn.state == ConnectionState.CLOSED:
                    break
                self.conn.receive_data(data or None)
                for ev in self.conn.events():
                    if isinstance(ev, Ping) and self.conn.state == ConnectionState.OPEN:
                        try:
                            self.sock.sendall(self.conn.send(ev.response()))
                        except OSError:
                            data = b""
                    elif isinstance(ev, CloseConnection):
                        if self.conn.state == ConnectionState.REMOTE_CLOSING:
                            try:
                                self.sock.sendall(self.conn.send(ev.response()))
                            except OSError:
                                pass
                        data = b""
                    elif isinstance(ev, Pong):
                        self.pongs += 1
            if not data:
                break
        self.peer_gone.set()

    def send(self, data):
        """One binary message; False once the client is gone."""
        return not self.closed and self._write(BytesMessage(data=data))

    def ping(self):
        return self._write(Ping(payload=b"keepalive"))

    def close(self, code=1000, wait=1.0):
        """Close frame with `code`, the client's answer awaited a moment
        (closing at once could reset a reply still in flight), then EOF."""
        self._write(CloseConnection(code=code))
        self.peer_gone.wait(wait)
        self.cut()

    def cut(self):
        """The line drops with no close frame (1006 on the client's side)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.reader.join(2)
