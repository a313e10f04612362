"""config.precompiled.ModelRow: the same instances the ORM would load, on SQLite and PostgreSQL."""

import uuid

import pytest
from django.db.models import Model

from contacts.models import Contact, Device
from contacts.selectors import _PRINCIPAL_ROW
from tests.factories import DeviceFactory, VerifiedContactFactory

pytestmark = pytest.mark.django_db


def field_values(instance: Model) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def test_the_row_loads_what_the_orm_loads_with_every_type_converted():
    # given: a contact with JSON, datetimes, UUIDs and text
    contact = VerifiedContactFactory(
        custom_data={"plan": "gold", "nested": {"n": [1, 2.5, None, True]}},
        non_verified_custom_data={"é": "ü"},
        name="Zoë",
    )
    device = DeviceFactory(contact=contact, org=contact.org, user_agent="UA/1")

    # when
    loaded_device, loaded_contact = _PRINCIPAL_ROW.fetch(device.pk, contact.org_id, contact.pk)

    # then
    assert field_values(loaded_device) == field_values(Device.objects.get(pk=device.pk))
    assert field_values(loaded_contact) == field_values(Contact.objects.get(pk=contact.pk))
    assert isinstance(loaded_contact.pk, uuid.UUID)
    assert loaded_contact.custom_data["nested"] == {"n": [1, 2.5, None, True]}
    assert loaded_contact.verified_at.tzinfo is not None
    assert not loaded_contact._state.adding
    assert loaded_contact._state.db == "default"


def test_no_row_is_none(org):
    assert _PRINCIPAL_ROW.fetch(uuid.uuid4(), org.pk, uuid.uuid4()) is None


def test_a_loaded_instance_saves_like_an_orm_one():
    device = DeviceFactory()
    _loaded_device, loaded_contact = _PRINCIPAL_ROW.fetch(
        device.pk, device.org_id, device.contact_id
    )

    loaded_contact.name = "Renamed"
    loaded_contact.save(update_fields=["name"])

    assert Contact.objects.get(pk=device.contact_id).name == "Renamed"
    assert Contact.objects.count() == 1
