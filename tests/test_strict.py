"""Strict mode: known blocking calls fail the test however fast they were.

Every call here is fast on purpose (a local TCP or HTTP server on 127.0.0.1, a temp file,
an in-memory SQLite database, `true`): strict mode must catch what a timing budget cannot.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import socket
import ssl
import sysconfig
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

# Kept in sys.modules between in-process runs (see test_kinds.py).
import fastapi  # noqa: F401
import pytest
import requests  # noqa: F401
import trustme
from conftest import APP_CONFTEST, Project, line_of

from pytest_noblock.strict import wrappers as strict_wrappers

SOURCE_INDENT = " " * 16


@contextlib.contextmanager
def serving(answer: Callable[[socket.socket], None]) -> Iterator[tuple[str, int]]:
    """A TCP server on 127.0.0.1 running `answer` on each connection, in a thread."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            with conn, contextlib.suppress(OSError):
                answer(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[:2]
    finally:
        stopping.set()
        thread.join(timeout=5)
        listener.close()


@pytest.fixture(scope="module")
def fast_tcp() -> Iterator[tuple[str, int]]:
    """A TCP server on 127.0.0.1 that answers each connection with b"pong" at once."""
    with serving(lambda conn: conn.sendall(b"pong")) as address:
        yield address


# A budget no fast call reaches even on a loaded machine: these tests look at strict
# findings only, and a call that also ran past the budget would be reported as a hold.
STRICT_TEST = """
import pytest

@pytest.mark.noblock(strict=True, budget_ms=10_000)
async def test_call(noblock_client):
    response = await noblock_client.get("/call")
    assert response.status_code == 200
"""


def endpoint(imports: str, body: str) -> str:
    """An app whose GET /call runs `body` (lines of an `async def`)."""
    return (
        f"{textwrap.dedent(imports).strip()}\n"
        "from fastapi import FastAPI\n\n"
        "app = FastAPI()\n\n\n"
        '@app.get("/call")\n'
        "async def call():\n"
        + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
        + "\n    return {}\n"
    )


def run_strict(project: Project, source: str, tests: str = STRICT_TEST) -> pytest.RunResult:
    project.app(source)
    project.tests(tests)
    return project.run()


def assert_found(result: pytest.RunResult, source: str, needle: str, called: str) -> None:
    """The finding for the one line holding `needle`: what was called, and that line."""
    lines = source.splitlines()
    numbers = [index + 1 for index, line in enumerate(lines) if needle in line]
    assert len(numbers) == 1, numbers
    line = numbers[0]
    out = result.stdout.lines
    starts = [i for i, text in enumerate(out) if text.startswith(f"{called}: called ")]
    assert starts, result.stdout.str()
    for start in starts:
        block = out[start : start + 6]
        if any(text.startswith(f"  call      app.py:{line} in call") for text in block):
            index = next(i for i, text in enumerate(block) if text.startswith("  call  "))
            assert block[index + 1] == SOURCE_INDENT + lines[line - 1].strip()
            assert block[index + 2].strip().startswith("^")
            return
    raise AssertionError(f"no {called} at app.py:{line}\n{result.stdout.str()}")


# (imports, body, [(needle on the calling line, what is reported as called)])
FAMILIES: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "time.sleep": ("import time", "time.sleep(0.001)", [("time.sleep", "time.sleep")]),
    "socket": (
        "import socket",
        """
        sock = socket.create_connection(ADDRESS, timeout=5)
        sock.sendall(b"ping")
        data = sock.recv(4)
        sock.close()
        infos = socket.getaddrinfo("127.0.0.1", 80)
        """,
        [
            ("create_connection", "socket.create_connection"),
            ("sendall", "socket.socket.sendall"),
            ("recv(4)", "socket.socket.recv"),
            ("getaddrinfo", "socket.getaddrinfo"),
        ],
    ),
    "socket accept": (
        "import socket",
        """
        server = socket.create_server(("127.0.0.1", 0))
        client = socket.socket()
        client.setblocking(False)
        client.connect_ex(server.getsockname())
        conn, _ = server.accept()
        conn.close(); client.close(); server.close()
        """,
        [("server.accept()", "socket.socket.accept")],
    ),
    "http.client": (
        "import http.client",
        """
        conn = http.client.HTTPConnection(HOST, PORT, timeout=5)
        conn.request("GET", "/")
        body = conn.getresponse().read()
        """,
        [
            ('conn.request("GET"', "http.client.HTTPConnection.request"),
            ("getresponse()", "http.client.HTTPConnection.getresponse"),
        ],
    ),
    "urllib": (
        "import urllib.request",
        "body = urllib.request.urlopen(URL, timeout=5).read()",
        [("urlopen", "urllib.request.urlopen")],
    ),
    "requests": (
        "import requests",
        "data = requests.get(URL, timeout=5).json()",
        [("requests.get", "requests.api.get")],
    ),
    "files": (
        "import os, pathlib",
        """
        with open(PATH, "w") as f:
            f.write("x")
        text = pathlib.Path(PATH).read_text()
        os.stat(PATH)
        os.listdir(os.path.dirname(PATH))
        list(os.scandir(os.path.dirname(PATH)))
        os.rename(PATH, PATH + ".2")
        os.remove(PATH + ".2")
        """,
        [
            ('open(PATH, "w")', "builtins.open"),
            ("read_text", "builtins.open"),
            ("os.stat", "os.stat"),
            ("os.listdir", "os.listdir"),
            ("os.scandir", "os.scandir"),
            ("os.rename", "os.rename"),
            ("os.remove", "os.remove"),
        ],
    ),
    "sqlite3": (
        "import sqlite3",
        """
        db = sqlite3.connect(":memory:")
        db.execute("create table t (x)")
        rows = db.execute("select * from t").fetchall()
        db.commit()
        """,
        [
            ("sqlite3.connect", "sqlite3.connect"),
            ('"create table', "sqlite3.Connection.execute"),
            ("fetchall", "sqlite3.Cursor.fetchall"),
            ("commit", "sqlite3.Connection.commit"),
        ],
    ),
    "subprocess": (
        "import os, subprocess",
        """
        subprocess.run(["true"])
        os.system("true")
        """,
        [("subprocess.run", "subprocess.run"), ("os.system", "os.system")],
    ),
    "waits": (
        "import queue, threading",
        """
        event = threading.Event(); event.set()
        event.wait()
        jobs = queue.Queue(); jobs.put(1)
        jobs.get()
        ready = threading.Condition()
        with ready:
            ready.wait(0.001)
        """,
        [
            ("event.wait()", "threading.Event.wait"),
            ("jobs.get()", "queue.Queue.get"),
            ("ready.wait(", "threading.Condition.wait"),
        ],
    ),
    "locks": (
        "import threading\nLOCK = threading.Lock()\nRLOCK = threading.RLock()",
        """
        with LOCK:
            pass
        RLOCK.acquire()
        RLOCK.release()
        LOCK.acquire(blocking=False)
        LOCK.release()
        """,
        [("with LOCK", "threading.Lock.acquire"), ("RLOCK.acquire()", "threading.RLock.acquire")],
    ),
    "input": (
        "",
        """
        try:
            input()
        except Exception:
            pass
        """,
        [("input()", "builtins.input")],
    ),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_is_caught_however_fast(
    project: Project,
    family: str,
    fast_http: str,
    fast_tcp: tuple[str, int],
    tmp_path: Path,
) -> None:
    imports, body, expected = FAMILIES[family]
    host, port = fast_http.rsplit(":", 1)
    constants = (
        f"URL = {fast_http + '/'!r}\nHOST = {host.removeprefix('http://')!r}\n"
        f"PORT = {int(port)}\nADDRESS = {tuple(fast_tcp)!r}\n"
        f"PATH = {str(tmp_path / 'data.txt')!r}\n"
    )
    source = endpoint(imports + "\n" + constants, body)
    result = run_strict(project, source)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["noblock strict: GET /call called * on the event loop at app.py:*"]
    )
    for needle, called in expected:
        assert_found(result, source, needle, called)
    assert "acquire(blocking=False)" not in result.stdout.str()  # never waits
    result.stdout.fnmatch_lines(["  request   GET /call", "  handler   app:call"])
    # Nothing of the plugin's own: not its wrappers, not its stand-ins.
    result.stdout.no_fnmatch_line("*pytest_noblock*")


