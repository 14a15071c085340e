"""The portal and the JSON API follow AIP versions (第 N 版, 版本历史, files of an earlier
version for staff), search follows the newest version, and a 防返贫监测 record's 关联档号
links it to the 建档立卡 household file it follows, both ways, with the monitored:yes filter.

The holding is the access tests' one (tests/access/holdings.py) plus one monitoring record,
ingested for this module alone (it is updated here), on the real pipeline and storage."""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import quote

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from holdings import HEADER, HOUSEHOLDS, PASSWORD, build_transfer, docx_file, served_settings, text_pdf  # noqa: E402

from policies import load_settings  # noqa: E402

DOCX = "data/objects/综合/Q001-WS·2016-Y-FPB-0003.docx"
SCAN = "data/objects/综合/Q001-WS·2016-Y-FPB-0002.pdf"
NEW_TEXT = "安置点配套设施验收报告：饮水工程通过验收，牦牛养殖合作社已经运营。"
OLD_WORD, NEW_WORD = "完工", "牦牛"        # only in the replaced DOCX's text / only in the new one
MONITORED = HOUSEHOLDS[1]
MONITORING_CODE = f"Q001-JF·06·{MONITORED.village}-0001"
MONITORING_COLUMNS = ["监测对象类型", "风险类型", "纳入监测日期", "关联档号"]


@dataclass
class Versioned:
    settings: object
    general: str        # updated twice: v2 replaces the DOCX, v3 withdraws the scan
    restricted: str     # household volume, restricted (anonymous: 404)
    household: str      # household volume opened by a decision, followed by the monitoring
    monitoring: str     # the 防返贫监测 record's AIP (关联档号: the household's 档号)
    by_uuid: str        # another one, naming the household file by its AIP UUID
    old_docx: bytes
    new_docx: bytes


def _monitoring_row(hh, follows: str, code: str, rel: str) -> dict[str, str]:
    return {"序号": "99", "档号": f"{code}-001", "文号": "", "责任者": "河西镇人民政府",
            "题名": "防返贫监测对象认定表", "日期": "20210315", "密级": "限制", "页数": "1",
            "备注": "", "保管期限": "永久", "精准扶贫类别": "06", "全宗号": "Q001",
            "年度": "2021", "文件组合类型": "单件", "户主姓名": hh.head,
            "户主公民身份号码": hh.id_number, "行政村代码": hh.village,
            "贫困户属性": hh.kind, "致贫原因": hh.causes, "家庭人口数": "4",
            "识别年度": "2015", "脱贫年度": "2019", "计算机文件名": rel,
            "监测对象类型": "脱贫不稳定户", "风险类型": "因病", "纳入监测日期": "20210315",
            "关联档号": follows}


