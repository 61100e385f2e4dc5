"""What to use instead: advice for the blocking calls people actually make.

The table follows the libraries in the articles this project grew from (requests,
boto3, open(), psycopg2, PyMySQL/mysqlclient) plus the other usual suspects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .adapters import Framework, advise

# `{to_thread}` is written in the words of the app's framework (see `adapters.advise`).
_OFF_THE_LOOP = "move it off the loop: {to_thread}, or a process pool for big jobs"

_THREAD_FOR_CPU = (
    "run it in a worker thread: {to_thread}; it lets the GIL go, so the loop keeps serving"
)

# (prefixes of a callee or library module, what it is, what to use instead), first match wins.
_RULES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        # First: whatever the module runs as it loads, the cure is to load it earlier.
        ("importlib._bootstrap", "importlib._bootstrap_external"),
        "importing a module while serving a request",
        "import it at the top of its module, so that it loads when the app starts",
    ),
    (
        # Before the socket and HTTP rules: building a client spends its time loading
        # certificates into a new SSL context, not on the network.
        (
            "httpx._client.AsyncClient.__init__",
            "httpx._client.Client.__init__",
            "httpx2._client.AsyncClient.__init__",
            "httpx2._client.Client.__init__",
            "httpx._config",
            "httpx2._config",
        ),
        "building an httpx client (a new SSL context each time, tens of ms)",
        "make one client when the app starts (in its lifespan) and reuse it for every request",
    ),
    (
        (
            "argon2",
            "_argon2_cffi_bindings",
            "bcrypt",
            "passlib",
            "pwdlib",
            "hashlib.pbkdf2_hmac",
            "hashlib.scrypt",
            "_hashlib.pbkdf2_hmac",
            "_hashlib.scrypt",
        ),
        "password hashing: slow on purpose, CPU work meant for a thread",
        _THREAD_FOR_CPU,
    ),
    (
        ("PIL",),
        "image processing with Pillow: CPU work",
        _THREAD_FOR_CPU,
    ),
    (
        ("bs4", "lxml", "html5lib", "html.parser"),
        "parsing HTML: CPU work",
        "run it in a worker thread ({to_thread}), or a process pool for big pages",
    ),
    (
        (
            "requests",
            "urllib3",
            "http.client",
            "urllib.request",
            # httpx names its public classes `httpx.Client`; a sync client lands in httpcore's
            # sync half (its async half serves AsyncClient, the advice itself).
            "httpx.Client",
            "httpx2.Client",
            "httpcore._sync",
            "httpcore2._sync",
        ),
        "a blocking HTTP call",
        "use `httpx.AsyncClient` (`await client.get(...)`), or {to_thread:requests.get, ...}",
    ),
    (
        ("time.sleep",),
        "`time.sleep` stops the whole loop",
        "use `await asyncio.sleep(...)` (or `await anyio.sleep(...)`)",
    ),
    (
        ("boto3", "botocore", "s3transfer"),
        "a blocking AWS call",
        "use aioboto3, or {to_thread} around the boto3 call",
    ),
    (
        ("sqlite3",),
        "a blocking SQLite call",
        "use aiosqlite, or {to_thread}",
    ),
    (
        ("psycopg2", "psycopg.connection", "psycopg.cursor"),
        "a blocking PostgreSQL call",
        "use psycopg's async connection (`await psycopg.AsyncConnection.connect(...)`) or asyncpg",
    ),
    (
        ("pymysql", "MySQLdb"),
        "a blocking MySQL call",
        "use aiomysql or asyncmy",
    ),
    (
        ("subprocess", "os.system", "os.popen", "os.wait"),
        "a blocking subprocess call",
        "use `await asyncio.create_subprocess_exec(...)` (or `anyio.run_process`)",
    ),
    (
        ("io.open", "builtins.open", "_io.", "io.", "pathlib", "shutil", "os.", "posix.", "glob"),
        "blocking file I/O",
        "use `anyio.Path` or aiofiles, or {to_thread}",
    ),
    (
        ("socket", "ssl", "select", "selectors"),
        "a blocking socket call",
        "use asyncio streams (`await asyncio.open_connection(...)`) or an async client library",
    ),
    (
        ("threading", "_thread", "queue", "concurrent.futures", "multiprocessing"),
        "a blocking wait on a lock, event or queue",
        "use `asyncio.Lock`/`Event`/`Queue` (or anyio's), or {to_thread} around the wait",
    ),
    (
        ("json", "zlib", "gzip", "bz2", "lzma", "re", "hashlib", "pickle", "_json", "_pickle"),
        "heavy CPU work in a C library",
        _OFF_THE_LOOP,
    ),
)

_CPU = ("CPU work on the loop", _OFF_THE_LOOP)
_UNKNOWN = (
    "a blocking call",
    "await an async equivalent, or run it with {to_thread}",
)


def _matches(name: str, prefix: str) -> bool:
    if prefix.endswith((".", "_")):
        return name.startswith(prefix)
    return name == prefix or name.startswith(prefix + ".")


@dataclass(frozen=True)
class Hint:
    what: str
    instead: str
    # The framework's other way out (a plain `def` handler), when there is one.
    also: str | None = None

    def in_words_of(self, framework: Framework) -> Hint:
        return Hint(self.what, advise(self.instead, framework), framework.sync_handler)


def hint_for(callee: str | None, library_modules: Sequence[str], cpu_bound: bool) -> Hint:
    """What the blocking call is, and what to use instead."""
    candidates = [*library_modules, *([callee] if callee else [])]
    for prefixes, what, instead in _RULES:
        if any(_matches(name, prefix) for name in candidates for prefix in prefixes):
            return Hint(what, instead)
    return Hint(*(_CPU if cpu_bound else _UNKNOWN))


def is_generic(hint: Hint) -> bool:
    """Advice for a call no rule knows: any rule that knows it says more."""
    return (hint.what, hint.instead) in (_CPU, _UNKNOWN)


KEPT_THE_GIL = Hint(
    "a C call that keeps the GIL: it stops the event loop even from a worker thread",
    "run it in a process pool (`await loop.run_in_executor(ProcessPoolExecutor(), ...)`), "
    "or make each call short: stream the response in chunks, or a faster encoder (orjson)",
)