def test_the_report_names_the_requests_line_where_it_landed_and_what_to_do(
    project: Project, fast_http: str
) -> None:
    source = endpoint(
        "import requests",
        f"""
        for _ in range(3):
            data = requests.get({fast_http!r}, timeout=5).json()
        """,
    )
    result = run_strict(project, source)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "noblock strict: GET /call called requests.api.get on the event loop at app.py:10",
            "  fast here against a local stand-in, it holds every request in production",
            "",
            "requests.api.get: called 3 times, longest * ms",
            "  request   GET /call",
            "  handler   app:call",
            "  call      app.py:10 in call",
            f"{SOURCE_INDENT}data = requests.get(*",
            f"{SOURCE_INDENT}       ^^^^^^^^^^^^^*",
            "  landed in urllib3/util/connection.py:* in create_connection (socket.socket.connect)",
            "  why       a blocking HTTP call",
            "  instead   use `httpx.AsyncClient`*",
            "            or make the endpoint a plain `def`*",
        ]
    )
    assert result.stdout.str().count("called 3 times") == 1


def test_many_findings_are_cut_at_ten(project: Project) -> None:
    body = "\n".join(f"time.sleep(0.0001)  # call {index}" for index in range(12))
    source = endpoint("import time", body)
    result = run_strict(project, source)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "noblock strict: * (and 11 more known blocking calls)",
            "... and 2 more (-vv shows them all)",
        ]
    )
    assert result.stdout.str().count("time.sleep: called once") == 10
    assert project.run("-vv").stdout.str().count("time.sleep: called once") == 12


