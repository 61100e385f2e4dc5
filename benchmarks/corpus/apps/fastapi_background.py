"""Blocking calls in background tasks: `async def` tasks run on the loop after the response."""

from __future__ import annotations

import subprocess
import time
import zlib
from typing import Any

from fastapi import BackgroundTasks, FastAPI

from corpus import Case, work

app = FastAPI()
PAYLOAD = work.zlib_payload()


async def convert_upload(name: str) -> None:
    subprocess.run(work.SUBPROCESS_ARGS, check=True)  # BLOCKS: background_subprocess


async def send_welcome_mail(address: str) -> None:
    time.sleep(work.SLEEP_S)  # BLOCKS: background_sleep


async def archive(name: str) -> None:
    zlib.compress(PAYLOAD, 9)  # BLOCKS: background_zlib


@app.post("/uploads")
async def upload(tasks: BackgroundTasks) -> dict[str, Any]:
    tasks.add_task(convert_upload, "report.pdf")
    return {"accepted": True}


@app.post("/signup")
async def signup(tasks: BackgroundTasks) -> dict[str, Any]:
    tasks.add_task(send_welcome_mail, "ada@example.com")
    return {"signed_up": True}


@app.post("/archive")
async def archive_route(tasks: BackgroundTasks) -> dict[str, Any]:
    tasks.add_task(archive, "logs")
    return {"archiving": True}


def post(path: str) -> str:
    return f'r = await client.post("{path}")\nassert r.status_code == 200, r.text\n'


B = "background task"
CASES = [
    Case(
        "background_subprocess",
        True,
        "subprocess",
        B,
        post("/uploads"),
        lambda: subprocess.run(work.SUBPROCESS_ARGS, check=True),
    ),
    Case(
        "background_sleep",
        True,
        "time.sleep",
        B,
        post("/signup"),
        lambda: time.sleep(work.SLEEP_S),
    ),
    Case(
        "background_zlib",
        True,
        "zlib",
        B,
        post("/archive"),
        lambda: zlib.compress(PAYLOAD, 9),
    ),
]
