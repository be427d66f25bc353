"""The edge's FastAPI class: its OpenAPI document says exactly what the edge does."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def _keys_by_property_names(node: Any) -> None:
    """pydantic spells "every key matches P" as `patternProperties: {P: X}`, which lets
    other keys through with any value; say it exactly: propertyNames + additionalProperties.
    """
    if isinstance(node, dict):
        patterns = node.get("patternProperties")
        if isinstance(patterns, dict) and len(patterns) == 1:
            ((pattern, values),) = patterns.items()
            del node["patternProperties"]
            node["propertyNames"] = {**node.get("propertyNames", {}), "pattern": pattern}
            node["additionalProperties"] = values
        for child in node.values():
            _keys_by_property_names(child)
    elif isinstance(node, list):
        for child in node:
            _keys_by_property_names(child)


class EdgeApp(FastAPI):
    """FastAPI, but validation errors are documented as what they are (400 in the one
    error shape, never FastAPI's default 422), and map keys as they are checked."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema:
            return self.openapi_schema
        schema = super().openapi()
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        _keys_by_property_names(schema)
        self.openapi_schema = schema
        return schema