def test_aliases_bound_before_the_test_are_caught(project: Project, tmp_path: Path) -> None:
    source = endpoint(
        """
        from os import listdir
        from subprocess import run as run_process
        from time import sleep as nap
        """,
        f"""
        nap(0.001)
        listdir({str(tmp_path)!r})
        run_process(["true"])
        """,
    )
    result = run_strict(project, source)
    result.assert_outcomes(failed=1)
    assert_found(result, source, "nap(0.001)", "time.sleep")
    assert_found(result, source, "listdir(", "os.listdir")
    assert_found(result, source, "run_process(", "subprocess.run")


# The app's objects made before the test: a service holding a lock, an event, a semaphore
# and a cache (two levels down), a class attribute, files and SQLite connections.
HELD_OBJECTS = """
import queue
import sqlite3
import threading


class Cache:
    shared = threading.Lock()

    def __init__(self):
        self.lock = threading.Lock()
        self.db = sqlite3.connect(":memory:", check_same_thread=False)


class Service:
    def __init__(self):
        self._lock = threading.Lock()
        self._rlock = threading.RLock()
        self._ready = threading.Event()
        self._ready.set()
        self._slots = threading.Semaphore(2)
        self.cache = Cache()


# The app's own subclass: the lock inside is still the library's.
class Jobs(queue.Queue):
    pass


SERVICE = Service()
JOBS = Jobs()
LOG = open(LOG_PATH, "a")
LINES = open(LINES_PATH)
DATA = open(LINES_PATH, "rb")
DB = sqlite3.connect(":memory:", check_same_thread=False)
DB.execute("create table t (x)")
# Kept apart (a tuple is not walked): the clean-up tests compare against these.
ORIGINALS = (SERVICE._lock, SERVICE.cache.lock, LOG, DB)
"""


def held_objects(tmp_path: Path) -> str:
    lines = tmp_path / "lines.txt"
    lines.write_text("one\ntwo\n")
    paths = f"LOG_PATH = {str(tmp_path / 'log.txt')!r}\nLINES_PATH = {str(lines)!r}\n"
    return paths + HELD_OBJECTS


