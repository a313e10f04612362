"""Serializers whose fields are built once per class (config.serializers.FieldsOnceSerializer)."""

import copy
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from rest_framework import serializers

import contacts.api.agents
import contacts.api.serializers
import conversations.api.serializers
import identity.api.audit
import identity.api.serializers
from config.fields import UtcDateTimeField
from config.serializers import FieldsOnceSerializer
from contacts.api.agents import ContactListItemOutputSerializer
from contacts.api.serializers import (
    AuthenticateUserInputSerializer,
    MeOutputSerializer,
    UnverifiedOutputSerializer,
)
from contacts.models import Contact
from contacts.selectors import CONTACT_LIST_FIELDS
from conversations.api.serializers import SessionOutputSerializer, WithLastMessageSerializer
from conversations.models import Conversation


class Inner(FieldsOnceSerializer):
    code = serializers.IntegerField(min_value=0)


class Outer(FieldsOnceSerializer):
    name = serializers.CharField(max_length=5)
    inner = Inner(required=False)
    kind = serializers.ChoiceField(choices=["a", "b"], default="a")


def test_instances_share_one_set_of_fields_bound_to_a_template(monkeypatch):
    # given: the class's fields already built
    first = Outer(data={"name": "x"})
    assert first.fields

    # when: more instances are made, nothing is copied again
    deepcopies = []
    monkeypatch.setattr(copy, "deepcopy", lambda *a, **k: deepcopies.append(a))
    second, third = Outer(data={"name": "y"}), Outer({"name": "z"})

    # then: they use the same field objects, bound to neither of them
    assert second.fields is first.fields is third.fields
    assert deepcopies == []
    template = first.fields["name"].parent
    assert template not in (first, second, third)
    assert not hasattr(template, "initial_data") and template.instance is None


def test_a_subclass_has_its_own_fields():
    assert set(SessionOutputSerializer().fields) > set(WithLastMessageSerializer().fields)
    assert set(WithLastMessageSerializer().fields) == {"last_message"}


@pytest.mark.parametrize("kwargs", [{"context": {"org": 1}}, {"partial": True}])
def test_context_and_partial_are_refused(kwargs):
    # A shared field would read the template's context and partial flag, not this instance's.
    with pytest.raises(TypeError):
        Outer(data={"name": "x"}, **kwargs)


def test_each_instance_keeps_its_own_errors_and_data():
    bad = Outer(data={"name": "toolong", "inner": {"code": -1}, "kind": "c"})
    good = Outer(data={"name": "ok", "inner": {"code": 3}})

    assert not bad.is_valid()
    assert good.is_valid(), good.errors

    assert set(bad.errors) == {"name", "inner", "kind"}
    assert "code" in bad.errors["inner"]
    assert good.validated_data == {"name": "ok", "inner": {"code": 3}, "kind": "a"}
    assert Outer(data={}).is_valid() is False


def test_concurrent_validation_on_threads_never_mixes_requests():
    def validate(n: int):
        data = {"email": f"user{n}@example.com", "user_id": f"u{n}"}
        if n % 3 == 0:
            data["http_action_overrides"] = {"headers": {"n": n}}
        if n % 5 == 0:
            data["email"] = "not an email"
        serializer = AuthenticateUserInputSerializer(data=data)
        return n, serializer.is_valid(), dict(serializer.validated_data), dict(serializer.errors)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(validate, range(400)))

    for n, valid, validated, errors in results:
        assert valid == (n % 5 != 0)
        if valid:
            assert validated["user_id"] == f"u{n}"
            assert validated["email"] == f"user{n}@example.com"
            overrides = validated.get("http_action_overrides")
            assert overrides == ({"headers": {"n": n}} if n % 3 == 0 else None)
        else:
            assert set(errors) == {"email"}


def test_output_is_what_a_plain_serializer_renders():
    class Contact:
        id = "7f1c5c52-0a53-4ad6-9f8b-6f0e3f4ae3a8"
        trust = "anonymous"

    body = {"token": "t", "contact": Contact(), "externalId": "e", "expires_at": None}
    plain = type(
        "Plain",
        (serializers.Serializer,),
        copy.deepcopy(UnverifiedOutputSerializer._declared_fields),
    )

    assert UnverifiedOutputSerializer(body).data == plain(body).data
    assert UnverifiedOutputSerializer(body).data["contact"] == {
        "id": Contact.id,
        "trust": "anonymous",
    }


