"""A crate stored before spellings were claimed (no names/<canonical> document): its spelling is found
among the repository's components, so another spelling is still refused and its own claims it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from artifactory_formats.cargo.metadata import InvalidCrate
from artifactory_formats.cargo.routes import claim

from artifactory.plugin import SYSTEM


class Unclaimed:
    """The few calls `claim` makes of the repository service, over crates stored without claims."""

    def __init__(self, *spellings: str) -> None:
        self.spellings = spellings
        self.documents: dict[str, bytes] = {}

    async def lookup(self, repo: Any, path: str) -> object | None:
        return self.documents.get(path)

    async def component_names(self, repo: Any) -> list[tuple[str, str]]:
        return [("", spelling.lower()) for spelling in self.spellings]

    async def components(self, repo: Any, name: str) -> list[SimpleNamespace]:
        found = [s for s in self.spellings if s.lower() == name]
        return [SimpleNamespace(name=name, attributes={"index": {"name": s}}) for s in found]

    async def update_document(self, repo: Any, path: str, transform: Any, *args: Any) -> None:
        self.documents[path] = transform(self.documents.get(path))


@pytest.mark.parametrize("other", ["foo_bar", "Foo-Bar", "FOO_BAR"])
def test_another_spelling_of_a_crate_stored_before_claims_is_refused(other):
    repos = Unclaimed("Foo_bar", "unrelated")
    with pytest.raises(InvalidCrate, match="published here as 'Foo_bar'"):
        asyncio.run(claim(repos, None, other, SYSTEM))
    assert repos.documents == {}


def test_the_first_publish_after_claims_began_claims_the_stored_spelling():
    repos = Unclaimed("Foo_bar")
    asyncio.run(claim(repos, None, "Foo_bar", SYSTEM))
    assert repos.documents == {"names/foo_bar": b"Foo_bar"}
    repos.spellings = ()  # from now on the claim alone decides
    with pytest.raises(InvalidCrate, match="published here as 'Foo_bar'"):
        asyncio.run(claim(repos, None, "foo-bar", SYSTEM))
