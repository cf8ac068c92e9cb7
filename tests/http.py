"""Assertions on API answers, shared by the API tests."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient


def get_ok(api: APIClient, url: str, **params: Any) -> dict[str, Any]:
    response = api.get(url, params)
    assert response.status_code == 200, response.content
    return dict(response.json())


def error_of(response: Any, status: int) -> dict[str, Any]:
    """The error object of a response with ``status``, checked to have the documented shape."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return dict(body["error"])
