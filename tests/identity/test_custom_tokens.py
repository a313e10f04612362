"""Customer-signed tokens (SPEC §3.3): verification, the forgery grid, and jti replay."""

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings

from identity import selectors, services
from identity.models import SigningSecret
from identity.tokens import InvalidTokenError, custom_token_org_id_unverified
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


# --- helpers ---------------------------------------------------------------------------------


def b64url(data: bytes | dict) -> str:
    if isinstance(data, dict):
        data = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


DROP = object()  # a claims_for() override that removes the claim


def our_audience(org) -> str:
    return f"{settings.PUBLIC_URL}/projects/{org.id}"


def claims_for(org, **overrides) -> dict:
    now = int(time.time())
    claims = {
        "_id": "customer-42",
        "email": "ada@shop.test",
        "firstname": "Ada",
        "lastname": "Lovelace",
        "attributes": {"plan": "gold"},
        "iss": "https://shop.test",
        "sub": "customer-42",
        "aud": our_audience(org),
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not DROP}


def sign(claims: dict, key, *, algorithm="HS256", kid=None, **headers) -> str:
    if kid is not None:
        headers["kid"] = kid
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers or None)


def hs_sign_raw(header: dict, claims: dict, key: bytes) -> str:
    """HMAC-SHA256 by hand, for headers and keys PyJWT would refuse to produce."""
    signing_input = f"{b64url(header)}.{b64url(claims)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def verify(token: str, org) -> dict:
    return selectors.custom_token_verify(token=token, org=org)


def refused(token: str, org) -> bool:
    try:
        verify(token, org)
    except InvalidTokenError:
        return True
    return False


def pem_of(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def shared(org):
    """The org's one active HS256 secret: (kid, plaintext secret)."""
    issued = services.signing_secret_create_shared(org=org, created_by=None)
    return issued.signing_secret.kid, issued.secret


# --- happy paths -----------------------------------------------------------------------------


def test_a_valid_hs256_token_returns_exactly_the_verified_claims(org, shared):
    # given
    kid, secret = shared
    claims = claims_for(org, role="owner", admin=True)

    # when
    verified = verify(sign(claims, secret, kid=kid), org)

    # then: role and unknown claims are dropped, never acted on
    assert verified == {
        "_id": "customer-42",
        "email": "ada@shop.test",
        "firstname": "Ada",
        "lastname": "Lovelace",
        "attributes": {"plan": "gold"},
        "iss": "https://shop.test",
        "sub": "customer-42",
        "aud": our_audience(org),
        "iat": claims["iat"],
        "exp": claims["exp"],
        "jti": claims["jti"],
        "kid": kid,
    }


def test_optional_claims_absent_are_none(org, shared):
    kid, secret = shared
    claims = claims_for(
        org, email=DROP, firstname=DROP, lastname=DROP, attributes=DROP, iss=DROP, sub=DROP
    )

    verified = verify(sign(claims, secret, kid=kid), org)

    assert {k: verified[k] for k in ("email", "firstname", "lastname", "attributes", "iss")} == {
        "email": None,
        "firstname": None,
        "lastname": None,
        "attributes": None,
        "iss": None,
    }
    assert verified["sub"] is None


def test_kid_may_be_absent_while_the_org_has_one_active_secret(org, shared):
    _, secret = shared

    verified = verify(sign(claims_for(org), secret), org)

    assert verified["kid"] == shared[0]


def test_tiledesk_audience_form_is_accepted(org, shared):
    kid, secret = shared
    claims = claims_for(org, aud=f"https://tiledesk.com/projects/{org.id}")

    assert verify(sign(claims, secret, kid=kid), org)["aud"] == claims["aud"]


def test_a_typ_of_jwt_in_any_case_is_accepted(org, shared):
    kid, secret = shared

    for typ in ("JWT", "jwt"):
        assert verify(sign(claims_for(org), secret, kid=kid, typ=typ), org)["_id"] == "customer-42"


def test_rs256_happy_path_with_an_uploaded_public_key(org, rsa_key):
    # given
    signing_secret = services.signing_secret_create_public_key(
        org=org, created_by=None, algorithm="RS256", public_key=pem_of(rsa_key)
    )

    # when
    verified = verify(
        sign(claims_for(org), rsa_key, algorithm="RS256", kid=signing_secret.kid), org
    )

    # then
    assert verified["_id"] == "customer-42"
    assert verified["kid"] == signing_secret.kid


def test_es256_happy_path_with_an_uploaded_public_key(org, ec_key):
    signing_secret = services.signing_secret_create_public_key(
        org=org, created_by=None, algorithm="ES256", public_key=pem_of(ec_key)
    )

    verified = verify(sign(claims_for(org), ec_key, algorithm="ES256", kid=signing_secret.kid), org)

    assert verified["_id"] == "customer-42"


def test_two_active_secrets_each_verify_their_own_tokens(org, shared):
    # given: a rotation in progress
    old_kid, old_secret = shared
    new = services.signing_secret_create_shared(org=org, created_by=None)

    # when / then
    assert verify(sign(claims_for(org), old_secret, kid=old_kid), org)["kid"] == old_kid
    assert verify(sign(claims_for(org), new.secret, kid=new.signing_secret.kid), org)["kid"] == (
        new.signing_secret.kid
    )
    assert refused(sign(claims_for(org), new.secret, kid=old_kid), org)


def test_exp_within_the_leeway_is_accepted(org, shared):
    kid, secret = shared
    now = int(time.time())

    verified = verify(sign(claims_for(org, iat=now - 300, exp=now - 30), secret, kid=kid), org)

    assert verified["exp"] == now - 30


def test_a_lifetime_of_exactly_ten_minutes_is_accepted(org, shared):
    kid, secret = shared
    now = int(time.time())

    assert verify(sign(claims_for(org, iat=now, exp=now + 600), secret, kid=kid), org)


def test_verification_with_a_kid_is_one_query(org, shared, django_assert_num_queries):
    kid, secret = shared
    token = sign(claims_for(org), secret, kid=kid)

    with django_assert_num_queries(1):
        verify(token, org)


def test_hand_signed_tokens_verify_when_nothing_is_wrong(org, shared):
    # the control for the grid below: hs_sign_raw itself makes valid tokens
    kid, secret = shared
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}

    assert verify(hs_sign_raw(header, claims_for(org), secret.encode()), org)["kid"] == kid


