"""Chunked request bodies, which Django would otherwise read as empty.

Django reads a request body only up to its `Content-Length`. A client may send one chunked
instead (`Transfer-Encoding: chunked`, no length), and Django then sees no body at all: a POST
with the right data would be answered as if it had none, and one over the size limit would not
be refused. Servers that de-chunk the body themselves and end `wsgi.input` where the body ends
say so with `wsgi.input_terminated` (gunicorn does): then this reads the body, at most one byte
past the limit, and hands it to Django with its length, so every check that reads
`Content-Length` (the 413 in config.middleware first) applies to it as to any other body.
"""

import io


class ChunkedBodyApplication:
    """WSGI wrapper: a chunked body on a terminated input gets a `Content-Length`."""

    def __init__(self, application, *, limit: int):
        self.application = application
        self.limit = limit

    def __call__(self, environ, start_response):
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not environ.get("CONTENT_LENGTH") and environ.get("wsgi.input_terminated"):
            body = environ["wsgi.input"].read(self.limit + 1)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
        return self.application(environ, start_response)
