"""One server per database for the Cargo tests, with a user who may publish and their API token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from artifactory.testing.fixtures import DATABASES, live_server
from artifactory.testing.server import LiveServer


@dataclass
class Registry:
    server: LiveServer
    token: str  # an API token of a user with read and write on cargo-*
    reader_token: str  # an API token of a user who may only read

    def url(self, repo: str) -> str:
        return self.server.repo_url(repo)


@pytest.fixture(scope="module", params=DATABASES)
def registry(request: pytest.FixtureRequest) -> Iterator[Registry]:
    with live_server(request, "cargo") as server:
        with server.client() as admin:
            for role, actions in (("cargo-writer", ["read", "write"]), ("cargo-reader", ["read"])):
                rule = {"repositories": "*", "actions": actions}
                assert (
                    admin.post("/api/v1/roles", json={"name": role, "privileges": [rule]}).status_code == 201
                )
        tokens = []
        for role in ("cargo-writer", "cargo-reader"):
            user, password = server.create_user([role])
            with server.client(auth=(user, password)) as client:
                tokens.append(client.post("/api/v1/tokens", json={"name": "cargo"}).json()["token"])
        yield Registry(server, *tokens)
