"""The Storage-Service-compatible API: authentication by auditor key, listing and detail that
never disagree, check_fixity answers in exactly the shape the fixity client reads, and keys
that never reach a log or the database."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
import threading
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))
from fixity_support import (
    DAMAGE,
    audit_json,
    flip_byte,
    payload_file,
    write_policy,
)

from storage.catalogue.database import Catalogue
from storage.fixity import apikeys
from storage.fixity.models import ApiKey, CopyCheck

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")

pytest_plugins = ["fixity_fixtures"]


@pytest.fixture
def api(repo):
    from access.portal import create_app

    key, _info = apikeys.create_key(Catalogue.open(repo.settings), "auditor", actor="test")
    app = create_app(repo.settings, {"TESTING": True})
    client = app.test_client()

    def get(path: str, user: str = "auditor", secret: str | None = None, **params: str):
        query = {"username": user, "api_key": key if secret is None else secret, **params}
        return client.get(path, query_string={k: v for k, v in query.items() if v is not None})

    get.key, get.client, get.app = key, client, app  # type: ignore[attr-defined]
    return get



def test_a_valid_auditor_key_is_required(api, repo):
    assert api("/api/v2/file/", secret="not-the-key").status_code == 401
    assert api("/api/v2/file/", user="someone-else").status_code == 401
    assert api.client.get("/api/v2/file/").status_code == 401
    assert api(f"/api/v2/file/{repo.uuids[0]}/check_fixity/", secret="x").status_code == 401
    assert api("/api/v2/file/").status_code == 200
    apikeys.revoke_key(Catalogue.open(repo.settings), "auditor", actor="test")
    assert api("/api/v2/file/").status_code == 401


def test_list_pages_repeat_the_credentials_and_agree_with_detail(api, repo):
    seen = []
    response = api("/api/v2/file/", limit="4")
    while True:
        assert response.status_code == 200
        body = response.get_json()
        for package in body["objects"]:
            assert package["package_type"] == "AIP" and package["status"] == "UPLOADED"
            assert package["resource_uri"] == f"/api/v2/file/{package['uuid']}/"
            assert isinstance(package["size"], int) and package["current_location"]
            detail = api(f"/api/v2/file/{package['uuid']}/")
            assert detail.status_code == 200 and detail.get_json()["uuid"] == package["uuid"]
            seen.append(package["uuid"])
        assert body["meta"]["total_count"] == len(repo.uuids)
        following = body["meta"]["next"]
        if following is None:
            break
        assert following.startswith("/api/v2/file/?")        # root-relative
        query = parse_qs(urlparse(following).query)
        assert query["username"] == ["auditor"] and query["api_key"] == [api.key]
        response = api.client.get(following)                 # exactly what the client does
    assert sorted(seen) == sorted(repo.uuids) and len(seen) == len(set(seen))


def test_unknown_or_malformed_identifiers_are_404(api, repo):
    assert api("/api/v2/file/00000000-0000-4000-8000-000000000000/").status_code == 404
    assert api("/api/v2/file/not-a-uuid/check_fixity/").status_code == 404
    assert api(f"/api/v2/file/{repo.uuids[0][:8]}/").status_code == 404


def test_the_api_is_read_only(api, repo):
    for method in ("post", "put", "delete", "patch"):
        call = getattr(api.client, method)
        response = call(f"/api/v2/file/{repo.uuids[0]}/",
                        query_string={"username": "auditor", "api_key": api.key})
        assert response.status_code == 405


def test_check_fixity_of_an_intact_aip(api, repo):
    uuid = repo.uuids[0]
    response = api(f"/api/v2/file/{uuid}/check_fixity/")
    assert response.status_code == 200
    body = response.get_json()
    assert body["success"] is True and body["message"] == ""
    assert TIMESTAMP.match(body["timestamp"])
    assert body["failures"] == {"files": {"missing": [], "changed": [], "untracked": []}}
    assert {c["location"] for c in body["dangan"]["copies"]} == {"a", "b"}
    with Catalogue.open(repo.settings).session() as s:
        checks = s.scalars(select(CopyCheck).where(CopyCheck.aip_uuid == uuid)).all()
    assert {(c.purpose, c.depth, c.outcome, c.actor) for c in checks} == {
        ("api", "full", "pass", "auditor:auditor")}


@pytest.mark.parametrize("damage,bucket", [("changed-byte", "changed"), ("truncated", "changed"),
                                           ("deleted-file", "missing"),
                                           ("extra-file", "untracked"),
                                           ("edited-bag-info", "changed")])
def test_check_fixity_names_what_is_wrong(api, repo, damage, bucket):
    uuid = repo.uuids[1]
    path = DAMAGE[damage][0](repo.store("b"), uuid)

    body = api(f"/api/v2/file/{uuid}/check_fixity/").get_json()

    assert body["success"] is False and path in body["message"] and "copy at b" in body["message"]
    [entry] = body["failures"]["files"][bucket]
    assert entry["path"] == path and entry["message"].startswith("copy at b")
    if bucket == "changed":
        assert entry["hash_type"] in ("sha256", "size") and entry["expected"] != entry["actual"]
    assert TIMESTAMP.match(body["timestamp"])


def test_a_large_aip_is_answered_from_its_latest_full_audit(api, repo, cli):
    write_policy(repo.home, "fixity", "algorithms: [sha256]\naudit:\n  api_max_full_bytes: 1\n")
    uuid = repo.uuids[2]
    audit_json(cli, "--aip", uuid)
    with Catalogue.open(repo.settings).session() as s:
        audited = s.scalars(select(CopyCheck).where(CopyCheck.aip_uuid == uuid)).all()
    flip_byte(repo.store("a"), uuid, payload_file(repo.store("a"), uuid))

    body = api(f"/api/v2/file/{uuid}/check_fixity/").get_json()

    assert body["dangan"]["from_latest_audit"] is True and body["success"] is True
    assert body["timestamp"] == min(c.finished_at for c in audited).strftime("%Y-%m-%dT%H:%M:%S")
    assert {c["check"] for c in body["dangan"]["copies"]} == {c.id for c in audited}

    forced = api(f"/api/v2/file/{uuid}/check_fixity/", force_local="True").get_json()

    assert forced["dangan"]["from_latest_audit"] is False and forced["success"] is False
    assert forced["failures"]["files"]["changed"][0]["message"].startswith("copy at a")


def test_keys_are_stored_hashed_and_never_logged(api, repo, caplog):
    with Catalogue.open(repo.settings).session() as s:
        [row] = s.scalars(select(ApiKey)).all()
    assert row.key_hash == hashlib.sha256(api.key.encode()).hexdigest()
    raw = b"".join(p.read_bytes() for p in repo.home.glob("catalogue.db*"))
    assert api.key.encode() not in raw

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, api.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            for path in ("/api/v2/file/", f"/api/v2/file/{repo.uuids[0]}/check_fixity/"):
                url = f"http://127.0.0.1:{server.port}{path}?username=auditor&api_key={api.key}"
                with urllib.request.urlopen(url, timeout=60) as response:
                    json.load(response)
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{server.port}/api/v2/file/"
                                       f"?username=auditor&api_key={api.key}x", timeout=60)
            except urllib.error.HTTPError as exc:
                assert exc.code == 401
    finally:
        server.shutdown()
        thread.join(10)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "api_key=[redacted]" in logged and logged.count("/api/v2/file/") == 3
    assert api.key not in logged
    log = json.loads(_cli_log(repo))
    assert api.key not in json.dumps(log, ensure_ascii=False)


def _cli_log(repo) -> str:
    from storage.catalogue.auditlog import recent_entries

    return json.dumps(recent_entries(Catalogue.open(repo.settings), 1000), default=str)


def test_answers_carry_no_server_paths_or_storage_urls(api, repo):
    uuid = repo.uuids[0]
    listed = api("/api/v2/file/").get_data(as_text=True)
    detail = api(f"/api/v2/file/{uuid}/").get_json()
    assert detail["current_path"] == f"{uuid}/" and detail["current_full_path"] == f"{uuid}/"
    assert detail["current_location"].startswith("/api/v2/location/")
    assert {c["location"] for c in detail["dangan_copies"]} == {"a", "b"}
    # a copy that cannot be read: the check's messages quote the folder; the answer must not
    store = repo.store("a")
    target = store.file(uuid, payload_file(store, uuid))
    target.unlink()
    target.mkdir()
    checked = api(f"/api/v2/file/{uuid}/check_fixity/").get_data(as_text=True)
    assert json.loads(checked)["success"] is False
    for answer in (listed, json.dumps(detail), checked):
        assert str(repo.home) not in answer and "file://" not in answer
