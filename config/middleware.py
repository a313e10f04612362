"""Request middleware: the body-size limit, before anything reads the body, the pages'
Content-Security-Policy, and the 503 for a failing database or cache outside DRF."""

from django.conf import settings

from config.exceptions import PayloadTooLarge, json_error, service_unavailable


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


class ServiceUnavailableMiddleware:
    """Answer a database or cache failure in a plain Django view with DRF's 503, not a 500.

    DRF's exception handler covers the API; the admin's and the console's sign-in and add forms
    reach the lockout counters and the one-time submission ids in Redis too.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        return service_unavailable(request, exception)
