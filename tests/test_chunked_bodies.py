"""A chunked request body (no Content-Length) is read, and held to the same rules as any other.

Django alone reads such a body as empty. These tests call the WSGI application gunicorn serves
(`config.wsgi.application`) with the environ gunicorn builds for one: the body already de-chunked
and `wsgi.input_terminated` set. tests/scaleout sends real chunked requests through gunicorn.
"""

import io
import json
from wsgiref.util import setup_testing_defaults

import pytest
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from config.wsgi import application
from contacts.models import Contact

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def keep_the_tests_connection():
    """A real WSGI call closes the database connection when the request starts and ends, which
    would close the test's transaction with it; Django's own test client holds it the same way."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


class Unreadable(io.RawIOBase):
    def read(self, size=-1):
        raise AssertionError("an input the server did not terminate was read")


def post_chunked(org, body: bytes, *, terminated: bool = True, stream=None):
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/widget/contacts/unverified",
        "CONTENT_TYPE": "application/json",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "HTTP_X_WIDGET_TOKEN": org.widget_token,
        "SERVER_NAME": "testserver",
        "wsgi.input": stream or io.BytesIO(body),
        "wsgi.input_terminated": terminated,
    }
    setup_testing_defaults(environ)
    environ.pop("CONTENT_LENGTH", None)
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"] = int(status.split()[0])

    content = b"".join(application(environ, start_response))
    return answer["status"], json.loads(content)


def test_a_chunked_body_is_read(org):
    # when
    status, body = post_chunked(org, b'{"name": "Chunk", "email": "chunk@shop.test"}')
    # then the details arrived: a non-verified contact, not an anonymous one
    assert status == 201
    assert body["contact"]["trust"] == "non_verified"
    assert Contact.objects.get().email == "chunk@shop.test"


def test_a_chunked_body_is_validated(org):
    # when
    status, body = post_chunked(org, b'{"name": 5}')
    # then
    assert status == 400
    assert list(body["error"]["fields"]) == ["name"]
    assert not Contact.objects.exists()


def test_a_chunked_body_over_the_limit_is_413_and_writes_nothing(org):
    # given a body one byte over the limit, sent without a length
    padding = "a" * settings.MAX_REQUEST_BODY_BYTES
    # when
    status, body = post_chunked(org, json.dumps({"name": "x", "p": padding}).encode())
    # then
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"
    assert not Contact.objects.exists()


def test_an_input_the_server_did_not_terminate_is_never_read_to_its_end(org):
    # when a server that does not de-chunk passes such a request on
    status, body = post_chunked(org, b"", terminated=False, stream=Unreadable())
    # then nothing waits on the stream: the request is answered as one without a body
    assert status == 201
    assert body["contact"]["trust"] == "anonymous"
