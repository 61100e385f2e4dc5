"""The Django example's app, for `noblock_client`; importing it configures Django."""

import pytest

from examples.django.app import app as django_app


@pytest.fixture
def noblock_app() -> object:
    return django_app
