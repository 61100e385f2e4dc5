"""A slow HTTP upstream on 127.0.0.1: `GET /slow?ms=N` answers after N milliseconds."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class SlowHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/slow":
            self.send_error(404)
            return
        delay_ms = int(parse_qs(url.query).get("ms", ["0"])[0])
        time.sleep(delay_ms / 1000)
        body = json.dumps({"status": "ok", "delay_ms": delay_ms}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def running() -> Iterator[str]:
    """Serve in a daemon thread for the duration of the block; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    port = server.server_address[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main() -> None:
    """Serve until killed, in a process of its own: prints the base URL, then blocks."""
    with running() as url:
        print(url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
