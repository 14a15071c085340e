"""schemathesis against the OpenAPI document of /api/v1: generated requests, anonymous and as
each role, never meet a server error, and the answers conform to the document."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)
from schemathesis.checks import not_a_server_error

CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_app(holding):
    from access.portal import create_app

    return create_app(
        holding.settings,
        {"TESTING": True, "WTF_CSRF_ENABLED": False, "PROPAGATE_EXCEPTIONS": False},
    )


def _schema(app):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


@pytest.fixture(scope="module")
def cookies(fuzz_app):
    out = {"public": {}}
    for role in ("admin", "archivist", "auditor", "researcher"):
        client = fuzz_app.test_client()
        fuzz_app.test_login(client, role, username=f"fuzz-{role}")
        out[role] = {"Cookie": f"session={client.get_cookie('session').value}"}
    return out


def test_document_is_valid_openapi(fuzz_app):
    schema = _schema(fuzz_app)
    operations = [op for op in schema.get_all_operations()]
    assert len(operations) == 14 and all(op.ok() for op in operations)


@pytest.mark.parametrize("role", ["public", "researcher", "auditor", "archivist", "admin"])
def test_no_server_errors(fuzz_app, cookies, role):
    schema = _schema(fuzz_app)
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=int(os.environ.get("DANGAN_FUZZ_EXAMPLES", "15")), deadline=None,
            database=None, suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def run(case):
            case.call_and_validate(headers=cookies[role], checks=CHECKS)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:600])
    assert not failures, "\n".join(failures)
