"""Request middleware that must run before anything reads the body."""

from django.conf import settings

from config.exceptions import PayloadTooLarge, json_error


class BodySizeLimitMiddleware:
    """Answer 413 for a declared body over the limit before any view reads it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return json_error(request, 400, "invalid", "The Content-Length header is invalid.")
        if length > settings.MAX_REQUEST_BODY_BYTES:
            return json_error(
                request, 413, PayloadTooLarge.default_code, PayloadTooLarge.default_detail
            )
        return self.get_response(request)
