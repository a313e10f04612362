"""Input of the demo backend: the part of authenticate-user's body the playground sends."""

from rest_framework import serializers

from config.fields import IdentifierField, StrictCharField, StrictEmailField


class DemoAuthenticateInputSerializer(serializers.Serializer):
    email = StrictEmailField(max_length=254)
    name = StrictCharField(max_length=200, required=False, allow_blank=True)
    user_id = IdentifierField(max_length=255, required=False, allow_blank=True)


class OrgQuerySerializer(serializers.Serializer):
    org = serializers.SlugField(max_length=64, required=False, default="demo")
