"""Storage is the system of record: the catalogue (and the search index) is rebuilt from the
AIPs alone, answers the same searches, and every difference with a catalogue is reported."""

from __future__ import annotations

import json
import shutil

import pytest
from sqlalchemy import delete, select, text, update

from policies import load_settings
from storage.catalogue import models as m
from storage.catalogue import Catalogue
from storage.catalogue import PiiValue

QUERIES = ["因病", "低保", "脱贫 year:2016", "category:02", "扶贫手册", "贫困户 -因病"]


def _searches(cli) -> dict[str, dict]:
    out = {}
    for query in QUERIES:
        result = cli("search", query, "--json", "--per-page", "100")
        assert result.code == 0, result.err
        out[query] = json.loads(result.out)
    return out


def drop_catalogue(settings, request) -> None:
    """Lose the catalogue database entirely (the file, or the PostgreSQL database)."""
    url = settings.get("catalogue", "url")
    if url.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            (settings.home / f"catalogue.db{suffix}").unlink(missing_ok=True)
        return
    cluster = request.getfixturevalue("pg_cluster")
    name = url.rsplit("/", 1)[-1]
    cluster.drop_database(name)
    cluster.create_database(name)


@pytest.fixture(scope="module")
def small_transfer(tmp_path_factory):
    """Two households (three AIPs with the county documents): enough to compare, quick."""
    from ingest.sample_transfer import generate

    out = tmp_path_factory.mktemp("rebuild-transfer") / "transfer"
    generate(out, households=2, seed=3)
    return out


@pytest.fixture
def ingested(home, cli, small_transfer, monkeypatch):
    monkeypatch.setenv("DANGAN_FULLTEXT_OCR", "false")      # text layers only: quicker
    result = cli("ingest", small_transfer, "--json")
    assert result.code == 0, result.err
    found = json.loads(result.out)
    assert len(found["aips"]) >= 3
    return found


def test_a_lost_catalogue_is_rebuilt_and_answers_the_same_searches(home, cli, ingested,
                                                                   request) -> None:
    before = _searches(cli)
    assert before["因病"]["total"] > 0
    uuid = ingested["aips"][0]["uuid"]
    shown = json.loads(cli("show", uuid, "--json").out)
    drop_catalogue(home, request)
    assert cli("show", uuid).code != 0                      # the catalogue is really gone
    rebuilt = cli("rebuild", "--from", "local")
    assert rebuilt.code == 0, rebuilt.out + rebuilt.err
    assert f"{len(ingested['aips'])} catalogued" in rebuilt.out
    assert _searches(cli) == before
    again = json.loads(cli("show", uuid, "--json").out)
    for key in ("archival_code", "label", "size", "file_count", "retention_period",
                "open_date", "record", "items", "files"):
        assert again[key] == shown[key], key
    assert {e["id"] for e in again["events"]} == {e["id"] for e in shown["events"]}
    out = home.home / "out"
    assert cli("get", uuid, "-o", out).code == 0            # retrieval works from the rebuild


def test_the_rebuilt_catalogue_keeps_id_numbers_protected(home, cli, ingested, request) -> None:
    drop_catalogue(home, request)
    assert cli("rebuild", "--from", "local").code == 0
    catalogue = Catalogue.open(home)
    with catalogue.session() as s:
        protected = s.scalars(select(PiiValue)).all()
        fields = [json.dumps(i.fields, ensure_ascii=False) for i in s.scalars(select(m.Item))]
    assert protected, "ID numbers are stored encrypted"
    assert not any(p.ciphertext.isdigit() for p in protected)
    assert all("********" in f for f in fields if "head_id_number" in f)


def test_a_rebuild_resumes_where_it_stopped(home, cli, ingested, request) -> None:
    drop_catalogue(home, request)
    first = ingested["aips"][0]["uuid"]
    moved = home.home / "held-back"
    for aip in ingested["aips"][1:]:
        shutil.move(home.home / "aips" / aip["uuid"], moved / aip["uuid"])
    assert cli("rebuild", "--from", "local").code == 0
    for aip in ingested["aips"][1:]:
        shutil.move(moved / aip["uuid"], home.home / "aips" / aip["uuid"])
    resumed = cli("rebuild", "--from", "local", "--into", home.get("catalogue", "url"), "--json")
    report = json.loads(resumed.out)
    assert report["skipped"] == 1 and report["rebuilt"] == len(ingested["aips"]) - 1
    assert Catalogue.open(home).get_aip(first).uuid == first


