"""All token and key crypto: derived keys, widget tokens, API keys, contact JWTs, secret encryption.

Nothing here touches the database; callers look rows up and hand this module plain values.
"""

import base64
import functools
import hashlib
import hmac
import json
import re
import secrets
import string
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken as FernetInvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from config.ids import uuid_or_none
from config.jsontext import json_value_check

_BASE62 = string.ascii_letters + string.digits


class InvalidTokenError(Exception):
    """A token is forged, malformed, expired or of the wrong kind; callers answer a uniform 401."""


def derive_key(secret: str, purpose: str) -> str:
    """Derive a 256-bit key for one purpose from a master secret (HKDF-SHA256, purpose as info).

    The result is url-safe base64, so it is also a valid Fernet key.
    """
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"chatshield/v1", info=purpose.encode())
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode())).decode()


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(_BASE62) for _ in range(length))


# --- widget tokens: public identifiers, not credentials -------------------------------------


def widget_token_new() -> str:
    return "wgt_" + _random_base62(32)


# --- API keys: csk_<public id>_<secret>, stored as the public id plus SHA-256 of the whole key ---

API_KEY_PATTERN = re.compile(r"^csk_(?P<public_id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9]{40})$")


@dataclass(frozen=True)
class NewApiKey:
    key: str
    public_id: str
    digest: str


def api_key_new() -> NewApiKey:
    """A fresh key: 40 base62 characters of secret (~238 bits) behind a 64-bit public id."""
    public_id = secrets.token_hex(8)
    key = f"csk_{public_id}_{_random_base62(40)}"
    return NewApiKey(key=key, public_id=public_id, digest=api_key_digest(key))


def api_key_public_id(key: str) -> str | None:
    match = API_KEY_PATTERN.match(key)
    return match["public_id"] if match else None


def api_key_digest(key: str) -> str:
    # A fast hash is right here: the key carries 238 bits of randomness, so there is nothing to
    # brute-force, and a slow password hash would add tens of milliseconds to every server call.
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_matches(key: str, digest: str) -> bool:
    return hmac.compare_digest(api_key_digest(key), digest)


# --- signing secrets: generated shared secrets, encrypted at rest --------------------------


def signing_secret_new() -> str:
    return "css_" + _random_base62(48)


def signing_kid_new() -> str:
    return "kid_" + _random_base62(16)


def _fernet(encryption_key: str) -> Fernet:
    return Fernet(derive_key(encryption_key, "fernet"))


def secret_encrypt(plaintext: str, *, encryption_key: str) -> str:
    return _fernet(encryption_key).encrypt(plaintext.encode()).decode()


class UndecryptableSecretError(InvalidTokenError):
    """A stored signing secret the configured encryption key cannot open: the server's
    configuration changed, not the token. Tokens it signed are refused like any other."""


def secret_decrypt(ciphertext: str, *, encryption_key: str) -> str:
    try:
        return _fernet(encryption_key).decrypt(ciphertext.encode()).decode()
    except FernetInvalidToken as exc:
        raise UndecryptableSecretError(
            "stored secret cannot be decrypted with the configured key"
        ) from exc


# --- contact tokens: our own JWTs for widget visitors --------------------------------------

CONTACT_TOKEN_TYP = "contact+jwt"  # noqa: S105 - a JOSE type name, not a credential
# The trust levels a contact token's `trust` claim may name (contacts.models.Contact.Trust).
CONTACT_TOKEN_TRUST_LEVELS = frozenset({"anonymous", "non_verified", "verified"})
CONTACT_TOKEN_ALGORITHM = "HS256"  # noqa: S105
_CONTACT_CLAIMS = ("iss", "aud", "sub", "did", "trust", "iat", "exp", "jti")
_CONTACT_JWT = jwt.PyJWT()


@dataclass(frozen=True)
class ContactClaims:
    org_id: str
    contact_id: str
    device_id: str
    trust: str
    jti: str
    issued_at: datetime
    expires_at: datetime

    @functools.cached_property
    def row_ids(self) -> tuple[uuid.UUID, uuid.UUID] | None:
        """The device's and the contact's ids as UUIDs, None when either is no UUID: parsed once
        per token, since a verified token's claims are remembered (`contact_token_decode`)."""
        device_id, contact_id = uuid_or_none(self.device_id), uuid_or_none(self.contact_id)
        if device_id is None or contact_id is None:
            return None
        return device_id, contact_id


