"""``dangan export eark``: the packages pass ``eark-validator`` (1.1.3 from PyPI, in a venv of
its own, run offline by ``eark_offline.py``), the AIP package holds every file verified and
the full records, a DIP holds only what its reader may see (no restricted file, no ID number,
no head of household's name)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from dangan_testing import throwaway_venv
from holdings import HOUSEHOLDS
from lxml import etree

import dangan

VALIDATOR = "eark-validator==1.1.3"
OFFLINE = Path(__file__).with_name("eark_offline.py")
METS = "{http://www.loc.gov/METS/}"


@pytest.fixture(scope="session")
def eark_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment of its own with eark-validator from PyPI (it pins lxml 5.1.0,
    which Dangan's own environment does not use)."""
    return throwaway_venv(tmp_path_factory.mktemp("eark-validator"), VALIDATOR)


def validate(venv: Path, package: Path) -> dict:
    """eark-validator's report of a package (folder or zip), run with no network."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
           "no_proxy": "*"}
    run = subprocess.run([str(venv / "bin" / "python"), str(OFFLINE), str(package)], env=env,
                         capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    reports = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1, run.stdout[-3000:]
    return reports[0]


def errors(report: dict) -> list[str]:
    """The validator's findings of severity Error (structure, schema, schematron)."""
    out = [f"structure {m['rule_id']}: {m['message']}"
           for m in report["structure"]["messages"] if m["severity"] == "Error"]
    if report["structure"]["status"] not in ("WellFormed", "Valid", "VALID"):
        out.append(f"structure status {report['structure']['status']}")
    metadata = report.get("metadata") or {}
    for part in ("schema_results", "schematron_results"):
        for m in (metadata.get(part) or {}).get("messages", []):
            if m["severity"] == "Error":
                out.append(f"{part} {m['rule_id']}: {m['message']} @ {m.get('location', '')[:80]}")
    return out


