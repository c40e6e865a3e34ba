"""A small SPDY/3.1 client speaking Kubernetes' streaming protocols, the way
the kubelet and crictl do (remotecommand for Exec/Attach, portforward), for
the streaming tests.  Standard library only."""
import json
import socket
import struct
import zlib

_NAMES = ("options head post put delete trace accept accept-charset accept-encoding "
          "accept-language accept-ranges age allow authorization cache-control connection "
          "content-base content-encoding content-language content-length content-location "
          "content-md5 content-range content-type date etag expect expires from host if-match "
          "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
          "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
          "server te trailer transfer-encoding upgrade user-agent vary via warning "
          "www-authenticate method get status").split() + ["200 OK"] + \
    "version HTTP/1.1 url public set-cookie keep-alive origin".split()
_TAIL = ("100101201202205206300302303304305306307402405406407408409410411412413414415416417"
         "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
         "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
         "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
         "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
         "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,"
         "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
DICTIONARY = b"".join(struct.pack(">I", len(n)) + n.encode() for n in _NAMES) + _TAIL.encode()
assert len(DICTIONARY) == 1423

REMOTECOMMAND = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")


class UpgradeError(Exception):
    def __init__(self, status, body):
        super().__init__("HTTP %d: %s" % (status, body))
        self.status, self.body = status, body


class Session:
    """One upgraded connection. data[id] collects DATA per stream, fin the
    streams the server closed; replies the SYN_REPLYs seen."""

    def __init__(self, url, protocols, timeout=20):
        hostport, path = url.split("/", 3)[2], "/" + url.split("/", 3)[3]
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        req = ("POST %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
               % (path, hostport))
        for p in protocols:
            req += "X-Stream-Protocol-Version: %s\r\n" % p
        self.sock.sendall((req + "\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            b = self.sock.recv(1)
            if not b:
                raise UpgradeError(0, "connection closed")
            head += b
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
        if status != 101:
            body = b""
            n = int(hdrs.get("content-length", "0"))
            while len(body) < n:
                b = self.sock.recv(n - len(body))
                if not b:
                    break
                body += b
            self.sock.close()
            raise UpgradeError(status, body.decode(errors="replace"))
        self.protocol = hdrs.get("x-stream-protocol-version")
        self.comp = zlib.compressobj(zdict=DICTIONARY)
        self.decomp = zlib.decompressobj(zdict=DICTIONARY)
        self.buf = b""
        self.data, self.fin, self.replies, self.resets = {}, set(), set(), set()
        self.goaway = False
        self.next_id = 1

    def open(self, headers, fin=False):
        sid = self.next_id
        self.next_id += 2
        nv = struct.pack(">I", len(headers))
        for k, v in headers:
            nv += struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode()
        z = self.comp.compress(nv) + self.comp.flush(zlib.Z_SYNC_FLUSH)
        body = struct.pack(">IIH", sid, 0, 0) + z
        self.sock.sendall(struct.pack(">HHI", 0x8003, 1, (1 if fin else 0) << 24 | len(body)) + body)
        return sid

    def send(self, sid, data, fin=False):
        for i in range(0, max(len(data), 1), 16384):
            chunk = data[i:i + 16384]
            last = i + 16384 >= len(data)
            self.sock.sendall(struct.pack(">II", sid, (1 if fin and last else 0) << 24 |
                                          len(chunk)) + chunk)

    def _frame(self):
        while len(self.buf) < 8 or len(self.buf) < 8 + (struct.unpack(">I", self.buf[4:8])[0] &
                                                          0xffffff):
            b = self.sock.recv(65536)
            if not b:
                return False
            self.buf += b
        w1, w2 = struct.unpack(">II", self.buf[:8])
        n = w2 & 0xffffff
        body, self.buf = self.buf[8:8 + n], self.buf[8 + n:]
        flags = w2 >> 24
        if w1 & 0x80000000:
            ftype = w1 & 0xffff
            if ftype == 2:  # SYN_REPLY
                self.decomp.decompress(body[4:])
                self.replies.add(struct.unpack(">I", body[:4])[0] & 0x7fffffff)
            elif ftype == 3:
                self.resets.add(struct.unpack(">I", body[:4])[0])
            elif ftype == 6:  # PING: answer it
                self.sock.sendall(struct.pack(">HHI", 0x8003, 6, 4) + body)
            elif ftype == 7:
                self.goaway = True
        else:
            self.data[w1] = self.data.get(w1, b"") + body
            if flags & 1:
                self.fin.add(w1)
        return True

    def until(self, cond):
        """Read frames until cond() holds or the server ends the session."""
        while not cond():
            if not self._frame() or (self.goaway and not cond()):
                return cond()
        return True

    def close(self):
        self.sock.close()


class Result:
    def __init__(self, s, ids):
        self.protocol = s.protocol
        self.stdout = s.data.get(ids.get("stdout"), b"")
        self.stderr = s.data.get(ids.get("stderr"), b"")
        self.error = s.data.get(ids["error"], b"")
        self.status = json.loads(self.error) if self.error and s.protocol == "v4.channel.k8s.io" else None
        self.exit_code = None
        if self.status is not None:
            if self.status.get("status") == "Success":
                self.exit_code = 0
            for cause in self.status.get("details", {}).get("causes", []):
                if cause.get("reason") == "ExitCode":
                    self.exit_code = int(cause["message"])


def remote_command(url, stdin=None, tty=False, stdout=True, stderr=True, resize=None,
                   protocols=REMOTECOMMAND, close_stdin=True, timeout=20):
    """Exec/Attach: open the streams, send stdin (then FIN), wait for the end."""
    s = Session(url, protocols, timeout)
    ids = {"error": s.open([("streamtype", "error")])}
    if stdin is not None:
        ids["stdin"] = s.open([("streamtype", "stdin")])
    if stdout:
        ids["stdout"] = s.open([("streamtype", "stdout")])
    if stderr and not tty:
        ids["stderr"] = s.open([("streamtype", "stderr")])
    if tty:
        ids["resize"] = s.open([("streamtype", "resize")])
        if resize:
            s.send(ids["resize"], json.dumps({"Width": resize[0], "Height": resize[1]}).encode())
    if stdin is not None:
        s.send(ids["stdin"], stdin, fin=close_stdin)
    try:
        s.until(lambda: ids["error"] in s.fin)
        assert set(v for k, v in ids.items()) <= s.replies, (ids, s.replies)
        return Result(s, ids)
    finally:
        s.close()


def port_forward(url, port, payloads, timeout=20):
    """Forward one connection per payload (request ids 0, 1, ...) over one
    session; returns [(data, error)] per payload."""
    s = Session(url, ("portforward.k8s.io",), timeout)
    pairs = []
    for i, p in enumerate(payloads):
        e = s.open([("streamtype", "error"), ("port", str(port)), ("requestid", str(i))])
        d = s.open([("streamtype", "data"), ("port", str(port)), ("requestid", str(i))])
        s.send(d, p, fin=True)
        pairs.append((d, e))
    try:
        s.until(lambda: all(d in s.fin and e in s.fin for d, e in pairs))
        return [(s.data.get(d, b""), s.data.get(e, b"")) for d, e in pairs]
    finally:
        s.close()