def test_every_api_timestamp_is_written_in_utc():
    # DRF's own field writes the active time zone's offset; the API's timestamps are UTC.
    plain = []
    for module in [
        contacts.api.agents,
        contacts.api.serializers,
        conversations.api.serializers,
        identity.api.audit,
        identity.api.serializers,
    ]:
        for name, value in vars(module).items():
            if isinstance(value, type) and issubclass(value, serializers.Serializer):
                for field_name, field in value().fields.items():
                    if type(field) is serializers.DateTimeField and field.read_only is False:
                        plain.append(f"{module.__name__}.{name}.{field_name}")
    # The one input: an API key's expiry, given by the operator.
    assert plain == ["identity.api.serializers.ApiKeyCreateInputSerializer.expires_at"]
    assert (
        UtcDateTimeField().to_representation(datetime(2026, 11, 30, 12, tzinfo=UTC))
        == "2026-11-30T12:00:00Z"
    )


@pytest.mark.parametrize("external_id", ["", "order-42"])
@pytest.mark.parametrize("last_message", [False, True])
@pytest.mark.parametrize("status", ["open", "closed"])
def test_the_history_item_is_what_drf_renders_from_its_fields(external_id, last_message, status):
    # SessionOutputSerializer builds its item directly; DRF's generic rendering of the same
    # declared fields must give the same keys, in the same order, with the same values.
    created = datetime(2026, 11, 30, 8, 15, 0, 123456, tzinfo=UTC)
    conversation = Conversation(
        id=uuid.uuid4(),
        status=status,
        created_at=created,
        last_message_at=created + timedelta(minutes=5),
        external_id=external_id,
    )
    conversation.last_message_created_at = created + timedelta(minutes=5) if last_message else None
    conversation.last_message_text = "Where is my order?" if last_message else None
    conversation.last_message_sender_kind = "contact" if last_message else None
    serializer = SessionOutputSerializer()

    direct = serializer.to_representation(conversation)
    generic = serializers.Serializer.to_representation(serializer, conversation)

    assert list(direct.items()) == list(generic.items())


@pytest.mark.parametrize("verified", [False, True])
def test_the_contact_list_item_is_what_drf_renders_from_its_fields(verified):
    # ContactListItemOutputSerializer builds its item directly; DRF's generic rendering of the
    # same declared fields must give the same keys, in the same order, with the same values.
    seen = datetime(2026, 11, 30, 8, 15, 0, 123456, tzinfo=UTC)
    contact = Contact(
        id=uuid.uuid4(),
        trust="verified" if verified else "non_verified",
        name="Robin Hood",
        email="robin@wood.test",
        user_id="u-42" if verified else "",
        verified_at=seen if verified else None,
        first_seen_at=seen - timedelta(days=3),
        last_seen_at=seen,
    )
    serializer = ContactListItemOutputSerializer()

    direct = serializer.to_representation(contact)
    generic = serializers.Serializer.to_representation(serializer, contact)

    assert list(direct.items()) == list(generic.items())


@pytest.mark.parametrize(
    ("trust", "name", "email"),
    [
        ("anonymous", "", ""),
        ("non_verified", "Zoë", "zoe@wood.test"),
        ("verified", "Robin", "r@x.test"),
    ],
)
def test_the_me_body_is_what_drf_renders_from_its_fields(trust, name, email):
    # MeOutputSerializer builds its body directly; DRF's generic rendering of the same declared
    # fields must give the same keys, in the same order, with the same values.
    contact = Contact(id=uuid.uuid4(), trust=trust, name=name, email=email)
    serializer = MeOutputSerializer()

    direct = serializer.to_representation(contact)
    generic = serializers.Serializer.to_representation(serializer, contact)

    assert list(direct.items()) == list(generic.items())


def test_the_contact_list_loads_every_column_its_items_show_and_no_other():
    assert set(ContactListItemOutputSerializer().fields) == set(CONTACT_LIST_FIELDS)


def test_no_schema_component_describes_the_shared_fields_implementation():
    # drf-spectacular describes a component with the first docstring among its serializer's
    # classes below DRF's: FieldsOnceSerializer's would describe the implementation to clients.
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]

    described = {
        name: component.get("description", "")
        for name, component in components.items()
        if "built once per class" in component.get("description", "")
    }
    assert described == {}
    assert components["ContactListItemOutput"]["description"] == (
        ContactListItemOutputSerializer.__doc__
    )
