"""ClickHouse's HTTP interface over chdb, the ClickHouse engine as a library (a current release),
for the ClickHouse connector's tests: the test server from Debian is 18.16, which has no Arrow
output, so without this the ArrowStream path would only meet recorded bytes.

Only the interface is emulated — POST a statement in the body, `default_format`, `database`
and settings as URL parameters, errors as HTTP 500 with ClickHouse's message — every statement
runs in the real engine, one at a time, in one session whose data lives in a temporary folder.

Usage: python chdb_http.py --port PORT
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qsl, urlsplit

from chdb import session

NOT_SETTINGS = {"query", "database", "default_format", "user", "password", "query_id", "session_id"}
# Settings are applied to the one session with SET, so they outlive their request; `readonly`
# could never be unset again (a read-only session refuses to change it), so it is not applied:
# the current engine does not check that a source query or check query only reads (18.16 does).
NOT_APPLIED = {"readonly"}


def quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Handler(BaseHTTPRequestHandler):
    sess: session.Session

    def log_message(self, *args: object) -> None:
        pass

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/ping":
            self.answer(200, b"Ok.\n")
        else:
            self.run()

    def do_POST(self) -> None:
        self.run()

    def run(self) -> None:
        params = dict(parse_qsl(urlsplit(self.path).query))
        length = int(self.headers.get("Content-Length") or 0)
        sql = (params.get("query", "") + " " + self.rfile.read(length).decode()).strip()
        try:
            for name, value in params.items():
                if name not in NOT_SETTINGS and name not in NOT_APPLIED:
                    self.sess.query(f"SET {name} = {quote(value)}")
            self.sess.query(f"USE {params.get('database') or 'default'}")
            result = self.sess.query(sql, params.get("default_format", "TabSeparated"))
            self.answer(200, result.bytes())
        except Exception as e:  # the engine's own error, as ClickHouse sends it
            self.answer(500, f"{e}\n".encode())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # Stopped by SIGTERM: leave through the context manager, which removes the data.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with tempfile.TemporaryDirectory(prefix="chdb-http-") as data:
        Handler.sess = session.Session(data)
        HTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
