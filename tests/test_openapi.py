"""/api/schema/ is a valid OpenAPI 3.1 document that describes every /api/ route there is.

The responses themselves are checked against it in every API test
(tests/openapi_check.py); this file checks the document, that no route
escapes it, that the checker does fail, and that /api/docs/ is served from
this site only.
"""

import json
import re
from typing import Any

import pytest
from django.http import HttpResponse, JsonResponse
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.openapi_check import SchemaMismatch, check_response

pytestmark = pytest.mark.django_db

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# Sample values for path parameters, by Django converter.
SAMPLES = {"slug": "general", "int": "1", "str": "x", "path": "x/y"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    response = Client().get("/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    return json.loads(response.content)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def _pointer(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_the_schema_is_an_openapi_3_1_document(document):
    assert re.fullmatch(r"3\.1\.\d+", document["openapi"])
    assert document["info"]["title"] and document["info"]["version"]
    operation_ids = []
    for path, operations in document["paths"].items():
        assert path.startswith("/api/") and path.endswith("/"), path
        for method, operation in operations.items():
            assert method in METHODS, (path, method)
            operation_ids.append(operation["operationId"])
            assert operation["responses"], (path, method)
            for status, response in operation["responses"].items():
                assert re.fullmatch(r"[1-5]\d\d", status) and response["description"]
            names = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert names == set(re.findall(r"\{(\w+)\}", path)), (path, method)
            assert operation["security"], f"{method} {path} says nothing of who may call it"
            for requirement in operation["security"]:
                assert set(requirement) <= set(document["components"]["securitySchemes"])
    assert len(operation_ids) == len(set(operation_ids)), "operationIds must be unique"
    for ref in _refs(document):
        assert ref.startswith("#/"), ref
        _pointer(document, ref)  # resolves
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_the_schema_documents_both_ways_in(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes["session"] == {**schemes["session"], "type": "apiKey", "in": "cookie"}
    assert schemes["csrf"]["name"] == "X-CSRFToken"
    assert schemes["bearer"]["scheme"] == "bearer"
    send = document["paths"]["/api/rooms/{slug}/messages/"]["post"]
    assert {"session": [], "csrf": []} in send["security"] and {"bearer": []} in send["security"]
    mint = document["paths"]["/api/tokens/"]["post"]
    assert mint["security"] == [{"session": [], "csrf": []}], "tokens mint tokens: never"


def test_request_bodies_and_errors_are_described(document):
    send = document["paths"]["/api/rooms/{slug}/messages/"]["post"]
    body = _pointer(document, send["requestBody"]["content"]["application/json"]["schema"]["$ref"])
    assert body["required"] == ["body"]
    upload = document["paths"]["/api/uploads/"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    error = document["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "detail"}
    history = document["paths"]["/api/rooms/{slug}/messages/"]["get"]
    assert {p["name"] for p in history["parameters"] if p["in"] == "query"} >= {
        "after",
        "before",
        "limit",
    }


def _api_routes(
    patterns: list[URLPattern | URLResolver], prefix: str = ""
) -> list[tuple[str, URLPattern]]:
    found = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found += _api_routes(pattern.url_patterns, route)
        elif route.startswith("api/"):
            found.append((route, pattern))
    return found


def _schema_path(route: str) -> str:
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def _sample_path(route: str) -> str:
    return "/" + re.sub(r"<(?:(\w+):)?\w+>", lambda m: SAMPLES[m.group(1) or "str"], route)


def test_every_api_route_django_resolves_is_in_the_schema(document):
    """A view added under /api/ without its operation in teamchat/api_schema fails here."""
    routes = {
        route
        for route, pattern in _api_routes(get_resolver().url_patterns)
        if pattern.name != "api-not-found" and route not in ("api/schema/", "api/docs/")
    }
    assert routes, "no /api/ routes found"
    missing = sorted(_schema_path(r) for r in routes if _schema_path(r) not in document["paths"])
    assert missing == [], f"/api/ routes without an operation in the schema: {missing}"
    stale = sorted(set(document["paths"]) - {_schema_path(r) for r in routes})
    assert stale == [], f"operations for routes that do not exist: {stale}"


def test_every_api_route_goes_through_the_api_and_documents_the_methods_it_takes(document):
    """The Allow header of a view's 405 names exactly the methods the schema lists."""
    client = Client()
    for template, operations in document["paths"].items():
        path = re.sub(r"\{\w+\}", lambda m: "1" if m.group(0).endswith("id}") else "x", template)
        path = path.replace("/rooms/x/", "/rooms/general/")
        response = client.generic("PROPFIND", path)
        assert response.status_code == 405, path
        allowed = {m.strip().lower() for m in response["Allow"].split(",")} - {"head"}
        assert allowed == set(operations), f"{template}: Allow {allowed}, schema {set(operations)}"


def test_unknown_api_paths_head_and_other_methods_answer_as_before(client, django_user_model):
    assert client.get("/api/nothing-here/").json()["error"] == "not_found"
    assert client.get("/api/").status_code == 404
    assert client.get("/api/rooms").status_code == 404  # no redirect to the slash
    user = django_user_model.objects.create_user(username="zed", password="x")
    client.force_login(user)
    head = client.head("/api/emoji/")
    assert head.status_code == 200 and head.content == b""
    wrong = client.put("/api/rooms/")
    assert wrong.status_code == 405 and wrong["Allow"] == "GET, HEAD, POST"
    assert wrong.json() == {"error": "method_not_allowed", "detail": "Use GET, POST."}


def test_session_writes_still_need_the_csrf_token(django_user_model):
    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_user(username="zed", password="x"))
    refused = client.post("/api/rooms/", {"name": "x"}, content_type="application/json")
    assert refused.status_code == 403 and refused.json()["error"] == "csrf_failed"
    assert client.get("/api/rooms/").status_code == 200


# --- The checker catches what it must ----------------------------------------------


def test_the_checker_refuses_a_body_that_does_not_match():
    wrong = JsonResponse({"rooms": [{"slug": "general"}]})
    with pytest.raises(SchemaMismatch, match="does not match the schema at rooms"):
        check_response("GET", "/api/rooms/", wrong)
    with pytest.raises(SchemaMismatch, match="error"):
        check_response("GET", "/api/rooms/", JsonResponse({"detail": "x"}, status=401))


def test_the_checker_refuses_an_undocumented_status_method_or_path():
    with pytest.raises(SchemaMismatch, match="status 418 is not documented"):
        check_response("GET", "/api/rooms/", JsonResponse({}, status=418))
    with pytest.raises(SchemaMismatch, match="no PATCH"):
        check_response("PATCH", "/api/rooms/", JsonResponse({}, status=200))
    with pytest.raises(SchemaMismatch, match="without an Allow header"):
        bare = JsonResponse({"error": "method_not_allowed", "detail": "x"}, status=405)
        check_response("PATCH", "/api/rooms/", bare)
    with pytest.raises(SchemaMismatch, match="documents no path"):
        check_response("GET", "/api/nothing/", HttpResponse("x", status=200))
    with pytest.raises(SchemaMismatch, match="a body where"):
        check_response("DELETE", "/api/uploads/1/", HttpResponse(b"{}", status=204))


def test_the_checker_accepts_what_the_schema_documents():
    check_response("GET", "/api/rooms/", JsonResponse({"rooms": []}))
    check_response("DELETE", "/api/uploads/1/", HttpResponse(status=204))
    error = {"error": "not_found", "detail": "There is nothing at this address."}
    check_response("GET", "/api/nothing/", JsonResponse(error, status=404))


def test_schema_refs_resolve_with_a_2020_12_registry(document):
    """The document as a whole resolves under JSON Schema's own reference rules."""
    resource = Resource(contents=document, specification=DRAFT202012)
    resolver = Registry().with_resource("urn:openapi", resource).resolver("urn:openapi")
    for ref in set(_refs(document)):
        assert resolver.lookup(ref).contents is not None


def test_the_docs_page_loads_only_this_sites_files():
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/") and not s.startswith("//") for s in sources), sources
    # Nothing inline that runs: the settings are a JSON data block.
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert all("src=" in attrs or 'type="application/json"' in attrs for attrs, _ in scripts)
    assert "style=" not in html and "<style" not in html


def test_what_a_view_raises_reaches_django_as_before(
    client, django_user_model, monkeypatch, settings
):
    """Ninja answers nothing of its own: an error in a view is Django's, as before.

    (With DEBUG on, ninja's default would answer a plain-text traceback.)
    """
    from chat import api as chat_api

    settings.DEBUG = True

    def broken(*args, **kwargs):
        raise RuntimeError("broken selector")

    monkeypatch.setattr(chat_api.selectors, "rooms_for_sidebar", broken)
    client.force_login(django_user_model.objects.create_user(username="zed", password="x"))
    with pytest.raises(RuntimeError, match="broken selector"):
        client.get("/api/rooms/")
