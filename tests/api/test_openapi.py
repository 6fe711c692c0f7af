"""The OpenAPI document: security schemes, operation ids, no 422 anywhere."""

from __future__ import annotations

import re
from typing import Any

import httpx

from app.routers import all_actions
from tests.support.status_recorder import expect

VERBS = {"GET": "retrieve", "POST": "create", "DELETE": "destroy"}


async def _doc(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    expect(r, 200)
    doc: dict[str, Any] = r.json()
    return doc


async def test_bearer_security_schemes(client: httpx.AsyncClient):
    doc = await _doc(client)
    schemes = doc["components"]["securitySchemes"]
    assert schemes["PersonalAPIKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A personal API key, `phx_...`.",
    }
    assert schemes["InternalToken"]["scheme"] == "bearer"
    for path, item in doc["paths"].items():
        for op in item.values():
            if path.startswith("/api/"):
                assert op["security"] == [{"PersonalAPIKey": []}], path
            elif path.startswith("/internal/"):
                assert op["security"] == [{"InternalToken": []}], path
                assert "internal" in op["tags"], path


async def test_operation_ids_for_every_action_under_both_prefixes(client: httpx.AsyncClient):
    doc = await _doc(client)
    ops = {
        op["operationId"]: (path, method.upper())
        for path, item in doc["paths"].items()
        for method, op in item.items()
    }
    assert len(ops) == sum(len(item) for item in doc["paths"].values())  # ids are unique
    for action in all_actions():
        name = (action.operation_name or action.name).replace("-", "_")
        stem = f"data_warehouse_{name}_{action.verb or VERBS[action.method]}"
        assert ops[f"environments_{stem}"] == (
            f"/api/environments/{{environment_id}}/data_warehouse/{action.name}/",
            action.method,
        )
        assert ops[stem] == (
            f"/api/projects/{{project_id}}/data_warehouse/{action.name}/",
            action.method,
        )
    # Only the trailing-slash form is documented; the other is served but hidden.
    assert not any(op_id.endswith("_no_slash") for op_id in ops)
    assert ops["data_warehouse_check_database_name_retrieve"][1] == "GET"
    assert ops["environments_data_warehouse_operations_list"][1] == "GET"
    assert ops["data_warehouse_operations_retrieve"][0].endswith("/operations/{operation_id}/")


async def test_no_422_anywhere(client: httpx.AsyncClient):
    doc = await _doc(client)
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert "422" not in op.get("responses", {}), (method, path)
            if path.startswith("/api/"):
                for status in ("401", "403", "404", "429"):
                    assert status in op["responses"], (method, path, status)
    schemas = doc.get("components", {}).get("schemas", {})
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert "ErrorBody" in schemas


async def test_every_public_operation_documents_its_path_ids(client: httpx.AsyncClient):
    """The guard reads the prefix's id itself; the document still lists it as a required
    string path parameter (schemathesis and client generators rely on it), beside the
    route's own path ids."""
    doc = await _doc(client)
    seen = 0
    for path, item in doc["paths"].items():
        if not path.startswith("/api/"):
            continue
        name = "environment_id" if path.startswith("/api/environments/") else "project_id"
        for method, op in item.items():
            [param] = [p for p in op["parameters"] if p["name"] == name]
            assert param["in"] == "path" and param["required"] is True, (method, path)
            assert param["schema"]["type"] == "string" and param["description"]
            in_path = [p["name"] for p in op["parameters"] if p["in"] == "path"]
            assert set(in_path) == set(re.findall(r"\{(\w+)\}", path)), (method, path)
            seen += 1
    assert seen == 2 * len(all_actions())
