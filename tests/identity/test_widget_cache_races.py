"""Widget changes racing each other: the shared widget-org cache ends as the database does.

A committed settings change or token rotation rewrites the shared entries (identity.widget_cache).
Two changes at once must not leave the older state cached last: stale settings would be enforced,
and a rotated-away token would keep naming the org, for the whole shared TTL on every server. The
PostgreSQL tests pause the first change's cache write, let a second change run in another thread
(another app server) meanwhile, and then check what the shared cache holds.
"""

import threading
import time

import pytest
from django.core.cache import cache
from django.db import connections

from identity import services, widget_cache
from identity.models import Organization
from identity.selectors import organization_for_widget_token
from tests.concurrency import in_parallel, lock_waiters
from tests.factories import OrganizationFactory


class CacheWritePaused:
    """The shared cache, except that this thread's `pause_at`-th write (`set`) waits while
    `meanwhile` runs in a thread of its own, until that finishes or stops to wait on a database
    lock."""

    def __init__(self, meanwhile, *, pause_at: int = 1):
        self.meanwhile = meanwhile
        self.owner = threading.current_thread()
        self.thread: threading.Thread | None = None
        self.writes_left = pause_at

    def __getattr__(self, name):
        return getattr(cache, name)

    def set(self, *args, **kwargs):
        if self.thread is None and threading.current_thread() is self.owner:
            self.writes_left -= 1
        if self.thread is None and self.writes_left == 0:
            self.thread = threading.Thread(target=self._run)
            self.thread.start()
            deadline = time.monotonic() + 10
            while self.thread.is_alive() and not lock_waiters() and time.monotonic() < deadline:
                time.sleep(0.01)
        return cache.set(*args, **kwargs)

    def _run(self) -> None:
        try:
            self.meanwhile()
        finally:
            connections.close_all()

    def join(self) -> None:
        assert self.thread is not None, "no shared-cache write happened"
        self.thread.join(10)
        assert not self.thread.is_alive()


def fresh(org) -> Organization:
    """The org as a request loads it at its start."""
    return Organization.objects.get(pk=org.pk)


def served(widget_token: str) -> Organization | None:
    """What a process that has not memoised this token answers for it."""
    widget_cache.memo_clear()
    return organization_for_widget_token(widget_token=widget_token)


# --- one thread ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_rotation_that_loaded_the_org_before_another_rotation_retires_the_token_it_issued(
    org, django_capture_on_commit_callbacks
):
    # given: two requests loaded the org under its first token; the first rotates, and a widget
    # request caches the org under the token that rotation issued
    first_token = org.widget_token
    first_request, second_request = fresh(org), fresh(org)
    with django_capture_on_commit_callbacks(execute=True):
        issued_first = services.organization_widget_token_rotate(org=first_request).widget_token
    assert served(issued_first) == org

    # when: the second request rotates from the org it loaded before
    with django_capture_on_commit_callbacks(execute=True):
        issued_second = services.organization_widget_token_rotate(org=second_request).widget_token

    # then: only the newest token names the org, in the database and in the shared cache
    assert fresh(org).widget_token == issued_second
    assert widget_cache.shared_get(first_token) == widget_cache.RETIRED
    assert widget_cache.shared_get(issued_first) == widget_cache.RETIRED
    assert served(issued_first) is None
    assert served(first_token) is None
    assert served(issued_second) == org


@pytest.mark.django_db
def test_a_settings_change_from_an_org_loaded_before_another_change_keeps_that_change(org):
    # given: two requests loaded the org; the first changes the theme
    first_request, second_request = fresh(org), fresh(org)
    services.organization_widget_settings_update(
        org=first_request, changes={"theme": {"title": "A"}}
    )

    # when: the second changes another setting from the org it loaded before
    services.organization_widget_settings_update(
        org=second_request, changes={"require_verified_identity": True}
    )

    # then: both changes are stored
    stored = fresh(org)
    assert stored.theme == {"title": "A"}
    assert stored.require_verified_identity is True


# --- PostgreSQL: another app server changes the org meanwhile ------------------------------------


