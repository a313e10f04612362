"""Fixtures for the visitor routes: a widget client and helpers that mint tokens as browsers do."""

import pytest
from rest_framework.test import APIClient


def widget_client(org, token: str | None = None, prefix: str = "Bearer") -> APIClient:
    client = APIClient(HTTP_X_WIDGET_TOKEN=org.widget_token)
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"{prefix} {token}")
    return client


def mint(client: APIClient, body: dict | None = None, token: str | None = None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.post("/widget/contacts/unverified", body or {}, format="json", **headers)


@pytest.fixture
def widget(org) -> APIClient:
    return widget_client(org)
