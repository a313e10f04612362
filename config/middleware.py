"""Request middleware: the body-size limit, before anything reads the body, and the pages'
Content-Security-Policy."""

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


class ContentSecurityPolicyMiddleware:
    """Give every HTML page (admin, console, playground, API docs) the CONTENT_SECURITY_POLICY.

    Only HTML gets it: JSON and static files are not documents a browser runs scripts in, and the
    widget's hot routes are spared even a header lookup's worth of work beyond the content type.
    The policy is one string built once from the settings, not per request.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = settings.CONTENT_SECURITY_POLICY

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.get("Content-Type", "").startswith("text/html")
            and "Content-Security-Policy" not in response
        ):
            response["Content-Security-Policy"] = self.policy
        return response
