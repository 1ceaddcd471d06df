"""The OpenAPI document: every API operation documents its errors with the one error schema, declares
the Bearer scheme, and is described; and the error bodies the API really sends fit that schema.

The document does not depend on the database, so one SQLite app serves every check.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator

from service.api.app import create_app
from service.api.auth import PUBLIC_ROUTES
from service.api.errors import ErrorResponse
from service.settings import Settings
from tests.service.helpers import create, spec

ERROR_STATUSES = ("401", "403", "404", "409", "413", "422", "429", "503", "507")
ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path_factory.mktemp('openapi') / 'openapi.db'}"
    settings = Settings(database_url=url, auto_migrate=True, max_body_bytes=4_000)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def doc(app_client: TestClient) -> dict[str, Any]:
    return app_client.get("/openapi.json").json()


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def api_operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    ops = [(m, p, op) for m, p, op in operations(doc) if (m, p) not in PUBLIC_ROUTES]
    assert len(ops) >= 20
    return ops


def test_every_api_operation_documents_each_error_with_the_error_schema(doc: dict[str, Any]) -> None:
    missing = [(m, p, status) for m, p, op in api_operations(doc) for status in ERROR_STATUSES
               if op["responses"].get(status, {}).get("content", {}).get("application/json", {}).get("schema")
               != ERROR_REF]
    assert missing == []
    for m, p, op in api_operations(doc):
        assert "Retry-After" in op["responses"]["429"]["headers"], (m, p)
        assert "Retry-After" in op["responses"]["503"]["headers"], (m, p)
        assert "WWW-Authenticate" in op["responses"]["401"]["headers"], (m, p)


def test_the_error_schema_is_generated_from_the_error_type(doc: dict[str, Any]) -> None:
    """Named components, closed objects: a generator makes one typed error class from them."""
    schemas = doc["components"]["schemas"]
    generated = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = generated.pop("$defs")
    assert schemas["ErrorResponse"] == generated
    assert {name: schemas[name] for name in defs} == defs
    info = schemas["ErrorInfo"]
    assert schemas["ErrorResponse"]["required"] == ["error"]
    assert set(info["required"]) == {"code", "message", "field"}
    assert info["properties"]["code"]["type"] == "string"
    assert info["additionalProperties"] is False and schemas["ErrorResponse"]["additionalProperties"] is False
    text = json.dumps(doc)
    assert "HTTPValidationError" not in text and '"detail"' not in text  # FastAPI's own 422 shape


def test_bearer_auth_is_declared_and_public_operations_opt_out(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    (name, scheme), = schemes.items()
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert doc["security"] == [{name: []}]
    public = [(m, p, op) for m, p, op in operations(doc) if (m, p) in PUBLIC_ROUTES]
    assert {p for _, p, _ in public} == {"/healthz", "/readyz"}
    assert all(op["security"] == [] for _, _, op in public)
    assert all("security" not in op for _, _, op in api_operations(doc))  # the document-wide one applies


def test_every_operation_has_a_description(doc: dict[str, Any]) -> None:
    undescribed = [(m, p) for m, p, op in operations(doc) if len(op.get("description", "").strip()) < 20]
    assert undescribed == []


def test_real_error_bodies_fit_the_documented_schema(app_client: TestClient, doc: dict[str, Any],
                                                     tmp_path: Path) -> None:
    """401, 404, 409, 413, 422 (body and query) and a malformed JSON body, as the API answers them."""
    schema = {**ERROR_REF, "components": doc["components"]}
    validator = Draft202012Validator(schema)
    exp = create(app_client, name="errors")
    answers = {
        "404": app_client.get("/v1/experiments/exp_missing"),
        "409": app_client.post("/v1/experiments", json=spec(name="errors")),
        "413": app_client.post("/v1/experiments", json=spec(name="big", metadata={"notes": "x" * 5_000})),
        "422 body": app_client.post(f"/v1/experiments/{exp['id']}/runs", json={"metrics": {"loss/web": "3"}}),
        "422 query": app_client.get("/v1/experiments", params={"page_size": -1}),
        "422 json": app_client.post("/v1/experiments", content=b"{", headers={"content-type": "application/json"}),
    }
    secured = Settings(database_url=f"sqlite:///{tmp_path}/auth.db", auto_migrate=True, auth="required")
    with TestClient(create_app(secured)) as anonymous:
        answers["401"] = anonymous.get("/v1/experiments")
    for name, response in answers.items():
        assert str(response.status_code) == name.split()[0], (name, response.text)
        errors = [e.message for e in validator.iter_errors(response.json())]
        assert errors == [], (name, response.json())