# --- the forgery grid ------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["", "c2ln"])
def test_alg_none_in_any_casing_is_refused(org, shared, alg, signature):
    kid, _ = shared
    token = f"{b64url({'alg': alg, 'kid': kid})}.{b64url(claims_for(org))}.{signature}"

    assert refused(token, org)


def test_a_stripped_signature_is_refused(org, shared):
    kid, secret = shared
    header, payload, _ = sign(claims_for(org), secret, kid=kid).split(".")

    assert refused(f"{header}.{payload}.", org)
    assert refused(f"{header}.{payload}", org)


def test_a_signature_swapped_from_another_valid_token_is_refused(org, shared):
    # given: two genuine tokens
    kid, secret = shared
    mine = sign(claims_for(org, _id="attacker"), secret, kid=kid)
    theirs = sign(claims_for(org, _id="victim"), secret, kid=kid)

    # when: the victim's payload travels with the attacker's signature
    header, _, signature = mine.split(".")
    forged = f"{header}.{theirs.split('.')[1]}.{signature}"

    # then
    assert refused(forged, org)


def test_a_token_signed_with_another_key_is_refused(org, shared):
    kid, _ = shared

    assert refused(sign(claims_for(org), "css_" + "x" * 48, kid=kid), org)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_hmac_algorithms_with_the_right_secret_are_refused(org, shared, algorithm):
    kid, secret = shared

    assert refused(sign(claims_for(org), secret, algorithm=algorithm, kid=kid), org)


def test_an_rs256_header_against_a_shared_secret_is_refused(org, shared, rsa_key):
    kid, _ = shared

    assert refused(sign(claims_for(org), rsa_key, algorithm="RS256", kid=kid), org)