def test_locks_and_waits_held_as_attributes_are_caught(project: Project, tmp_path: Path) -> None:
    source = endpoint(
        held_objects(tmp_path),
        """
        with SERVICE._lock:
            pass
        SERVICE._rlock.acquire()
        SERVICE._rlock.release()
        SERVICE._ready.wait()
        with SERVICE._slots:
            pass
        with SERVICE.cache.lock:
            pass
        with Cache.shared:
            pass
        SERVICE._lock.acquire(blocking=False)
        SERVICE._lock.release()
        """,
    )
    result = run_strict(project, source)
    result.assert_outcomes(failed=1)
    assert_found(result, source, "with SERVICE._lock", "threading.Lock.acquire")
    assert_found(result, source, "_rlock.acquire()", "threading.RLock.acquire")
    assert_found(result, source, "_ready.wait()", "threading.Event.wait")
    assert_found(result, source, "with SERVICE._slots", "threading.Semaphore.acquire")
    assert_found(result, source, "with SERVICE.cache.lock", "threading.Lock.acquire")
    assert_found(result, source, "with Cache.shared", "threading.Lock.acquire")
    assert "acquire(blocking=False)" not in result.stdout.str()  # never waits


def test_files_and_sqlite_connections_opened_before_the_test_are_caught(
    project: Project, tmp_path: Path
) -> None:
    source = endpoint(
        held_objects(tmp_path),
        """
        LOG.write("request\\n")
        LOG.flush()
        first = LINES.readline()
        for line in LINES:
            pass
        head = DATA.read(4)
        DB.execute("insert into t values (1)")
        rows = DB.execute("select x from t").fetchall()
        DB.commit()
        SERVICE.cache.db.execute("select 1")
        """,
    )
    result = run_strict(project, source)
    result.assert_outcomes(failed=1)
    assert_found(result, source, "LOG.write(", "io.TextIOWrapper.write")
    assert_found(result, source, "LOG.flush()", "io.TextIOWrapper.flush")
    assert_found(result, source, "LINES.readline()", "io.TextIOWrapper.readline")
    assert_found(result, source, "for line in LINES", "io.TextIOWrapper.__next__")
    assert_found(result, source, "DATA.read(4)", "io.BufferedReader.read")
    assert_found(result, source, "insert into", "sqlite3.Connection.execute")
    assert_found(result, source, "select x from t", "sqlite3.Connection.execute")
    assert_found(result, source, "select x from t", "sqlite3.Cursor.fetchall")
    assert_found(result, source, "DB.commit()", "sqlite3.Connection.commit")
    assert_found(result, source, "cache.db.execute", "sqlite3.Connection.execute")
    result.stdout.fnmatch_lines(
        [
            "io.TextIOWrapper.write: called once, longest * ms",
            "  why       blocking file I/O",
        ]
    )


