"""A raw HTTP/2 client (python3-h2) for sending what well-behaved gRPC
clients never send: truncated messages, garbage, wrong content types, resets."""
import socket
import struct
import time

import h2.config
import h2.connection
import h2.events


def grpc_frame(payload, compressed=0, length=None):
    n = len(payload) if length is None else length
    return struct.pack(">BI", compressed, n) + payload


class Stream:
    def __init__(self):
        self.headers = {}
        self.trailers = {}
        self.data = b""
        self.ended = False
        self.reset = None

    @property
    def http_status(self):
        return int(self.headers.get(":status", "0"))

    @property
    def grpc_status(self):
        v = self.trailers.get("grpc-status", self.headers.get("grpc-status"))
        return None if v is None else int(v)

    @property
    def grpc_message(self):
        return self.trailers.get("grpc-message", self.headers.get("grpc-message", ""))

    def messages(self):
        out, buf = [], self.data
        while len(buf) >= 5:
            _, n = struct.unpack(">BI", buf[:5])
            out.append(buf[5:5 + n])
            buf = buf[5 + n:]
        return out


class H2Client:
    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.path = path
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.streams = {}
        self.closed = False
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def start(self, method, content_type="application/grpc", extra=(), end_stream=False):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", "POST"), (":scheme", "http"), (":path", method),
                (":authority", self.path), ("content-type", content_type), ("te", "trailers")]
        hdrs += list(extra)
        self.conn.send_headers(sid, hdrs, end_stream=end_stream)
        self.streams[sid] = Stream()
        self.flush()
        return sid

    def send(self, sid, data, end_stream=True):
        # respect the peer's flow-control window for big payloads
        while data:
            window = self.conn.local_flow_control_window(sid)
            chunk = min(len(data), window, self.conn.max_outbound_frame_size)
            if chunk == 0:
                self.pump(0.5)
                continue
            self.conn.send_data(sid, data[:chunk])
            data = data[chunk:]
            self.flush()
        if end_stream:
            self.conn.end_stream(sid)
        self.flush()

    def call(self, method, payload=b"", **kw):
        sid = self.start(method, **kw)
        self.send(sid, grpc_frame(payload))
        return self.wait(sid)

    def reset(self, sid, code=8):
        self.conn.reset_stream(sid, error_code=code)
        self.flush()

    def pump(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        if not data:
            self.closed = True
            return
        for ev in self.conn.receive_data(data):
            s = self.streams.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.ResponseReceived):
                s.headers.update(dict(ev.headers))
            elif isinstance(ev, h2.events.TrailersReceived):
                s.trailers.update(dict(ev.headers))
            elif isinstance(ev, h2.events.DataReceived):
                s.data += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                s.ended = True
            elif isinstance(ev, h2.events.StreamReset):
                if s is not None:
                    s.reset = ev.error_code
                    s.ended = True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.closed = True
        self.flush()

    def wait(self, *sids, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.closed:
            if all(self.streams[s].ended for s in sids):
                break
            self.pump(min(0.5, max(0.01, deadline - time.monotonic())))
        if len(sids) == 1:
            return self.streams[sids[0]]
        return [self.streams[s] for s in sids]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
