#!/usr/bin/python3
"""A tiny misbehaving registry for the cases a real registry cannot produce (stdlib only).

    fake_registry.py DIR

Listens on 127.0.0.1 on a free port, writes the port to DIR/port once ready and
appends "METHOD PATH AUTHORIZATION RANGE ACCEPT" for every request (spaces in a
header squeezed out / "_" in AUTHORIZATION, "-" when absent) to DIR/requests.log.

  /v2/flaky/manifests/<ref>     503 on the first two requests, then an OCI manifest
  /v2/flakyblob/blobs/<digest>  503 on the first two requests, then the blob "hello\\n"
  /v2/cut/blobs/<digest>        first request sends half of the blob and drops the
                                connection; later requests honour Range (206)
  /v2/redir/blobs/<digest>      307 to /storage/hello, which serves "hello\\n"
  /v2/down/...                  always 503
  /v2/schema1/manifests/<ref>   a Docker schema1 (prettyjws) manifest
  /v2/bearer/...                Bearer auth: 401 with a challenge pointing at /token
                                until "Authorization: Bearer tok-<n>" is sent
  /token                        issues {"token": "tok-<n>", "expires_in": 300}; with
                                HTTP Basic it requires user:pass; a POST form must carry
                                grant_type=refresh_token and refresh_token=idtok
  anything else                 404 with a registry error body
"""
import hashlib
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BLOB = b"hello\n"
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
BIG = bytes(range(256)) * 64  # 16 KiB for the resume test
BIG_DIGEST = "sha256:" + hashlib.sha256(BIG).hexdigest()
MANIFEST = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": BLOB_DIGEST, "size": len(BLOB)},
    "layers": [],
}).encode()
SCHEMA1 = json.dumps({
    "schemaVersion": 1, "name": "schema1", "tag": "latest", "architecture": "amd64",
    "fsLayers": [], "history": [], "signatures": [],
}).encode()


class State:
    def __init__(self, logpath):
        self.lock = threading.Lock()
        self.counts = {}
        self.tokens = 0
        self.log = open(logpath, "a", buffering=1)

    def hit(self, key):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            return self.counts[key]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, fmt, *args):
        pass

    def send(self, code, body=b"", ctype="application/json", headers=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, code, err, msg):
        self.send(code, json.dumps({"errors": [{"code": err, "message": msg}]}).encode())

    def handle_any(self):
        st = self.state
        auth = self.headers.get("Authorization", "-")
        rng = self.headers.get("Range", "-").replace(" ", "")
        accept = self.headers.get("Accept", "-").replace(" ", "")
        st.log.write(f"{self.command} {self.path} {auth.replace(' ', '_')} {rng} {accept}\n")
        path = urllib.parse.urlsplit(self.path).path
        host = self.headers.get("Host")
        if path == "/v2/" or path == "/v2":
            return self.send(200, b"{}")
        if path == "/token":
            return self.token(auth)
        if path.startswith("/v2/bearer/"):
            if not auth.startswith("Bearer tok-"):
                realm = f"http://{host}/token"
                chal = f'Bearer realm="{realm}",service="fake",scope="repository:bearer:pull"'
                body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
                return self.send(401, body, headers={"WWW-Authenticate": chal})
            if path.startswith("/v2/bearer/manifests/"):
                return self.send(200, MANIFEST, "application/vnd.oci.image.manifest.v1+json")
        if path.startswith("/v2/flaky/manifests/"):
            if st.hit("flaky") <= 2:
                return self.error(503, "UNAVAILABLE", "try again")
            return self.send(200, MANIFEST, "application/vnd.oci.image.manifest.v1+json")
        if path.startswith("/v2/flakyblob/blobs/"):
            if st.hit("flakyblob") <= 2:
                return self.error(503, "UNAVAILABLE", "try again")
            return self.send(200, BLOB, "application/octet-stream")
        if path.startswith("/v2/cut/blobs/"):
            n = st.hit("cut")
            if n == 1:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(BIG)))
                self.end_headers()
                self.wfile.write(BIG[: len(BIG) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            rng = self.headers.get("Range", "")
            if rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
                return self.send(206, BIG[start:], "application/octet-stream", {
                    "Content-Range": f"bytes {start}-{len(BIG) - 1}/{len(BIG)}"})
            return self.send(200, BIG, "application/octet-stream")
        if path.startswith("/v2/redir/blobs/"):
            return self.send(307, b"", headers={"Location": f"http://{host}/storage/hello"})
        if path == "/storage/hello":
            return self.send(200, BLOB, "application/octet-stream")
        if path.startswith("/v2/down/"):
            return self.error(503, "UNAVAILABLE", "down for maintenance")
        if path.startswith("/v2/schema1/manifests/"):
            return self.send(200, SCHEMA1,
                             "application/vnd.docker.distribution.manifest.v1+prettyjws")
        return self.error(404, "NAME_UNKNOWN", "repository name not known to registry")

    def token(self, auth):
        st = self.state
        if self.command == "POST":
            n = int(self.headers.get("Content-Length", "0"))
            form = urllib.parse.parse_qs(self.rfile.read(n).decode())
            if form.get("grant_type") != ["refresh_token"] or form.get("refresh_token") != ["idtok"]:
                return self.error(401, "UNAUTHORIZED", "bad refresh token")
            key = "access_token"
        else:
            if auth.startswith("Basic ") and auth != "Basic dXNlcjpwYXNz":  # user:pass
                return self.error(401, "UNAUTHORIZED", "bad credentials")
            key = "token"
        with st.lock:
            st.tokens += 1
            tok = f"tok-{st.tokens}"
        self.send(200, json.dumps({key: tok, "expires_in": 300}).encode())

    def do_GET(self):
        self.handle_any()

    def do_HEAD(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()


def main():
    d = sys.argv[1]
    Handler.state = State(os.path.join(d, "requests.log"))
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    with open(os.path.join(d, "port.tmp"), "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(os.path.join(d, "port.tmp"), os.path.join(d, "port"))
    srv.serve_forever()


if __name__ == "__main__":
    main()
