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
from storage.catalogue.database import Catalogue, chain_hash
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
    every hash after it, and the head record, so the chain is consistent again."""
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
    _correct_head(repo)


def _correct_head(repo) -> None:
    """Make the catalogue's head record agree with what is left of the log, as someone who
    knows the schema would after deleting entries."""
    with _db(repo) as db:
        db.execute(text("UPDATE audit_head SET seq = (SELECT max(seq) FROM audit_log), "
                        "hash = (SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1), "
                        "entries = (SELECT count(*) FROM audit_log)"))


def _anchor_file(repo, location: str = "a") -> Path:
    return repo.home / f"store-{location}" / ".dangan" / ANCHOR_NAME


def _head(repo) -> int:
    with _db(repo) as db:
        return db.scalar(text("SELECT max(seq) FROM audit_log"))


def _drop_entries(repo, action: str) -> list[int]:
    with _db(repo) as db:
        seqs = list(db.scalars(text("SELECT seq FROM audit_log WHERE action = :a"), {"a": action}))
        db.execute(text("DELETE FROM audit_log WHERE action = :a"), {"a": action})
    return seqs


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
    _correct_head(repo)
    code, data = _verify(cli)
    assert code == 1 and "truncated" in {p["kind"] for p in data["problems"]}


def test_api_keys_deleted_from_the_log_are_detected(repo, cli):
    """Three keys created, their three entries deleted from the end of the log: the anchor
    written when each command ended, the head record and the keys themselves say so."""
    for name in ("k1", "k2", "k3"):
        assert cli("apikey", "create", name).code == 0
        assert json.loads(_anchor_file(repo).read_text())["seq"] == _head(repo), \
            "the command that appended the entry anchored it in storage"
    dropped = _drop_entries(repo, "apikey-create")
    assert len(dropped) == 3 and max(dropped) > _head(repo)
    code, data = _verify(cli)
    assert code == 1
    kinds = {p["kind"] for p in data["problems"]}
    assert {"truncated", "head", "unaccounted"} <= kinds
    unaccounted = [p["message"] for p in data["problems"] if p["kind"] == "unaccounted"]
    assert any("3 API key(s)" in m for m in unaccounted)
    assert "TAMPERED" in cli("audit-log", "verify").out


def test_the_head_record_alone_catches_a_dropped_tail(repo, cli):
    catalogue = Catalogue.open(repo.settings)
    for n in range(3):                  # appended with no command around: not anchored
        catalogue.audit("somebody", "note", f"n{n}")
    with _db(repo) as db:
        db.execute(text("DELETE FROM audit_log WHERE action = 'note'"))
    code, data = _verify(cli)
    assert code == 1 and {p["kind"] for p in data["problems"]} == {"head"}


def test_the_catalogue_facts_catch_a_dropped_tail_with_its_head_corrected(repo, cli):
    from storage.fixity import apikeys

    catalogue = Catalogue.open(repo.settings)
    apikeys.create_key(catalogue, "auditor", actor="admin")   # in-process: not anchored
    _drop_entries(repo, "apikey-create")
    _correct_head(repo)
    code, data = _verify(cli)
    assert code == 1 and {p["kind"] for p in data["problems"]} == {"unaccounted"}
    assert "API key" in data["problems"][0]["message"]
    refused = cli("audit-log", "anchor")
    assert refused.code == 1 and "no anchor written" in refused.err


def test_a_junk_anchor_fails_and_is_not_written_over(repo, cli):
    assert cli("audit-log", "anchor").code == 0
    _anchor_file(repo).write_bytes(b"\x00junk")
    result = cli("audit-log", "verify")
    assert result.code == 1 and "anchor unreadable" in result.out
    code, data = _verify(cli)
    assert {p["kind"] for p in data["problems"]} == {"unreadable-anchor"}
    assert cli("apikey", "create", "k1").code == 0           # anchoring refuses after it
    assert _anchor_file(repo).read_bytes() == b"\x00junk", "the evidence is kept"
    assert cli("audit-log", "anchor").code == 1
    replaced = cli("audit-log", "anchor", "--replace-damaged", "--by", "admin")
    assert replaced.code == 0, replaced.err
    assert _verify(cli)[0] == 0
    log = json.loads(cli("audit-log", "show", "-n", "5", "--json").out)
    assert "anchor-replaced" in [e["action"] for e in log]


def test_a_deleted_anchor_that_was_written_fails(repo, cli):
    assert cli("audit-log", "anchor").code == 0
    _anchor_file(repo, "b").unlink()
    result = cli("audit-log", "verify")
    assert result.code == 1 and "MISSING" in result.out
    code, data = _verify(cli)
    assert {p["kind"] for p in data["problems"]} == {"missing-anchor"}
    assert {a["location"]: a["status"] for a in data["anchors"]} == {"a": "ok", "b": "missing"}


def test_an_anchor_put_back_older_fails(repo, cli):
    assert cli("audit-log", "anchor").code == 0
    old = _anchor_file(repo).read_bytes()
    assert cli("apikey", "create", "k1").code == 0
    _anchor_file(repo).write_bytes(old)
    code, data = _verify(cli)
    assert code == 1 and {p["kind"] for p in data["problems"]} == {"stale-anchor"}


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
