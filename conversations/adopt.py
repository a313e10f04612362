"""Same-device adopt (SPEC §2 rule 2): a verified token takes over its browser's earlier history.

Kept apart from conversations.services because it composes both layers: the contacts layer
validates and revokes the previous token, this layer moves the conversations.
"""

from django.db import transaction

from config.exceptions import ApplicationError, Unauthenticated
from contacts.selectors import ContactPrincipal, device_for_reuse
from contacts.services import device_lock_unrevoked, device_revoke
from conversations.services import device_history_adopt


class InvalidPreviousToken(ApplicationError):
    default_code = "invalid_previous_token"
    default_detail = "previousToken is not a valid anonymous or non-verified token of this org."


@transaction.atomic
def contact_device_adopt(*, principal: ContactPrincipal, previous_token: str) -> int:
    """Move the previous browser token's device history to the verified contact; revoke it.

    Never by email: only a token this same browser holds can be adopted. When the org has turned
    `merge_device_history_on_verify` off nothing moves and the previous token stays valid.
    Returns how many conversations moved.
    """
    # The caller's own device first, checked again under its lock: an erasure or a logout of the
    # verified contact that committed after its token was checked stands, and the history does
    # not move onto an erased contact (a race audit moved it in 13 of 30 rounds). The erasure
    # locks the contact, then its devices: this lock queues behind it, or it behind this one.
    if device_lock_unrevoked(device=principal.device) is None:
        raise Unauthenticated()
    previous_device = device_for_reuse(org=principal.org, token=previous_token)
    # Locked, and checked again under the lock: of two adoptions of one token, or an adoption and
    # a logout, the later finds it revoked.
    if previous_device is None or device_lock_unrevoked(device=previous_device) is None:
        raise InvalidPreviousToken()
    moved = device_history_adopt(
        org=principal.org, verified_principal=principal, previous_device=previous_device
    )
    if principal.org.merge_device_history_on_verify:
        device_revoke(device=previous_device)
    return moved