def _with_monitoring(root: Path, follows: str, code: str = MONITORING_CODE,
                     keep_rows: bool = True) -> Path:
    """The access holding's transfer (or, without ``keep_rows``, a transfer of the
    monitoring record alone) with a 防返贫监测 record following ``follows``."""
    transfer = build_transfer(root)
    sheet = transfer / "归档文件目录.csv"
    with open(sheet, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle)) if keep_rows else []
    if not keep_rows:
        for child in transfer.iterdir():
            if child.is_dir():
                import shutil

                shutil.rmtree(child)
    folder = transfer / code
    folder.mkdir()
    rel = f"{code}/001-监测对象认定表.pdf"
    text_pdf(transfer / rel, "防返贫监测对象认定表", "经入户核实，该户因病存在返贫风险，纳入监测。")
    rows.append(_monitoring_row(MONITORED, follows, code, rel))
    with open(sheet, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, HEADER + MONITORING_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return transfer


@pytest.fixture(scope="module")
def versioned(tmp_path_factory) -> Versioned:
    from access import accounts
    from access.rules import Reader
    from access.services import AccessService
    from ingest.pipeline import ingest
    from ingest.update import UpdateRequest, update

    root = tmp_path_factory.mktemp("versions-portal")
    (root / "home").mkdir()
    settings = load_settings(root / "home", environ={})
    transfer = _with_monitoring(root / "transfer", MONITORED.code)
    result = ingest(transfer, settings)
    assert result.status == "accepted", result.failures
    uuids = {a["archival_code"] or "general": a["uuid"] for a in result.aips}
    service = AccessService(settings)
    archivist = Reader("archivist", "fixture")
    general, household = uuids["general"], uuids[MONITORED.code]
    for uuid, basis in ((general, "县级扶贫政策文件已主动公开"), (household, "户主书面同意公开（测试用决定）")):
        service.record_decision(archivist, uuid, None, open_date=date(2020, 1, 1),
                                control="开放", basis=basis)
    for role in ("archivist", "researcher"):
        accounts.add_user(service.catalogue, role, PASSWORD, role)
    old_docx = (transfer / "综合/Q001-WS·2016-Y-FPB-0003.docx").read_bytes()
    new = root / "new" / "进度汇报（更正）.docx"
    new.parent.mkdir()
    docx_file(new, NEW_TEXT)
    got = update(UpdateRequest(general, "更正进度汇报", replace=[(DOCX, new)],
                               agent="archivist"), settings)
    assert got.status == "updated" and got.version == 2, got.failures
    got = update(UpdateRequest(general, "撤回误归档的扫描件", withdraw=[SCAN],
                               agent="archivist"), settings)
    assert got.status == "updated" and got.version == 3, got.failures
    # a record correction of the restricted household: the title of its photo's record
    sheet = _sheet(root / "更正目录.csv", transfer, f"{HOUSEHOLDS[0].code}-002",
                   题名=CORRECTED_TITLE)
    got = update(UpdateRequest(uuids[HOUSEHOLDS[0].code], "更正题名", record=sheet,
                               agent="archivist"), settings)
    assert got.status == "updated" and got.version == 2, got.failures
    # a second monitoring record naming the household file by its AIP UUID
    second = _with_monitoring(root / "t2", household, code=SECOND_CODE, keep_rows=False)
    result = ingest(second, settings)
    assert result.status == "accepted", result.failures
    return Versioned(settings, general, uuids[HOUSEHOLDS[0].code], household,
                     uuids[MONITORING_CODE], result.aips[0]["uuid"], old_docx,
                     new.read_bytes())


SECOND_CODE = f"Q001-JF·06·{MONITORED.village}-0003"


CORRECTED_TITLE = f"{HOUSEHOLDS[0].head}户入户走访照片（更正）"


def _sheet(path: Path, transfer: Path, code: str, **changes: str) -> Path:
    """A --record sheet: the transfer's row with 档号 ``code``, some columns changed."""
    with open(transfer / "归档文件目录.csv", encoding="utf-8-sig", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["档号"] == code]
    assert len(rows) == 1
    rows[0].update(changes)
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def app(versioned):
    from access.portal import create_app

    return create_app(served_settings(versioned.settings),
                      {"TESTING": True, "WTF_CSRF_ENABLED": False})


@pytest.fixture
def client_for(app):
    def make(role: str):
        client = app.test_client()
        if role != "public":
            app.test_login(client, role, username=role)
        return client

    return make


def _page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.get_data(as_text=True)


def _file_url(uuid: str, path: str, version: int | None = None) -> str:
    url = f"/aip/{uuid}/file/{quote(path)}"
    return url + (f"?version={version}" if version else "")


# ------------------------------------------------------------------ 第 N 版 and 版本历史


def test_record_page_shows_version_and_history(versioned, client_for):
    for role in ("archivist", "public"):
        body = _page(client_for(role), f"/aip/{versioned.general}")
        assert "第 3 版" in body, role
        assert "版本历史" in body and 'id="versions"' in body
        history = body[body.index('id="versions"'):]
        for n in (1, 2, 3):
            assert f'id="v{n}"' in history
        assert "更正进度汇报" in history and "撤回误归档的扫描件" in history
        assert f"替换: {DOCX}" in history
        assert f"撤回: {SCAN}" in history, "a withdrawn file is listed as withdrawn"
        assert "archivist" in history                 # the agent
    # in English a withdrawn file and a withdrawal version read as such, not as the
    # requests page's button (撤回 "Withdraw")
    english = _page(client_for("archivist"), f"/aip/{versioned.general}?lang=en")
    history = english[english.index('id="versions"'):]
    assert "Version history" in history and "Version 3" in history
    assert f"Withdrawn: {SCAN}" in history and f"Replaced: {DOCX}" in history
    assert "<td>Withdrawal</td>" in history and "<td>Replacement</td>" in history
    assert "Withdraw:" not in history and "<td>Withdraw</td>" not in history
    requests = _page(client_for("researcher"), "/requests?lang=en")
    assert "撤回" not in requests
    # the files listed are the newest version's: the withdrawn scan is not among them
    body = _page(client_for("archivist"), f"/aip/{versioned.general}")
    files = body[body.index('<table class="files'):body.index('id="versions"')]
    assert quote(SCAN) not in files and SCAN not in files
    assert DOCX in files
    # an AIP never updated is its version 1, with a one-row history
    body = _page(client_for("archivist"), f"/aip/{versioned.household}")
    assert "第 1 版" in body and 'id="v1"' in body and 'id="v2"' not in body


def test_api_versions(versioned, client_for):
    for role in ("archivist", "public"):
        got = client_for(role).get(f"/api/v1/aips/{versioned.general}/versions")
        assert got.status_code == 200, role
        data = got.get_json()
        assert data["current_version"] == 3
        versions = {v["version"]: v for v in data["versions"]}
        assert sorted(versions) == [1, 2, 3]
        assert versions[2]["replaced"] == [DOCX] and versions[2]["kind"] == "replacement"
        assert versions[3]["withdrawn"] == [SCAN] and versions[3]["kind"] == "withdrawal"
        assert versions[3]["reason"] == "撤回误归档的扫描件" and versions[3]["current"]
        assert versions[1]["kind"] == "ingestion" and versions[1]["supersedes"] is None
    aip = client_for("public").get(f"/api/v1/aips/{versioned.general}").get_json()
    assert aip["version"] == aip["current_version"] == 3
    assert SCAN not in {f["path"] for f in aip["files"]}
    # the history of a record the reader may not know of is not found either
    assert client_for("public").get(
        f"/api/v1/aips/{versioned.restricted}/versions").status_code == 404
    assert client_for("archivist").get(
        f"/api/v1/aips/{versioned.restricted}/versions").status_code == 200
    # an earlier version's files: staff only
    old = client_for("archivist").get(f"/api/v1/aips/{versioned.general}?version=2")
    assert old.status_code == 200 and SCAN in {f["path"] for f in old.get_json()["files"]}
    assert client_for("public").get(f"/api/v1/aips/{versioned.general}?version=2") \
        .status_code == 403
    assert client_for("archivist").get(f"/api/v1/aips/{versioned.general}?version=9") \
        .status_code == 404
    assert client_for("archivist").get(f"/api/v1/aips/{versioned.general}?version=x") \
        .status_code == 400


# ------------------------------------------------------------------ files of each version


def test_newest_file_served_to_all_who_may(versioned, client_for):
    for role in ("archivist", "researcher", "public"):
        got = client_for(role).get(_file_url(versioned.general, DOCX))
        assert got.status_code == 200, role
        assert got.get_data() == versioned.new_docx, "the newest version's bytes"
        assert got.headers["ETag"] == f'"{hashlib.sha256(versioned.new_docx).hexdigest()}"'
    # the withdrawn scan is no file of the newest version
    assert client_for("archivist").get(_file_url(versioned.general, SCAN)).status_code == 404


def test_earlier_version_file_for_staff_only(versioned, client_for):
    staff = client_for("archivist")
    got = staff.get(_file_url(versioned.general, DOCX, 1))
    assert got.status_code == 200
    assert got.get_data() == versioned.old_docx, "version 1's bytes, verified on the way"
    withdrawn = staff.get(_file_url(versioned.general, SCAN, 2))
    assert withdrawn.status_code == 200 and withdrawn.get_data()[:4] == b"%PDF"
    for role in ("researcher", "public"):
        assert client_for(role).get(_file_url(versioned.general, DOCX, 1)).status_code == 403
        assert client_for(role).get(_file_url(versioned.general, SCAN, 2)).status_code == 403
    # the restricted household: anonymous visitors may not know it exists, at any version
    assert client_for("public").get(
        _file_url(versioned.restricted,
                  f"data/objects/{HOUSEHOLDS[0].code}/001-贫困户申请书.pdf", 1)).status_code == 404
    # the staff page of version 2 lists the scan with a download link carrying ?version=2
    body = _page(staff, f"/aip/{versioned.general}?version=2")
    assert "正在查看第 2 版" in body and "version=2" in body and "Q001-WS·2016-Y-FPB-0002.pdf" in body
    # the earlier download is in the audit log with its version
    from sqlalchemy import select

    from storage.catalogue import Catalogue, models

    with Catalogue.open(versioned.settings).session() as s:
        rows = s.scalars(select(models.AuditEntry).where(
            models.AuditEntry.action == "download-restricted",
            models.AuditEntry.object.startswith(versioned.general))).all()
        assert any((r.detail or {}).get("version") == 1 and r.actor.endswith("archivist")
                   for r in rows), [(r.actor, r.detail) for r in rows]


def test_staff_dip_is_the_newest_version(versioned, client_for):
    import io
    import zipfile

    got = client_for("archivist").get(f"/aip/{versioned.general}.zip")
    assert got.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(got.get_data()))
    names = set(archive.namelist())
    assert f"{versioned.general}/{DOCX}" in names
    assert f"{versioned.general}/{SCAN}" not in names
    assert not any("/versions/" in n for n in names), "members under their logical paths"
    assert archive.read(f"{versioned.general}/{DOCX}") == versioned.new_docx