def _key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def contact_token_mint(
    *,
    key: str,
    issuer: str,
    org_id: str,
    contact_id: str,
    device_id: str,
    trust: str,
    lifetime: timedelta,
    now: datetime | None = None,
) -> tuple[str, datetime]:
    """Sign a contact token for one device of one contact; return it with its expiry."""
    issued_at = (now or datetime.now(UTC)).replace(microsecond=0)
    expires_at = issued_at + lifetime
    payload = {
        "iss": issuer,
        "aud": org_id,
        "sub": contact_id,
        "did": device_id,
        "trust": trust,
        "iat": int(issued_at.timestamp()),
        "exp": int(expires_at.timestamp()),
        "jti": uuid.uuid4().hex,
    }
    headers = {"typ": CONTACT_TOKEN_TYP, "kid": _key_id(key)}
    return jwt.encode(payload, key, algorithm=CONTACT_TOKEN_ALGORITHM, headers=headers), expires_at


# How many verified contact tokens each process remembers (see contact_token_decode).
CONTACT_TOKEN_MEMO_SIZE = 4096


def contact_token_decode(
    token: str,
    *,
    keys: list[str],
    issuer: str,
    org_id: str | None = None,
    now: datetime | None = None,
) -> ContactClaims:
    """Verify a contact token against the current or previous key.

    Rejects every other kind of token: the signature, the issuer and, when `org_id` is given, the
    audience must verify, and the header must be a contact token's naming the key that verified
    it. The keys are tried in order, so a token signed with the current key (nearly all of them)
    is parsed once; only a token that fails the current key's signature is tried on the next.
    Raises InvalidTokenError.

    A widget presents the same token on every request for hours, so each process remembers the
    claims of the last CONTACT_TOKEN_MEMO_SIZE tokens it verified, keyed by the exact token and
    everything it was verified against: the same bytes under the same keys verify the same way
    every time. Only the expiry depends on when it is asked, so it is checked on every call.
    Revocation is not a property of the token; callers check it in the database each time.
    """
    claims = _contact_token_verified(token, tuple(keys), issuer, org_id)
    if claims.expires_at <= (now or datetime.now(UTC)):
        raise InvalidTokenError("expired")
    return claims