def test_held_objects_used_off_the_loop_are_not_flagged(project: Project, tmp_path: Path) -> None:
    """Same objects, no finding: thread pools, non-blocking tries, the console, the test's code.

    They also still pass `isinstance` and compare equal to the originals while swapped.
    """
    source = endpoint(
        "import asyncio, io, sys\n"
        "from fastapi.concurrency import run_in_threadpool\n" + held_objects(tmp_path),
        """
        await run_in_threadpool(LOG.write, "from a thread\\n")
        await run_in_threadpool(DB.execute, "select 1")
        await asyncio.to_thread(SERVICE._lock.acquire)
        SERVICE._lock.release()
        if SERVICE._rlock.acquire(blocking=False):
            SERVICE._rlock.release()
        SERVICE._slots.acquire(timeout=0)
        if SERVICE._slots.acquire(blocking=False):
            SERVICE._slots.release()
        JOBS.put_nowait(1)
        assert JOBS.qsize() == 1 and JOBS.get_nowait() == 1
        print("to stdout")
        sys.stderr.write("to stderr\\n")
        assert isinstance(SERVICE._lock, type(ORIGINALS[0]))
        assert isinstance(LOG, io.TextIOWrapper) and isinstance(DB, sqlite3.Connection)
        assert SERVICE._lock == ORIGINALS[0] and LOG in {ORIGINALS[2]}
        assert SERVICE._lock is not ORIGINALS[0]  # the README's identity caveat
        """,
    )
    tests = """
import pytest
import app

@pytest.mark.noblock(strict=True)
async def test_call(noblock_client):
    app.LOG.write("the test's own code\\n")
    with app.SERVICE._lock:
        pass
    assert (await noblock_client.get("/call")).status_code == 200
"""
    result = run_strict(project, source, tests)
    result.assert_outcomes(passed=1)
    assert "noblock strict" not in result.stdout.str()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[tuple[str, int], str]]:
    """A TLS server on 127.0.0.1 that answers b"ping" with b"pong"; yields it and its CA file."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    cafile = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))

    def answer(conn: socket.socket) -> None:
        conn.settimeout(5)
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(4)
            tls.sendall(b"pong")

    with serving(answer) as address:
        yield address, str(cafile)


def test_ssl_sockets_are_caught_and_asyncio_tls_is_not(
    project: Project, tls_server: tuple[tuple[str, int], str]
) -> None:
    address, cafile = tls_server
    source = endpoint(
        f"import asyncio, socket, ssl\nADDRESS = {tuple(address)!r}\n"
        f"CONTEXT = ssl.create_default_context(cafile={cafile!r})\n",
        """
        raw = socket.create_connection(ADDRESS, timeout=5)
        tls = CONTEXT.wrap_socket(raw, server_hostname="localhost")
        tls.sendall(b"ping")
        data = tls.recv(4)
        tls.close()
        reader, writer = await asyncio.open_connection(
            *ADDRESS, ssl=CONTEXT, server_hostname="localhost"
        )
        writer.write(b"ping")
        assert await reader.read(4) == b"pong" == data
        writer.close()
        """,
    )
    result = run_strict(project, source)
    result.assert_outcomes(failed=1)
    assert_found(result, source, "CONTEXT.wrap_socket(", "ssl.SSLSocket.do_handshake")
    assert_found(result, source, "tls.sendall(", "ssl.SSLSocket.sendall")
    assert_found(result, source, "tls.recv(", "ssl.SSLSocket.recv")
    result.stdout.fnmatch_lines(
        ["ssl.SSLSocket.sendall: called once, *", "  why       a blocking socket call"]
    )
    text = result.stdout.str()
    # asyncio's TLS runs on non-blocking sockets and memory buffers: nothing to report.
    for needle in ("asyncio.open_connection(", "writer.write("):
        assert f"app.py:{line_of(source, needle)} in call" not in text
    assert text.count(": called once, longest") == 4  # create_connection and the three above


SLOW_LIBRARY = """
from time import sleep


def pause():
    sleep(0.001)
"""

LIBRARY_TESTS = """
import time
import pytest
import slowlib

@pytest.mark.noblock(strict=True)
async def test_call(noblock_client):
    assert (await noblock_client.get("/call")).status_code == 200

async def test_nothing_left():
    assert slowlib.sleep is time.sleep
"""


def test_aliases_inside_installed_libraries_are_caught(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An installed library: the user site-packages of a user base made for this test.
    base = tmp_path / "userbase"
    packages = Path(sysconfig.get_path("purelib", "posix_user", {"userbase": str(base)}))
    packages.mkdir(parents=True)
    (packages / "slowlib.py").write_text(SLOW_LIBRARY)
    monkeypatch.setenv("PYTHONUSERBASE", str(base))
    monkeypatch.setenv("PYTHONPATH", str(packages))
    source = endpoint(
        "import slowlib\nfrom fastapi.concurrency import run_in_threadpool",
        """
        slowlib.pause()
        await run_in_threadpool(slowlib.pause)
        """,
    )
    project.app(source)
    project.tests(LIBRARY_TESTS)
    result = project.run_subprocess()
    result.assert_outcomes(passed=1, failed=1)
    assert_found(result, source, "slowlib.pause()", "time.sleep")
    result.stdout.fnmatch_lines(["  landed in slowlib.py:6 in pause (time.sleep)"])
    assert result.stdout.str().count("time.sleep: called once") == 1  # not the thread pool's


def test_behaviour_is_unchanged_under_a_broad_except(project: Project, fast_http: str) -> None:
    """The call runs and returns as usual: the test's own assertions pass, strict fails it."""
    source = endpoint(
        "import requests",
        f"""
        try:
            upstream = requests.get({fast_http!r}, timeout=5).json()
        except Exception:
            upstream = "swallowed"
        try:
            requests.get("http://127.0.0.1:9/refused", timeout=5)
            refused = "no"
        except Exception as error:
            refused = type(error).__name__
        return {{"upstream": upstream, "refused": refused}}
        """,
    )
    tests = """
import pytest

@pytest.mark.noblock(strict=True, budget_ms=10_000)
async def test_call(noblock_client):
    response = await noblock_client.get("/call")
    assert response.json() == {"upstream": {"status": "ok"}, "refused": "ConnectionError"}
"""
    result = run_strict(project, source, tests)
    result.assert_outcomes(failed=1)
    # Only strict mode failed the test: no assertion error.
    assert "AssertionError" not in result.stdout.str()
    assert_found(result, source, "upstream = requests.get(", "requests.api.get")
    assert_found(result, source, 'requests.get("http://127.0.0.1:9', "requests.api.get")


