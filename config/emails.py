"""One spelling per mailbox: emails are identity keys (SPEC §3.2), so every path stores and
compares them in one canonical form, and validates them the same way."""

import contextlib
import unicodedata

import idna
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

MAX_EMAIL_LENGTH = 254
# Longer than any address a field accepts even before normalization shrinks it: such a value is
# refused by its length check, and is not worth the IDNA mapping's time.
_NORMALIZE_MAX_CHARS = 4 * MAX_EMAIL_LENGTH


def email_normalize(email: str) -> str:
    """The address trimmed, its local part lower-cased, and its domain in one canonical Unicode
    form: UTS #46 (IDNA 2008, non-transitional) maps case, width and composition
    (`Bücher.DE`, `bu\u0308cher.de`, `xn--bcher-kva.de` and full-width letters all become
    `bücher.de`), so two spellings of one domain cannot hold two identities or dodge a 409."""
    email = (email or "").strip()
    local, at, domain = email.rpartition("@")
    if not at or len(email) > _NORMALIZE_MAX_CHARS:
        return email.lower()
    return f"{local.lower()}@{_domain_normalize(domain)}"


def email_validate(email: str) -> None:
    """Django's validation of a normalized address, and an ASCII local part: Django's pattern
    matches case-insensitively, so it lets a long s (U+017F) or a dotless i (U+0131) through,
    which no lower-casing turns into `s` or `i` (two spellings of one mailbox again). Raises
    ValidationError."""
    validate_email(email)
    if not email.rpartition("@")[0].isascii():
        raise ValidationError("Enter a valid email address.", code="invalid")


def email_clean(email: str) -> str:
    """Normalize, then check the length (normalizing can lengthen: `İ` lower-cases to two
    characters) and validate: what every path that stores an address does."""
    email = email_normalize(email)
    if len(email) > MAX_EMAIL_LENGTH:
        raise ValidationError(
            f"Enter an email address of at most {MAX_EMAIL_LENGTH} characters.", code="max_length"
        )
    email_validate(email)
    return email


def _domain_normalize(domain: str) -> str:
    lowered = domain.lower()
    if domain.isascii() and "xn--" not in lowered:
        return lowered  # nearly every address: nothing to map
    try:
        return idna.decode(idna.encode(domain, uts46=True))
    except (idna.IDNAError, UnicodeError):
        return _domain_fold(domain)


def _domain_fold(domain: str) -> str:
    """A domain IDNA 2008 refuses (`♥.de`, which Django's validator accepts): compatibility-
    composed, case-folded, and its `xn--` labels decoded, so its spellings still meet."""
    labels = []
    for label in unicodedata.normalize("NFKC", domain).split("."):
        if label.lower().startswith("xn--"):
            with contextlib.suppress(UnicodeError, ValueError):
                label = label[4:].encode("ascii").decode("punycode")
        labels.append(unicodedata.normalize("NFKC", label).casefold())
    return ".".join(labels)