@functools.lru_cache(maxsize=CONTACT_TOKEN_MEMO_SIZE)
def _contact_token_verified(
    token: str, keys: tuple[str, ...], issuer: str, org_id: str | None
) -> ContactClaims:
    """contact_token_decode's verification, remembered for tokens that pass (never for errors)."""
    for key in keys:
        if not key:
            continue
        try:
            decoded = _CONTACT_JWT.decode_complete(
                token,
                key,
                algorithms=[CONTACT_TOKEN_ALGORITHM],
                issuer=issuer,
                audience=org_id,
                options={"require": list(_CONTACT_CLAIMS), "verify_aud": org_id is not None},
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise InvalidTokenError("invalid") from exc
        break
    else:
        raise InvalidTokenError("no key verifies it")
    header, payload = decoded["header"], decoded["payload"]
    if (
        header.get("typ") != CONTACT_TOKEN_TYP
        or header.get("alg") != CONTACT_TOKEN_ALGORITHM
        or not hmac.compare_digest(_key_id(key), str(header.get("kid")))
    ):
        raise InvalidTokenError("wrong kind")
    if not all(isinstance(payload[c], str) for c in ("aud", "sub", "did", "trust", "jti")):
        raise InvalidTokenError("malformed claims")
    if payload["trust"] not in CONTACT_TOKEN_TRUST_LEVELS:
        raise InvalidTokenError("malformed claims")
    try:
        # PyJWT takes any number; one past year 9999 (or the platform's time_t) is no date.
        issued_at = datetime.fromtimestamp(payload["iat"], UTC)
        expires_at = datetime.fromtimestamp(payload["exp"], UTC)
    except (OverflowError, ValueError, OSError) as exc:
        raise InvalidTokenError("malformed claims") from exc
    return ContactClaims(
        org_id=payload["aud"],
        contact_id=payload["sub"],
        device_id=payload["did"],
        trust=payload["trust"],
        jti=payload["jti"],
        issued_at=issued_at,
        expires_at=expires_at,
    )


def contact_token_org_id_unverified(token: str) -> str | None:
    """The org id (`aud`) of a token whose header says it is one of our contact tokens, read
    WITHOUT verifying anything; None for any other token (a customer-signed one, say).

    Only for routing a token to its org; contact_token_decode checks everything, `aud` included.
    """
    try:
        segments = _custom_token_segments(token)
        header, payload = _segment_decode(segments[0]), _segment_decode(segments[1])
    except InvalidTokenError:
        return None
    org_id = payload.get("aud")
    if header.get("typ") != CONTACT_TOKEN_TYP or not isinstance(org_id, str):
        return None
    return org_id


def demo_credential(secret_key: str, purpose: str, length: int = 24) -> str:
    """A stable, unguessable credential for the demo seed: the same org gets the same value on
    every run (so seeding is idempotent) and nobody without the server's secret can predict it."""
    chars = []
    for position in range(length):
        digest = hmac.new(
            secret_key.encode(), f"demo:{purpose}:{position}".encode(), hashlib.sha256
        ).digest()
        chars.append(_BASE62[int.from_bytes(digest, "big") % len(_BASE62)])
    return "".join(chars)


# --- agent tokens (simplejwt signs and verifies them) ------------------------------------------

# The errors simplejwt's token classes let through for a token whose signature is good but whose
# claims are not what it writes: an `exp` past year 9999 (ValueError, OverflowError, OSError), a
# claim it reads missing (KeyError) or of another type (TypeError).
AGENT_TOKEN_CLAIM_ERRORS = (KeyError, TypeError, ValueError, OverflowError, OSError)
_BIGINT_MAX = 2**63 - 1
_DECIMAL_ID = re.compile(r"[1-9][0-9]{0,18}")


def agent_token_claims_usable(payload) -> bool:
    """Whether an agent token's payload holds what we look it up by, as simplejwt writes it: the
    user's id as a decimal string (or, from older releases, an integer; never a bool, a list or
    text) within the key's range, and a string `jti`. Only a token signed with our own key gets
    here; one that fails is the 401 like any other bad token, rather than a 500 from a query it
    would have broken.
    """
    user_id = payload.get("user_id")
    if isinstance(user_id, str) and _DECIMAL_ID.fullmatch(user_id):
        user_id = int(user_id)
    return (
        type(user_id) is int and 0 < user_id <= _BIGINT_MAX and isinstance(payload.get("jti"), str)
    )


# --- customer-signed tokens (SPEC §3.3): pinned algorithm, strict header, short lifetime --------

CUSTOM_TOKEN_MAX_BYTES = 8 * 1024
CUSTOM_TOKEN_LEEWAY_SECONDS = 60
CUSTOM_TOKEN_MAX_LIFETIME_SECONDS = 600
CUSTOM_TOKEN_ID_MAX_CHARS = 255
TILEDESK_AUDIENCE_PREFIX = "https://tiledesk.com/projects/"
SIGNING_PUBLIC_KEY_MAX_BYTES = 16 * 1024
RSA_MIN_BITS = 2048
# A bigger modulus only makes every verification slower; nobody needs more.
RSA_MAX_BITS = 8192

_COMPACT_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
_KID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Parameters that let a token name its own key (jku, jwk, x5u, x5c) or demand processing rules we
# do not implement (crit, b64): the key is chosen by us, from the org's secrets, and by kid alone.
_FORBIDDEN_HEADER_PARAMS = frozenset({"jku", "jwk", "x5u", "x5c", "crit", "b64"})
# What the customer's backend says about its user (contacts.services checks them as input).
CUSTOM_PROFILE_CLAIMS = frozenset({"email", "firstname", "lastname", "attributes"})
_CUSTOM_CLAIMS = (
    "_id",
    "email",
    "firstname",
    "lastname",
    "attributes",
    "iss",
    "sub",
    "aud",
    "iat",
    "exp",
    "jti",
)


class InvalidPublicKeyError(ValueError):
    """An uploaded public key is unusable; the message is fit for the operator who sent it."""


def _json_object_strict(pairs: list[tuple[str, object]]) -> dict:
    obj: dict = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _json_constant_refuse(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _segment_decode(segment: str) -> dict:
    """One base64url JSON segment of a compact JWS, parsed strictly (no duplicate keys, no NaN)."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(
            raw, object_pairs_hook=_json_object_strict, parse_constant=_json_constant_refuse
        )
    except (ValueError, RecursionError) as exc:
        raise InvalidTokenError("malformed") from exc
    if not isinstance(value, dict):
        raise InvalidTokenError("malformed")
    return value


def _custom_token_segments(token: object) -> list[str]:
    if (
        not isinstance(token, str)
        or len(token) > CUSTOM_TOKEN_MAX_BYTES
        or not _COMPACT_JWS.match(token)
    ):
        raise InvalidTokenError("malformed")
    return token.split(".")


def custom_token_header(token: str) -> dict:
    """The header of a customer-signed token, read *without trusting it*, only to find the key.

    Refuses tokens over 8 KiB, anything but a three-part compact JWS with a signature, duplicate
    header keys, the parameters that let a token choose its own key (`jku`, `jwk`, `x5u`, `x5c`),
    any `crit`, a `typ` other than JWT, and a `kid` that is not a short plain string. Nothing in the
    returned header is trusted: the algorithm is pinned by the key the server picks.
    """
    header = _segment_decode(_custom_token_segments(token)[0])
    if _FORBIDDEN_HEADER_PARAMS & header.keys():
        raise InvalidTokenError("forbidden header parameter")
    if not isinstance(header.get("alg"), str):
        raise InvalidTokenError("malformed")
    typ = header.get("typ")
    if "typ" in header and (not isinstance(typ, str) or typ.upper() != "JWT"):
        raise InvalidTokenError("wrong kind")
    kid = header.get("kid")
    if "kid" in header and (not isinstance(kid, str) or not _KID.match(kid)):
        raise InvalidTokenError("malformed kid")
    return header


def custom_token_audiences(*, org_id: str, public_url: str) -> list[str]:
    """The `aud` values that name one org: ours and Tiledesk's project URL."""
    return [f"{public_url.rstrip('/')}/projects/{org_id}", f"{TILEDESK_AUDIENCE_PREFIX}{org_id}"]


def custom_token_org_id_unverified(token: str, *, public_url: str) -> str | None:
    """The org id a customer-signed token's `aud` names, read WITHOUT verifying anything.

    Only for routing (which org's keys to try); `custom_token_decode` checks `aud` again after the
    signature. None when the token is malformed or names no single org.
    """
    try:
        payload = _segment_decode(_custom_token_segments(token)[1])
    except InvalidTokenError:
        return None
    audiences = payload.get("aud")
    if isinstance(audiences, str):
        audiences = [audiences]
    if not isinstance(audiences, list):
        return None
    prefixes = (f"{public_url.rstrip('/')}/projects/", TILEDESK_AUDIENCE_PREFIX)
    org_ids = set()
    for audience in audiences:
        if not isinstance(audience, str):
            continue
        for prefix in prefixes:
            if audience.startswith(prefix):
                try:
                    org_ids.add(str(uuid.UUID(audience.removeprefix(prefix))))
                except ValueError:
                    continue
    return org_ids.pop() if len(org_ids) == 1 else None


def signing_public_key_load(pem: str, *, algorithm: str) -> RSAPublicKey | EllipticCurvePublicKey:
    """Load an operator's PEM public key for RS256 (RSA, 2048-8192 bits) or ES256 (EC P-256).

    Private keys are refused outright: we never want to hold one. Raises InvalidPublicKeyError.
    """
    data = pem.encode() if isinstance(pem, str) else b""
    if not data or len(data) > SIGNING_PUBLIC_KEY_MAX_BYTES:
        raise InvalidPublicKeyError(
            f"Must be a PEM public key of at most {SIGNING_PUBLIC_KEY_MAX_BYTES} bytes."
        )
    if b"PRIVATE KEY" in data:
        raise InvalidPublicKeyError(
            "This is a private key. Upload only the public key; keep the private key secret."
        )
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidPublicKeyError(
            "Must be a PEM public key (-----BEGIN PUBLIC KEY-----)."
        ) from exc
    if algorithm == "RS256":
        if not isinstance(key, RSAPublicKey):
            raise InvalidPublicKeyError("RS256 needs an RSA public key.")
        if not RSA_MIN_BITS <= key.key_size <= RSA_MAX_BITS:
            raise InvalidPublicKeyError(
                f"RSA keys must be {RSA_MIN_BITS} to {RSA_MAX_BITS} bits, not {key.key_size}."
            )
        # FIPS 186-5's bounds on the public numbers: no real key pair has an even modulus, and a
        # small exponent is what signature-forgery attacks on lax verifiers need.
        numbers = key.public_numbers()
        if numbers.n % 2 == 0 or numbers.e % 2 == 0 or not 2**16 < numbers.e < 2**256:
            raise InvalidPublicKeyError(
                "RSA keys need an odd modulus and an odd public exponent above 65536 "
                "(65537 is the usual one)."
            )
        return key
    if algorithm == "ES256":
        if not isinstance(key, EllipticCurvePublicKey) or not isinstance(key.curve, SECP256R1):
            raise InvalidPublicKeyError("ES256 needs an EC public key on the P-256 curve.")
        return key
    raise InvalidPublicKeyError(f"{algorithm} does not take a public key.")


def signing_public_key_pem(key: RSAPublicKey | EllipticCurvePublicKey) -> str:
    """The canonical PEM (SubjectPublicKeyInfo) we store for an uploaded key."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def signing_verification_key(
    *, algorithm: str, encrypted_secret: str, public_key: str, encryption_key: str
) -> bytes | RSAPublicKey | EllipticCurvePublicKey:
    """The key object that verifies tokens of one signing secret.

    Asymmetric keys are handed to PyJWT as loaded key objects, never as PEM text, so a public key
    can never be mistaken for an HMAC secret (the HS/RS confusion attack).
    """
    if algorithm == "HS256":
        return secret_decrypt(encrypted_secret, encryption_key=encryption_key).encode()
    try:
        return signing_public_key_load(public_key, algorithm=algorithm)
    except InvalidPublicKeyError as exc:
        raise InvalidTokenError("stored public key is unusable") from exc


def _strict_int(value: object) -> bool:
    return type(value) is int


def _optional_str(value: object) -> bool:
    return value is None or isinstance(value, str)


def custom_token_decode(
    token: str,
    *,
    key: bytes | RSAPublicKey | EllipticCurvePublicKey,
    algorithm: str,
    audiences: list[str],
) -> dict:
    """Verify a customer-signed token against one key and return its claims (SPEC §3.3).

    The algorithm is pinned to the key's (`none`, HS384, an RS256 header on an HS256 secret all
    fail). Required: `aud` naming the org, `_id` (a non-empty string of at most 255), integer
    `exp` and `iat` at most 10 minutes apart; `exp`, `iat` and `nbf` are checked with 60 s leeway.
    `jti` is optional (Tiledesk's examples carry none) but, when present, is such a string too.
    Returns exactly the claims we act on — `role` and anything else are dropped — with None for
    absent optional ones. Raises InvalidTokenError for every problem.
    """
    header = custom_token_header(token)
    if header["alg"] != algorithm:
        raise InvalidTokenError("wrong algorithm")
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audiences,
            leeway=CUSTOM_TOKEN_LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "aud", "_id"]},
        )
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError) as exc:
        raise InvalidTokenError("invalid") from exc
    for claim in ("_id", "jti"):
        if claim == "jti" and "jti" not in payload:
            continue  # optional: a token without one is single-use by its own hash instead
        value = payload[claim]
        if (
            not isinstance(value, str)
            or not value.strip()
            or len(value) > CUSTOM_TOKEN_ID_MAX_CHARS
            # The contact's user_id is kept as sent, as authenticate-user keeps it
            # (config.fields.IdentifierField): padding would make another customer.
            or (claim == "_id" and value != value.strip())
        ):
            raise InvalidTokenError(f"malformed {claim}")
    issued_at, expires_at = payload["iat"], payload["exp"]
    if not _strict_int(issued_at) or not _strict_int(expires_at):
        raise InvalidTokenError("exp and iat must be integers")
    if not 0 < expires_at - issued_at <= CUSTOM_TOKEN_MAX_LIFETIME_SECONDS:
        raise InvalidTokenError("lifetime over the limit")
    if "nbf" in payload and not _strict_int(payload["nbf"]):
        raise InvalidTokenError("nbf must be an integer")
    if not all(
        _optional_str(payload.get(c)) for c in ("email", "firstname", "lastname", "iss", "sub")
    ):
        raise InvalidTokenError("malformed claims")
    attributes = payload.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        raise InvalidTokenError("attributes must be an object")
    claims = {claim: payload.get(claim) for claim in _CUSTOM_CLAIMS}
    # The claims that identify the user and the token are stored (the contact's user_id, the
    # senderAuthInfo's copy of the token's claims): text a database cannot hold makes the token
    # malformed. The profile's claims are the caller's to check, field by field.
    try:
        json_value_check({c: v for c, v in claims.items() if c not in CUSTOM_PROFILE_CLAIMS})
    except ValueError as exc:
        raise InvalidTokenError("malformed claims") from exc
    return claims
