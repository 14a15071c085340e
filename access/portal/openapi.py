"""The OpenAPI 3.0 document of the JSON API ``/api/v1``."""

from __future__ import annotations

from typing import Any

from access.search import FACET_FIELDS

_ERROR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_UUID = {"name": "uuid", "in": "path", "required": True, "schema": {"type": "string"}}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _ERROR for c in codes}


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "integer"},
            "name": {"type": "string"},
            "message": {"type": "string"},
            "incident": {"type": "string", "description": "internal errors: the log's id"},
            "damaged": {
                "type": "object",
                "description": "409: the file no copy serves intact",
                "properties": {
                    "path": {"type": "string"},
                    "aip": {"type": "string"},
                    "locations": {"type": "array", "items": {"type": "string"}},
                    "repair": {"type": "string", "nullable": True},
                },
            },
        },
    },
    "Me": {
        "type": "object",
        "required": ["role", "capabilities", "csrf_token"],
        "properties": {
            "username": {"type": "string", "nullable": True},
            "role": {
                "type": "string",
                "enum": ["admin", "archivist", "auditor", "researcher", "public"],
            },
            "capabilities": {"type": "array", "items": {"type": "string"}},
            "grants": {"type": "array", "items": {"type": "object"}},
            "csrf_token": {"type": "string"},
        },
    },
    "Hit": {
        "type": "object",
        "required": ["aip_uuid", "title", "snippet", "view"],
        "properties": {
            "aip_uuid": {"type": "string"},
            "item_key": {"type": "string", "nullable": True},
            "archival_code": {"type": "string", "nullable": True},
            "title": {"type": "string"},
            "snippet": {"type": "string", "description": "HTML; matches in <mark>"},
            "facets": {"type": "object"},
            "score": {"type": "number"},
            "view": {"type": "string", "enum": ["content", "masked", "listed"]},
            "url": {"type": "string"},
        },
    },
    "SearchResult": {
        "type": "object",
        "required": ["query", "total", "hits", "facets"],
        "properties": {
            "query": {"type": "string"},
            "page": {"type": "integer"},
            "per_page": {"type": "integer"},
            "sort": {"type": "string"},
            "total": {"type": "integer", "minimum": 0},
            "hits": {"type": "array", "items": _ref("Hit")},
            "facets": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "array"}},
            },
        },
    },
    "Item": {
        "type": "object",
        "required": ["key", "level", "title", "fields", "view"],
        "properties": {
            "key": {"type": "string"},
            "parent": {"type": "string", "nullable": True},
            "level": {"type": "string"},
            "archival_code": {"type": "string", "nullable": True},
            "title": {"type": "string"},
            "date": {"type": "string", "nullable": True},
            "fields": {"type": "object"},
            "view": {"type": "string", "enum": ["content", "masked", "listed"]},
            "open_date": {"type": "string", "nullable": True},
            "control": {"type": "string"},
            "pii_level": {"type": "string"},
        },
    },
    "File": {
        "type": "object",
        "required": ["path", "size", "download"],
        "properties": {
            "path": {"type": "string"},
            "size": {"type": "integer"},
            "sha256": {"type": "string", "nullable": True},
            "mime": {"type": "string", "nullable": True},
            "puid": {"type": "string", "nullable": True},
            "item": {"type": "string", "nullable": True},
            "download": {"type": "boolean"},
            "preview": {"type": "boolean"},
            "last_fixity": {"type": "object", "nullable": True},
        },
    },
    "Aip": {
        "type": "object",
        "required": ["uuid", "label", "view", "items", "files"],
        "properties": {
            "uuid": {"type": "string"},
            "archival_code": {"type": "string", "nullable": True},
            "label": {"type": "string"},
            "view": {"type": "string", "enum": ["content", "masked", "listed"]},
            "open_date": {"type": "string", "nullable": True},
            "control": {"type": "string"},
            "pii_level": {"type": "string"},
            "household": {"type": "boolean"},
            "items": {"type": "array", "items": _ref("Item")},
            "files": {"type": "array", "items": _ref("File")},
            "events": {"type": "array", "items": {"type": "object"}},
            "copies": {"type": "array", "items": {"type": "object"}},
            "can_request": {"type": "boolean"},
        },
    },
    "AccessRequest": {
        "type": "object",
        "required": ["id", "aip", "status"],
        "properties": {
            "id": {"type": "integer"},
            "username": {"type": "string"},
            "aip": {"type": "string"},
            "item": {"type": "string", "nullable": True},
            "purpose": {"type": "string"},
            "status": {
                "type": "string",
                "enum": ["pending", "granted", "refused", "revoked", "expired", "withdrawn"],
            },
            "expires_at": {"type": "string", "nullable": True},
        },
    },
    "NewRequest": {
        "type": "object",
        "required": ["aip", "purpose"],
        "properties": {
            "aip": {"type": "string"},
            "item": {"type": "string"},
            "purpose": {"type": "string"},
        },
    },
    "Decision": {
        "type": "object",
        "required": ["decision"],
        "properties": {
            "decision": {"type": "string", "enum": ["grant", "refuse"]},
            "days": {"type": "integer", "minimum": 1},
            "note": {"type": "string"},
        },
    },
    "OpenDecision": {
        "type": "object",
        "required": ["aip", "basis"],
        "properties": {
            "aip": {"type": "string"},
            "item": {"type": "string"},
            "open_date": {"type": "string", "format": "date"},
            "control": {"type": "string", "enum": ["开放", "控制"]},
            "basis": {"type": "string"},
        },
    },
}