# ------------------------------------------------------------------ search follows the newest


def test_search_follows_the_newest_version(versioned, client_for):
    for role in ("archivist", "public"):
        client = client_for(role)
        found = client.get("/api/v1/search", query_string={"q": NEW_WORD}).get_json()
        assert [h["aip_uuid"] for h in found["hits"]] == [versioned.general], role
        gone = client.get("/api/v1/search", query_string={"q": OLD_WORD}).get_json()
        assert gone["total"] == 0, (role, gone["hits"])


# ------------------------------------------------------------------ 防返贫监测 ↔ 建档立卡


def test_monitoring_record_links_to_household_both_ways(versioned, client_for):
    staff = client_for("archivist")
    body = _page(staff, f"/aip/{versioned.monitoring}")
    links = body[body.index('id="links"'):]
    assert "关联建档立卡户档" in links
    assert f'href="/aip/{versioned.household}"' in links and MONITORED.code in links
    for url in (f"/aip/{versioned.household}", f"/household/{versioned.household}"):
        body = _page(staff, url)
        links = body[body.index('id="links"'):]
        assert "防返贫监测档案" in links
        assert f"/aip/{versioned.monitoring}#" in links and MONITORING_CODE in links
    api = staff.get(f"/api/v1/aips/{versioned.household}").get_json()
    assert sorted(f["aip"] for f in api["followed_by"]) == \
        sorted([versioned.monitoring, versioned.by_uuid])
    api = staff.get(f"/api/v1/aips/{versioned.by_uuid}").get_json()
    assert [(f["aip"], f["named"]) for f in api["follows"]] == \
        [(versioned.household, versioned.household)], "named by its AIP UUID"
    api = staff.get(f"/api/v1/aips/{versioned.monitoring}").get_json()
    assert [(f["aip"], f["found"]) for f in api["follows"]] == [(versioned.household, True)]
    # an anonymous visitor sees the opened household file, but not the restricted
    # monitoring record that follows it (it may not know that record exists)
    public = client_for("public")
    assert public.get(f"/aip/{versioned.monitoring}").status_code == 404
    body = _page(public, f"/aip/{versioned.household}")
    assert versioned.monitoring not in body and "防返贫监测档案" not in body
    # the unrelated household has no link
    assert 'id="links"' not in _page(staff, f"/aip/{versioned.restricted}")


