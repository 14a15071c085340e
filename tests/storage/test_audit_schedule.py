"""Which copies are due: per-location intervals, the daily byte budget, reading ahead of
schedule to spread the load; quick checks never make a copy less due."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixity_support import audit_json, write_policy

from storage.catalogue import models as m
from storage.catalogue.database import Catalogue, utcnow

pytest_plugins = ["fixity_fixtures"]


def _age(repo, days: float, aip: str | None = None, location: str | None = None) -> None:
    """Pretend the copies were last fully verified ``days`` ago."""
    query = update(m.Copy).values(verified_at=utcnow() - timedelta(days=days))
    if aip:
        query = query.where(m.Copy.aip_uuid == aip)
    if location:
        query = query.where(m.Copy.location == location)
    with Catalogue.open(repo.settings).session() as s:
        s.execute(query)


def _plan(cli) -> dict:
    result = cli("audit", "--dry-run", "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def _sizes(repo) -> dict[str, int]:
    return {a.uuid: a.size for a in Catalogue.open(repo.settings).list_aips()}


def test_only_overdue_copies_are_read(repo, cli):
    assert _plan(cli)["copies"] == []
    old = repo.uuids[0]
    _age(repo, 100, aip=old)

    plan = _plan(cli)
    assert {(c["aip"], c["location"], c["reason"]) for c in plan["copies"]} == {
        (old, "a", "due"), (old, "b", "due")}
    code, out = audit_json(cli)
    assert code == 0 and {(c["aip"], c["location"]) for c in out["checks"]} == {
        (old, "a"), (old, "b")}
    assert _plan(cli)["copies"] == []


def test_each_location_has_its_own_interval(repo, cli):
    write_policy(repo.home, "fixity", "algorithms: [sha256]\naudit:\n  full_interval_days: 90\n"
                                      "  locations:\n    b: {full_interval_days: 30}\n")
    _age(repo, 40)
    plan = _plan(cli)
    assert {c["location"] for c in plan["copies"]} == {"b"}
    assert len(plan["copies"]) == len(repo.uuids)


def test_the_daily_budget_takes_the_oldest_first_and_defers_the_rest(repo, cli):
    sizes = _sizes(repo)
    for days, uuid in enumerate(repo.uuids):
        _age(repo, 100 + days, aip=uuid)         # the last AIP is the oldest
    oldest = list(reversed(repo.uuids))
    budget = 2 * sizes[oldest[0]] + 2 * sizes[oldest[1]]
    write_policy(repo.home, "fixity", f"algorithms: [sha256]\naudit:\n  daily_byte_budget: {budget}\n")

    plan = _plan(cli)
    assert [c["aip"] for c in plan["copies"]] == [oldest[0], oldest[0], oldest[1], oldest[1]]
    assert len(plan["deferred"]) == 2 * len(repo.uuids) - 4

    code, out = audit_json(cli)
    assert code == 0 and out["summary"]["copies"] == 4
    assert out["summary"]["deferred_by_budget"] == 2 * len(repo.uuids) - 4
    later = _plan(cli)                              # the day's budget is spent
    assert later["copies"] == [] and later["read_today"] >= budget


def test_spare_budget_reads_ahead_of_schedule(repo, cli):
    for days, uuid in enumerate(repo.uuids):
        _age(repo, 10 + days, aip=uuid)
    assert _plan(cli)["copies"] == []               # nothing due, no budget: nothing read
    sizes = _sizes(repo)
    oldest = repo.uuids[-1]
    write_policy(repo.home, "fixity", f"algorithms: [sha256]\naudit:\n"
                                      f"  daily_byte_budget: {2 * sizes[oldest]}\n")
    plan = _plan(cli)
    assert [(c["aip"], c["reason"]) for c in plan["copies"]] == [(oldest, "ahead")] * 2


def test_a_quick_check_never_counts_as_a_full_one(repo, cli):
    _age(repo, 100)
    code, out = audit_json(cli, "--quick")
    assert code == 0 and out["summary"]["copies"] == 2 * len(repo.uuids)
    assert out["summary"]["bytes_read"] == 0
    assert out["summary"]["passed"] == 0 and out["summary"]["present"] == 2 * len(repo.uuids)
    assert {c["outcome"] for c in out["checks"]} == {"present"}

    assert len(_plan(cli)["copies"]) == 2 * len(repo.uuids)     # still due
    report = cli("audit", "report", "--json")
    data = json.loads(report.out)
    assert report.code == 1
    assert data["coverage"]["all_copies_fully_checked_within_interval"] is False
    assert data["coverage"]["not_covered"] == 2 * len(repo.uuids)
    row = data["copies"][0]
    assert row["last_quick_outcome"] == "present" and row["last_full_source"] == "write"
    assert row["age_days"] >= 99 and "overdue" in row["reason"]
    folder = repo.home / "quick-report"
    assert cli("audit", "report", "-o", folder).code == 1
    html = (folder / "fixity-report.html").read_text(encoding="utf-8")
    assert "快速校验：文件齐全、大小相符" in html
    from access.dashboard import fixity_coverage

    coverage = fixity_coverage(Catalogue.open(repo.settings), repo.settings)
    assert coverage["covered"] == 0, "the dashboard does not count a quick check as a full one"

    code, out = audit_json(cli)
    assert code == 0 and out["summary"]["bytes_read"] > 0
    report = cli("audit", "report", "--json")
    data = json.loads(report.out)
    assert report.code == 0 and data["coverage"]["all_copies_fully_checked_within_interval"]
    assert {r["last_full_source"] for r in data["copies"]} == {"audit"}