def _search_parameters() -> list[dict[str, Any]]:
    params = [
        {
            "name": "q",
            "in": "query",
            "schema": {"type": "string", "maxLength": 500},
            "description": 'words, "phrases", field:value, -excluded',
        },
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        {
            "name": "per_page",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 100},
        },
        {
            "name": "sort",
            "in": "query",
            "schema": {"type": "string", "enum": ["relevance", "code", "date"]},
        },
    ]
    params += [
        {
            "name": f,
            "in": "query",
            "schema": {"type": "array", "items": {"type": "string"}},
            "style": "form",
            "explode": True,
        }
        for f in FACET_FIELDS
    ]
    return params


SECURITY_SCHEMES: dict[str, Any] = {
    "session": {
        "type": "apiKey", "in": "cookie", "name": "session",
        "description": "the portal's session cookie, set by signing in at /login",
    },
    "csrf": {
        "type": "apiKey", "in": "header", "name": "X-CSRFToken",
        "description": "the csrf_token of GET /me; every POST carries it",
    },
}
OPTIONAL = [{}, {"session": []}]
"""Open to anyone; signed in, the caller sees what their role and grants allow."""
LOGIN = [{"session": []}]
LOGIN_POST = [{"session": [], "csrf": []}]

SUMMARIES_ZH = {
    ("get", "/me"): "当前用户：角色、权限、查档授权和 CSRF 令牌",
    ("get", "/search"): "检索调用者有权看到的档案（含结果数和分面）",
    ("get", "/aips/{uuid}"): "调用者可见的 AIP（档案信息包）",
    ("get", "/aips/{uuid}/versions"): "AIP 的版本历史：各版本的日期、操作者、原因和变更",
    ("get", "/aips/{uuid}/items/{key}"): "一条著录条目（件或户卷）",
    ("get", "/households/{uuid}"): "户卷及其卷内文件",
    ("get", "/aips/{uuid}/files/{path}"): "下载文件（支持断点续传）",
    ("get", "/aips/{uuid}/dip"): "调用者可见内容的 DIP（zip）",
    ("get", "/requests"): "查档申请：本人的，档案管理员可见全部",
    ("post", "/requests"): "提交查档申请",
    ("post", "/requests/{id}/decision"): "批准（设有效期）或拒绝查档申请",
    ("post", "/decisions"): "记录开放审核决定",
    ("get", "/labels/{token}"): "解析扫描到的二维码标签",
    ("get", "/dashboard"): "馆藏、接收、格式和固定性统计",
}
"""The operations' summaries in Chinese (``x-summary-zh``), for the portal's API page."""


def _secure(paths: dict[str, Any]) -> None:
    """Each operation's ``security``: a session for those behind the login (and the CSRF
    header for a POST), an optional one for the rest; its Chinese summary."""
    for path, operations in paths.items():
        for method, operation in operations.items():
            statuses = operation.get("responses", {})
            if "401" in statuses:
                operation["security"] = LOGIN_POST if method == "post" else LOGIN
            else:
                operation["security"] = OPTIONAL
            operation["x-summary-zh"] = SUMMARIES_ZH.get((method, path), operation["summary"])


