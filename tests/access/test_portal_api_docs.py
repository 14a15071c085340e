"""The API page (/api-docs): Swagger UI over the OpenAPI document when ``make apidocs`` has
installed it, the operations listed in Chinese either way, and the page says when Swagger UI
is absent; the document declares its security schemes and each operation's security matches
what the views really ask for."""

from __future__ import annotations

import re

import pytest


def _concrete(path: str, holding) -> str:
    values = {"uuid": holding.general, "key": "item-001", "path": "data/objects/x.pdf",
              "id": "1", "token": "x"}
    return "/api/v1" + re.sub(r"\{(\w+)\}", lambda m: values[m[1]], path)


def test_security_schemes_match_the_views(client_for, holding):
    from access.portal.openapi import openapi_document

    document = openapi_document()
    schemes = document["components"]["securitySchemes"]
    assert schemes["session"] == {**schemes["session"], "type": "apiKey", "in": "cookie",
                                  "name": "session"}
    assert schemes["csrf"]["in"] == "header" and schemes["csrf"]["name"] == "X-CSRFToken"
    anonymous = client_for("public")
    needs_login = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            security = operation["security"]
            assert all(set(s) <= set(schemes) for s in security), (method, path)
            answer = anonymous.open(_concrete(path, holding), method=method.upper(), json={})
            required = {} not in security
            # behind the login: anonymous callers get 401; the rest answer them (or say 404)
            assert (answer.status_code == 401) == required, (method, path, answer.status_code)
            if method == "post":
                assert all("csrf" in s for s in security), path
            if required:
                needs_login.append(f"{method} {path}")
    assert "get /requests" in needs_login and "get /search" not in needs_login
    assert len(needs_login) == 6


def test_the_footer_links_the_rendered_page(client_for):
    page = client_for("public").get("/search").get_data(as_text=True)
    assert 'href="/api-docs"' in page and 'href="/api/v1/openapi.json"' not in page


def test_the_page_lists_the_operations_in_chinese(client_for):
    from access.portal.api import SWAGGER_UI

    page = client_for("public").get("/api-docs")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "接口文档" in html
    assert 'href="/api/v1/openapi.json"' in html
    rows = re.findall(r"<tr><td><code>(GET|POST)</code> .*?</tr>", html, re.S)
    assert len(rows) == 14
    assert "提交查档申请" in html and "须登录，并附 CSRF 令牌" in html
    if SWAGGER_UI.exists():
        assert 'id="swagger-ui"' in html and "swagger-ui-bundle.js" in html
        assert "未安装" not in html
    else:
        assert 'id="swagger-ui-missing"' in html


def test_the_page_says_when_swagger_ui_is_absent(client_for, monkeypatch, tmp_path):
    from access.portal import api

    monkeypatch.setattr(api, "SWAGGER_UI", tmp_path / "swagger-ui-bundle.js")
    html = client_for("public").get("/api-docs").get_data(as_text=True)
    assert 'id="swagger-ui-missing"' in html and "make apidocs" in html
    assert "swagger-ui-bundle.js" not in html and 'id="swagger-ui"' not in html
    assert len(re.findall(r"<tr><td><code>(GET|POST)</code> ", html)) == 14


@pytest.mark.parametrize("role", ["public", "researcher"])
def test_the_document_is_still_served_as_json(client_for, role):
    body = client_for(role).get("/api/v1/openapi.json").get_json()
    assert body["openapi"].startswith("3.0") and "securitySchemes" in body["components"]
