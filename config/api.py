"""What every DRF view here shares: the body is read before the action, and `Allow` is honest.

**A bad body is refused even where the action reads none.** DRF parses a body only when the
action reads `request.data`, so a logout, a widget-token rotation or a close sent with a
malformed or non-JSON body went through and wrote. Here the body is parsed once
authentication, permissions and throttles have passed and before the action runs: the same
400 or 415 as anywhere else, and nothing written. An empty body is no body, whatever its
type; an action that reads the body gets this same parse.

**`Allow` names only what the view answers.** With `DEFAULT_METADATA_CLASS` None an OPTIONS
request is a 405 (the CORS preflights of the widget's routes are answered by
`contacts.middleware` before any view), so OPTIONS is left out of the header.
"""

from rest_framework import views, viewsets
from rest_framework.permissions import SAFE_METHODS


class StrictViewMixin:
    # No docstring: drf-spectacular would describe every undocumented view with it.

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # Only for a method the view handles: any other is the 405, whatever its body.
        if request.method not in SAFE_METHODS and hasattr(self, request.method.lower()):
            request.data  # noqa: B018 - reading it is what parses it

    @property
    def allowed_methods(self) -> list[str]:
        methods = super().allowed_methods
        if self.metadata_class is None:
            return [method for method in methods if method != "OPTIONS"]
        return methods


class APIView(StrictViewMixin, views.APIView):
    pass


class ViewSet(StrictViewMixin, viewsets.ViewSet):
    pass


class GenericViewSet(StrictViewMixin, viewsets.GenericViewSet):
    pass
