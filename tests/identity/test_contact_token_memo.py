"""Each process remembers the contact tokens it verified; what it must never remember."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from identity import tokens
from identity.tokens import (
    CONTACT_TOKEN_MEMO_SIZE,
    InvalidTokenError,
    contact_token_decode,
    contact_token_mint,
)

KEY = "contact-key-for-the-memo-tests-0123456789"
PREVIOUS_KEY = "previous-contact-key-for-the-memo-tests-0123"
ISSUER = "https://chat.example"
ORG = str(uuid.uuid4())


def _mint(key: str = KEY, lifetime: timedelta = timedelta(hours=1)) -> tuple[str, datetime]:
    return contact_token_mint(
        key=key,
        issuer=ISSUER,
        org_id=ORG,
        contact_id=str(uuid.uuid4()),
        device_id=str(uuid.uuid4()),
        trust="anonymous",
        lifetime=lifetime,
    )


@pytest.fixture
def verifications(monkeypatch):
    """How many times PyJWT verified a signature."""
    calls = []
    verify = tokens._CONTACT_JWT.decode_complete

    def counted(*args, **kwargs):
        calls.append(args[0])
        return verify(*args, **kwargs)

    monkeypatch.setattr(tokens._CONTACT_JWT, "decode_complete", counted)
    return calls


def test_a_token_is_verified_once_and_then_remembered(verifications):
    token, _ = _mint()

    first = contact_token_decode(token, keys=[KEY, ""], issuer=ISSUER, org_id=ORG)
    again = contact_token_decode(token, keys=[KEY, ""], issuer=ISSUER, org_id=ORG)

    assert again == first
    assert verifications == [token]


def test_a_remembered_token_still_expires(verifications):
    # given: verified, so remembered
    token, expires_at = _mint(lifetime=timedelta(minutes=5))
    contact_token_decode(token, keys=[KEY], issuer=ISSUER, org_id=ORG)

    # then: valid up to its expiry, refused from it on, without verifying it again
    contact_token_decode(
        token, keys=[KEY], issuer=ISSUER, org_id=ORG, now=expires_at - timedelta(seconds=1)
    )
    with pytest.raises(InvalidTokenError):
        contact_token_decode(token, keys=[KEY], issuer=ISSUER, org_id=ORG, now=expires_at)
    with pytest.raises(InvalidTokenError):
        contact_token_decode(
            token, keys=[KEY], issuer=ISSUER, org_id=ORG, now=datetime.now(UTC) + timedelta(days=1)
        )
    assert verifications == [token]


@pytest.mark.parametrize("kind", ["forged", "expired", "another key"])
def test_a_refused_token_is_not_remembered(verifications, kind):
    token, _ = _mint()
    head, payload, signature = token.split(".")
    refused = {
        "forged": f"{head}.{payload}.{signature[::-1]}",
        "expired": _mint(lifetime=timedelta(seconds=-1))[0],
        "another key": _mint(key="someone-elses-key-0123456789abcdef")[0],
    }[kind]

    for _ in range(2):
        with pytest.raises(InvalidTokenError):
            contact_token_decode(refused, keys=[KEY], issuer=ISSUER, org_id=ORG)

    assert verifications.count(refused) == 2


def test_a_remembered_token_is_verified_anew_for_another_org_issuer_or_keys(verifications):
    # given: remembered for ORG, issuer and the current key
    token, _ = _mint()
    contact_token_decode(token, keys=[KEY], issuer=ISSUER, org_id=ORG)

    # then: each other context verifies it again, and refuses it
    with pytest.raises(InvalidTokenError):
        contact_token_decode(token, keys=[KEY], issuer=ISSUER, org_id=str(uuid.uuid4()))
    with pytest.raises(InvalidTokenError):
        contact_token_decode(token, keys=[KEY], issuer="https://elsewhere.example", org_id=ORG)
    # the key it was signed with rotated out: previous key replaced
    with pytest.raises(InvalidTokenError):
        contact_token_decode(token, keys=[PREVIOUS_KEY, ""], issuer=ISSUER, org_id=ORG)
    assert len(verifications) == 4


def test_the_memo_is_bounded():
    assert tokens._contact_token_verified.cache_info().maxsize == CONTACT_TOKEN_MEMO_SIZE
