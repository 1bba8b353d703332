"""Every /api/ response the tests see, checked against the generated OpenAPI schema.

Enabled for the whole run from tests/conftest.py: each request made through
Django's test client (Client or AsyncClient) to an /api/ path has its
response checked at once, so a mismatch fails the test that made it, at the
line that made it. Checked: the path and method are documented, the status is
one the operation documents, and a JSON body is valid against the status's
schema (JSON Schema Draft 2020-12, as OpenAPI 3.1 says, with the document's
$refs resolved). Two answers have no operation of their own: a 405 (a method
the path does not take) must be an Error with an Allow header, on a
documented path; and an /api/ path that names nothing must be the JSON 404.

A test that means to send what the schema does not describe can opt out of the
check with `@pytest.mark.openapi_unchecked`.
"""

import gzip
import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from django.test.client import AsyncClient, Client
from django.urls import Resolver404, resolve
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

# The description itself, not an operation it describes.
SCHEMA_PAGES = ("/api/schema/", "/api/docs/")
ERROR_REF = {"$ref": "#/components/schemas/Error"}


class SchemaMismatch(AssertionError):
    """A response the OpenAPI schema does not describe."""


@cache
def openapi() -> dict[str, Any]:
    from teamchat.api_schema.api import api

    # Through JSON, as clients read it (tuples become lists, keys strings).
    return json.loads(json.dumps(api.get_openapi_schema()))


@cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    found = []
    for template in openapi()["paths"]:
        parts = re.split(r"(\{[^}]+\})", template)
        pattern = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
        found.append((re.compile(f"^{pattern}$"), template))
    # Literal paths before templated ones that would also match.
    found.sort(key=lambda item: item[1].count("{"))
    return found


def path_template(path: str) -> str | None:
    """The schema's path for a request path, or None when it documents none."""
    for pattern, template in _templates():
        if pattern.match(path):
            return template
    return None


def _resolves(path: str) -> bool:
    try:
        return resolve(path).url_name != "api-not-found"
    except Resolver404:
        return False


def _validate(schema: dict[str, Any], body: Any, where: str) -> None:
    # The response's schema with the document's components beside it, so its
    # "#/components/schemas/..." references resolve within one resource.
    root = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    root["components"] = openapi()["components"]
    errors = sorted(Draft202012Validator(root).iter_errors(body), key=lambda e: list(e.path))
    if errors:
        first: ValidationError = errors[0]
        at = "/".join(str(p) for p in first.absolute_path) or "(the body)"
        raise SchemaMismatch(
            f"{where}: the body does not match the schema at {at}: {first.message}"
        )


def _body(response: Any) -> Any:
    content = response.content
    if response.get("Content-Encoding") == "gzip":
        content = gzip.decompress(content)
    return json.loads(content)


def check_response(method: str, path: str, response: Any) -> None:
    """Raise SchemaMismatch unless the schema documents this answer to `method path`."""
    method = method.upper()
    where = f"{method} {path} -> {response.status_code}"
    is_json = response.get("Content-Type", "").startswith("application/json")
    # Django's converters decide what a path names (a slug is not any text).
    template = path_template(path) if _resolves(path) else None
    if template is None:
        if response.status_code == 404 and is_json:
            _validate(ERROR_REF, _body(response), where)
            return
        raise SchemaMismatch(f"{where}: the schema documents no path {path}")
    operations = openapi()["paths"][template]
    if response.status_code == 405 and method.lower() not in operations:
        if "Allow" not in response:
            raise SchemaMismatch(f"{where}: a 405 without an Allow header")
        _validate(ERROR_REF, _body(response), where)
        return
    operation = operations.get("get" if method == "HEAD" else method.lower())
    if operation is None:
        raise SchemaMismatch(f"{where}: the schema documents no {method} on {template}")
    documented = operation["responses"].get(str(response.status_code))
    if documented is None:
        raise SchemaMismatch(
            f"{where}: status {response.status_code} is not documented for {method} {template} "
            f"(documented: {', '.join(operation['responses'])})"
        )
    if method == "HEAD":
        return
    content = documented.get("content")
    if not content:
        if response.content:
            raise SchemaMismatch(f"{where}: a body where the schema documents none")
        return
    if "application/json" in content:
        if not is_json:
            raise SchemaMismatch(f"{where}: not JSON ({response.get('Content-Type')})")
        _validate(content["application/json"]["schema"], _body(response), where)


def _checked(response: Any) -> Any:
    request = getattr(response, "wsgi_request", None) or getattr(response, "asgi_request", None)
    if (
        request is not None
        and request.path.startswith("/api/")
        and request.path not in SCHEMA_PAGES
    ):
        check_response(request.method, request.path, response)
    return response


@pytest.fixture(autouse=True)
def openapi_checked_responses(request: pytest.FixtureRequest) -> Iterator[None]:
    """Check every /api/ response of the test client against the schema (see the module)."""
    if request.node.get_closest_marker("openapi_unchecked"):
        yield
        return
    mp = pytest.MonkeyPatch()
    sync_request = Client.request
    async_request = AsyncClient.request

    def checked_request(self: Client, **environ: Any) -> Any:
        return _checked(sync_request(self, **environ))

    async def checked_async_request(self: AsyncClient, **scope: Any) -> Any:
        return _checked(await async_request(self, **scope))

    mp.setattr(Client, "request", checked_request)
    mp.setattr(AsyncClient, "request", checked_async_request)
    try:
        yield
    finally:
        mp.undo()
