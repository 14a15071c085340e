"""Elasticsearch-compatible servers for the tests (a pytest plugin loaded by tests/conftest.py).

* ``osmem-server`` (PyPI), an in-memory OpenSearch emulator, started once per session; each
  test gets its own copy-on-write clone. It answers the client's requests with the built-in
  ``cjk`` analysis (no smartcn/IK plugins); it is an emulator, not evidence about a real
  cluster's relevance or behaviour under load.
* A real cluster when ``DANGAN_TEST_ES_URL`` is set (e.g. ``http://127.0.0.1:9200``): each test
  uses its own alias name and removes its indices and template afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

ES_URL_ENV = "DANGAN_TEST_ES_URL"
TARGETS = ["osmem"] + (["cluster"] if os.environ.get(ES_URL_ENV) else [])


@dataclass
class EsTarget:
    """A server one test may use: its URL and the alias its indices live behind."""

    kind: str                   # osmem | cluster
    url: str
    alias: str
    _cleanup: list[Callable[[], None]] = field(default_factory=list)

    def environ(self) -> dict[str, str]:
        """The DANGAN_* settings that point a home's search at this server."""
        return {"DANGAN_SEARCH_ENGINE": "elasticsearch",
                "DANGAN_SEARCH_ELASTICSEARCH_URL": self.url,
                "DANGAN_SEARCH_ELASTICSEARCH_INDEX": self.alias}


@pytest.fixture(scope="session")
def osmem() -> Iterator[object]:
    """The osmem-server process of the session."""
    server_module = pytest.importorskip("osmem_server", reason="pip install osmem-server")
    server = server_module.OsmemServer.start(japanese=False)
    try:
        yield server
    finally:
        server.close()


def _cluster_cleanup(url: str, alias: str) -> None:
    from access.search.elastic import make_client

    client = make_client(url, retries=1)
    client.options(ignore_status=404).indices.delete(index=f"{alias}-v*")
    client.options(ignore_status=404).indices.delete_index_template(name=alias)
    client.close()


@pytest.fixture
def es_target_factory(request: pytest.FixtureRequest) -> Iterator[Callable[[str], EsTarget]]:
    """Make an :class:`EsTarget` of a kind (``osmem`` or ``cluster``) for this test."""
    made: list[EsTarget] = []

    def make(kind: str) -> EsTarget:
        if kind == "osmem":
            server = request.getfixturevalue("osmem")
            clone = server.clone()
            target = EsTarget(kind, clone.url, "dangan-search", [clone.close])
        else:
            url = os.environ.get(ES_URL_ENV)
            if not url:
                pytest.skip(f"{ES_URL_ENV} is not set: no real Elasticsearch cluster")
            alias = f"dangan-test-{uuid.uuid4().hex[:10]}"
            target = EsTarget(kind, url, alias, [lambda: _cluster_cleanup(url, alias)])
        made.append(target)
        return target

    yield make
    for target in made:
        for step in target._cleanup:
            step()


@pytest.fixture(params=TARGETS)
def es_target(request: pytest.FixtureRequest,
              es_target_factory: Callable[[str], EsTarget]) -> EsTarget:
    """Each available server in turn (osmem always, a real cluster with DANGAN_TEST_ES_URL)."""
    return es_target_factory(request.param)