CLEAN_APP = """
import asyncio
import logging
import sys
import threading
import time
import traceback
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

log = logging.getLogger("clean")
log.addHandler(logging.StreamHandler(sys.stderr))
ADDRESS = {address!r}
URL = {url!r}


@asynccontextmanager
async def lifespan(app):
    with open(__file__) as f:
        f.read()
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/call")
async def call():
    import lazy_module  # the import system reads files
    log.warning("logging to stderr")
    print("and to stdout")
    try:
        raise ValueError("formatted")
    except ValueError:
        traceback.format_exc()
    await run_in_threadpool(time.sleep, 0.001)
    await asyncio.to_thread(lambda: open(__file__).close())
    worker = threading.Thread(target=time.sleep, args=(0.001,))
    worker.start()
    reader, writer = await asyncio.open_connection(*ADDRESS)
    await reader.read(4)
    writer.close()
    await writer.wait_closed()
    async with httpx.AsyncClient() as client:
        await client.get(URL)
    process = await asyncio.create_subprocess_exec("true")
    await process.wait()
    await asyncio.sleep(0.001)
    return {{"lazy": lazy_module.VALUE}}


def sync_endpoint():
    time.sleep(0.001)
    return {{}}


app.get("/sync")(sync_endpoint)
"""


def test_the_clean_list_is_not_flagged(
    project: Project, fast_http: str, fast_tcp: tuple[str, int]
) -> None:
    project.pytester.makepyfile(lazy_module="VALUE = 1\n")
    project.app(CLEAN_APP.format(address=tuple(fast_tcp), url=fast_http))
    project.tests(
        """
        import time
        import pytest

        # Strict findings only: the app builds an httpx client per request, whose SSL
        # context takes 40-70 ms, near the default budget (a timing hold, not this test's).
        @pytest.mark.noblock(1000, strict=True)
        async def test_call(noblock_client):
            time.sleep(0.001)  # the test's own code
            with open(__file__) as f:
                f.read()
            assert (await noblock_client.get("/call")).json() == {"lazy": 1}
            assert (await noblock_client.get("/call")).status_code == 200
            assert (await noblock_client.get("/sync")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    assert "noblock strict" not in result.stdout.str()


ALLOW_APP = endpoint(
    "import os, time",
    """
    time.sleep(0.001)
    warm()
    os.getcwd()
    """,
) + ("\n\ndef warm():\n    with open(__file__) as f:\n        f.read()\n")


def test_the_allowlist_and_stale_entries(project: Project) -> None:
    project.app(ALLOW_APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock(strict=True, allow=["time.sleep", "app:warm", "os.system"])
        async def test_call(noblock_client):
            assert (await noblock_client.get("/call")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_call: strict allowlist: 'os.system' matched no call (stale: remove it)",
        ]
    )


def test_the_ini_allowlist_and_its_stale_entries(project: Project) -> None:
    project.ini(
        asyncio_mode="auto",
        noblock_strict="true",
        noblock_allow="\n    time.sleep\n    app:warm\n    sqlite3",
    )
    project.app(ALLOW_APP)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_call(noblock_client):
            assert (await noblock_client.get("/call")).status_code == 200

        @pytest.mark.noblock(strict=False)
        async def test_opted_out(noblock_client):
            assert (await noblock_client.get("/call")).status_code == 200
        """
    )
    result = project.run()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["ini option noblock_allow: strict allowlist: 'sqlite3' matched no call (stale: remove it)"]
    )


