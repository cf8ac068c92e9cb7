"""Bad input on every read endpoint gets a clear 4xx naming the field at fault, never a
500 or 503: integers of query strings, their bounds, category slugs, and URLs under
/api/ that no route matches (with DEBUG on and off). The endpoints and parameters are
read from the committed schema, so a new one is covered as soon as it is documented."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.test import Client
from rest_framework.test import APIClient

from events.models import ApiKey
from tests.http import error_of

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
MakeVideo = Callable[..., Any]


def _query_params(kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(path, name, schema) of every query parameter of a GET operation whose schema type is ``kind``."""
    return [
        (path, param["name"], param["schema"])
        for path, item in SCHEMA["paths"].items()
        for method, operation in item.items()
        if method == "get"
        for param in operation.get("parameters", [])
        if param["in"] == "query" and param["schema"].get("type") == kind
    ]


INTEGER_PARAMS = _query_params("integer")
CATEGORY_PARAMS = [(path, name, schema) for path, name, schema in _query_params("string") if name == "category"]


def _ids(params: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    return [f"{path}?{name}" for path, name, _ in params]


@pytest.fixture
def api(api: APIClient) -> APIClient:
    """Every request carries a valid API key: the endpoints that need one (subscriptions) then answer
    on their input, and the public ones ignore it."""
    _, raw_key = ApiKey.objects.create_key(name="bad input")
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return api


@pytest.fixture
def url_for(make_video: MakeVideo, rankings_ready: None) -> Callable[[str], tuple[str, dict[str, str]]]:
    """The URL of a path template with a real published video, and the other parameters it requires."""
    video = make_video()

    def build(path: str) -> tuple[str, dict[str, str]]:
        required = {"ids": str(video.id)} if path == "/api/v1/rankings/sparklines/" else {}
        return path.replace("{video_id}", str(video.id)), required

    return build


def test_every_integer_query_parameter_states_its_bounds() -> None:
    assert {(path, name) for path, name, _ in INTEGER_PARAMS} >= {
        ("/api/v1/rankings/", "limit"),
        ("/api/v1/rankings/", "offset"),
        ("/api/v1/rankings/movers/", "limit"),
        ("/api/v1/rankings/videos/{video_id}/around/", "radius"),
        ("/api/v1/rankings/sparklines/", "hours"),
        ("/api/v1/videos/{video_id}/activity/", "hours"),
        ("/api/v1/videos/", "limit"),
        ("/api/v1/videos/", "offset"),
        ("/api/v1/categories/", "limit"),
        ("/api/v1/categories/", "offset"),
        ("/api/v1/event-types/", "limit"),
        ("/api/v1/event-types/", "offset"),
    }
    unbounded = [(path, name) for path, name, schema in INTEGER_PARAMS if not {"minimum", "maximum"} <= set(schema)]
    assert not unbounded, unbounded


# Written as the schema's `integer` does not allow: DRF's IntegerField took the first five.
NOT_PLAIN_INTEGERS = ["0.0", "1.0", "+1", " 1", "1 ", "\u0661", "1e1", "0x1", "1_0", "", "--1"]


@pytest.mark.parametrize(("path", "name", "schema"), INTEGER_PARAMS, ids=_ids(INTEGER_PARAMS))
def test_integer_query_parameters_must_be_plain_decimal_integers(
    api: Any, url_for: Callable[[str], tuple[str, dict[str, str]]], path: str, name: str, schema: dict[str, Any]
) -> None:
    url, required = url_for(path)
    for text in NOT_PLAIN_INTEGERS:
        error = error_of(api.get(url, {**required, name: text}), 400)
        assert error["details"] == {name: ["A valid integer is required."]}, (text, error)
    assert api.get(url, {**required, name: str(schema["minimum"])}).status_code == 200


@pytest.mark.parametrize(("path", "name", "schema"), INTEGER_PARAMS, ids=_ids(INTEGER_PARAMS))
def test_integer_query_parameters_beyond_their_documented_bounds_are_a_400_naming_the_bound(
    api: Any, url_for: Callable[[str], tuple[str, dict[str, str]]], path: str, name: str, schema: dict[str, Any]
) -> None:
    url, required = url_for(path)
    low, high = schema["minimum"], schema["maximum"]
    assert api.get(url, {**required, name: str(high)}).status_code == 200
    for text in (str(high + 1), "10378617206114118270976", "9" * 1000):
        error = error_of(api.get(url, {**required, name: text}), 400)
        assert error["details"] == {name: [f"Ensure this value is less than or equal to {high}."]}, (text, error)
    error = error_of(api.get(url, {**required, name: str(low - 1)}), 400)
    assert error["details"] == {name: [f"Ensure this value is greater than or equal to {low}."]}


@pytest.mark.parametrize(
    "path", ["/api/v1/rankings/", "/api/v1/videos/", "/api/v1/categories/", "/api/v1/event-types/"]
)
def test_the_largest_offset_is_an_empty_page(api: Any, url_for: Callable[..., Any], path: str) -> None:
    [schema] = [s for p, name, s in INTEGER_PARAMS if p == path and name == "offset"]
    response = api.get(path, {"offset": str(schema["maximum"])})
    assert response.status_code == 200, response.content
    assert response.json()["results"] == []


@pytest.mark.parametrize(("path", "name", "schema"), CATEGORY_PARAMS, ids=_ids(CATEGORY_PARAMS))
def test_a_category_that_is_not_a_slug_is_refused_as_such(
    api: Any, url_for: Callable[[str], tuple[str, dict[str, str]]], path: str, name: str, schema: dict[str, Any]
) -> None:
    url, required = url_for(path)
    assert schema["pattern"] == "^[-a-zA-Z0-9_]+$"
    # Control characters are whitespace to str.strip(); they must not read as "blank".
    for text in ("\x1f\x1f", "\x1c", " music", "music ", "mu sic", "mus/ic", "musique\u00e9"):
        error = error_of(api.get(url, {**required, name: text}), 400)
        assert error["details"] == {
            name: ['Enter a valid "slug" consisting of letters, numbers, underscores or hyphens.']
        }, (text, error)
    assert error_of(api.get(url, {**required, name: ""}), 400)["details"] == {name: ["This field may not be blank."]}
    assert error_of(api.get(url, {**required, name: "a" * 65}), 400)["details"] == {
        name: ["Ensure this field has no more than 64 characters."]
    }
    assert api.get(url, {**required, name: "music"}).status_code == 200  # the video's category


# --- URLs that match no route ----------------------------------------------------------------------

UNMATCHED = [
    ("get", "/api/v1/videos/abc/"),
    ("get", "/api/v1/no-such-endpoint/"),
    ("get", "/api/v1/no-such-endpoint"),
    ("get", "/api/v1/rankings/videos/null,null/around/"),
    ("get", "/api/v2/rankings/"),
    ("get", "/api/"),
    ("post", "/api/v1/no-such-endpoint/"),
    ("delete", "/api/v1/videos/abc/"),
]


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize(("method", "path"), UNMATCHED, ids=[f"{m} {p}" for m, p in UNMATCHED])
def test_an_unmatched_api_url_is_a_json_404(settings: Any, debug: bool, method: str, path: str) -> None:
    settings.DEBUG = debug
    # CSRF is enforced as for a browser: a POST must still get the 404, not the CSRF failure page.
    response = getattr(Client(enforce_csrf_checks=True), method)(path)
    assert response["Content-Type"] == "application/json"
    error = error_of(response, 404)
    assert error["code"] == "not_found"
    assert error["details"] == {"path": path}
    assert response["X-Request-ID"]


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_an_endpoint_without_its_trailing_slash_is_a_404_naming_it(settings: Any, debug: bool, method: str) -> None:
    # Not a redirect: a redirected POST loses its body (and with DEBUG on Django raised a 500 for it).
    settings.DEBUG = debug
    for path in ("/api/v1/events", "/api/v1/rankings", "/api/v1/rankings/videos/7"):
        error = error_of(getattr(Client(), method)(path), 404)
        assert error["details"] == {"path": path, "did_you_mean": path + "/"}
        assert error["message"] == f"No endpoint matches this URL; did you mean {path}/?"


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_an_unmatched_url_outside_the_api_keeps_the_html_page(settings: Any, debug: bool) -> None:
    settings.DEBUG = debug
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert Client().get("/apis/").status_code == 404
