"""The OpenAPI 3.1 document of the admin API, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "artifactory admin API", "version": "1"},
    "paths": {},
}
