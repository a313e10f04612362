"""The shared cache failing around a widget change (identity.widget_cache).

Before the commit, a failure fails the change and leaves nothing changed. Between the commit and
the rewrite after it, the change stands, the caller is told so, and no rotated-away token or
replaced setting outlives it in the shared cache.
"""

import pytest
from django.core.cache import cache
from redis.exceptions import ConnectionError as RedisConnectionError
from rest_framework.test import APIClient

from identity import widget_cache
from identity.models import AuditEvent
from tests.contacts.conftest import widget_client
from tests.identity.test_widget_cache_races import served

pytestmark = pytest.mark.django_db


class CacheDown:
    """The shared cache, failing every write (`set`, `delete`) once `failing` is true."""

    def __init__(self):
        self.failing = False

    def __getattr__(self, name):
        return getattr(cache, name)

    def _write(self, name, *args, **kwargs):
        if self.failing:
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379.")
        return getattr(cache, name)(*args, **kwargs)

    def set(self, *args, **kwargs):
        return self._write("set", *args, **kwargs)

    def delete(self, *args, **kwargs):
        return self._write("delete", *args, **kwargs)


@pytest.fixture
def shared_cache(monkeypatch) -> CacheDown:
    down = CacheDown()
    monkeypatch.setattr(widget_cache, "cache", down)
    return down


@pytest.fixture
def down_after_commit(shared_cache, monkeypatch):
    """The cache fails from the moment the change has committed, before the rewrite after it."""
    rewrite = widget_cache._shared_entries_rewrite

    def failing_then_rewrite(*args, **kwargs):
        shared_cache.failing = True
        return rewrite(*args, **kwargs)

    monkeypatch.setattr(widget_cache, "_shared_entries_rewrite", failing_then_rewrite)
    return shared_cache


def rotate(operator_client, org):
    return operator_client.post(f"/api/v1/orgs/{org.id}/widget-settings/rotate-token")


def settings_patch(operator_client, org, body):
    return operator_client.patch(f"/api/v1/orgs/{org.id}/widget-settings", body, format="json")


def test_a_rotation_the_cache_refuses_before_its_commit_changes_nothing(
    org, operator_client, shared_cache, django_capture_on_commit_callbacks
):
    # given: the old token is cached, and then the cache goes down
    old_token = org.widget_token
    assert served(old_token) == org
    shared_cache.failing = True

    # when
    with django_capture_on_commit_callbacks(execute=True) as hooks:
        response = rotate(operator_client, org)

    # then: a 503, the old token still the org's, no audit event, nothing left to run
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    org.refresh_from_db()
    assert org.widget_token == old_token
    assert not AuditEvent.objects.filter(
        org=org, action=AuditEvent.Action.WIDGET_TOKEN_ROTATED
    ).exists()
    assert hooks == []


def test_a_rotation_whose_rewrite_after_the_commit_fails_stands_and_its_old_token_stays_refused(
    org, operator_client, down_after_commit, django_capture_on_commit_callbacks, caplog
):
    # given: the old token is cached
    old_token = org.widget_token
    assert served(old_token) == org

    # when: the cache fails once the rotation has committed
    with django_capture_on_commit_callbacks(execute=True):
        response = rotate(operator_client, org)

    # then: the rotation is answered as done, its failure logged, and the old token names no
    # org (the shared cache says so since before the commit); the new one works
    assert response.status_code == 200
    new_token = response.json()["widgetToken"]
    org.refresh_from_db()
    assert org.widget_token == new_token != old_token
    assert any("on_commit" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")
    assert widget_cache.shared_get(old_token) == widget_cache.RETIRED
    down_after_commit.failing = False
    assert served(old_token) is None
    assert APIClient(HTTP_X_WIDGET_TOKEN=old_token).get("/widget/config").status_code == 401
    assert served(new_token) == org


def test_a_settings_change_the_cache_refuses_before_its_commit_changes_nothing(
    org, operator_client, shared_cache, django_capture_on_commit_callbacks
):
    # given
    assert served(org.widget_token).collect_user_data is False
    shared_cache.failing = True

    # when
    with django_capture_on_commit_callbacks(execute=True) as hooks:
        response = settings_patch(operator_client, org, {"collectUserData": True})

    # then
    assert response.status_code == 503
    org.refresh_from_db()
    assert org.collect_user_data is False
    assert hooks == []


def test_a_settings_change_whose_rewrite_after_the_commit_fails_is_served_from_the_database(
    org, operator_client, down_after_commit, django_capture_on_commit_callbacks
):
    # given: the org is cached with its old settings
    assert served(org.widget_token).collect_user_data is False

    # when: the cache fails once the change has committed
    with django_capture_on_commit_callbacks(execute=True):
        response = settings_patch(operator_client, org, {"collectUserData": True})

    # then: the change is answered as done, and the old settings are cached nowhere: a process
    # that misses its memo reads the committed ones
    assert response.status_code == 200
    assert widget_cache.shared_get(org.widget_token) is None
    down_after_commit.failing = False
    assert served(org.widget_token).collect_user_data is True
    assert widget_client(org).get("/widget/config").json()["collectUserData"] is True
