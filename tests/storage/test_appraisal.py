"""Appraisal and disposition end to end through the command line: propose → decide → submit →
approve by another person → execute before a witness → tombstone, on a local folder and on S3
(moto); self-approval, holds, revisions after submission, resumed execution, documents."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from sqlalchemy import select
from transfers import small_transfer

from storage.appraisal import TOMBSTONE_OBJECT, Tombstone
from storage.catalogue import Catalogue
from storage.catalogue import models
from storage.locations.s3 import S3Location

PASSWORD = "appraisal-test-pw-2026"
PEOPLE = {"li": "archivist", "wang": "admin", "zhao": "auditor", "chen": "archivist",
          "researcher-1": "researcher"}


@pytest.fixture
def office(home, cli, monkeypatch, s3_env, new_bucket):
    """A home with a local and an S3 copy of every record, four accounts, and two AIPs: one
    定期10年 volume of 2008 (its period ended 2018-12-31) and one 永久 volume."""
    monkeypatch.setenv("DANGAN_STORAGE_FSYNC", "false")
    bucket = new_bucket()
    (home.home / "policies").mkdir(exist_ok=True)
    (home.home / "policies" / "storage.yaml").write_text(
        "locations:\n  - {name: local, url: 'file://{home}/aips'}\n"
        f"  - {{name: s3a, url: 's3://{bucket}/dangan'}}\n"
        "copies:\n  default: [local, s3a]\n", encoding="utf-8")
    monkeypatch.setenv("DANGAN_PASSWORD", PASSWORD)
    monkeypatch.setenv("DANGAN_WITNESS_PASSWORD", PASSWORD)
    for user, role in PEOPLE.items():
        assert cli("user", "add", user, "--role", role, "--password-env",
                   "DANGAN_PASSWORD").code == 0
    home.bucket = bucket   # type: ignore[attr-defined]
    home.expired = _ingest(cli, home.home.parent, "old", 2, "定期10年", "20080315", 7)
    home.kept = _ingest(cli, home.home.parent, "kept", 2, "永久", "20160315", 8)
    return home


def _ingest(cli, where: Path, name: str, rows: int, period: str, date: str, volume: int) -> str:
    transfer = small_transfer(where / name, rows=rows)
    sheet = transfer / "归档文件目录.csv"
    sheet.write_text(sheet.read_text(encoding="utf-8-sig").replace("永久", period)
                     .replace("20160315", date).replace("-0001-0", f"-{volume:04d}-0"),
                     encoding="utf-8-sig")
    done = cli("ingest", transfer, "--json")
    assert done.code == 0, done.err
    return json.loads(done.out)["aips"][0]["uuid"]


def _batch(cli, *args: str, user: str = "li") -> str:
    made = cli("appraisal", "propose", "--title", "2018年到期定期档案鉴定", *args, "--as", user,
               "--json")
    assert made.code == 0, made.err
    return json.loads(made.out)["id"]


def _show(cli, batch: str) -> dict:
    shown = cli("appraisal", "show", batch, "--json")
    assert shown.code == 0, shown.err
    return json.loads(shown.out)


def test_the_whole_cycle_destroys_every_copy_and_keeps_a_tombstone(office, cli, tmp_path,
                                                                   moto_client):
    catalogue = Catalogue.open(office)
    s3 = S3Location("s3a", f"s3://{office.bucket}/dangan")
    assert s3.has_aip(office.expired)
    batch = _batch(cli, "--due-before", "2026-12-31")
    summary = _show(cli, batch)
    assert [e["aip"] for e in summary["entries"]] == [office.expired], "only what is due"
    assert summary["entries"][0]["suggested"] == "destroy"
    assert summary["entries"][0]["expiry_date"] == "2018-12-31"

    assert cli("appraisal", "submit", batch, "--as", "li").code == 1, "undecided: refused"
    assert cli("appraisal", "decide", batch, "--aip", office.expired, "--decision", "destroy",
               "--reason", "保管期限已满，无继续保存价值", "--as", "li").code == 0
    assert cli("appraisal", "submit", batch, "--as", "li").code == 0
    no_right = cli("appraisal", "approve", batch, "--as", "chen")
    assert no_right.code == 2 and "may not approve" in no_right.err, "archivists propose only"
    assert cli("appraisal", "approve", batch, "--as", "wang").code == 0
    assert cli("appraisal", "execute", batch, "--witness", "wang").code == 1, \
        "the approver cannot witness"
    done = cli("appraisal", "execute", batch, "--witness", "zhao", "--json")
    assert done.code == 0, done.err + done.out
    assert json.loads(done.out)["status"] == "executed"

    assert catalogue.get_aip(office.expired).status == "DESTROYED"
    s3 = S3Location("s3a", f"s3://{office.bucket}/dangan")     # no cached listing
    assert not s3.has_aip(office.expired)
    left = moto_client.list_object_versions(Bucket=office.bucket, Prefix=f"dangan/{office.expired}")
    assert not left.get("Versions") and not left.get("DeleteMarkers"), "every object version"
    assert not (office.home / "aips" / office.expired).exists()
    assert catalogue.copies_of(office.expired) == []
    hits = json.loads(cli("search", "申请书", "--json").out)["hits"]
    assert hits and office.expired not in {h["aip"] for h in hits}
    assert office.kept in {h["aip"] for h in hits}
    with catalogue.session() as s:
        tomb = s.get(Tombstone, office.expired)
        assert tomb.complete and tomb.approver == "wang" and tomb.witness == "zhao"
        assert tomb.proposer == "li" and tomb.files >= 2 and tomb.copies == {
            "local": "deleted", "s3a": "deleted"}
        stored_files = {f.path: f.sha256 for f in s.scalars(select(models.File).where(
            models.File.aip_uuid == office.expired))}
        assert tomb.digests == stored_files
        actions = [e.action for e in s.scalars(select(models.AuditEntry).where(
            models.AuditEntry.object.in_([batch, office.expired])))]
    for step in ("appraisal-propose", "appraisal-decide", "appraisal-submit",
                 "appraisal-approve", "appraisal-execute", "destroy-copy", "destroy"):
        assert step in actions, step
    stored = json.loads(s3.read_admin_object(TOMBSTONE_OBJECT))[office.expired]
    assert stored["complete"] and stored["archival_code"] == tomb.archival_code
    details = [e["eventDetail"] for e in stored["premis_events"]]
    for step in ("proposed by li", "销毁 decided by li", "submitted by li", "approved by wang",
                 "destruction begun before zhao", "copy destroyed", "destroyed, every copy"):
        assert any(step in d for d in details), (step, details)
    assert {e["linkingObject"] for e in stored["premis_events"] if "copy destroyed" in
            e["eventDetail"]} == {"local", "s3a"}, "each copy deleted is an event"
    gone = cli("get", office.expired, "-o", tmp_path / "out")
    assert gone.code == 2 and "已销毁" in gone.err and not (tmp_path / "out").exists()

    url = f"sqlite:///{tmp_path / 'rebuilt.db'}"      # the catalogue lost: rebuilt from S3
    cli("rebuild", "--from", "s3a", "--into", url, "--json")
    rebuilt = Catalogue(url)
    with rebuilt.session() as s:
        assert s.get(models.Aip, office.expired) is None, "never resurrected"
        assert s.get(models.Aip, office.kept) is not None
        back = s.get(Tombstone, office.expired)
        assert back is not None and back.complete and back.witness == "zhao"
        assert back.digests == stored_files


def test_nobody_approves_their_own_batch(office, cli):
    batch = _batch(cli, "--aip", office.expired, user="wang")   # an admin may propose too
    cli("appraisal", "decide", batch, "--aip", office.expired, "--decision", "destroy",
        "--reason", "到期", "--as", "wang")
    cli("appraisal", "submit", batch, "--as", "wang")
    selfish = cli("appraisal", "approve", batch, "--as", "wang")
    assert selfish.code == 1 and "another person" in selfish.err
    assert _show(cli, batch)["status"] == "submitted"
    submitted_by_other = _batch(cli, "--aip", office.kept, user="li")
    cli("appraisal", "decide", submitted_by_other, "--aip", office.kept, "--decision", "review",
        "--reason", "继续保存", "--as", "li")
    cli("appraisal", "submit", submitted_by_other, "--as", "wang")
    assert cli("appraisal", "approve", submitted_by_other, "--as", "wang").code == 1, \
        "whoever submitted it does not approve it either"


def test_a_held_aip_cannot_be_proposed_approved_or_destroyed(office, cli):
    assert cli("hold", "add", office.expired, "--reason", "审计调阅", "--as", "zhao").code == 0
    refused = cli("appraisal", "propose", "--title", "x", "--aip", office.expired, "--as", "li")
    assert refused.code == 1 and "held" in refused.err
    made = cli("appraisal", "propose", "--title", "x", "--due-before", "2026-12-31",
               "--as", "li")
    assert made.code == 2 and "held" in made.err, "the due list leaves it out, saying why"

    assert cli("hold", "remove", office.expired, "--reason", "审计结束", "--as", "zhao").code == 0
    batch = _batch(cli, "--aip", office.expired)
    cli("appraisal", "decide", batch, "--aip", office.expired, "--decision", "destroy",
        "--reason", "到期", "--as", "li")
    cli("appraisal", "submit", batch, "--as", "li")
    cli("hold", "add", office.expired, "--reason", "诉讼", "--as", "zhao")
    held = cli("appraisal", "approve", batch, "--as", "wang")
    assert held.code == 1 and "held" in held.err
    cli("hold", "remove", office.expired, "--reason", "撤诉", "--as", "zhao")
    assert cli("appraisal", "approve", batch, "--as", "wang").code == 0
    cli("hold", "add", office.expired, "--reason", "又一次诉讼", "--as", "zhao")
    result = cli("appraisal", "execute", batch, "--witness", "zhao", "--json")
    assert result.code == 1 and json.loads(result.out)["held"]
    assert Catalogue.open(office).get_aip(office.expired).status == "UPLOADED"
    assert S3Location("s3a", f"s3://{office.bucket}/dangan").has_aip(office.expired)


def test_a_batch_changed_after_submission_needs_a_new_approval(office, cli):
    batch = _batch(cli, "--aip", office.expired)
    cli("appraisal", "decide", batch, "--aip", office.expired, "--decision", "destroy",
        "--reason", "到期", "--as", "li")
    cli("appraisal", "submit", batch, "--as", "li")
    assert cli("appraisal", "approve", batch, "--as", "wang").code == 0
    changed = cli("appraisal", "decide", batch, "--aip", office.expired, "--decision",
                  "extend:D30", "--reason", "有查考价值", "--as", "chen")
    assert changed.code == 0 and "new approval" in changed.out
    summary = _show(cli, batch)
    assert summary["status"] == "draft" and summary["revision"] == 2
    assert summary["approver"] is None
    assert cli("appraisal", "execute", batch, "--witness", "zhao").code == 1
    cli("appraisal", "submit", batch, "--as", "li")
    assert cli("appraisal", "approve", batch, "--as", "wang").code == 0
    done = cli("appraisal", "execute", batch, "--witness", "zhao", "--json")
    assert done.code == 0, done.out + done.err
    aip = Catalogue.open(office).get_aip(office.expired)
    assert aip.status == "UPLOADED" and aip.retention_period == "D30"
    assert aip.expiry_date.isoformat() == "2038-12-31", "30 years from 2008 formation"


def test_a_reason_is_needed_and_a_rejected_batch_goes_back(office, cli):
    batch = _batch(cli, "--aip", office.expired)
    assert cli("appraisal", "decide", batch, "--aip", office.expired, "--decision", "destroy",
               "--reason", " ", "--as", "li").code == 2
    assert cli("appraisal", "decide", batch, "--aip", office.expired, "--decision", "burn",
               "--reason", "x", "--as", "li").code == 2
    cli("appraisal", "decide", batch, "--aip", office.expired, "--decision", "destroy",
        "--reason", "到期", "--as", "li")
    cli("appraisal", "submit", batch, "--as", "li")
    assert cli("appraisal", "reject", batch, "--reason", "请补充鉴定依据", "--as", "wang").code == 0
    summary = _show(cli, batch)
    assert summary["status"] == "rejected" and summary["rejection_reason"] == "请补充鉴定依据"
    assert cli("appraisal", "approve", batch, "--as", "wang").code == 1
    wrong = cli("appraisal", "approve", batch, "--as", "wang", "--password-env", "NOPE")
    assert wrong.code == 2


def test_decisions_from_a_sheet_with_a_bad_row_record_nothing(office, cli, tmp_path):
    batch = _batch(cli, "--aip", office.expired, "--aip", office.kept)
    code = {e["aip"]: e["archival_code"] for e in _show(cli, batch)["entries"]}
    book = openpyxl.Workbook()
    book.active.append(["档号", "鉴定意见", "理由"])
    book.active.append([code[office.expired], "销毁", "到期"])
    book.active.append([code[office.kept], "继续审查", ""])
    book.save(tmp_path / "bad.xlsx")
    bad = cli("appraisal", "decide", batch, "--sheet", tmp_path / "bad.xlsx", "--as", "li")
    assert bad.code == 2 and "row 3" in bad.err
    assert all(e["decision"] is None for e in _show(cli, batch)["entries"])
    book.active["C3"] = "永久档案，继续保存"
    book.save(tmp_path / "good.xlsx")
    assert cli("appraisal", "decide", batch, "--sheet", tmp_path / "good.xlsx",
               "--as", "li").code == 0
    decided = {e["aip"]: e["decision"] for e in _show(cli, batch)["entries"]}
    assert decided == {office.expired: "destroy", office.kept: "review"}


def test_an_interrupted_execution_says_which_copies_are_gone_and_finishes(office, cli,
                                                                          monkeypatch):
    from storage.locations.s3 import S3Location as Located

    batch = _batch(cli, "--aip", office.expired)
    cli("appraisal", "decide", batch, "--aip", office.expired, "--decision", "destroy",
        "--reason", "到期", "--as", "li")
    cli("appraisal", "submit", batch, "--as", "li")
    cli("appraisal", "approve", batch, "--as", "wang")
    original = Located.delete_aip

    def unreachable(self, uuid):
        raise __import__("policies").StorageError(f"{self.url}: endpoint unreachable")

    monkeypatch.setattr(Located, "delete_aip", unreachable)
    first = cli("appraisal", "execute", batch, "--witness", "zhao", "--json")
    assert first.code == 1 and json.loads(first.out)["deferred"]
    catalogue = Catalogue.open(office)
    with catalogue.session() as s:
        tomb = s.get(Tombstone, office.expired)
        # the failed copy is "deleting": its deletion began, and may have removed a part
        assert not tomb.complete and tomb.copies == {"local": "deleted", "s3a": "deleting"}
    assert catalogue.get_aip(office.expired).status == "DESTROYING"
    hits = json.loads(cli("search", "申请书", "--json").out)["hits"]
    assert office.expired not in {h["aip"] for h in hits}, "content leaves search at once"
    monkeypatch.setattr(Located, "delete_aip", original)
    second = cli("appraisal", "execute", batch, "--witness", "zhao", "--json")
    assert second.code == 0, second.out
    assert catalogue.get_aip(office.expired).status == "DESTROYED"
    with catalogue.session() as s:
        assert s.get(Tombstone, office.expired).complete


def test_the_documents_are_written_hashed_and_logged(office, cli, tmp_path):
    batch = _batch(cli, "--aip", office.expired)
    cli("appraisal", "decide", batch, "--aip", office.expired, "--decision", "destroy",
        "--reason", "保管期限已满", "--as", "li")
    out = cli("appraisal", "documents", batch, "-o", tmp_path / "docs")
    assert out.code == 0, out.err
    files = sorted((tmp_path / "docs").iterdir())
    assert [f.suffix for f in files] == [".pdf", ".xlsx", ".pdf", ".xlsx"]
    listing = next(f for f in files if "销毁清册" in f.name and f.suffix == ".xlsx")
    rows = list(openpyxl.load_workbook(listing).active.iter_rows(values_only=True))
    assert rows[1][:3] == ("序号", "档号", "题名") and rows[2][6] == "销毁"
    pdf = next(f for f in files if "销毁清册" in f.name and f.suffix == ".pdf")
    assert pdf.read_bytes().startswith(b"%PDF")
    with Catalogue.open(office).session() as s:
        logged = {e.detail["document"]: e.detail["sha256"] for e in s.scalars(
            select(models.AuditEntry).where(models.AuditEntry.action == "appraisal-document"))}
    assert logged == {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def test_the_portal_shows_batches_approves_by_another_person_and_lists_the_destroyed(
        office, cli):
    from access.portal import create_app

    batch = _batch(cli, "--aip", office.expired, user="wang")
    cli("appraisal", "decide", batch, "--aip", office.expired, "--decision", "destroy",
        "--reason", "保管期限已满", "--as", "wang")
    cli("appraisal", "submit", batch, "--as", "wang")
    app = create_app(office, {"TESTING": True, "WTF_CSRF_ENABLED": False})

    def client(user: str):
        c = app.test_client()
        app.test_login(c, PEOPLE.get(user, user), username=user)
        return c

    anonymous = app.test_client()
    assert anonymous.get("/appraisal").status_code == 302, "sign in first"
    assert client("researcher-1").get("/appraisal").status_code == 403
    page = client("zhao").get(f"/appraisal/{batch}").get_data(as_text=True)
    assert "待批准" in page and "销毁" in page and 'value="approve"' not in page, \
        "an auditor sees the batch but has no approving button"
    english = client("zhao").get(f"/appraisal/{batch}?lang=en").get_data(as_text=True)
    assert "awaiting approval" in english and "<td>destroy</td>" in english
    assert "待批准" not in english and "Retention" in english and "Version 1" in english
    admin = client("wang")
    assert 'value="approve"' in admin.get(f"/appraisal/{batch}").get_data(as_text=True)
    selfish = admin.post(f"/appraisal/{batch}/decision", data={"decision": "approve"},
                         follow_redirects=True).get_data(as_text=True)
    assert "未能办理" in selfish and "another person" in selfish
    assert _show(cli, batch)["status"] == "submitted", "the portal cannot bypass the rule"
    assert client("li").post(f"/appraisal/{batch}/decision",
                             data={"decision": "approve"}).status_code == 403
    cli("user", "add", "sun", "--role", "admin", "--password-env", "DANGAN_PASSWORD")
    client("sun").post(f"/appraisal/{batch}/decision", data={"decision": "approve"})
    assert _show(cli, batch)["approver"] == "sun"
    pdf = admin.get(f"/appraisal/{batch}/销毁清册.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert cli("appraisal", "execute", batch, "--witness", "zhao").code == 0
    listing = client("li").get("/appraisal").get_data(as_text=True)
    assert "已销毁档案" in listing and batch in listing and "zhao" in listing


def test_an_open_review_batch_records_its_decisions_through_the_same_approval(office, cli):
    from access.models import OpenDecision

    made = cli("appraisal", "propose", "--title", "2026年开放审核", "--open-review",
               "--aip", office.kept, "--as", "li", "--json")
    assert made.code == 0, made.err
    batch = json.loads(made.out)["id"]
    assert batch.startswith("KF-")
    assert cli("appraisal", "decide", batch, "--aip", office.kept, "--decision", "destroy",
               "--reason", "x", "--as", "li").code == 2, "not a decision of an open review"
    cli("appraisal", "decide", batch, "--aip", office.kept, "--decision", "open",
        "--reason", "不涉及个人隐私，可以开放", "--as", "li")
    cli("appraisal", "submit", batch, "--as", "li")
    assert cli("appraisal", "execute", batch, "--witness", "zhao").code == 1, "not approved"
    cli("appraisal", "approve", batch, "--as", "wang")
    assert cli("appraisal", "execute", batch, "--witness", "zhao").code == 0
    with Catalogue.open(office).session() as s:
        (decision,) = s.scalars(select(OpenDecision).where(OpenDecision.aip_uuid == office.kept))
    assert decision.control == "开放" and batch in decision.basis
    assert Catalogue.open(office).get_aip(office.kept).status == "UPLOADED"
    from datetime import date

    assert decision.open_date is None or decision.open_date <= date.today(), \
        "opened by the committee: open from today at the latest"
    with Catalogue.open(office).session() as s:
        details = [e.detail for e in s.scalars(select(models.Event).where(
            models.Event.aip_uuid == office.kept, models.Event.type == "appraisal"))]
    for step in ("proposed by li", "开放 decided by li", "submitted by li",
                 "approved by wang", "开放 recorded before zhao"):
        assert any(step in d for d in details), (step, details)
    # one record at a time, outside any batch, still works (dangan access decide)
    one = cli("access", "decide", office.expired, "--control", "控制", "--basis",
              "个别审核：涉及个人信息")
    assert one.code == 0, one.err
    assert json.loads(one.out)["control"] == "控制"
    with Catalogue.open(office).session() as s:
        (single,) = s.scalars(select(OpenDecision).where(
            OpenDecision.aip_uuid == office.expired))
    assert single.basis.startswith("个别审核")


def test_the_dashboard_says_what_is_due_this_year(office, cli):
    from access.portal import create_app

    app = create_app(office, {"TESTING": True, "WTF_CSRF_ENABLED": False})
    staff = app.test_client()
    app.test_login(staff, "archivist", username="li")
    page = staff.get("/dashboard").get_data(as_text=True)
    assert 'id="appraisal-due"' in page and "保管期限届满 1 卷" in page
    _batch(cli, "--aip", office.expired)
    page = staff.get("/dashboard").get_data(as_text=True)
    assert "其中 0 尚未列入鉴定批次" in page
    researcher = app.test_client()
    app.test_login(researcher, "researcher", username="r1")
    assert 'id="appraisal-due"' not in researcher.get("/dashboard").get_data(as_text=True)


def _extend_to_d30(cli, aip: str):
    """One batch through propose, decide extend:D30, submit, approve and execute: the
    batch and the execute result."""
    batch = _batch(cli, "--aip", aip)
    cli("appraisal", "decide", batch, "--aip", aip, "--decision", "extend:D30",
        "--reason", "有查考价值，延长保管", "--as", "li")
    cli("appraisal", "submit", batch, "--as", "li")
    cli("appraisal", "approve", batch, "--as", "wang")
    done = cli("appraisal", "execute", batch, "--witness", "zhao", "--json")
    assert done.code == 0, done.err + done.out
    return batch, done


def test_an_extension_owes_the_external_search_engine_its_new_period(office, cli, monkeypatch):
    """With search on Elasticsearch the new 保管期限 facet reaches the index as any change
    does: through the outbox, in the transaction that changes the catalogue (no engine need
    answer meanwhile: the address here is closed)."""
    from storage.index import OutboxEntry

    monkeypatch.setenv("DANGAN_SEARCH_ENGINE", "elasticsearch")
    monkeypatch.setenv("DANGAN_SEARCH_ELASTICSEARCH_URL", "http://127.0.0.1:9")
    catalogue = Catalogue.open(office)

    def owed() -> list[str]:
        with catalogue.session() as s:
            return [e.op for e in s.scalars(select(OutboxEntry).where(
                OutboxEntry.aip_uuid == office.expired, OutboxEntry.status == "pending"))]

    before = owed()
    _extend_to_d30(cli, office.expired)
    assert owed() == before + ["index"]


def test_an_extension_is_a_new_version_whose_mets_says_so_and_every_copy_is_relocked(
        office, cli, tmp_path):
    """延长保管期限: the catalogue, version 2 of the AIP (METS retention D30, the batch's
    PREMIS events), a valid bag at that version, and the copies' locks recorded anew."""
    from storage.copies import recorded_locks

    batch, done = _extend_to_d30(cli, office.expired)
    (line,) = json.loads(done.out)["done"]
    assert "version 2" in line["detail"] and "re-locked" in line["detail"]
    catalogue = Catalogue.open(office)
    aip = catalogue.get_aip(office.expired)
    assert aip.status == "UPLOADED" and aip.retention_period == "D30"
    assert aip.expiry_date.isoformat() == "2038-12-31", "30 years after 2008"
    with catalogue.session() as s:
        versions = s.scalars(select(models.AipVersion).where(
            models.AipVersion.aip_uuid == office.expired)).all()
        assert [v.number for v in versions] == [2] and batch in versions[0].reason
        locks = {r.location: r.lock() for r in recorded_locks(s, office.expired)}
        actions = [e.action for e in s.scalars(select(models.AuditEntry).where(
            models.AuditEntry.object == office.expired))]
    assert set(locks) == {"local", "s3a"}
    # the end of 2038-12-31 in Beijing, on every copy and in every catalogue
    end = datetime(2039, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert all(lock.retain_until == end for lock in locks.values()), locks
    assert {"aip-version", "relock", "retention-change"} <= set(actions)
    out = tmp_path / "v2"
    got = cli("get", office.expired, "--version", "2", "-o", out)
    assert got.code == 0, got.err
    import bagit

    bagit.Bag(str(out)).validate()
    mets = (out / "data" / "metadata" / "mets.xml").read_text(encoding="utf-8")
    assert "D30" in mets and "2038-12-31" in mets
    for step in ("proposed by li", "decided by li", "submitted by li", "approved by wang",
                 "保管期限 D10 → D30"):
        assert step in mets, step
    record = json.loads((out / "data" / "metadata" / "record.json").read_text("utf-8"))
    periods = {i["fields"].get("retention_period") for i in record["items"]}
    assert periods <= {"D30", None} and "D30" in periods
    old = tmp_path / "v1"
    assert cli("get", office.expired, "--version", "1", "-o", old).code == 0
    assert "D30" not in (old / "data" / "metadata" / "mets.xml").read_text("utf-8"), \
        "version 1 is never rewritten"
    again = cli("appraisal", "execute", batch, "--witness", "zhao", "--json")
    assert again.code == 1 or json.loads(again.out)["done"] == []


def test_a_destroyed_aips_codes_are_never_reused_not_even_after_a_rebuild(office, cli,
                                                                         tmp_path):
    """The 档号 of a destroyed AIP stay in the register (``destroyed``): the same transfer
    sent again is rejected for them, and a catalogue rebuilt from storage refuses them too,
    restored from the tombstone; the AIP id never comes back as an AIP."""
    from storage.catalogue import CodeClaim, CodeRegistry
    from storage.catalogue.archival_codes import RegisteredCode

    batch = _batch(cli, "--aip", office.expired)
    cli("appraisal", "decide", batch, "--aip", office.expired, "--decision", "destroy",
        "--reason", "到期", "--as", "li")
    cli("appraisal", "submit", batch, "--as", "li")
    cli("appraisal", "approve", batch, "--as", "wang")
    assert cli("appraisal", "execute", batch, "--witness", "zhao").code == 0
    catalogue = Catalogue.open(office)
    with catalogue.session() as s:
        retired = {r.code: r for r in s.scalars(select(RegisteredCode).where(
            RegisteredCode.aip_uuid == office.expired))}
        tomb_codes = [c["code"] for c in s.get(Tombstone, office.expired).codes]
        assert retired and all(r.state == "destroyed" for r in retired.values())
        assert sorted(tomb_codes) == sorted(retired)
        buckets = {r.bucket: r.number for r in retired.values()}

    again = small_transfer(tmp_path / "again", rows=2)   # the same 档号 as the destroyed
    sheet = again / "归档文件目录.csv"
    sheet.write_text(sheet.read_text(encoding="utf-8-sig").replace("永久", "定期10年")
                     .replace("20160315", "20080315").replace("-0001-0", "-0007-0"),
                     encoding="utf-8-sig")
    same = cli("ingest", again, "--json")   # the very same bytes: recognised, not remade
    assert json.loads(same.out)["aips"][0]["status"] == "DESTROYED"
    assert catalogue.get_aip(office.expired).status == "DESTROYED"
    sheet.write_text(sheet.read_text(encoding="utf-8-sig") + "\n", encoding="utf-8-sig")
    refused = cli("ingest", again, "--json")  # the same 档号 in a new transfer
    assert refused.code == 1, refused.out
    assert "已销毁" in refused.out and "GD-1-8" in refused.out

    url = f"sqlite:///{tmp_path / 'rebuilt.db'}"
    rebuild = cli("rebuild", "--from", "local", "--into", url, "--json")
    assert json.loads(rebuild.out)["location"] == "local", rebuild.out
    rebuilt = Catalogue(url)
    with rebuilt.session() as s:
        assert s.get(models.Aip, office.expired) is None
        back = {r.code: r.state for r in s.scalars(select(RegisteredCode).where(
            RegisteredCode.aip_uuid == office.expired))}
    assert back == {code: "destroyed" for code in retired}
    registry = CodeRegistry(rebuilt)
    code = sorted(retired)[0]
    row = retired[code]
    result = registry.claim("a-new-transfer", [CodeClaim(code, row.bucket, row.number,
                                                         row.width, row.level)])
    assert "已销毁的 AIP" in result.conflicts[code]
    for bucket, number in buckets.items():
        assert max(registry.numbers([bucket])[bucket]) >= number, "numbering goes on past it"


KILL_POINTS = ["destroy-tombstone", "destroy-tombstone-stored", "destroy-copy-marked",
               "delete-renamed", "destroy-copy-deleted", "destroy-copy-recorded",
               "delete-marker-gone"]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_an_execution_killed_half_way_says_which_copies_are_gone_and_resumes(
        office, cli, point, moto_client):
    """``dangan appraisal execute`` killed (SIGKILL) at each step of a destruction: the
    tombstone already exists, in the catalogue and in storage; every copy it calls
    ``present`` is whole, every one it calls ``deleted`` is gone (``deleting``: being
    removed); running it again destroys what is left, leftovers included."""
    import os
    import signal
    import subprocess
    import sys

    from storage.appraisal import stored_tombstones
    from storage.locations import verify_stored_bag
    from storage.locations.filesystem import FilesystemLocation

    batch = _batch(cli, "--aip", office.expired)
    cli("appraisal", "decide", batch, "--aip", office.expired, "--decision", "destroy",
        "--reason", "到期", "--as", "li")
    cli("appraisal", "submit", batch, "--as", "li")
    cli("appraisal", "approve", batch, "--as", "wang")
    dangan = [sys.executable, "-c", "import sys, dangan; sys.exit(dangan.main())"]
    args = ["appraisal", "execute", batch, "--witness", "zhao", "--json"]
    env = dict(os.environ, DANGAN_HOME=str(office.home), DANGAN_CRASH_AT=point)
    killed = subprocess.run([*dangan, *args], env=env, capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr

    catalogue = Catalogue.open(office)
    with catalogue.session() as s:
        tomb = s.get(Tombstone, office.expired)
        assert tomb is not None and not tomb.complete
        copies = dict(tomb.copies)
    local = FilesystemLocation("local", office.home / "aips", fsync=False)
    s3 = S3Location("s3a", f"s3://{office.bucket}/dangan")
    for name, location in (("local", local), ("s3a", s3)):
        here = location.has_aip(office.expired)
        if copies[name] == "present":
            assert here, f"{name} said present: whole"
            assert verify_stored_bag(location, office.expired, {}) == [], name
        elif copies[name] == "deleted":
            assert not here and not [x for x in location.leftovers()
                                     if x.uuid == office.expired], f"{name} said deleted"
        else:
            assert copies[name] == "deleting", copies
    assert copies != {"local": "present", "s3a": "present"} or point.startswith(
        "destroy-tombstone") or point == "destroy-copy-marked"
    if point != "destroy-tombstone":
        assert office.expired in stored_tombstones(local), "the record is in storage too"
    hits = json.loads(cli("search", "申请书", "--json").out)["hits"]
    assert office.expired not in {h["aip"] for h in hits}

    env.pop("DANGAN_CRASH_AT")
    again = subprocess.run([*dangan, *args], env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert catalogue.get_aip(office.expired).status == "DESTROYED"
    with catalogue.session() as s:
        tomb = s.get(Tombstone, office.expired)
        assert tomb.complete and tomb.copies == {"local": "deleted", "s3a": "deleted"}
    for location in (local, S3Location("s3a", f"s3://{office.bucket}/dangan")):
        assert not location.has_aip(office.expired)
        assert not [x for x in location.leftovers() if x.uuid == office.expired], location
    left = moto_client.list_object_versions(Bucket=office.bucket,
                                            Prefix=f"dangan/{office.expired}")
    assert not left.get("Versions") and not left.get("DeleteMarkers")
    assert stored_tombstones(s3)[office.expired]["complete"]
