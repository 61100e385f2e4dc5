"""A Quart app: one route hashes on the event loop, its look-alike in a worker thread."""

import hashlib

from quart import Quart, request
from quart.utils import run_sync

app = Quart(__name__)


def stretch(password: bytes) -> str:
    # CPU work, slow on purpose (key stretching): a few hundred milliseconds.
    return hashlib.pbkdf2_hmac("sha256", password, b"salt", 1_500_000).hex()


@app.post("/login")
async def login() -> dict[str, str]:
    # Blocks the loop: the hashing runs on the event loop's thread.
    return {"key": stretch(await request.get_data())}


@app.post("/login-threaded")
async def login_threaded() -> dict[str, str]:
    # Fine: Quart's run_sync runs it in a worker thread; the loop keeps serving.
    return {"key": await run_sync(stretch)(await request.get_data())}
