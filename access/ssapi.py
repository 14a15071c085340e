"""The Archivematica Storage-Service-compatible API, so auditors can run Artefactual's
unmodified ``fixity`` client against Dangan.

Exactly three read-only endpoints, at the root path (the client doubles any mount prefix)::

    GET /api/v2/file/                          list of AIPs (paged; ``meta.next`` repeats the
                                               credentials, root-relative)
    GET /api/v2/file/<uuid>/                   one AIP
    GET /api/v2/file/<uuid>/check_fixity/      a full fixity check of every copy, now

Authentication is the query string ``?username=U&api_key=K`` with an auditor key made by
``dangan apikey create``; 401 for a bad key, 404 for an unknown AIP. A check that ran always
answers 200 with ``success`` true or false (null when a copy could not be read), ``message``
("" on success, else naming the changed paths) and ``timestamp`` as ``YYYY-MM-DDTHH:MM:SS``
UTC. An AIP larger than the fixity policy's ``api_max_full_bytes`` is answered from its latest
completed full audit (with that audit's timestamp) unless ``force_local=True`` asks for a
fresh read. Every check is recorded as PREMIS events and audit-log entries.

The key travels in the query string: the portal's logs replace it, as every query value, by
``[redacted]`` (:mod:`access.portal.logs`).
"""

from __future__ import annotations

import uuid as uuidlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, jsonify, request

from policies import NotFoundError, Settings
from storage.catalogue import Catalogue
from storage.fixity import apikeys
from storage.catalogue import mask_text
from storage.fixity import CheckOutcome

bp = Blueprint("ssapi", __name__)
DEFAULT_LIMIT, MAX_LIMIT = 20, 1000


def _catalogue() -> Catalogue:
    return current_app.extensions["dangan"]["catalogue"]


def _settings() -> Settings:
    return current_app.extensions["dangan"]["settings"]


def _authenticate() -> apikeys.KeyInfo:
    info = apikeys.authenticate(_catalogue(), request.args.get("username"),
                                request.args.get("api_key"))
    if info is None:
        abort(401, "authentication failed: give username and a valid auditor api_key")
    return info


def _aip(uuid: str) -> Any:
    try:
        uuidlib.UUID(uuid)
    except ValueError:
        abort(404, "not an AIP identifier")
    try:
        aip = _catalogue().get_aip(uuid)
    except NotFoundError:
        abort(404, "no such AIP")
    if aip.uuid != uuid:           # a prefix matched: the API names packages exactly
        abort(404, "no such AIP")
    return aip


def _package(aip: Any) -> dict[str, Any]:
    """One AIP as the Storage Service describes a package. Paths are relative to the copy's
    location and locations are named, never the server's own paths or storage URLs (the
    fixity client reads only ``uuid``, ``package_type`` and ``status``)."""
    copies = _catalogue().copies_of(aip.uuid)
    first = copies[0] if copies else None
    created = aip.created_at if aip.created_at.tzinfo else aip.created_at.replace(
        tzinfo=UTC)
    return {
        "uuid": aip.uuid,
        "package_type": "AIP",
        "status": aip.status,
        "current_path": f"{aip.uuid}/",
        "current_full_path": f"{aip.uuid}/" if first else None,
        "current_location": f"/api/v2/location/{first.location}/" if first else None,
        "size": aip.size,
        "stored_date": created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "origin_pipeline": None,
        "replicas": [],
        "resource_uri": f"/api/v2/file/{aip.uuid}/",
        "misc_attributes": {"archival_code": aip.archival_code},
        "encrypted": False,
        "dangan_copies": [{"location": c.location, "status": c.status} for c in copies],
    }


def server_places(settings: Settings) -> list[tuple[str, str]]:
    """(text, name) pairs: the storage locations' URLs and local folders, and the home
    folder, with the name that stands for each in an answer; longest first."""
    from policies import load_storage_policy

    places = [(str(settings.home), "<home>")]
    for spec in load_storage_policy(settings).locations:
        url = spec.url.split("?", 1)[0]
        places.append((url, f"<{spec.name}>"))
        if url.startswith("file://"):
            places.append((url.removeprefix("file://"), f"<{spec.name}>"))
    places = [(raw.rstrip("/"), name) for raw, name in places if raw.rstrip("/")]
    return sorted(places, key=lambda p: -len(p[0]))