def test_without_the_allowlist_the_same_app_fails(project: Project) -> None:
    project.app(ALLOW_APP)
    project.tests(STRICT_TEST)
    result = project.run()
    result.assert_outcomes(failed=1)
    assert_found(result, ALLOW_APP, "time.sleep(0.001)", "time.sleep")
    result.stdout.fnmatch_lines(["builtins.open: called once, *", "  call      app.py:* in warm"])


def test_a_plain_marker_is_not_strict(project: Project) -> None:
    project.app(ALLOW_APP)
    project.tests(STRICT_TEST.replace("(strict=True, budget_ms=10_000)", ""))
    project.run().assert_outcomes(passed=1)


def test_slow_and_known_is_reported_once_with_its_duration(project: Project) -> None:
    source = endpoint(
        "import time",
        """
        time.sleep(0.25)
        time.sleep(0.001)
        """,
    )
    result = run_strict(project, source, STRICT_TEST.replace("budget_ms=10_000", "budget_ms=50"))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "noblock: GET /call held the event loop for * ms at app.py:9 (budget 50 ms)",
            "*",
            "noblock strict: GET /call called time.sleep on the event loop at app.py:10",
        ]
    )
    text = result.stdout.str()
    # The slow call is in the timing report only; strict mode reports the fast one.
    assert text.count("  call      app.py:9 in call") == 1
    assert text.count("  call      app.py:10 in call") == 1
    assert "time.sleep: called once" in text


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ('strict="yes"', "(strict=...) must be True or False, got 'yes'"),
        ('strict=True, allow="time.sleep"', "(allow=...) must be a list of names"),
    ],
)
def test_bad_strict_options_are_one_line(project: Project, marker: str, message: str) -> None:
    project.tests(
        f"""
        import pytest

        @pytest.mark.noblock({marker})
        async def test_call():
            pass
        """
    )
    result = project.run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


CLEANUP_TESTS = """
import time
import pytest
import app

@pytest.mark.noblock(strict=True)
async def test_a_errors(noblock_client):
    await noblock_client.get("/call")
    raise RuntimeError("boom")

@pytest.mark.noblock(strict=True)
async def test_b_fails_strict(noblock_client):
    await noblock_client.get("/call")

async def test_c_nothing_left():
    assert type(time.sleep).__name__ == "builtin_function_or_method"
    assert app.nap is time.sleep
    assert type(app.LOCK).__name__ == "lock"
    held = (app.SERVICE._lock, app.SERVICE.cache.lock, app.LOG, app.DB)
    assert all(now is before for now, before in zip(held, app.ORIGINALS))
    assert "acquire" not in vars(app.Cache)
    assert type(app.Cache.shared).__name__ == "lock"
"""


def test_patches_are_restored_after_errors_and_failures(project: Project, tmp_path: Path) -> None:
    project.app(
        endpoint(
            "import threading, time\nfrom time import sleep as nap\nLOCK = threading.Lock()\n"
            + held_objects(tmp_path),
            """
            with LOCK, SERVICE._lock, SERVICE.cache.lock, Cache.shared:
                nap(0.001)
            LOG.write("x")
            DB.execute("select 1")
            """,
        )
    )
    project.tests(CLEANUP_TESTS)
    result = project.run()
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*noblock: the event loop was held*"])
    assert not strict_wrappers.active()
    assert type(time.sleep).__name__ == "builtin_function_or_method"
    assert "connect" not in vars(socket.socket)
    assert type(builtins.open).__name__ == "builtin_function_or_method"
    assert io.open is builtins.open


