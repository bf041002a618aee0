"""Property-based fuzzing of the admin API from its own OpenAPI document: no input gives a 5xx.

schemathesis generates requests for every documented operation, both ones that fit the schema and
ones that break it, and sends them as the admin (the caller who reaches the most code) to a real
server on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from artifactory.api.openapi import OPENAPI
from artifactory.testing.server import ADMIN_PASSWORD

SCHEMA = schemathesis.openapi.from_dict(OPENAPI)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
AUTH = {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()}
# Per operation and database in the suite; ARTIFACTORY_FUZZ_EXAMPLES=500 for a longer hunt.
EXAMPLES = int(os.environ.get("ARTIFACTORY_FUZZ_EXAMPLES", "10"))


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: f"{op.method.upper()} {op.path}")
def test_no_admin_api_input_answers_a_server_error(any_server, operation):
    if operation.method.upper() == "DELETE" and operation.path.startswith("/api/v1/users"):
        pytest.skip("deleting users at random would lock the fuzzer out")

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck), deadline=None, database=None)
    def run(case):
        if case.path_parameters and case.path_parameters.get("name") == "admin":
            case.path_parameters["name"] = "not-admin"
        response = case.call(base_url=any_server.url, headers=AUTH, timeout=30)
        assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text[:500])

    run()