@pytest.mark.postgres_only(reason="needs PostgreSQL for real row locks")
@pytest.mark.django_db(transaction=True)
def test_a_settings_change_cached_late_cannot_undo_one_that_committed_after_it(org, monkeypatch):
    # given: while the first change's cache write is pending, a second change commits
    def second_change() -> None:
        services.organization_widget_settings_update(
            org=fresh(org), changes={"theme": {"title": "A"}, "require_verified_identity": True}
        )

    paused = CacheWritePaused(second_change)
    monkeypatch.setattr(widget_cache, "cache", paused)

    # when
    services.organization_widget_settings_update(
        org=fresh(org), changes={"theme": {"title": "B"}, "require_verified_identity": False}
    )
    paused.join()

    # then: the shared cache holds what the database holds, and that is what is enforced
    stored = fresh(org)
    cached = widget_cache.shared_get(org.widget_token)
    assert (stored.theme, stored.require_verified_identity) == ({"title": "A"}, True)
    assert (cached.theme, cached.require_verified_identity) == ({"title": "A"}, True)
    assert served(org.widget_token).require_verified_identity is True


@pytest.mark.postgres_only(reason="needs PostgreSQL for real row locks")
@pytest.mark.django_db(transaction=True)
def test_a_settings_change_cached_late_cannot_revive_the_token_a_rotation_retired(org, monkeypatch):
    # given: while a settings change's cache write is pending, a rotation commits
    old_token = org.widget_token
    paused = CacheWritePaused(lambda: services.organization_widget_token_rotate(org=fresh(org)))
    monkeypatch.setattr(widget_cache, "cache", paused)

    # when
    services.organization_widget_settings_update(
        org=fresh(org), changes={"collect_user_data": True}
    )
    paused.join()

    # then: the old token names no org; the new one names it with the new settings
    new_token = fresh(org).widget_token
    assert new_token != old_token
    assert widget_cache.shared_get(old_token) == widget_cache.RETIRED
    assert served(old_token) is None
    assert served(new_token).collect_user_data is True


@pytest.mark.postgres_only(reason="needs PostgreSQL for real row locks")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "pause_at",
    [
        pytest.param(1, id="its-retirement-before-the-commit"),
        pytest.param(2, id="its-first-rewrite-after-the-commit"),
    ],
)
def test_a_rotation_racing_a_cache_write_of_another_rotation_leaves_only_its_own_token(
    org, monkeypatch, pause_at
):
    # given: while one of a rotation's cache writes is pending, another rotation commits
    old_token = org.widget_token
    issued: list[str] = []
    paused = CacheWritePaused(
        lambda: issued.append(
            services.organization_widget_token_rotate(org=fresh(org)).widget_token
        ),
        pause_at=pause_at,
    )
    monkeypatch.setattr(widget_cache, "cache", paused)

    # when
    issued.append(services.organization_widget_token_rotate(org=fresh(org)).widget_token)
    paused.join()

    # then: every token but the one in the database names no org
    current = fresh(org).widget_token
    assert current in issued
    for token in {old_token, *issued} - {current}:
        assert widget_cache.shared_get(token) == widget_cache.RETIRED
        assert served(token) is None
    assert served(current) == org


@pytest.mark.postgres_only(reason="needs PostgreSQL for real threads on one database")
@pytest.mark.django_db(transaction=True)
def test_rotations_settings_changes_and_readers_at_once_leave_the_cache_as_the_database():
    org = OrganizationFactory()
    for round_ in range(8):
        # given: nobody has cached the org under its current token
        old_token = org.widget_token
        cache.delete(widget_cache.widget_config_cache_key(old_token))
        issued: list[str] = []

        def act(n: int, org=org, old_token=old_token, issued=issued, round_=round_) -> None:
            if n < 2:
                rotated = services.organization_widget_token_rotate(org=fresh(org))
                issued.append(rotated.widget_token)
            elif n < 4:
                services.organization_widget_settings_update(
                    org=fresh(org), changes={"theme": {"title": f"{round_}-{n}"}}
                )
            else:
                # a widget request that missed both memo and shared cache, on another server
                found = Organization.objects.filter(widget_token=old_token).first()
                if found is not None:
                    widget_cache.shared_add(old_token, found)

        # when
        in_parallel(act, 5)

        # then: rotated-away tokens are retired, and the current one is cached as stored
        org = fresh(org)
        assert len(issued) == 2
        for token in {old_token, *issued} - {org.widget_token}:
            assert widget_cache.shared_get(token) == widget_cache.RETIRED
        cached = widget_cache.shared_get(org.widget_token)
        assert cached is None or cached.theme == org.theme
        assert served(org.widget_token).theme == org.theme