def test_differences_with_the_catalogue_are_reported(home, cli, ingested) -> None:
    aips = [a["uuid"] for a in ingested["aips"]]
    clean = cli("rebuild", "--from", "local", "--json")
    assert clean.code == 0, clean.out
    assert json.loads(clean.out)["differences"] == []
    catalogue = Catalogue.open(home)
    with catalogue.session() as s:
        s.execute(update(m.Aip).where(m.Aip.uuid == aips[0]).values(label="改过的题名"))
        s.execute(delete(m.File).where(m.File.aip_uuid == aips[1],
                                       m.File.path.like("data/objects/%")))
        s.execute(text("UPDATE search_docs SET text = 'x' WHERE aip_uuid = :u"), {"u": aips[0]})
    lost = home.home / "lost"
    lost.mkdir()
    shutil.move(home.home / "aips" / aips[2], lost / aips[2])
    found = cli("rebuild", "--from", "local", "--json")
    assert found.code == 1
    kinds = {(d["aip"], d["kind"]) for d in json.loads(found.out)["differences"]}
    assert kinds == {(aips[0], "aip"), (aips[0], "documents"), (aips[1], "files"),
                     (aips[2], "only-in-catalogue")}
    text_report = cli("rebuild", "--from", "local").out
    assert "label" in text_report and f"only-in-catalogue {aips[2]}" in text_report


def test_an_aip_stored_but_not_catalogued_is_reported(home, ingested, tmp_path) -> None:
    from storage.locations import FilesystemLocation
    from storage.catalogue import Rebuilder, RebuildReport, compare_catalogues

    aips = [a["uuid"] for a in ingested["aips"]]
    partial = tmp_path / "partial"
    for uuid in aips[:-1]:
        shutil.copytree(home.home / "aips" / uuid, partial / uuid)
    smaller = Catalogue(f"sqlite:///{tmp_path}/smaller.db")
    smaller.upgrade()
    Rebuilder(home, FilesystemLocation("partial", partial), smaller).run()
    whole = Catalogue(f"sqlite:///{tmp_path}/whole.db")
    whole.upgrade()
    report = RebuildReport("local", whole.url)
    Rebuilder(home, FilesystemLocation("local", home.home / "aips"), whole).run()
    compare_catalogues(smaller, whole, report)
    found = {(d.aip, d.kind) for d in report.differences if d.kind.startswith("only-in")}
    assert found == {(aips[-1], "only-in-storage")}


def test_damaged_and_unreadable_aips_are_reported(home, cli, ingested, tmp_path) -> None:
    aips = [a["uuid"] for a in ingested["aips"]]
    root = home.home / "aips"
    payload = sorted((root / aips[0] / "data" / "objects").rglob("*.pdf"))[0]
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0xFF
    payload.write_bytes(bytes(data))
    (root / aips[1] / "data" / "metadata" / "mets.xml").write_text("<not mets")
    quick = cli("rebuild", "--from", "local", "--into", f"sqlite:///{tmp_path}/quick.db",
                "--json")
    report = json.loads(quick.out)
    assert quick.code == 1 and aips[1] in report["failed"]
    assert aips[0] not in report["damaged"]                 # a flipped byte needs --verify
    full = cli("rebuild", "--from", "local", "--into", f"sqlite:///{tmp_path}/full.db",
               "--verify", "--json")
    report = json.loads(full.out)
    assert any(payload.name in p for p in report["damaged"][aips[0]])
    rebuilt = Catalogue(f"sqlite:///{tmp_path}/full.db")
    with rebuilt.session() as s:
        status = s.scalar(select(m.Copy.status).where(m.Copy.aip_uuid == aips[0]))
    assert status == "damaged"


def test_an_unknown_location_is_a_usage_error(home, cli) -> None:
    result = cli("rebuild", "--from", "nowhere")
    assert result.code == 2 and "no storage location 'nowhere'" in result.err


def test_rebuild_feeds_an_external_engine_through_the_outbox(home, cli, ingested, request,
                                                            es_target_factory,
                                                            monkeypatch) -> None:
    target = es_target_factory("osmem")
    for name, value in target.environ().items():
        monkeypatch.setenv(name, value)
    settings = load_settings(home.home)
    drop_catalogue(settings, request)
    rebuilt = cli("rebuild", "--from", "local")
    assert "indexing is queued" in rebuilt.out
    assert cli("index", "drain").code == 0
    from access.search.base import open_engine

    open_engine(settings).refresh()
    found = json.loads(cli("search", "因病", "--json").out)
    assert found["total"] > 0