def scrubbed(value: Any, places: list[tuple[str, str]]) -> Any:
    """A JSON value with every server place in its strings replaced by its name (error
    messages of a check may quote them)."""
    if isinstance(value, str):
        for raw, name in places:
            value = value.replace(raw, name)
        return value
    if isinstance(value, dict):
        return {k: scrubbed(v, places) for k, v in value.items()}
    if isinstance(value, list):
        return [scrubbed(v, places) for v in value]
    return value


def _page_link(key: apikeys.KeyInfo, limit: int, offset: int) -> str:
    query = urlencode({"username": key.username, "api_key": request.args.get("api_key", ""),
                       "limit": limit, "offset": offset})
    return f"/api/v2/file/?{query}"


@bp.get("/api/v2/file/")
def file_list():
    """The AIPs, ``limit`` per page from ``offset``."""
    key = _authenticate()
    limit = min(max(request.args.get("limit", DEFAULT_LIMIT, type=int) or DEFAULT_LIMIT, 1),
                MAX_LIMIT)
    offset = max(request.args.get("offset", 0, type=int) or 0, 0)
    catalogue = _catalogue()
    total = catalogue.count_aips("UPLOADED")
    objects = [_package(a) for a in catalogue.list_aips("UPLOADED", limit=limit, offset=offset)]
    more = offset + limit < total
    return jsonify({"meta": {"limit": limit, "offset": offset, "total_count": total,
                             "next": _page_link(key, limit, offset + limit) if more else None,
                             "previous": _page_link(key, limit, max(offset - limit, 0))
                             if offset else None},
                    "objects": objects})


@bp.get("/api/v2/file/<uuid>/")
def file_detail(uuid: str):
    """One AIP (the client asks before each scan)."""
    _authenticate()
    return jsonify(_package(_aip(uuid)))


def _timestamp(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


@bp.get("/api/v2/file/<uuid>/check_fixity/")
def check_fixity(uuid: str):
    """A full check of every copy now (or the latest full audit of a very large AIP)."""
    from storage.fixity import Auditor

    key = _authenticate()
    aip = _aip(uuid)
    force = request.args.get("force_local", "").lower() in ("true", "1", "yes", "on")
    with Auditor(_settings(), _catalogue()) as auditor:
        outcomes, earlier = auditor.check_aip(aip.uuid, force=force,
                                              actor=f"auditor:{key.username}")
    # a file name may hold an ID number: auditors see it masked, as on every page
    return jsonify(mask_text(scrubbed(fixity_answer(outcomes, earlier), server_places(_settings()))))


def fixity_answer(outcomes: list[CheckOutcome], earlier: bool) -> dict[str, Any]:
    """The Storage Service's ``check_fixity`` answer for the checks of an AIP's copies."""
    failed = [o for o in outcomes if o.outcome == "fail"]
    unfinished = [o for o in outcomes if o.outcome == "error"]
    success: bool | None = False if failed else (None if unfinished else True)
    files: dict[str, list[dict[str, str]]] = {"missing": [], "changed": [], "untracked": []}
    for outcome in failed:
        for finding in outcome.findings:
            where = f"copy at {outcome.location}: {finding.message}"
            if finding.kind in ("changed", "truncated", "tag-altered"):
                files["changed"].append({"path": finding.path, "expected": finding.expected,
                                         "actual": finding.actual,
                                         "hash_type": finding.algorithm or "sha256",
                                         "message": where})
            elif finding.kind in ("missing", "unreadable"):
                files["missing"].append({"path": finding.path, "message": where})
            elif finding.kind == "untracked":
                files["untracked"].append({"path": finding.path, "message": where})
    message = ""
    if failed:
        message = "; ".join(
            f"copy at {o.location}: " + ", ".join(f"{f.kind} {f.path}" for f in o.findings[:20])
            + (f" and {len(o.findings) - 20} more" if len(o.findings) > 20 else "")
            for o in failed)
    elif unfinished:
        message = "; ".join(f"copy at {o.location} could not be checked: {o.note}"
                            for o in unfinished)
    when = min(o.finished for o in outcomes) if earlier else max(o.finished for o in outcomes)
    return {
        "success": success,
        "message": message,
        "timestamp": _timestamp(when),
        "failures": {"files": files},
        "dangan": {"depth": "full", "from_latest_audit": earlier,
                   "copies": [{"location": o.location, "outcome": o.outcome, "check": o.id,
                               "started": o.started.isoformat(),
                               "finished": o.finished.isoformat(), "files": o.files,
                               "bytes_read": o.bytes_read, "event": o.event_id}
                              for o in outcomes]},
    }