def test_the_rsa_public_key_pem_used_as_an_hmac_secret_is_refused(org, rsa_key):
    # given: the org verifies RS256 with a public key the attacker can read
    public_pem = pem_of(rsa_key)
    signing_secret = services.signing_secret_create_public_key(
        org=org, created_by=None, algorithm="RS256", public_key=public_pem
    )
    stored_pem = SigningSecret.objects.get(pk=signing_secret.pk).public_key

    # when: they HMAC-sign with the PEM text (both the uploaded and the stored form)
    forged = [
        hs_sign_raw({"alg": "HS256", "kid": signing_secret.kid}, claims_for(org), pem.encode())
        for pem in (public_pem, stored_pem)
    ]

    # then
    assert all(refused(token, org) for token in forged)


def test_an_es256_token_against_an_rs256_key_is_refused(org, rsa_key, ec_key):
    signing_secret = services.signing_secret_create_public_key(
        org=org, created_by=None, algorithm="RS256", public_key=pem_of(rsa_key)
    )

    token = sign(claims_for(org), ec_key, algorithm="ES256", kid=signing_secret.kid)

    assert refused(token, org)


@pytest.mark.parametrize(
    "kid",
    [
        "../../etc/passwd",
        "kid_" + "a" * 10_000,
        "kid_" + "a" * 61,
        "",
        "kid with spaces",
        "kid_\u00e9",
        1,
        1.5,
        True,
        ["kid_a"],
        {"kid": "kid_a"},
        None,
    ],
)
def test_malformed_kids_are_refused(org, shared, kid):
    _, secret = shared
    header = {"alg": "HS256", "kid": kid}

    assert refused(hs_sign_raw(header, claims_for(org), secret.encode()), org)


def test_an_unknown_kid_is_refused(org, shared):
    _, secret = shared

    assert refused(sign(claims_for(org), secret, kid="kid_unknown0000000"), org)


def test_another_orgs_kid_and_secret_are_refused(org, other_org):
    # given: a genuine token of the other org, re-addressed to this one
    issued = services.signing_secret_create_shared(org=other_org, created_by=None)
    services.signing_secret_create_shared(org=org, created_by=None)
    token = sign(claims_for(org), issued.secret, kid=issued.signing_secret.kid)

    # when / then
    assert refused(token, org)


def test_an_absent_kid_is_refused_when_two_secrets_are_active(org, shared):
    _, secret = shared
    services.signing_secret_create_shared(org=org, created_by=None)

    assert refused(sign(claims_for(org), secret), org)


def test_any_token_is_refused_when_the_org_has_no_active_secret(org):
    assert refused(sign(claims_for(org), "css_" + "x" * 48), org)


@pytest.mark.parametrize(
    "extra",
    [
        {"crit": ["exp"]},
        {"crit": []},
        {"jku": "https://evil.test/jwks.json"},
        {"x5u": "https://evil.test/cert.pem"},
        {"x5c": ["MIIB"]},
        {"jwk": {"kty": "oct", "k": "c2VjcmV0"}},
        {"b64": False},
    ],
)
def test_headers_that_choose_a_key_or_demand_extensions_are_refused(org, shared, extra):
    # given: otherwise perfectly signed with the right secret
    kid, secret = shared
    header = {"alg": "HS256", "typ": "JWT", "kid": kid, **extra}

    # when / then
    assert refused(hs_sign_raw(header, claims_for(org), secret.encode()), org)


@pytest.mark.parametrize("typ", ["at+jwt", "contact+jwt", "JWS", 1])
def test_a_typ_other_than_jwt_is_refused(org, shared, typ):
    kid, secret = shared
    header = {"alg": "HS256", "typ": typ, "kid": kid}

    assert refused(hs_sign_raw(header, claims_for(org), secret.encode()), org)


def test_a_header_with_duplicate_keys_is_refused(org, shared):
    kid, secret = shared
    header = f'{{"alg":"none","alg":"HS256","kid":"{kid}"}}'.encode()
    signing_input = f"{b64url(header)}.{b64url(claims_for(org))}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()

    assert refused(f"{signing_input}.{b64url(signature)}", org)


def test_an_expired_token_is_refused(org, shared):
    kid, secret = shared
    now = int(time.time())

    assert refused(sign(claims_for(org, iat=now - 400, exp=now - 61), secret, kid=kid), org)