def test_filter_monitored_households(versioned, client_for):
    staff = client_for("archivist")
    for q in ("monitored:yes", "监测:yes"):
        found = staff.get("/api/v1/search", query_string={"q": q, "per_page": 100}).get_json()
        assert {h["aip_uuid"] for h in found["hits"]} == \
            {versioned.monitoring, versioned.by_uuid}, q
    # a facet link does the same, combined with words
    found = staff.get("/api/v1/search", query_string={"q": "认定表", "monitored": "yes"})
    assert {h["aip_uuid"] for h in found.get_json()["hits"]} == \
        {versioned.monitoring, versioned.by_uuid}
    facets = staff.get("/api/v1/search", query_string={"q": "认定表"}).get_json()["facets"]
    assert facets["monitored"] == [["yes", 2]]
    everything = staff.get("/api/v1/search", query_string={"q": "因病"}).get_json()
    assert everything["total"] > 1, "without the filter, more than the monitoring record"


def test_unknown_follows_is_a_finding(versioned, tmp_path):
    """A 关联档号 naming nothing the repository holds is refused under DG-1-10 (no crash),
    and nothing is stored."""
    from ingest.pipeline import ingest
    from storage.catalogue import Catalogue

    before = Catalogue.open(versioned.settings).count_aips()
    transfer = _with_monitoring(tmp_path / "t", "Q001-JF·02·630121100299-0009",
                                code=f"Q001-JF·06·{MONITORED.village}-0002", keep_rows=False)
    result = ingest(transfer, versioned.settings)
    assert result.status == "rejected"
    failures = {f["code"]: f for f in result.failures}
    assert "DG-1-10" in failures, result.failures
    assert "Q001-JF·02·630121100299-0009" in json.dumps(failures["DG-1-10"], ensure_ascii=False)
    assert Catalogue.open(versioned.settings).count_aips() == before