@pytest.fixture
def run(holding, monkeypatch, capsys):
    for name in list(os.environ):
        if name.startswith("DANGAN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DANGAN_HOME", str(holding.settings.home))

    def call(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = dangan.main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return call


def _all_text(root: Path) -> str:
    out = []
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in (".xml", ".txt", ".json") \
                and path.parent.name != "schemas":
            out.append(path.read_text(encoding="utf-8", errors="replace"))
        out.append(str(path.relative_to(root)))
    return "\n".join(out)


def test_aip_package_passes_the_validator(holding, run, eark_venv, tmp_path):
    code, text = run("export", "eark", holding.restricted, "-o", tmp_path / "out")
    assert code == 0, text
    [package] = (tmp_path / "out").iterdir()
    assert package.name == holding.restricted
    report = validate(eark_venv, package)
    assert errors(report) == []
    assert report["package"]["details"]["oaispackagetype"] == "AIP"
    root = etree.parse(str(package / "METS.xml")).getroot()
    assert root.get("PROFILE") == "https://earkcsip.dilcis.eu/profile/E-ARK-CSIP.xml"
    # the AIP holds every file and the full record (the archivist's view)
    data = sorted(p.name for p in (package / "representations/rep1/data").rglob("*")
                  if p.is_file())
    assert data
    dc = (package / "metadata/descriptive").glob("dc-*.xml")
    titles = [t for f in dc for t in etree.parse(str(f)).getroot().itertext()]
    assert any(HOUSEHOLDS[0].head in t for t in titles) or any(
        HOUSEHOLDS[0].head in p.read_text(encoding="utf-8")
        for p in (package / "metadata/descriptive").glob("dangan-*.xml"))
    # PREMIS validates against its schema in the package and names each file's digest
    premis = etree.parse(str(package / "metadata/preservation/premis.xml"))
    schema = etree.XMLSchema(etree.parse(str(package / "schemas/premis.xsd")))
    assert schema.validate(premis), schema.error_log
    digests = {e.text for e in premis.iter("{http://www.loc.gov/premis/v3}messageDigest")}
    rep = etree.parse(str(package / "representations/rep1/METS.xml")).getroot()
    assert {f.get("CHECKSUM") for f in rep.iter(f"{METS}file")} == digests
    # zip output passes too
    code, text = run("export", "eark", holding.general, "--version", "1",
                     "-o", tmp_path / "general.zip")
    assert code == 0, text
    assert errors(validate(eark_venv, tmp_path / "general.zip")) == []


def test_dip_holds_only_what_the_reader_sees(holding, run, eark_venv, tmp_path):
    # the restricted household volume: an anonymous reader may take nothing of it
    code, text = run("export", "eark", holding.restricted, "--dip", "-o", tmp_path / "r")
    assert code == 2 and "no record" in text, text     # hidden from it, as in the portal
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
    # the opened one: its records are shown masked and none of its files, as in the portal's
    # DIP: refused
    code, text = run("export", "eark", holding.opened, "--dip", "-o", tmp_path / "o")
    assert code == 1 and "none of this record's files" in text, text
    # the county documents, open: a DIP of them
    code, text = run("export", "eark", holding.general, "--dip", "-o", tmp_path / "dip.zip")
    assert code == 0, text
    report = validate(eark_venv, tmp_path / "dip.zip")
    assert errors(report) == []
    assert report["package"]["details"]["oaispackagetype"] == "DIP"
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(tmp_path / "dip.zip") as z:
        z.extractall(unpacked)
    [package] = unpacked.iterdir()
    text = _all_text(package)
    for household in HOUSEHOLDS:
        assert household.id_number not in text
        assert household.phone not in text
    root = etree.parse(str(package / "METS.xml")).getroot()
    assert root.get("PROFILE") == "https://earkdip.dilcis.eu/profile/E-ARK-DIP.xml"
    assert list((package / "representations/rep1/data").rglob("*.*"))
    # a signed-up reader's view, and an unknown account refused
    code, text = run("export", "eark", holding.general, "--dip", "--reader", "researcher",
                     "-o", tmp_path / "researcher")
    assert code == 0, text
    assert errors(validate(eark_venv, next((tmp_path / "researcher").iterdir()))) == []
    code, text = run("export", "eark", holding.general, "--dip", "--reader", "nobody",
                     "-o", tmp_path / "nobody")
    assert code != 0 and not (tmp_path / "nobody").exists()



def test_handmade_sip_passes_the_validator_but_for_its_own_conflict(eark_venv, tmp_path):
    """The SIP the import tests ingest (written by hand to the specification, not by Dangan)
    passes eark-validator except SIP14: 1.1.3 asks every CREATOR agent's note for
    NOTETYPE="IDENTIFICATIONCODE", while CSIP15/CSIP16 make the software agent's one note
    csip:NOTETYPE="SOFTWARE VERSION" — no SIP can meet both."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ingest"))
    from test_eark_import import handmade_sip

    report = validate(eark_venv, handmade_sip(tmp_path))
    assert report["package"]["details"]["oaispackagetype"] == "SIP"
    found = errors(report)
    assert found and all(e.startswith("schematron_results SIP14:") for e in found), found


def test_a_damaged_file_stops_the_export_and_leaves_nothing(home, cli, tmp_path):
    """Every copy of one payload file damaged (its only copy, a byte flipped on disk): the
    export names the file, exits 1, and leaves neither a package nor a partial zip."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ingest"))
    from transfers import small_transfer

    done = cli("ingest", small_transfer(tmp_path / "t", rows=2), "--json")
    assert done.code == 0, done.err
    uuid = json.loads(done.out)["aips"][0]["uuid"]
    [stored] = [p for p in (home.home / "aips" / uuid / "data" / "objects").rglob("*")
                if p.is_file()][:1]
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    out = tmp_path / "out"
    folder = cli("export", "eark", uuid, "-o", out)
    assert folder.code == 1 and "没有可用的完好副本" in folder.err, folder.err
    assert stored.name in folder.err
    assert list(out.iterdir()) == []
    zipped = cli("export", "eark", uuid, "-o", tmp_path / "p.zip")
    assert zipped.code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "out", "t"]
