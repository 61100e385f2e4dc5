"""A Django app of async views, driven by `django.test.AsyncClient` (`django` cases).

`AsyncClient` calls no ASGI app: it awaits the view on the test's own loop (asyncio,
pytest-asyncio). The settings are made here, once per process.
"""

from __future__ import annotations

import json
import time

from asgiref.sync import sync_to_async
from django.conf import settings

if not settings.configured:
    settings.configure(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], SECRET_KEY="bench", DATABASES={})

# Imported once the settings are made.
from django.core.asgi import get_asgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import path

from corpus import Case, work

SMALL = [{"id": i, "name": f"item{i}"} for i in range(50)]


async def sleep(request: HttpRequest) -> JsonResponse:
    time.sleep(work.SLEEP_S)  # BLOCKS: django_sleep
    return JsonResponse({"slept": work.SLEEP_S})


async def sleep_in_a_thread(request: HttpRequest) -> JsonResponse:
    await sync_to_async(time.sleep)(work.CLEAN_WAIT_S)
    return JsonResponse({"slept": work.CLEAN_WAIT_S})


async def small(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"items": json.loads(json.dumps(SMALL))})


urlpatterns = [
    path("sleep/", sleep),
    path("sleep-in-a-thread/", sleep_in_a_thread),
    path("small/", small),
]

# The tools' app fixture hands this to their own clients; the cases use `AsyncClient`.
app = get_asgi_application()


def _sleep() -> None:
    time.sleep(work.SLEEP_S)


def async_client_get(path: str) -> str:
    return (
        "client = AsyncClient()\n"
        f'r = await client.get("{path}")\n'
        "assert r.status_code == 200, r.content\n"
    )


BACK_TO_BACK = """client = AsyncClient()
for _ in range(50):
    r = await client.get("/small/")
    assert r.status_code == 200, r.content
"""

D = "django"
V = "async view"

CASES = [
    Case(
        "django_sleep",
        True,
        "time.sleep",
        V,
        async_client_get("/sleep/"),
        _sleep,
        own_client=True,
        framework="Django",
        driver=D,
    ),
    Case(
        "clean_django_sync_to_async",
        False,
        "time.sleep",
        "`sync_to_async` (asgiref)",
        async_client_get("/sleep-in-a-thread/"),
        own_client=True,
        framework="Django",
        driver=D,
    ),
    Case(
        "clean_django_back_to_back",
        False,
        "50 quick requests",
        "back to back",
        BACK_TO_BACK,
        own_client=True,
        requests=50,
        framework="Django",
        driver=D,
    ),
]