def test_nbf_in_the_future_is_refused(org, shared):
    kid, secret = shared
    now = int(time.time())

    assert refused(sign(claims_for(org, nbf=now + 120), secret, kid=kid), org)


def test_nbf_in_the_past_is_honoured(org, shared):
    kid, secret = shared
    now = int(time.time())

    assert verify(sign(claims_for(org, nbf=now - 10), secret, kid=kid), org)


def test_iat_in_the_future_beyond_the_leeway_is_refused(org, shared):
    kid, secret = shared
    now = int(time.time())

    assert refused(sign(claims_for(org, iat=now + 120, exp=now + 400), secret, kid=kid), org)


@pytest.mark.parametrize(("iat_offset", "exp_offset"), [(0, 601), (0, 86_400), (-1000, 0)])
def test_lifetimes_over_ten_minutes_are_refused(org, shared, iat_offset, exp_offset):
    kid, secret = shared
    now = int(time.time())
    claims = claims_for(org, iat=now + iat_offset, exp=now + exp_offset)

    assert refused(sign(claims, secret, kid=kid), org)


def test_exp_before_iat_is_refused(org, shared):
    kid, secret = shared
    now = int(time.time())

    assert refused(sign(claims_for(org, iat=now, exp=now - 1), secret, kid=kid), org)


@pytest.mark.parametrize("claim", ["exp", "iat", "_id", "aud"])
def test_missing_required_claims_are_refused(org, shared, claim):
    kid, secret = shared

    assert refused(sign(claims_for(org, **{claim: DROP}), secret, kid=kid), org)


@pytest.mark.parametrize(
    "overrides",
    [
        {"_id": ""},
        {"_id": "   "},
        {"_id": 42},
        {"_id": None},
        {"_id": "x" * 256},
        {"jti": ""},
        {"jti": 7},
        {"jti": "j" * 256},
        {"jti": None},
        {"exp": "9999999999"},
        {"iat": True},
        {"email": 5},
        {"firstname": ["Ada"]},
        {"attributes": "plan=gold"},
        {"iss": 1},
    ],
)
def test_malformed_claims_are_refused(org, shared, overrides):
    kid, secret = shared
    header = {"alg": "HS256", "kid": kid}

    assert refused(hs_sign_raw(header, claims_for(org, **overrides), secret.encode()), org)


def test_float_exp_and_iat_are_refused(org, shared):
    # PyJWT would accept these; the SPEC asks for integers
    kid, secret = shared
    now = time.time()
    claims = claims_for(org, iat=now, exp=now + 300)

    assert refused(hs_sign_raw({"alg": "HS256", "kid": kid}, claims, secret.encode()), org)


def test_another_orgs_audience_is_refused(org, other_org, shared):
    kid, secret = shared

    for aud in (our_audience(other_org), f"https://tiledesk.com/projects/{other_org.id}"):
        assert refused(sign(claims_for(org, aud=aud), secret, kid=kid), org)


@pytest.mark.parametrize(
    "aud",
    [
        "{org_id}",
        "projects/{org_id}",
        "https://evil.test/projects/{org_id}",
        "http://tiledesk.com/projects/{org_id}",
        "{public_url}/projects/{org_id}/",
        "",
        [],
    ],
)
def test_audiences_that_do_not_name_this_org_exactly_are_refused(org, shared, aud):
    kid, secret = shared
    if isinstance(aud, str):
        aud = aud.format(org_id=org.id, public_url=settings.PUBLIC_URL)

    assert refused(sign(claims_for(org, aud=aud), secret, kid=kid), org)


def test_sixteen_kilobytes_of_junk_is_refused(org, shared):
    assert refused("A" * 16 * 1024, org)
    assert refused("eyJ" + "A" * 8000 + "." + "B" * 8000 + "." + "C" * 100, org)


def test_a_validly_signed_token_over_eight_kilobytes_is_refused(org, shared):
    kid, secret = shared
    token = sign(claims_for(org, attributes={"blob": "x" * 9000}), secret, kid=kid)

    assert len(token) > 8 * 1024
    assert refused(token, org)


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d", "...", "not a token", "a.b.c"])
def test_garbage_is_refused(org, shared, token):
    assert refused(token, org)


