"""One spelling per mailbox: emails are identity keys (SPEC §3.2), so every path stores and
compares them in one canonical form."""

import idna

# Longer than any address a field accepts (254) even before normalization shrinks it: such a
# value is refused by its length check, and is not worth the IDNA mapping's time.
_NORMALIZE_MAX_CHARS = 4 * 254


def email_normalize(email: str) -> str:
    """The address trimmed, its local part lower-cased, and its domain in one canonical Unicode
    form: UTS #46 (IDNA 2008, non-transitional) maps case, width and composition
    (`Bücher.DE`, `bu\u0308cher.de`, `xn--bcher-kva.de` and full-width letters all become
    `bücher.de`), so two spellings of one domain cannot hold two identities or dodge a 409. A
    domain IDNA refuses keeps a plain lower-cased form; the email validators judge it."""
    email = (email or "").strip()
    local, at, domain = email.rpartition("@")
    if not at or len(email) > _NORMALIZE_MAX_CHARS:
        return email.lower()
    return f"{local.lower()}@{_domain_normalize(domain)}"


def _domain_normalize(domain: str) -> str:
    lowered = domain.lower()
    if domain.isascii() and "xn--" not in lowered:
        return lowered  # nearly every address: nothing to map
    try:
        return idna.decode(idna.encode(domain, uts46=True))
    except (idna.IDNAError, UnicodeError):
        return lowered
