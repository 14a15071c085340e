"""The tamper-evident audit log: rows edited, deleted, inserted or reordered directly in the
database are detected, and so is a rewrite of the whole chain, against the anchor in storage."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixity_support import audit_json, write_policy

from storage.catalogue import models as m
from storage.catalogue.auditlog import ANCHOR_NAME, entry_hash
from storage.catalogue import Catalogue, chain_hash
from storage.fixity import as_utc

pytest_plugins = ["fixity_fixtures"]


@contextmanager
def _db(repo) -> Iterator[Connection]:
    """A transaction on the repository's catalogue (SQLite or PostgreSQL) for SQL typed in
    directly, past the catalogue's own code, as anyone able to write the database could."""
    engine = Catalogue.open(repo.settings).engine
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


def _verify(cli) -> tuple[int, dict]:
    result = cli("audit-log", "verify", "--json")
    return result.code, json.loads(result.out)


def _kinds(data: dict) -> set[tuple[str, int | None]]:
    return {(p["kind"], p["seq"]) for p in data["problems"]}


def test_an_untouched_log_verifies_and_anchors(repo, cli):
    code, data = _verify(cli)
    assert code == 0 and data["intact"] and data["entries"] >= 5
    assert not data["anchored"] and {a["status"] for a in data["anchors"]} == {"none"}
    text = cli("audit-log", "verify")
    assert "not-checked" in text.out

    assert cli("audit-log", "anchor").code == 0
    for location in ("a", "b"):
        anchor = json.loads((repo.home / f"store-{location}" / ".dangan" / ANCHOR_NAME).read_text())
        assert anchor["seq"] == data["head"]["seq"] and anchor["hash"] == data["head"]["hash"]
    code, data = _verify(cli)
    assert code == 0 and data["anchored"]


def test_an_edited_row_is_detected(repo, cli):
    with _db(repo) as db:
        db.execute(text("UPDATE audit_log SET detail = '{\"bytes\": 1}' WHERE seq = 3"))
    code, data = _verify(cli)
    assert code == 1 and _kinds(data) == {("edited", 3)}


def test_an_edited_row_with_its_hash_recomputed_is_detected(repo, cli):
    catalogue = Catalogue.open(repo.settings)
    with catalogue.session() as s:
        row = s.get(m.AuditEntry, 3)
        row.actor = "somebody-else"
        row.hash = entry_hash(row)
    code, data = _verify(cli)
    assert code == 1 and _kinds(data) == {("broken-link", 4)}


def test_a_deleted_row_is_detected(repo, cli):
    with _db(repo) as db:
        db.execute(text("DELETE FROM audit_log WHERE seq = 4"))
    code, data = _verify(cli)
    assert code == 1 and ("deleted", 5) in _kinds(data)
    assert "entry 4 is missing" in data["problems"][0]["message"]


def test_reordered_rows_are_detected(repo, cli):
    with _db(repo) as db:                        # entries 3 and 4 trade places
        for old, new in ((3, -1), (4, 3), (-1, 4)):
            db.execute(text("UPDATE audit_log SET seq = :new WHERE seq = :old"),
                       {"old": old, "new": new})
    code, data = _verify(cli)
    assert code == 1
    assert {k for k, _ in _kinds(data)} <= {"out-of-order", "broken-link"}
    assert {seq for _, seq in _kinds(data)} >= {3, 4}
    assert any(p["kind"] == "out-of-order" for p in data["problems"])


def test_an_inserted_row_is_detected(repo, cli):
    catalogue = Catalogue.open(repo.settings)
    with catalogue.session() as s:
        third = s.get(m.AuditEntry, 3)
        forged_at, forged_prev = as_utc(third.at), third.hash
    with _db(repo) as db:
        last = db.scalar(text("SELECT max(seq) FROM audit_log"))
        for seq in range(last, 3, -1):            # make room for a row after entry 3
            db.execute(text("UPDATE audit_log SET seq = seq + 1 WHERE seq = :seq"), {"seq": seq})
    detail = {"note": "forged"}
    with catalogue.session() as s:
        s.add(m.AuditEntry(seq=4, at=forged_at, actor="dangan", action="ingest", object="forged",
                           detail=detail, prev_hash=forged_prev,
                           hash=chain_hash(forged_prev, forged_at, "dangan", "ingest", "forged",
                                           detail)))
    code, data = _verify(cli)
    assert code == 1 and ("out-of-order", 5) in _kinds(data)


def _rewrite_whole_chain(repo, seq: int) -> None:
    """What someone able to write the database could do: change an entry and recompute
    every hash after it, so the chain is consistent again."""
    catalogue = Catalogue.open(repo.settings)
    with catalogue.session() as s:
        rows = s.scalars(select(m.AuditEntry).order_by(m.AuditEntry.seq)).all()
        previous = rows[0].prev_hash
        for row in rows:
            if row.seq == seq:
                row.detail = {**row.detail, "rewritten": True}
            row.prev_hash = previous
            row.hash = entry_hash(row)
            previous = row.hash


def test_a_rewritten_chain_is_caught_by_the_anchor_in_storage(repo, cli):
    assert cli("audit-log", "anchor").code == 0
    _rewrite_whole_chain(repo, 2)
    code, data = _verify(cli)
    assert code == 1
    assert {p["kind"] for p in data["problems"]} == {"rewritten"}
    assert {a["status"] for a in data["anchors"]} == {"mismatch"}

    before = (repo.home / "store-a" / ".dangan" / ANCHOR_NAME).read_bytes()
    refused = cli("audit-log", "anchor")
    assert refused.code == 1 and "no anchor written" in refused.err
    assert (repo.home / "store-a" / ".dangan" / ANCHOR_NAME).read_bytes() == before


def test_dropping_the_latest_rows_is_caught_by_the_anchor(repo, cli):
    assert cli("audit-log", "anchor").code == 0
    with _db(repo) as db:
        last = db.scalar(text("SELECT max(seq) FROM audit_log"))
        db.execute(text("DELETE FROM audit_log WHERE seq >= :seq"), {"seq": last - 1})
    code, data = _verify(cli)
    assert code == 1 and {p["kind"] for p in data["problems"]} == {"truncated"}


def test_checks_repairs_runs_and_policy_changes_are_logged(repo, cli):
    audit_json(cli, "--aip", repo.uuids[0])
    write_policy(repo.home, "fixity", "algorithms: [sha256]\naudit:\n  full_interval_days: 30\n")
    audit_json(cli, "--aip", repo.uuids[0])

    log = json.loads(cli("audit-log", "show", "-n", "200", "--json").out)
    actions = [e["action"] for e in log]
    assert {"ingest", "audit-start", "fixity-check", "audit-finish"} <= set(actions)
    changes = [e for e in log if e["action"] == "policy-change" and e["object"] == "policy:fixity"]
    assert len(changes) == 2
    assert changes[0]["detail"]["previous"] is None
    assert changes[1]["detail"]["previous"] == changes[0]["detail"]["sha256"]
    assert changes[1]["detail"]["file"].endswith("policies/fixity.yaml")
    code, data = _verify(cli)
    assert code == 0 and data["anchored"]                 # audits write the anchor