def openapi_document() -> dict[str, Any]:
    """The API description (OpenAPI 3.0.3)."""
    binary = {
        "description": "the file's bytes (verified against its digest)",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
    paths: dict[str, Any] = {
        "/me": {
            "get": {
                "summary": "Who am I: role, capabilities, grants, CSRF token",
                "responses": {"200": _json(_ref("Me"))},
            }
        },
        "/search": {
            "get": {
                "summary": "Search what the caller may see (counts and facets too)",
                "parameters": _search_parameters(),
                "responses": {"200": _json(_ref("SearchResult"))},
            }
        },
        "/aips/{uuid}": {
            "get": {
                "summary": "An AIP as the caller may see it",
                "parameters": [_UUID],
                "responses": {"200": _json(_ref("Aip")), **_errors(404)},
            }
        },
        "/aips/{uuid}/versions": {
            "get": {
                "summary": "An AIP's 版本历史: every version, its date, agent, reason and changes",
                "parameters": [_UUID],
                "responses": {"200": _json({"type": "object",
                                            "required": ["aip", "current_version", "versions"]}),
                              **_errors(404)},
            }
        },
        "/aips/{uuid}/items/{key}": {
            "get": {
                "summary": "One item (件 or 户卷)",
                "parameters": [
                    _UUID,
                    {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
                "responses": {"200": _json(_ref("Item")), **_errors(404)},
            }
        },
        "/households/{uuid}": {
            "get": {
                "summary": "A household volume and its documents",
                "parameters": [_UUID],
                "responses": {"200": _json(_ref("Aip")), **_errors(404)},
            }
        },
        "/aips/{uuid}/files/{path}": {
            "get": {
                "summary": "Download a file (HTTP ranges supported)",
                "parameters": [
                    _UUID,
                    {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": binary,
                    "206": binary,
                    **_errors(403, 404, 409),
                    "416": {"description": "range not satisfiable"},
                },
            }
        },
        "/aips/{uuid}/dip": {
            "get": {
                "summary": "A DIP zip of what the caller may see",
                "parameters": [_UUID],
                "responses": {
                    "200": {
                        "description": "zip",
                        "content": {
                            "application/zip": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    **_errors(403, 404, 409),
                },
            }
        },
        "/requests": {
            "get": {
                "summary": "Access requests (查档申请): one's own, or all for archivists",
                "parameters": [{"name": "status", "in": "query", "schema": {"type": "string"}}],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "requests": {"type": "array", "items": _ref("AccessRequest")}
                            },
                        }
                    ),
                    **_errors(401),
                },
            },
            "post": {
                "summary": "File an access request",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("NewRequest")}},
                },
                "responses": {"201": _json({"type": "object"}), **_errors(400, 401, 403, 404)},
            },
        },
        "/requests/{id}/decision": {
            "post": {
                "summary": "Grant (with an expiry) or refuse an access request",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Decision")}},
                },
                "responses": {"200": _json(_ref("AccessRequest")), **_errors(400, 401, 403, 404)},
            }
        },
        "/decisions": {
            "post": {
                "summary": "Record an open-review decision (开放审核)",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("OpenDecision")}},
                },
                "responses": {"201": _json({"type": "object"}), **_errors(400, 401, 403, 404)},
            }
        },
        "/labels/{token}": {
            "get": {
                "summary": "Resolve a scanned QR label token",
                "parameters": [
                    {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"kind": {"type": "string"}, "url": {"type": "string"}},
                        }
                    ),
                    **_errors(401, 404),
                },
            }
        },
        "/dashboard": {
            "get": {
                "summary": "Holdings, ingest, formats and fixity figures",
                "responses": {"200": _json({"type": "object"}), **_errors(401)},
            }
        },
    }
    _secure(paths)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Dangan access API",
            "version": "1",
            "description": "Search and retrieve what the caller may see. Sign in "
            "through the portal's /login; POSTs need the CSRF token "
            "from /me in an X-CSRFToken header.",
        },
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
    }