def test_record_correction_in_history(versioned, client_for):
    """Changed record fields are listed; their values (personal here) only to staff."""
    staff = client_for("archivist").get(
        f"/api/v1/aips/{versioned.restricted}/versions").get_json()
    newest = staff["versions"][0]
    assert newest["version"] == 2 and newest["reason"] == "更正题名"
    record = newest["records"][0]
    assert record["archival_code"] == f"{HOUSEHOLDS[0].code}-002"
    assert record["fields"]["title"][1] == CORRECTED_TITLE
    body = _page(client_for("archivist"), f"/aip/{versioned.restricted}")
    assert "更正著录" in body and CORRECTED_TITLE in body and "第 2 版" in body
    assert f"{HOUSEHOLDS[0].code}-002: 题名" in body
    researcher = client_for("researcher").get(
        f"/api/v1/aips/{versioned.restricted}/versions").get_json()
    fields = researcher["versions"][0]["records"][0]["fields"]
    assert fields == {"title": None}, "the field's name, not its values"
    page = _page(client_for("researcher"), f"/aip/{versioned.restricted}")
    assert "更正著录" in page and HOUSEHOLDS[0].head not in page


def test_update_naming_an_unknown_household_is_refused(versioned, tmp_path):
    """DG-1-10 at update too: a --record correction pointing 关联档号 at nothing changes
    nothing."""
    from ingest.update import UpdateRequest, update
    from storage.catalogue import Catalogue
    from storage.aip import versions_of

    sheet = tmp_path / "监测更正.csv"
    with open(sheet, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, HEADER + MONITORING_COLUMNS)
        writer.writeheader()
        writer.writerow(_monitoring_row(MONITORED, "Q001-JF·02·630121100299-0009",
                                        MONITORING_CODE,
                                        f"{MONITORING_CODE}/001-监测对象认定表.pdf"))
    got = update(UpdateRequest(versioned.monitoring, "改关联档号", record=sheet), versioned.settings)
    assert got.status == "rejected"
    assert "DG-1-10" in {f["code"] for f in got.failures}, got.failures
    with Catalogue.open(versioned.settings).session() as s:
        assert [v.number for v in versions_of(s, versioned.monitoring)] == [1]


