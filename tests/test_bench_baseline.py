"""The bare DRF route `make bench` measures the hot routes against (bench/baseline.py), and
the widget requests it measures."""

import importlib

import pytest
from django.urls import clear_url_caches, resolve
from rest_framework.test import APIClient

import config.urls
from bench.baseline import BaselineView
from bench.run import ALLOWED_ORIGINS, WIDGET_ORIGIN, widget_headers
from tests.factories import OrganizationFactory


@pytest.fixture
def baseline_served(settings):
    settings.BENCH_BASELINE = True
    clear_url_caches()
    module = importlib.reload(config.urls)
    yield module
    settings.BENCH_BASELINE = False
    importlib.reload(config.urls)
    clear_url_caches()


def test_the_baseline_is_not_served_without_the_bench_flag(db):
    # when
    response = APIClient().get("/bench/baseline")

    # then
    assert response.status_code == 404


def test_the_baseline_answers_when_the_bench_serves_it(db, baseline_served):
    # when
    response = APIClient().get("/bench/baseline")

    # then
    assert response.status_code == 200
    assert response.json() == {"ok": True}


def test_the_baseline_is_the_first_route_resolved(baseline_served):
    # given: resolving walks the patterns in order, so the first costs least to reach
    first = baseline_served.urlpatterns[0]

    # then: no route's resolving costs less than the baseline's, which the ratios divide by
    assert first.urlconf_name.__name__ == "bench.baseline"
    assert resolve("/bench/baseline").func.view_class is BaselineView


@pytest.mark.django_db
def test_the_benchs_widget_requests_come_from_an_origin_the_org_allows():
    # given: the bench's org, with the allowed origins bench/seed.py gives it
    org = OrganizationFactory(allowed_origins=list(ALLOWED_ORIGINS))

    # when: the widget's config, as the bench asks for it
    response = APIClient().get("/widget/config", headers=widget_headers(org.widget_token))

    # then: a cross-origin request, checked against the list and allowed
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == WIDGET_ORIGIN
    assert ALLOWED_ORIGINS.index(WIDGET_ORIGIN) > 0
