"""Input and output serializers for agent sign-in."""

from rest_framework import serializers


class SignInInputSerializer(serializers.Serializer):
    email = serializers.CharField(max_length=254)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class RefreshInputSerializer(serializers.Serializer):
    refresh = serializers.CharField(max_length=4096)


class TokenPairOutputSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class TiledeskUserOutputSerializer(serializers.Serializer):
    _id = serializers.CharField(source="pk")
    email = serializers.EmailField()
    firstname = serializers.CharField(source="first_name")
    lastname = serializers.CharField(source="last_name")


class TiledeskSignInOutputSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    token = serializers.CharField(help_text='"JWT <access token>", as Tiledesk clients expect.')
    user = TiledeskUserOutputSerializer()
