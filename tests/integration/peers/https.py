"""An HTTPS server on a loopback address, in a thread, for the tests that
need one (test_mta_sts.py's policy server, test_tls_rpt.py's report
server): http.server with the given handler class behind TLS."""

import http.server
import ssl
import threading

import harness


class HTTPSServer:
    """handler (a BaseHTTPRequestHandler class) at https://address:port,
    with the certificate cert and its key; stop() ends it."""

    def __init__(self, address, cert, key, handler):
        self.port = harness.pick_port((address,))
        self.httpd = http.server.ThreadingHTTPServer((address, self.port), handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(10)
            self.httpd = None
