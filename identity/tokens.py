"""All token and key crypto: derived keys, widget tokens, API keys, contact JWTs, secret encryption.

Nothing here touches the database; callers look rows up and hand this module plain values.
"""

import base64
import hashlib
import hmac
import re
import secrets
import string
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken as FernetInvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

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


def secret_decrypt(ciphertext: str, *, encryption_key: str) -> str:
    try:
        return _fernet(encryption_key).decrypt(ciphertext.encode()).decode()
    except FernetInvalidToken as exc:
        raise InvalidTokenError(
            "stored secret cannot be decrypted with the configured key"
        ) from exc


# --- contact tokens: our own JWTs for widget visitors --------------------------------------

CONTACT_TOKEN_TYP = "contact+jwt"  # noqa: S105 - a JOSE type name, not a credential
CONTACT_TOKEN_ALGORITHM = "HS256"  # noqa: S105
_CONTACT_CLAIMS = ("iss", "aud", "sub", "did", "trust", "iat", "exp", "jti")


@dataclass(frozen=True)
class ContactClaims:
    org_id: str
    contact_id: str
    device_id: str
    trust: str
    jti: str
    issued_at: datetime
    expires_at: datetime


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


def contact_token_decode(
    token: str, *, keys: list[str], issuer: str, org_id: str | None = None
) -> ContactClaims:
    """Verify a contact token against the current or previous key.

    Rejects every other kind of token: the `typ` header, the key (chosen by `kid`), the issuer and,
    when `org_id` is given, the audience must all match. Raises InvalidTokenError.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidTokenError("malformed") from exc
    if header.get("typ") != CONTACT_TOKEN_TYP or header.get("alg") != CONTACT_TOKEN_ALGORITHM:
        raise InvalidTokenError("wrong kind")
    key = next(
        (k for k in keys if k and hmac.compare_digest(_key_id(k), str(header.get("kid")))), None
    )
    if key is None:
        raise InvalidTokenError("unknown key")
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[CONTACT_TOKEN_ALGORITHM],
            issuer=issuer,
            audience=org_id,
            options={"require": list(_CONTACT_CLAIMS), "verify_aud": org_id is not None},
        )
    except jwt.PyJWTError as exc:
        raise InvalidTokenError("invalid") from exc
    if not all(isinstance(payload[c], str) for c in ("aud", "sub", "did", "trust", "jti")):
        raise InvalidTokenError("malformed claims")
    return ContactClaims(
        org_id=payload["aud"],
        contact_id=payload["sub"],
        device_id=payload["did"],
        trust=payload["trust"],
        jti=payload["jti"],
        issued_at=datetime.fromtimestamp(payload["iat"], UTC),
        expires_at=datetime.fromtimestamp(payload["exp"], UTC),
    )


def demo_credential(secret_key: str, purpose: str, length: int = 24) -> str:
    """A stable, unguessable credential for the demo seed: the same org gets the same value on
    every run (so seeding is idempotent) and nobody without the server's secret can predict it."""
    digest = hmac.new(secret_key.encode(), f"demo:{purpose}".encode(), hashlib.sha256).digest()
    number = int.from_bytes(digest, "big")
    chars = []
    for _ in range(length):
        number, index = divmod(number, len(_BASE62))
        chars.append(_BASE62[index])
    return "".join(chars)
