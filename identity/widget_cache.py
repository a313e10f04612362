"""Where the org behind a widget token is cached: a per-process memo in front of the shared cache.

Every widget request needs the org its widget token identifies, so the lookup is cached in two
layers. Each process keeps what it looked up for `WIDGET_ORG_LOCAL_CACHE_SECONDS` (a few seconds):
a Redis GET costs more than the rest of /widget/config. Behind it, the shared cache (Redis in
production) holds the org for five minutes. A change made through the services (settings, token
rotation) drops the memo of the process that made it and overwrites the shared entry once the change
has committed, so other processes see it within the local TTL.

A change also writes the shared cache once before it commits, holding the org row's lock (below): a
rotation retires its old token there (`shared_retire`), a settings change drops the org's entry
(`shared_forget`; the rewrite after the commit still sets it, see below). The rewrite after the
commit then only completes the picture, so it is run robustly: should the cache fail between the
commit and that rewrite, the change stands (the caller is told it succeeded), the failure is
logged, and no rotated-away token keeps naming the org. A cache failure before the commit fails the
change and leaves nothing changed.

The shared entry is written two ways, so that a stale read can never outlive a change. A process
that missed it reads the database and *adds* the org (only if the key is still absent); a committed
change *sets* it: the org as it now is under its current token, `RETIRED` under a rotated-away
token. A reader that fetched the old row just before the change committed therefore either wrote
first and is overwritten, or comes second and finds the key taken. (Deleting the entry instead
would let that late reader put the old org back for the whole shared TTL.)

A change's writes are made holding the org row's lock, with the org read under it. Every change
holds that lock until it commits, so the writes of two changes cannot interleave and the last ones
made show the last committed state. Read without the lock, the org a change's hook had fetched
could be written after a later change's hook: the older settings enforced, or a rotated-away
token naming the org again, for the shared TTL. (SQLite has no row locks; it serves a single
process, in development and tests.) Readers never take the lock.
"""

import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from identity.models import Organization

SHARED_SECONDS = 300
# What the shared entry of a rotated-away widget token holds until SHARED_SECONDS pass.
RETIRED = "retired"
MEMO_MAX = 1024

# widget token -> (monotonic expiry, org, values derived from that org); plain dict operations are
# atomic under the GIL.
_memo: dict[str, tuple[float, object, dict]] = {}


def widget_config_cache_key(widget_token: str) -> str:
    return f"widget-org:{widget_token}"


def memo_get(widget_token: str):
    hit = _memo.get(widget_token)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    return None


def memo_put(widget_token: str, org) -> None:
    seconds = settings.WIDGET_ORG_LOCAL_CACHE_SECONDS
    if seconds <= 0:
        return
    if len(_memo) >= MEMO_MAX:
        _memo.clear()
    _memo[widget_token] = (time.monotonic() + seconds, org, {})


def memo_derived(org, name: str, compute: Callable[[], object]):
    """A value computed from a memoised org (its rendered public config), once per memo entry.

    Only for the very org instance the memo holds, which nobody mutates: when the settings change,
    a fresh instance replaces it and the derived values go with the old one. For any other instance
    (memo off, or an org read elsewhere) `compute` simply runs.
    """
    hit = _memo.get(org.widget_token)
    if hit is None or hit[1] is not org or hit[0] <= time.monotonic():
        return compute()
    derived = hit[2]
    if name not in derived:
        derived[name] = compute()
    return derived[name]


def shared_get(widget_token: str):
    """The shared entry: an org, `RETIRED`, or None when nobody has cached this token."""
    return cache.get(widget_config_cache_key(widget_token))


def shared_add(widget_token: str, org) -> None:
    """Cache an org read from the database, unless a committed change got there first."""
    cache.add(widget_config_cache_key(widget_token), org, timeout=SHARED_SECONDS)


def shared_retire(widget_token: str) -> None:
    """The token names no org in the shared cache from now on (for the shared TTL, after which
    the database, which no longer holds it, answers).

    A rotation or an org's deletion calls it inside its transaction, after its writes and under
    the org row's lock: a cache failure then fails the change, which changes nothing; once this
    has succeeded, the token stays refused on every server even if the after-commit rewrite
    fails. Should the commit itself fail after it, the token is refused for the shared TTL
    although the database still holds it: closed, not open, and a new rotation mends it.
    """
    cache.set(widget_config_cache_key(widget_token), RETIRED, timeout=SHARED_SECONDS)


def shared_forget(widget_token: str) -> None:
    """Inside a settings change's transaction, under the org row's lock: drop the org's shared
    entry, so that if the after-commit rewrite fails, processes that miss their memo load the
    committed settings instead of serving the old ones for the shared TTL. A cache failure here
    fails the change, which then changes nothing."""
    cache.delete(widget_config_cache_key(widget_token))


def widget_org_changed(org_id) -> None:
    """After a settings change has committed: the shared entry becomes the org as it now is."""
    _shared_entries_rewrite(org_id, retired_token=None)


def widget_token_retired(org_id, widget_token: str) -> None:
    """After a rotation has committed: the old token names no org, here and in the shared cache,
    and the current one names the org as it now is."""
    _shared_entries_rewrite(org_id, retired_token=widget_token)


def _shared_entries_rewrite(org_id, *, retired_token: str | None) -> None:
    with transaction.atomic():
        # No key: the lock a change's UPDATE takes, without holding up rows that reference the org.
        org = Organization.objects.select_for_update(no_key=True).filter(pk=org_id).first()
        if retired_token is not None:
            shared_retire(retired_token)
        if org is not None:
            cache.set(widget_config_cache_key(org.widget_token), org, timeout=SHARED_SECONDS)
    # After the shared writes, so a request of this process that misses the memo finds the new ones.
    if retired_token is not None:
        memo_forget(retired_token)
    if org is not None:
        memo_forget(org.widget_token)


def memo_forget(widget_token: str) -> None:
    """Forget this process's memo of one token (after a change to the org behind it)."""
    _memo.pop(widget_token, None)


def memo_clear() -> None:
    """Forget every memoized org of this process (tests, and after bulk changes)."""
    _memo.clear()