STATE_AT_EXIT = """

def pytest_unconfigure(config):
    import builtins, json, socket, time
    import app as app_module

    service = app_module.SERVICE
    state = {
        "sleep": type(time.sleep).__name__,
        "alias": app_module.nap is time.sleep,
        "socket": "connect" in vars(socket.socket),
        "open": type(builtins.open).__name__,
        "held": [
            now is before
            for now, before in zip(
                (service._lock, service.cache.lock, app_module.LOG, app_module.DB),
                app_module.ORIGINALS,
            )
        ],
    }
    with open("state.json", "w") as file:
        json.dump(state, file)
"""


def test_patches_are_restored_when_interrupted(project: Project, tmp_path: Path) -> None:
    project.app(
        endpoint(
            "import time\nfrom time import sleep as nap\n" + held_objects(tmp_path),
            """
            nap(0.001)
            with SERVICE._lock:
                LOG.write(str(DB.execute("select 1").fetchone()))
            """,
        )
    )
    project.pytester.makeconftest(APP_CONFTEST + STATE_AT_EXIT)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock(strict=True)
        async def test_interrupted(noblock_client):
            await noblock_client.get("/call")
            raise KeyboardInterrupt
        """
    )
    result = project.run_subprocess()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    state = json.loads((project.pytester.path / "state.json").read_text())
    assert state == {
        "sleep": "builtin_function_or_method",
        "alias": True,
        "socket": False,
        "open": "builtin_function_or_method",
        "held": [True, True, True, True],
    }


@pytest.mark.parametrize("entry", ["requests", "requests.get", "requests.api.get"])
def test_allowlist_entries_as_users_write_them_match(
    project: Project, fast_http: str, entry: str
) -> None:
    source = endpoint("import requests", f"requests.get({fast_http!r}, timeout=5)")
    tests = f"""
        import pytest

        @pytest.mark.noblock(500, strict=True, allow=[{entry!r}])  # strict mode alone
        async def test_call(noblock_client):
            assert (await noblock_client.get("/call")).status_code == 200
        """
    result = run_strict(project, source, tests)
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*matched no call*")


# A local stub whose handler thread runs a full garbage collection while the app waits for
# its answer, over a heap grown until one collection clearly outlasts the budget: what the
# demo's fast stub met when the collector's threshold came due in its thread (the heap, as
# in any test run, is the whole suite's).
FULL_COLLECTION_STUB_CONFTEST = """

import gc
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEAP = []


def full_collection_s():
    start = time.perf_counter()
    gc.collect()
    return time.perf_counter() - start


class Stub(BaseHTTPRequestHandler):
    def do_GET(self):
        gc.collect()
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


@pytest.fixture
def stub(monkeypatch):
    while full_collection_s() < 0.15 and len(HEAP) < 16_000_000:
        HEAP.extend([] for _ in range(500_000))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    host, port = server.server_address[:2]
    monkeypatch.setenv("STUB_URL", f"http://{host}:{port}")
    yield
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
"""


def test_a_full_collection_in_the_stubs_thread_is_not_a_hold(project: Project) -> None:
    source = endpoint(
        "import os\nimport requests",
        'data = requests.get(os.environ["STUB_URL"], timeout=5).json()',
    )
    project.app(source)
    project.pytester.makeconftest(APP_CONFTEST + FULL_COLLECTION_STUB_CONFTEST)
    project.tests(
        """
        import pytest

        @pytest.mark.noblock
        async def test_plain(noblock_client, stub):
            assert (await noblock_client.get("/call")).status_code == 200

        @pytest.mark.noblock(strict=True)
        async def test_strict(noblock_client, stub):
            assert (await noblock_client.get("/call")).status_code == 200
        """
    )
    result = project.run_subprocess("--noblock-report=report.json")
    result.assert_outcomes(passed=1, failed=1)
    call_line = line_of(source, "requests.get(")
    result.stdout.fnmatch_lines(
        [
            "*test_strict*",
            "noblock strict: GET /call called requests.api.get on the event loop "
            f"at app.py:{call_line}",
        ]
    )
    result.stdout.no_fnmatch_line("*held the event loop*")
    report = json.loads((project.pytester.path / "report.json").read_text())
    assert [test["holds"] for test in report["tests"]] == [[], []]
    assert len(report["tests"][1]["strict_findings"]) == 1
