"""DRF serializers for the hot routes: fields built once per class, not once per instance."""

from rest_framework import serializers
from rest_framework.utils.serializer_helpers import BindingDict


# A serializer whose bound fields are built once per class and shared by its instances.
#
# DRF deep-copies every declared field each time a serializer is instantiated, so that one
# instance may change its own fields; on a widget route that copying cost more than the
# validation and the rendering together (docs/PERFORMANCE.md). Nothing here changes fields per
# instance, so each class binds one copy to a template instance holding no data and every
# instance uses it. A shared field reads the template whenever it asks for its parent or root:
# so these serializers refuse `context` and `partial` (a field would see the template's
# instead), and their `get_<name>` methods may use only the object they are given. Fields keep
# no per-call state: values, errors and validated data live on the instance being used.
#
# A comment, not a docstring: drf-spectacular describes each serializer's schema component with
# the first docstring in its classes below DRF's, and this one is about the implementation, not
# about what the API's clients send or receive.
class FieldsOnceSerializer(serializers.Serializer):
    def __init__(self, *args, **kwargs):
        if "context" in kwargs or kwargs.get("partial"):
            raise TypeError(f"{type(self).__name__} shares its fields: no context or partial")
        super().__init__(*args, **kwargs)

    @property
    def fields(self) -> BindingDict:
        cls = type(self)
        shared = cls.__dict__.get("_shared_fields")
        if shared is None:
            template = cls()
            shared = BindingDict(template)
            for name, field in template.get_fields().items():
                shared[name] = field
            cls._shared_fields = shared
        return shared
