"""Fixtures for the examples: a slow local upstream and the app under test."""

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi import FastAPI

UPSTREAM_DELAY_SECONDS = 0.2

# One example per framework, each run on its own (`pytest examples/litestar`,
# `pytest examples/django/`, `pytest examples/schemathesis/`, and in examples/sweep
# `pytest --noblock-sweep`): the demo's `pytest examples/` keeps to the FastAPI,
# TestClient and trio examples.
collect_ignore = ["django", "litestar", "schemathesis", "sweep"]


class SlowUpstreamHandler(BaseHTTPRequestHandler):
    """Answers ``GET /slow`` after a short delay, like a sluggish external API."""

    delay = UPSTREAM_DELAY_SECONDS

    def do_GET(self) -> None:
        if self.path != "/slow":
            self.send_error(404)
            return
        time.sleep(self.delay)
        body = json.dumps({"status": "ok", "delay": self.delay}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # Keep test output quiet.
        pass


@pytest.fixture(scope="session")
def slow_upstream() -> Iterator[str]:
    """Run the slow upstream on an ephemeral 127.0.0.1 port for the whole session."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowUpstreamHandler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},  # so shutdown() returns quickly
        name="slow-upstream",
        daemon=True,
    )
    thread.start()
    host, port = server.server_address[:2]
    url = f"http://{host}:{port}"
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("EXAMPLES_UPSTREAM_URL", url)
            yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class FastUpstreamHandler(SlowUpstreamHandler):
    """The stand-in a test suite usually has: the same API, answering at once."""

    delay = 0.0


@pytest.fixture
def fast_upstream(slow_upstream: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the app at a local stub that answers in about a millisecond, for one test."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FastUpstreamHandler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="fast-upstream",
        daemon=True,
    )
    thread.start()
    host, port = server.server_address[:2]
    url = f"http://{host}:{port}"
    monkeypatch.setenv("EXAMPLES_UPSTREAM_URL", url)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def noblock_app(slow_upstream: str) -> FastAPI:
    """Override the plugin's ``noblock_app`` fixture with the example app."""
    from examples.app import app

    return app
