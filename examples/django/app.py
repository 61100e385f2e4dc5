"""A Django app with two async views: one blocks the loop, one moves its wait to a thread.

Settings are configured here so the example needs no project: a real one would set
DJANGO_SETTINGS_MODULE (or use pytest-django) instead.
"""

import hashlib

from asgiref.sync import sync_to_async
from django.conf import settings

if not settings.configured:
    settings.configure(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], SECRET_KEY="example")

# Imported once the settings are there.
from django.core.asgi import get_asgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import path


def sign(pk: int) -> dict[str, object]:
    # Slow on purpose, like password hashing: hundreds of milliseconds of CPU work.
    key = hashlib.pbkdf2_hmac("sha256", str(pk).encode(), b"salt", 1_000_000)
    return {"invoice": pk, "signature": key.hex()[:8]}


async def signed_invoice(request: HttpRequest, pk: int) -> JsonResponse:
    # Blocks the loop: a sync call inside `async def` stops every other request.
    return JsonResponse(sign(pk))


async def signed_invoice_in_thread(request: HttpRequest, pk: int) -> JsonResponse:
    # Fine: sync_to_async runs the call in a thread while the loop keeps serving.
    return JsonResponse(await sync_to_async(sign)(pk))


urlpatterns = [
    path("invoices/<int:pk>/signed/", signed_invoice),
    path("invoices/<int:pk>/signed-in-thread/", signed_invoice_in_thread),
]

app = get_asgi_application()
