"""A stand-in application server for the nginx live check.

    python upstream.py ADDR [ADDR…]      ADDR = IP:PORT, [IPv6]:PORT or unix:/path

Answers every request on every address with 200 and a short body, except paths containing
`__conformance_404` (404) and `__conformance_500` (500). It sets no security headers: whatever
the client sees came from nginx. Prints "ready" once every address listens; runs until killed.
"""

import http.server
import os
import socket
import socketserver
import sys
import threading

BODY = b"kiln conformance upstream\n"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, with_body):
        if "__conformance_500" in self.path:
            code = 500
        elif "__conformance_404" in self.path:
            code = 404
        else:
            code = 200
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        # Which stand-in answered (the HAProxy check counts them); not a security header.
        self.send_header("X-Kiln-Upstream", "%s:%s" % self.server.server_address[:2] if isinstance(self.server.server_address, tuple) else "unix")
        # What the request carried, for the checks that look at health requests.
        log = os.environ.get("KILN_UPSTREAM_LOG")
        if log:
            with open(log, "a") as f:
                f.write("%s %s %s\n" % (self.path, self.headers.get("Host"), self.headers.get("X-Forwarded-Proto")))
        self.end_headers()
        if with_body:
            self.wfile.write(BODY)

    def do_GET(self):  # noqa: N802 (http.server API)
        self._answer(True)

    def do_HEAD(self):  # noqa: N802
        self._answer(False)

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._answer(True)

    def log_message(self, fmt, *args):
        pass


class TCP4(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class TCP6(TCP4):
    address_family = socket.AF_INET6


class Unix(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        conn, _ = super().get_request()
        return conn, ("unix", 0)


def make(addr):
    if addr.startswith("unix:"):
        path = addr[5:]
        if os.path.exists(path):
            os.unlink(path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        srv = Unix(path, Handler)
        os.chmod(path, 0o777)  # nginx workers run as another user
        return srv
    host, _, port = addr.rpartition(":")
    if host.startswith("["):
        return TCP6((host[1:-1], int(port)), Handler)
    return TCP4((host, int(port)), Handler)


def main():
    servers = [make(a) for a in sys.argv[1:]]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
