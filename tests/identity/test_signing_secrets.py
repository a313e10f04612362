"""Signing secrets for customer-signed tokens: the operator API, storage, the two-active rule."""

import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings
from django.db import connection
from rest_framework import serializers

from identity import services
from identity.models import SigningSecret
from identity.tokens import secret_decrypt
from tests.concurrency import in_parallel
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

FORBIDDEN = {
    "error": {
        "code": "permission_denied",
        "message": "You do not have permission to perform this action.",
    }
}
NOT_FOUND = {"error": {"code": "not_found", "message": "Not found."}}
TOO_MANY = {
    "error": {
        "code": "too_many_active_secrets",
        "message": "An org has at most 2 active signing secrets. Retire one before adding another.",
    }
}


def iso(value) -> str | None:
    return serializers.DateTimeField().to_representation(value) if value else None


def secrets_url(org) -> str:
    return f"/api/v1/orgs/{org.id}/signing-secrets"


def public_pem(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(private_key) -> str:
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def invalid(fields: dict) -> dict:
    return {"error": {"code": "invalid", "message": "The request is invalid.", "fields": fields}}


# --- POST: generated HS256 secrets ---------------------------------------------------------


def test_operator_generates_an_hs256_secret_shown_once(operator_client, operator_user, org):
    # when
    response = operator_client.post(secrets_url(org), {"algorithm": "HS256"}, format="json")

    # then
    body = response.json()
    row = SigningSecret.objects.get()
    assert response.status_code == 201
    assert body == {
        "kid": row.kid,
        "algorithm": "HS256",
        "secret": body["secret"],
        "created_at": iso(row.created_at),
    }
    assert re.match(r"^kid_[A-Za-z0-9]{16}$", row.kid)
    assert re.match(r"^css_[A-Za-z0-9]{48}$", body["secret"])
    assert row.org == org
    assert row.created_by == operator_user
    assert row.public_key == ""
    assert (
        secret_decrypt(row.encrypted_secret, encryption_key=settings.SIGNING_SECRET_ENCRYPTION_KEY)
        == body["secret"]
    )


def test_the_hs256_secret_is_never_stored_in_plaintext(operator_client, org):
    # given
    secret = operator_client.post(secrets_url(org), {"algorithm": "HS256"}, format="json").json()[
        "secret"
    ]

    # when: the raw row, every column, as the database holds it
    table = SigningSecret._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - a model's own table name
        rows = cursor.fetchall()

    # then: neither the secret nor its random part is anywhere
    raw = repr(rows)
    assert len(rows) == 1
    assert secret not in raw
    assert secret.removeprefix("css_") not in raw


def test_the_secret_never_appears_in_the_list(operator_client, org):
    secret = operator_client.post(secrets_url(org), {"algorithm": "HS256"}, format="json").json()[
        "secret"
    ]

    response = operator_client.get(secrets_url(org))

    assert secret not in response.content.decode()
    assert set(response.json()[0]) == {"kid", "algorithm", "created_at", "retired_at"}


# --- POST: uploaded public keys --------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_operator_registers_a_public_key(operator_client, org, rsa_key, ec_key, algorithm):
    # given
    key = rsa_key if algorithm == "RS256" else ec_key

    # when
    response = operator_client.post(
        secrets_url(org), {"algorithm": algorithm, "public_key": public_pem(key)}, format="json"
    )

    # then
    row = SigningSecret.objects.get()
    assert response.status_code == 201
    assert response.json() == {
        "kid": row.kid,
        "algorithm": algorithm,
        "created_at": iso(row.created_at),
    }
    assert row.public_key == public_pem(key)
    assert row.encrypted_secret == ""


def test_a_pkcs1_rsa_public_key_is_stored_in_canonical_form(operator_client, org, rsa_key):
    pkcs1 = (
        rsa_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
        .decode()
    )

    response = operator_client.post(
        secrets_url(org), {"algorithm": "RS256", "public_key": pkcs1}, format="json"
    )

    assert response.status_code == 201
    assert SigningSecret.objects.get().public_key == public_pem(rsa_key)


def _small_rsa():
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key under test


@pytest.mark.parametrize(
    ("algorithm", "key_of", "message"),
    [
        ("RS256", _small_rsa, "RSA keys must be 2048 to 8192 bits, not 1024."),
        (
            "RS256",
            lambda: ec.generate_private_key(ec.SECP256R1()),
            "RS256 needs an RSA public key.",
        ),
        (
            "ES256",
            lambda: ec.generate_private_key(ec.SECP384R1()),
            "ES256 needs an EC public key on the P-256 curve.",
        ),
        ("ES256", _small_rsa, "ES256 needs an EC public key on the P-256 curve."),
        (
            "ES256",
            ed25519.Ed25519PrivateKey.generate,
            "ES256 needs an EC public key on the P-256 curve.",
        ),
    ],
)
def test_a_public_key_of_the_wrong_type_or_size_is_400(
    operator_client, org, algorithm, key_of, message
):
    response = operator_client.post(
        secrets_url(org),
        {"algorithm": algorithm, "public_key": public_pem(key_of())},
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == invalid({"public_key": [message]})
    assert SigningSecret.objects.count() == 0


@pytest.mark.parametrize(
    ("exponent", "modulus_plus"),
    [(3, 0), (65535, 0), (2**256 + 1, 0), (65537, 1)],
    ids=["e=3", "e=65535", "e-over-2^256", "even-modulus"],
)
def test_an_rsa_key_outside_fips_bounds_is_400(
    operator_client, org, rsa_key, exponent, modulus_plus
):
    # given: a 2048-bit public key with an exponent or a modulus no sound key pair has
    modulus = rsa_key.public_key().public_numbers().n + modulus_plus
    unsound = rsa.RSAPublicNumbers(exponent, modulus).public_key()
    pem = unsound.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()

    # when
    response = operator_client.post(
        secrets_url(org), {"algorithm": "RS256", "public_key": pem}, format="json"
    )

    # then
    assert response.status_code == 400
    assert response.json() == invalid(
        {
            "public_key": [
                "RSA keys need an odd modulus and an odd public exponent above 65536 "
                "(65537 is the usual one)."
            ]
        }
    )
    assert SigningSecret.objects.count() == 0


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_a_private_key_is_refused(operator_client, org, rsa_key, ec_key, algorithm):
    key = rsa_key if algorithm == "RS256" else ec_key

    response = operator_client.post(
        secrets_url(org), {"algorithm": algorithm, "public_key": private_pem(key)}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == invalid(
        {
            "public_key": [
                "This is a private key. Upload only the public key; keep the private key secret."
            ]
        }
    )
    assert SigningSecret.objects.count() == 0


@pytest.mark.parametrize(
    "public_key",
    [
        "not a key",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    ],
)
def test_text_that_is_not_a_pem_public_key_is_400(operator_client, org, public_key):
    response = operator_client.post(
        secrets_url(org), {"algorithm": "RS256", "public_key": public_key}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == invalid(
        {"public_key": ["Must be a PEM public key (-----BEGIN PUBLIC KEY-----)."]}
    )
    assert SigningSecret.objects.count() == 0


def test_a_public_key_over_16_kib_is_400(operator_client, org, rsa_key):
    padded = public_pem(rsa_key) + "\n" * (16 * 1024)

    response = operator_client.post(
        secrets_url(org), {"algorithm": "RS256", "public_key": padded}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == invalid(
        {"public_key": ["Ensure this field has no more than 16384 characters."]}
    )
    assert SigningSecret.objects.count() == 0


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, {"algorithm": ["This field is required."]}),
        ({"algorithm": "none"}, {"algorithm": ['"none" is not a valid choice.']}),
        ({"algorithm": "HS384"}, {"algorithm": ['"HS384" is not a valid choice.']}),
        ({"algorithm": "hs256"}, {"algorithm": ['"hs256" is not a valid choice.']}),
        ({"algorithm": "RS256"}, {"public_key": ["This field is required for RS256."]}),
        ({"algorithm": "ES256"}, {"public_key": ["This field is required for ES256."]}),
        (
            {"algorithm": "HS256", "public_key": "x"},
            {"public_key": ["HS256 secrets are generated by the server; send no key."]},
        ),
        ({"algorithm": "RS256", "public_key": 5}, {"public_key": ["Must be a string."]}),
    ],
)
def test_invalid_create_is_400_and_writes_nothing(operator_client, org, payload, fields):
    response = operator_client.post(secrets_url(org), payload, format="json")

    assert response.status_code == 400
    assert response.json() == invalid(fields)
    assert SigningSecret.objects.count() == 0


# --- at most two active ----------------------------------------------------------------------


def test_a_third_active_secret_is_409_until_one_is_retired(operator_client, org, rsa_key):
    # given: two active, of either kind
    first = operator_client.post(secrets_url(org), {"algorithm": "HS256"}, format="json").json()
    operator_client.post(
        secrets_url(org), {"algorithm": "RS256", "public_key": public_pem(rsa_key)}, format="json"
    )

    # when
    third = operator_client.post(secrets_url(org), {"algorithm": "HS256"}, format="json")
    third_key = operator_client.post(
        secrets_url(org), {"algorithm": "RS256", "public_key": public_pem(rsa_key)}, format="json"
    )

    # then
    assert third.status_code == third_key.status_code == 409
    assert third.json() == third_key.json() == TOO_MANY
    assert SigningSecret.objects.count() == 2

    # when: one retires, there is room again
    operator_client.delete(f"{secrets_url(org)}/{first['kid']}")
    again = operator_client.post(secrets_url(org), {"algorithm": "HS256"}, format="json")

    # then
    assert again.status_code == 201
    assert SigningSecret.objects.filter(retired_at__isnull=True).count() == 2


def test_the_limit_is_per_org(org, other_org):
    for _ in range(2):
        services.signing_secret_create_shared(org=other_org, created_by=None)

    issued = services.signing_secret_create_shared(org=org, created_by=None)

    assert issued.signing_secret.org == org


@pytest.mark.postgres_only(reason="needs PostgreSQL row locks")
@pytest.mark.django_db(transaction=True)
def test_concurrent_creations_never_exceed_two_active():
    # given: an org with one active secret and eight requests racing for the last slot
    org = OrganizationFactory()
    services.signing_secret_create_shared(org=org, created_by=None)
    outcomes = []

    def create(n: int) -> None:
        try:
            services.signing_secret_create_shared(org=org, created_by=None)
            outcomes.append("created")
        except services.TooManyActiveSecrets:
            outcomes.append("conflict")

    # when
    in_parallel(create, 8)

    # then
    assert sorted(outcomes) == ["conflict"] * 7 + ["created"]
    assert SigningSecret.objects.filter(org=org, retired_at__isnull=True).count() == 2


# --- GET and DELETE ---------------------------------------------------------------------------


def test_list_shows_kids_newest_first_with_retired_ones(operator_client, org, other_org, rsa_key):
    # given
    old = services.signing_secret_create_shared(org=org, created_by=None).signing_secret
    new = services.signing_secret_create_public_key(
        org=org, created_by=None, algorithm="RS256", public_key=public_pem(rsa_key)
    )
    services.signing_secret_retire(org=org, kid=old.kid, retired_by=None)
    services.signing_secret_create_shared(org=other_org, created_by=None)
    old.refresh_from_db()

    # when
    response = operator_client.get(secrets_url(org))

    # then
    assert response.status_code == 200
    assert response.json() == [
        {
            "kid": new.kid,
            "algorithm": "RS256",
            "created_at": iso(new.created_at),
            "retired_at": None,
        },
        {
            "kid": old.kid,
            "algorithm": "HS256",
            "created_at": iso(old.created_at),
            "retired_at": iso(old.retired_at),
        },
    ]
    assert "BEGIN PUBLIC KEY" not in response.content.decode()


def test_list_queries_do_not_grow_with_the_number_of_secrets(
    operator_client, operator_user, org, django_assert_num_queries
):
    def add_retired(count):
        for _ in range(count):
            issued = services.signing_secret_create_shared(org=org, created_by=operator_user)
            services.signing_secret_retire(
                org=org, kid=issued.signing_secret.kid, retired_by=operator_user
            )

    # given
    add_retired(1)
    with django_assert_num_queries(3):  # the agent, the membership, the secrets
        operator_client.get(secrets_url(org))

    # when
    add_retired(9)

    # then
    with django_assert_num_queries(3):
        response = operator_client.get(secrets_url(org))
    assert len(response.json()) == 10


def test_retire_keeps_the_row_and_is_idempotent(operator_client, org):
    # given
    kid = services.signing_secret_create_shared(org=org, created_by=None).signing_secret.kid

    # when
    first = operator_client.delete(f"{secrets_url(org)}/{kid}")
    retired_at = SigningSecret.objects.get().retired_at
    second = operator_client.delete(f"{secrets_url(org)}/{kid}")

    # then
    assert first.status_code == second.status_code == 204
    assert retired_at is not None
    assert SigningSecret.objects.get().retired_at == retired_at


def test_retiring_another_orgs_kid_is_404_and_leaves_it_alone(operator_client, org, other_org):
    kid = services.signing_secret_create_shared(org=other_org, created_by=None).signing_secret.kid

    response = operator_client.delete(f"{secrets_url(org)}/{kid}")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert SigningSecret.objects.get().retired_at is None


@pytest.mark.parametrize("kid", ["kid_unknown", "..%2F..%2Fetc", "k" * 65])
def test_retiring_an_unknown_or_malformed_kid_is_404(operator_client, org, kid):
    services.signing_secret_create_shared(org=org, created_by=None)

    response = operator_client.delete(f"{secrets_url(org)}/{kid}")

    assert response.status_code == 404
    assert SigningSecret.objects.get().retired_at is None


# --- who may manage secrets -------------------------------------------------------------------


def test_a_plain_agent_cannot_create_list_or_retire(agent_client, org):
    kid = services.signing_secret_create_shared(org=org, created_by=None).signing_secret.kid

    created = agent_client.post(secrets_url(org), {"algorithm": "HS256"}, format="json")
    listed = agent_client.get(secrets_url(org))
    retired = agent_client.delete(f"{secrets_url(org)}/{kid}")

    assert [created.status_code, listed.status_code, retired.status_code] == [403, 403, 403]
    assert created.json() == listed.json() == retired.json() == FORBIDDEN
    assert SigningSecret.objects.count() == 1
    assert SigningSecret.objects.get().retired_at is None


def test_an_api_key_cannot_manage_signing_secrets(api_client, org, other_org):
    # given
    key = services.api_key_create(
        org=org,
        created_by=None,
        name="all",
        scopes=["widget:authenticate", "contacts:write", "conversations:write"],
        expires_at=None,
    ).key
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")

    # when
    own = api_client.post(secrets_url(org), {"algorithm": "HS256"}, format="json")
    other = api_client.post(secrets_url(other_org), {"algorithm": "HS256"}, format="json")

    # then
    assert own.status_code == 403
    assert own.json() == FORBIDDEN
    assert other.status_code == 404
    assert SigningSecret.objects.count() == 0


def test_an_operator_of_another_org_gets_404(operator_client, other_org):
    response = operator_client.post(secrets_url(other_org), {"algorithm": "HS256"}, format="json")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND
    assert SigningSecret.objects.count() == 0


def test_signing_secret_routes_need_authentication(api_client, org):
    response = api_client.post(secrets_url(org), {"algorithm": "HS256"}, format="json")

    assert response.status_code == 401
    assert SigningSecret.objects.count() == 0
