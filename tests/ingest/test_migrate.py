"""Later migration (``dangan migrate``) and the formats risk register (``dangan formats
report``) on AIPs ingested from the sample transfer, with the real tools (LibreOffice)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "storage"))
from fixity_support import FAST_INGEST, write_policy  # noqa: E402

from policies import load_settings  # noqa: E402
from storage.aip import validate_mets, versions_of  # noqa: E402
from storage.catalogue import Catalogue  # noqa: E402

DANGAN = [sys.executable, "-c", "import sys, dangan; sys.exit(dangan.main())"]
needs_soffice = pytest.mark.skipif(shutil.which("soffice") is None,
                                   reason="LibreOffice (soffice, Debian libreoffice-writer) "
                                          "is not installed")


@pytest.fixture(scope="module")
def master(tmp_path_factory) -> Path:
    from ingest.sample_transfer import generate

    out = tmp_path_factory.mktemp("migrate-sample") / "transfer"
    generate(out, households=1, seed=7)
    return out


@pytest.fixture
def held(home, master, tmp_path, monkeypatch):
    """Two folder locations, the 1-household sample ingested; (settings, {puid: aip uuid})."""
    for name, value in FAST_INGEST.items():
        monkeypatch.setenv(name, value)
    write_policy(home.home, "storage",
                 f'locations:\n  - name: a\n    url: "file://{home.home}/store-a"\n'
                 f'  - name: b\n    url: "file://{home.home}/store-b"\n'
                 "copies:\n  default: [a, b]\n")
    settings = load_settings(home.home)
    transfer = tmp_path / "transfer"
    shutil.copytree(master, transfer)
    from ingest.pipeline import ingest

    result = ingest(transfer, settings)
    assert result.status == "accepted", result.failures
    return settings


def _doc_aip(settings) -> str:
    catalogue = Catalogue.open(settings)
    with catalogue.session() as s:
        from sqlalchemy import select

        from storage.catalogue import models as m

        return s.scalars(select(m.File.aip_uuid).where(m.File.puid == "fmt/40")).one()


def _fingerprints(settings) -> dict[str, str]:
    """Every stored object of both locations (not their .dangan/ admin files: the audit-log
    anchor is written by any command)."""
    found = {}
    for name in ("store-a", "store-b"):
        root = settings.home / name
        for path in sorted(root.rglob("*")):
            if path.is_file() and ".dangan" not in path.relative_to(root).parts:
                found[path.relative_to(root.parent).as_posix()] = \
                    hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _versions(settings, uuid: str) -> list[int]:
    catalogue = Catalogue.open(settings)
    with catalogue.session() as s:
        return [v.number for v in versions_of(s, uuid)]


def _mets_of(cli, uuid: str, version: int, out: Path) -> bytes:
    got = cli("get", uuid, "data/metadata/mets.xml", "--version", str(version), "-o", str(out))
    assert got.code == 0, got.err
    return out.read_bytes()


# -------------------------------------------------------------------- dry run

def test_dry_run_lists_each_file_and_writes_nothing(held, cli):
    settings = held
    uuid = _doc_aip(settings)
    before = _fingerprints(settings)
    got = cli("migrate", "--puid", "fmt/40", "--dry-run", "--json")
    assert got.code == 0, got.err
    data = json.loads(got.out)
    assert data["dry_run"] and data["summary"] == {"planned": 1}
    [aip] = data["aips"]
    assert aip["aip"] == uuid and aip["version"] is None
    [planned] = aip["files"]
    assert planned["source"].startswith("data/objects/综合/") and planned["source"].endswith(".doc")
    assert planned["derivative"] == "data/preservation/" + planned["source"][13:] + ".pdf"
    assert (planned["role"], planned["target"], planned["tool"], planned["state"]) == \
        ("preservation", "PDF/A-2b", "libreoffice", "to-do")
    assert _fingerprints(settings) == before and _versions(settings, uuid) == [1]
    text = cli("migrate", "--puid", "fmt/40", "--dry-run")
    assert "演练" in text.out and planned["derivative"] in text.out and "待转换" in text.out
    # a target the rule does not make, a PUID no rule converts: refused, nothing written
    wrong = cli("migrate", "--puid", "fmt/40", "--to", "XLSX", "--dry-run")
    assert wrong.code != 0 and "PDF/A-2b" in wrong.err
    none = cli("migrate", "--puid", "fmt/43")
    assert none.code != 0 and "fmt/43" in none.err
    # --aip by 档号: only that volume's PDFs, each listed
    volume = next(a for a in Catalogue.open(settings).list_aips() if a.archival_code)
    pdfs = json.loads(cli("migrate", "--puid", "fmt/17", "--aip", volume.archival_code,
                          "--dry-run", "--json").out)
    [only] = pdfs["aips"]
    assert only["aip"] == volume.uuid and len(only["files"]) >= 4
    assert all(f["source"].endswith(".pdf") and f["target"] == "PDF/A-2b" for f in only["files"])
    unknown = cli("migrate", "--puid", "fmt/17", "--aip", "Q999-XX", "--dry-run")
    assert unknown.code != 0 and "Q999-XX" in unknown.err
    assert _fingerprints(settings) == before


# -------------------------------------------------------------------- migration

@needs_soffice
def test_migrate_makes_a_new_version_and_a_second_run_changes_nothing(held, cli, tmp_path):
    from storage.aip import parse_mets

    settings = held
    uuid = _doc_aip(settings)
    before = _fingerprints(settings)
    got = cli("migrate", "--puid", "fmt/40", "--reason", "Word 97 文档转为 PDF/A", "--json")
    assert got.code == 0, got.err
    data = json.loads(got.out)
    [aip] = data["aips"]
    assert (aip["status"], aip["version"]) == ("migrated", 2)
    [done] = aip["files"]
    assert done["state"] == "passed", done
    assert _versions(settings, uuid) == [1, 2]
    after = _fingerprints(settings)
    assert {k: after[k] for k in before} == before, "no stored object is rewritten"
    # version 2 holds the derivative, identified as PDF/A-2b, beside its source
    mets = _mets_of(cli, uuid, 2, tmp_path / "mets.xml")
    assert validate_mets(mets) == []
    description = parse_mets(mets)
    files = {f.path: f for f in description.files}
    derivative = files[done["derivative"]]
    assert derivative.use == "preservation" and derivative.puid == "fmt/477"
    assert files[done["source"]].puid == "fmt/40"
    assert derivative.derived_from == done["source"]
    [event] = [e for e in description.events if e.type == "migration"]
    assert event.outcome == "pass" and "libreoffice" in event.detail.lower()
    assert set(event.file_ids) == {files[done["source"]].id, derivative.id}
    assert any(a.id == event.agent_ids[0] and "LibreOffice" in (a.version or a.name)
               for a in description.agents) or event.agent_ids[0].startswith("libreoffice-")
    # the derivative is retrieved (digests verified) and is a PDF holding the source's text
    out = tmp_path / "copy.pdf"
    assert cli("get", uuid, done["derivative"], "-o", str(out)).code == 0
    from pypdf import PdfReader

    assert "精准扶贫档案" in "".join(p.extract_text() for p in PdfReader(out).pages)
    # dangan show lists the derivative under its source, with the event that made it
    shown = cli("show", uuid).out.splitlines()
    at = next(i for i, line in enumerate(shown) if line.strip() == done["source"])
    assert shown[at + 2].strip() == f"-> 保存版本 {done['derivative']}", shown[at:at + 4]
    assert "migration pass " + event.datetime[:16] in shown[at + 3], shown[at + 3]
    # version 1 is what it was
    assert done["derivative"] not in {f.path for f in parse_mets(
        _mets_of(cli, uuid, 1, tmp_path / "mets1.xml")).files}
    # every copy of every version passes a full audit
    audit = cli("audit", "--aip", uuid, "--all", "--no-repair", "--json")
    assert audit.code == 0 and json.loads(audit.out)["summary"]["failed"] == 0
    # a second run finds the derivative and changes nothing
    stored = _fingerprints(settings)
    again = cli("migrate", "--puid", "fmt/40", "--json")
    assert again.code == 0, again.err
    second = json.loads(again.out)
    assert second["summary"] == {"unchanged": 1}
    assert [f["state"] for f in second["aips"][0]["files"]] == ["present"]
    assert _fingerprints(settings) == stored and _versions(settings, uuid) == [1, 2]
    # the register now counts the preservation copy
    report = json.loads(cli("formats", "report", "--json").out)
    row = next(r for r in report["formats"] if r["puid"] == "fmt/40")
    assert row["with_preservation_copy"] == 1
    assert row["without_preservation_copy_the_rule_asks_for"] == 0
    assert {"role": "preservation", "puid": "fmt/477"}.items() <= \
        next(d for d in report["derivatives"] if d["puid"] == "fmt/477").items()


@needs_soffice
def test_migrate_as_a_worker_job(held, cli):
    settings = held
    uuid = _doc_aip(settings)
    queued = cli("migrate", "--puid", "fmt/40", "--queue", "--json")
    assert queued.code == 0, queued.err
    job = json.loads(queued.out)["job"]
    ran = cli("worker", "--once", "--kind", "migrate", "--json")
    assert ran.code == 0, ran.err
    shown = json.loads(cli("jobs", "show", str(job)).out)
    assert shown["status"] == "done", shown
    assert shown["result"]["aips"][0]["version"] == 2
    assert _versions(settings, uuid) == [1, 2]


# -------------------------------------------------------------------- crash safety

POINTS = ["migrate-materialised", "migrate-converted", "migrate-built",
          "version-objects-written", "version-committed-one", "migrate-stored"]


@needs_soffice
@pytest.mark.parametrize("point", POINTS)
def test_killed_migration_finishes_when_run_again(held, cli, point):
    settings = held
    uuid = _doc_aip(settings)
    before = _fingerprints(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANGAN_")}
    env.update(DANGAN_HOME=str(settings.home), DANGAN_CRASH_AT=point, **FAST_INGEST)
    args = ["migrate", "--puid", "fmt/40", "--json"]
    killed = subprocess.run([*DANGAN, *args], env=env, capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _versions(settings, uuid) == [1], "the old version stays newest"
    after = _fingerprints(settings)
    assert {k: after[k] for k in before} == before
    env.pop("DANGAN_CRASH_AT")
    again = subprocess.run([*DANGAN, *args], env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    [aip] = json.loads(again.stdout)["aips"]
    assert aip["version"] == 2 and aip["status"] in ("migrated", "already-migrated"), aip
    third = subprocess.run([*DANGAN, *args], env=env, capture_output=True, text=True,
                           timeout=300)
    assert third.returncode == 0 and json.loads(third.stdout)["summary"] == {"unchanged": 1}
    assert _versions(settings, uuid) == [1, 2]
    audit = cli("audit", "--aip", uuid, "--all", "--no-repair", "--json")
    assert audit.code == 0 and json.loads(audit.out)["summary"]["failed"] == 0


# -------------------------------------------------------------------- formats report

def test_formats_report_figures_match_the_catalogue(held, master, cli, tmp_path):
    """Counts and bytes per PUID, from the catalogue's own rows; an unidentified file added
    by an update (version 2) is listed, and the file it does not replace still counts."""
    settings = held
    uuid = _doc_aip(settings)
    odd = tmp_path / "odd.qq7"        # bytes and a name no signature knows
    odd.write_bytes(b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(56)))
    pdf = next(master.glob("综合/*.pdf"))
    added = cli("update", uuid, "--add", f"{odd}:综合/附件.qq7", "--add", f"{pdf}:综合/补充.pdf",
                "--reason", "补充附件")
    assert added.code == 0, added.err + added.out
    got = cli("formats", "report", "--json")
    assert got.code == 0, got.err
    report = json.loads(got.out)
    catalogue = Catalogue.open(settings)
    expected: dict[str | None, list[int]] = {}
    aips = set()
    from storage.aip import version_files

    with catalogue.session() as s:
        for aip in catalogue.list_aips():
            for path, row in version_files(s, aip.uuid).items():
                if path.startswith("data/objects/"):
                    counted = expected.setdefault(row.puid, [0, 0])
                    counted[0] += 1
                    counted[1] += row.size
                    aips.add(aip.uuid)
        # a file an update added is catalogued with its format, as an ingested one is
        assert version_files(s, uuid)["data/objects/综合/补充.pdf"].puid == "fmt/17"
    assert {r["puid"]: [r["files"], r["bytes"]] for r in report["formats"]} == expected
    assert report["aips"] == len(aips) and report["files"] == sum(v[0] for v in expected.values())
    assert {"fmt/17", "fmt/40", "fmt/61", "fmt/412", "fmt/276", "fmt/353", "fmt/43"} <= set(expected)
    assert [(u["aip"], u["path"], u["size"]) for u in report["unidentified"]] == \
        [(uuid, "data/objects/综合/附件.qq7", 32 * 56)]
    rows = {r["puid"]: r for r in report["formats"]}
    assert rows["fmt/40"]["ingest_policy"]["action"] == "warn"
    assert rows["fmt/40"]["preservation_rules"][0]["preservation"]["target"] == "PDF/A-2b"
    assert rows["fmt/40"]["without_preservation_copy_the_rule_asks_for"] == 1
    assert rows["fmt/43"]["preservation_rules"][0]["preservation"] == {"action": "keep"}
    assert rows["fmt/43"]["without_preservation_copy_the_rule_asks_for"] == 0
    assert rows["fmt/353"]["without_access_copy_the_rule_asks_for"] == 1
    table = cli("formats", "report")
    assert table.code == 0 and "馆藏格式风险登记" in table.out and "未识别格式的文件 1 个" in table.out
    assert "附件.qq7" in table.out


needs_gs = pytest.mark.skipif(shutil.which("gs") is None,
                              reason="Ghostscript (gs, Debian ghostscript) is not installed")


@needs_gs
def test_a_conversion_that_fails_keeps_the_original_and_makes_no_version(held, cli):
    """The sample's PDF 1.7 uses a CJK font it does not embed: Ghostscript's PDF/A copy loses
    most of its text, the text check fails, and the migration says so (exit 1): no version,
    nothing stored, the file still waiting in the register."""
    settings = held
    before = _fingerprints(settings)
    got = cli("migrate", "--puid", "fmt/276", "--json")
    assert got.code == 1, got.out + got.err
    [aip] = json.loads(got.out)["aips"]
    assert aip["status"] == "failed" and aip["version"] is None
    [failed] = aip["files"]
    assert failed["state"] == "failed" and "text" in failed["message"], failed
    assert any(c["name"] == "text" and c["status"] == "failed" for c in failed["checks"])
    assert _fingerprints(settings) == before
    assert _versions(settings, aip["aip"]) == [1]
    report = json.loads(cli("formats", "report", "--json").out)
    row = next(r for r in report["formats"] if r["puid"] == "fmt/276")
    assert row["without_preservation_copy_the_rule_asks_for"] == 1


@needs_soffice
def test_derivatives_made_at_ingest_are_found_by_migrate_and_the_register(home, master, tmp_path,
                                                                          cli, monkeypatch):
    for name, value in {**FAST_INGEST, "DANGAN_NORMALISE_AT_INGEST": "true"}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(home.home)
    transfer = tmp_path / "transfer"
    shutil.copytree(master, transfer)
    from ingest.pipeline import ingest

    assert ingest(transfer, settings).status == "accepted"
    uuid = _doc_aip(settings)
    got = json.loads(cli("migrate", "--puid", "fmt/40", "--json").out)
    assert got["summary"] == {"unchanged": 1}
    assert [f["state"] for f in got["aips"][0]["files"]] == ["present"]
    assert _versions(settings, uuid) == [1]
    report = json.loads(cli("formats", "report", "--json").out)
    rows = {r["puid"]: r for r in report["formats"]}
    for puid in ("fmt/40", "fmt/412", "fmt/61"):
        assert rows[puid]["with_preservation_copy"] == rows[puid]["files"], rows[puid]
        assert rows[puid]["without_preservation_copy_the_rule_asks_for"] == 0
    assert rows["fmt/353"]["with_access_copy"] == 1
    assert rows["fmt/43"]["without_access_copy_the_rule_asks_for"] == 0