@pytest.fixture
def es_home(home, es_target, monkeypatch):
    """The test home with search on the server under test (as tests/access/test_elastic.py)."""
    for name, value in es_target.environ().items():
        monkeypatch.setenv(name, value)
    return load_settings(home.home)


def test_external_search_follows_the_newest_version_through_the_outbox(es_home, cli,
                                                                        tmp_path):
    """On Elasticsearch (osmem-server; a real cluster with DANGAN_TEST_ES_URL) an update's
    search documents reach the index through the same outbox as ingest: after the drain the
    replaced document's new words are found, its old ones are not, and monitored:yes works."""
    from access.search.base import open_engine
    from ingest.update import UpdateRequest, update
    from storage.catalogue import Catalogue
    from storage.index import outbox

    ingested = cli("ingest", _with_monitoring(tmp_path / "t", MONITORED.code), "--json")
    assert ingested.code == 0, ingested.err
    aips = {a["archival_code"] or "general": a["uuid"] for a in json.loads(ingested.out)["aips"]}
    assert cli("index", "drain").code == 0
    catalogue = Catalogue.open(es_home)
    engine = open_engine(es_home, catalogue)
    engine.refresh()

    def found(word: str) -> set[str]:
        got = cli("search", word, "--json")
        assert got.code == 0, got.err
        return {h["aip"] for h in json.loads(got.out)["hits"]}

    assert found(OLD_WORD) == {aips["general"]} and found(NEW_WORD) == set()
    assert found("monitored:yes") == {aips[MONITORING_CODE]}
    new = tmp_path / "new.docx"
    docx_file(new, NEW_TEXT)
    got = update(UpdateRequest(aips["general"], "更正进度汇报", replace=[(DOCX, new)]), es_home)
    assert got.status == "updated", got.failures
    with catalogue.session() as s:
        assert outbox.outbox_status(s).pending == 1, "the update owes its re-indexing"
    drained = cli("index", "drain")
    assert drained.code == 0 and "1 AIPs indexed" in drained.out, drained.out
    engine.refresh()
    assert found(NEW_WORD) == {aips["general"]}
    assert found(OLD_WORD) == set()


def test_on_postgresql(tmp_path, pg_catalogue_url):
    """The same on a PostgreSQL catalogue: versions, the links (a JSON field query) and
    search by the newest version with monitored:yes."""
    from access.rules import Reader
    from access.services import AccessService
    from ingest.pipeline import ingest
    from ingest.update import UpdateRequest, update

    (tmp_path / "home").mkdir()
    settings = load_settings(tmp_path / "home", environ={"DANGAN_CATALOGUE_URL": pg_catalogue_url})
    result = ingest(_with_monitoring(tmp_path / "t", MONITORED.code), settings)
    assert result.status == "accepted", result.failures
    aips = {a["archival_code"] or "general": a["uuid"] for a in result.aips}
    new = tmp_path / "new.docx"
    docx_file(new, NEW_TEXT)
    got = update(UpdateRequest(aips["general"], "更正进度汇报", replace=[(DOCX, new)]), settings)
    assert got.status == "updated", got.failures
    service = AccessService(settings)
    staff = Reader("archivist", "archivist")
    history = service.versions(staff, aips["general"])
    assert history["current_version"] == 2 and history["versions"][0]["replaced"] == [DOCX]
    household = service.aip(staff, aips[MONITORED.code])
    assert [f["aip"] for f in household["followed_by"]] == [aips[MONITORING_CODE]]
    monitoring = service.aip(staff, aips[MONITORING_CODE])
    assert [f["aip"] for f in monitoring["follows"]] == [aips[MONITORED.code]]
    assert {h.aip_uuid for h in service.search(staff, NEW_WORD).hits} == {aips["general"]}
    assert service.search(staff, OLD_WORD).total == 0
    assert {h.aip_uuid for h in service.search(staff, "monitored:yes").hits} == \
        {aips[MONITORING_CODE]}
    ref = service.file(staff, aips["general"], DOCX, version=1)
    assert ref.path == DOCX and service.file(staff, aips["general"], DOCX).path != DOCX
