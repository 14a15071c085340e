"""Evidence for auditors: a PREMIS event per check of every copy, the PREMIS export of an AIP,
every recorded algorithm computed, and the HTML / CSV / JSON reports."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
from pathlib import Path

from lxml import etree
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixity_support import audit_json, events_of, flip_byte, payload_file

from storage.catalogue import models as m
from storage.catalogue.database import Catalogue

SCHEMAS = Path(__file__).resolve().parents[2] / "storage" / "aip" / "schemas"
P = {"premis": "http://www.loc.gov/premis/v3"}

pytest_plugins = ["fixity_fixtures"]


def test_every_check_of_every_copy_is_a_premis_event_and_exported(repo, cli, tmp_path):
    uuid = repo.uuids[0]
    audit_json(cli, "--aip", uuid, "--quick")
    audit_json(cli, "--aip", uuid)

    events = events_of(repo.settings, uuid) + [     # (ingest's DA/T 70 validation has none)
        e for e in events_of(repo.settings, uuid, "validation") if e.location]
    assert sorted((e.location, e.type, e.outcome, e.detail.split(":")[0]) for e in events) == [
        ("a", "fixity check", "pass", "full check"),
        ("a", "validation", "present", "quick check (not a fixity check)"),
        ("b", "fixity check", "pass", "full check"),
        ("b", "validation", "present", "quick check (not a fixity check)")]
    out = tmp_path / "premis.xml"
    assert cli("audit", "premis", uuid[:8], "-o", out).code == 0

    document = etree.parse(str(out))
    schema = etree.XMLSchema(etree.parse(str(SCHEMAS / "premis.xsd")))
    assert schema.validate(document), schema.error_log
    checks = [e for e in document.findall("premis:event", P)
              if "check" in e.findtext("premis:eventDetailInformation/premis:eventDetail",
                                       namespaces=P)
              and "copy at " in e.findtext("premis:eventDetailInformation/premis:eventDetail",
                                           namespaces=P)]
    assert len(checks) == 4
    for event in checks:
        when = event.findtext("premis:eventDateTime", namespaces=P)
        start, _, end = when.partition("/")
        assert start and end and start <= end            # the check's time span
        detail = event.findtext("premis:eventDetailInformation/premis:eventDetail",
                                namespaces=P)
        kind = event.findtext("premis:eventType", namespaces=P)
        result = event.findtext("premis:eventOutcomeInformation/premis:eventOutcome",
                                namespaces=P)
        # a quick check reads no byte: never a "fixity check", never a "pass"
        assert (kind, result) == (("fixity check", "pass") if "full check" in detail
                                  else ("validation", "present"))
        assert "tool Dangan" in detail and "hashlib" in detail
        agents = [a.findtext("premis:linkingAgentIdentifierValue", namespaces=P)
                  for a in event.findall("premis:linkingAgentIdentifier", P)]
        assert "hashlib-openssl" in agents
    full = [e for e in checks if "full check" in e.findtext(
        "premis:eventDetailInformation/premis:eventDetail", namespaces=P)]
    assert len(full) == 2 and all("algorithms sha256" in e.findtext(
        "premis:eventDetailInformation/premis:eventDetail", namespaces=P) for e in full)
    ids = {a.findtext("premis:agentIdentifier/premis:agentIdentifierValue", namespaces=P)
           for a in document.findall("premis:agent", P)}
    assert "hashlib-openssl" in ids


def test_every_recorded_algorithm_is_computed(repo, cli):
    uuid = repo.uuids[1]
    store = repo.store("a")
    catalogue = Catalogue.open(repo.settings)
    with catalogue.session() as s:
        rows = s.scalars(select(m.File).where(m.File.aip_uuid == uuid)).all()
        for row in rows:
            data = store.read(uuid, row.path)
            row.digests = {**row.digests, "sm3": hashlib.new("sm3", data).hexdigest(),
                           "md5": hashlib.md5(data).hexdigest()}
        target = next(r for r in rows if r.path.startswith("data/objects/"))
        target.digests = {**target.digests, "sm3": "0" * 64}    # only sm3 disagrees

    code, out = audit_json(cli, "--aip", uuid, "--no-repair")

    assert code == 1
    for check in out["checks"]:
        assert check["algorithms"] == ["sha256", "md5", "sm3"]
        assert [(f["kind"], f["path"], f["algorithm"]) for f in check["findings"]] == [
            ("changed", target.path, "sm3")]


def test_reports_in_html_csv_and_json(repo, cli, tmp_path):
    uuid = repo.uuids[2]
    flip_byte(repo.store("a"), uuid, payload_file(repo.store("a"), uuid))
    audit_json(cli, "--all", "--no-repair")

    result = cli("audit", "report", "-o", tmp_path / "r")

    assert result.code == 1
    assert "所有副本均在周期内完成全量校验：否" in result.out and f"{uuid} @ a" in result.out
    html = (tmp_path / "r" / "fixity-report.html").read_text(encoding="utf-8")
    assert "固定性审计报告" in html and "未覆盖的副本" in html and uuid in html
    assert "快速校验" in html and "不计入覆盖率" in html
    raw = (tmp_path / "r" / "fixity-report.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")                       # Excel opens UTF-8 CSV
    rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    assert len(rows) == 2 * len(repo.uuids)
    bad = [r for r in rows if r["在周期内且完好"] == "否"]
    assert [(r["AIP"], r["存储位置"], r["全量校验结果"]) for r in bad] == [(uuid, "a", "fail")]
    data = json.loads((tmp_path / "r" / "fixity-report.json").read_text(encoding="utf-8"))
    assert data["coverage"]["all_copies_fully_checked_within_interval"] is False
    assert [(c["aip_uuid"], c["location"]) for c in data["not_covered"]] == [(uuid, "a")]
    good = next(c for c in data["copies"] if c["location"] == "b" and c["aip_uuid"] == uuid)
    assert good["covered"] and good["last_full_outcome"] == "pass" and good["age_days"] == 0