def test_a_retired_secret_is_refused_at_once(org, shared):
    # given
    kid, secret = shared
    token = sign(claims_for(org), secret, kid=kid)
    assert verify(token, org)

    # when
    services.signing_secret_retire(org=org, kid=kid, retired_by=None)

    # then: with and without the kid
    assert refused(token, org)
    assert refused(sign(claims_for(org), secret), org)


# --- replay ----------------------------------------------------------------------------------


@pytest.mark.redis
def test_a_jti_is_consumed_once_then_refused_as_a_replay(org):
    expires_at = int(time.time()) + 300

    first = services.custom_token_jti_consume(org=org, jti="jti-1", expires_at=expires_at)
    replay = services.custom_token_jti_consume(org=org, jti="jti-1", expires_at=expires_at)

    assert first is True
    assert replay is False


@pytest.mark.redis
def test_jti_replay_is_tracked_per_org(org, other_org):
    expires_at = int(time.time()) + 300

    assert services.custom_token_jti_consume(org=org, jti="shared", expires_at=expires_at)
    assert services.custom_token_jti_consume(org=other_org, jti="shared", expires_at=expires_at)


@pytest.mark.redis
def test_jti_consume_accepts_a_datetime_and_an_expired_exp(org):
    past = datetime.now(UTC) - timedelta(seconds=30)

    assert services.custom_token_jti_consume(org=org, jti="late", expires_at=past) is True
    assert services.custom_token_jti_consume(org=org, jti="late", expires_at=past) is False


@pytest.mark.redis
def test_a_verified_token_replayed_is_caught_by_its_jti(org, shared):
    # given: the flow the sign-in route runs
    kid, secret = shared
    token = sign(claims_for(org), secret, kid=kid)

    # when
    results = []
    for _ in range(2):
        claims = verify(token, org)
        results.append(
            services.custom_token_jti_consume(org=org, jti=claims["jti"], expires_at=claims["exp"])
        )

    # then
    assert results == [True, False]


# --- routing helper --------------------------------------------------------------------------


def test_org_id_is_read_unverified_from_either_audience_form(org):
    for aud in (our_audience(org), f"https://tiledesk.com/projects/{org.id}", [our_audience(org)]):
        token = sign(claims_for(org, aud=aud), "k" * 32)
        assert custom_token_org_id_unverified(token, public_url=settings.PUBLIC_URL) == str(org.id)


@pytest.mark.parametrize(
    "aud", ["plain", "https://tiledesk.com/projects/not-a-uuid", "two orgs", 5, None]
)
def test_org_id_unverified_is_none_when_aud_names_no_single_org(org, aud):
    if aud == "two orgs":
        aud = [our_audience(org), our_audience(OrganizationFactory())]
    token = sign(claims_for(org, aud=aud), "k" * 32)

    assert custom_token_org_id_unverified(token, public_url=settings.PUBLIC_URL) is None
    assert custom_token_org_id_unverified("garbage", public_url=settings.PUBLIC_URL) is None


# --- a secret the server can no longer open ---------------------------------------------------


def test_a_secret_stored_under_another_encryption_key_refuses_its_tokens_and_says_why(
    org, shared, settings, caplog
):
    # given a secret stored under the encryption key the server had then
    kid, secret = shared
    token = sign(claims_for(org), secret, kid=kid)
    # when the server runs with another key (DJANGO_SECRET_KEY changed, the derived key with it)
    settings.SIGNING_SECRET_ENCRYPTION_KEY = "another-key-entirely-" + "x" * 32
    with caplog.at_level("ERROR", logger="identity.selectors"):
        is_refused = refused(token, org)
    # then the token is refused like any other, and the operator is told which secret and why
    assert is_refused
    [record] = [r for r in caplog.records if r.name == "identity.selectors"]
    assert record.levelname == "ERROR"
    message = record.getMessage()
    assert kid in message
    assert "cannot be decrypted" in message
    assert "SIGNING_SECRET_ENCRYPTION_KEY" in message
    assert secret not in caplog.text
