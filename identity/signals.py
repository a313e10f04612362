"""Signals identity sends so that the apps above it can react to its writes without identity
importing them (dependencies run one way: identity <- contacts <- conversations).

Each is sent inside the writing transaction, with plain values, and with `send`, not
`send_robust`: a receiver's exception rolls the whole write back.
"""

from django.dispatch import Signal

# A member left an org (`identity.services.membership_remove`), after the delete.
# Arguments: org_id, user_id.
membership_removed = Signal()
