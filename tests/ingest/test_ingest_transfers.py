"""Ingest end to end on hand-made transfers: every transfer kind, re-ingest, bad input."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import bagit
import pytest
from sqlalchemy import func, select

from dangan_testing import snapshot
from storage.catalogue import models
from storage.catalogue import Catalogue
from storage.aip import validate_mets
from transfers import small_transfer


def catalogue_counts(home) -> dict[str, int]:
    catalogue = Catalogue.open(home)
    with catalogue.session() as s:
        return {name: s.scalar(select(func.count()).select_from(model)) for name, model in
                {"aips": models.Aip, "files": models.File, "transfers": models.Transfer,
                 "events": models.Event, "search": models.SearchDoc}.items()}


def stored_aips(home) -> list[str]:
    root = home.home / "aips"
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


def assert_untouched(home, before: dict[str, int]) -> None:
    assert stored_aips(home) == []
    assert catalogue_counts(home) == before
    pending = home.home / "aips" / ".pending"
    assert not pending.exists() or not any(pending.iterdir())


def test_folder_with_sheet_becomes_one_aip_per_volume(home, cli, tmp_path):
    transfer = small_transfer(tmp_path / "t")
    before = snapshot(transfer)
    result = cli("ingest", transfer, "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["status"] == "accepted"
    assert [a["archival_code"] for a in data["aips"]] == ["Q001-JF·02·630121100201-0001"]
    assert snapshot(transfer) == before, "the transfer must never be modified"
    uuid = data["aips"][0]["uuid"]
    folder = home.home / "aips" / uuid
    bagit.Bag(str(folder)).validate()
    assert validate_mets((folder / "data/metadata/mets.xml").read_bytes()) == []
    for rel in ("户卷/001-申请书.txt", "户卷/003-申请书.txt"):
        assert (folder / "data/objects" / rel).read_bytes() == (transfer / rel).read_bytes()
    info = (folder / "bag-info.txt").read_text(encoding="utf-8")
    assert f"External-Identifier: {uuid}" in info
    assert "Internal-Sender-Identifier: Q001-JF·02·630121100201-0001" in info
    assert (folder / "data/logs/ingest-report.html").exists()
    assert (folder / "data/metadata/submission/归档文件目录.csv").exists()


def test_reingest_reports_existing_aips_and_stores_nothing(home, cli, tmp_path):
    transfer = small_transfer(tmp_path / "t")
    first = json.loads(cli("ingest", transfer, "--json").out)
    counts = catalogue_counts(home)
    again = cli("ingest", transfer, "--json")
    assert again.code == 0
    second = json.loads(again.out)
    assert second["status"] == "already-ingested"
    assert [a["uuid"] for a in second["aips"]] == [a["uuid"] for a in first["aips"]]
    assert catalogue_counts(home) == counts
    assert stored_aips(home) == sorted(a["uuid"] for a in first["aips"])


def test_folder_without_sheet_is_one_aip(home, cli, tmp_path):
    transfer = tmp_path / "无目录移交"
    (transfer / "sub").mkdir(parents=True)
    (transfer / "sub" / "a.txt").write_text("脱贫攻坚总结", encoding="utf-8")
    (transfer / "b.bin").write_bytes(os.urandom(5000))
    result = cli("ingest", transfer, "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert len(data["aips"]) == 1 and data["aips"][0]["label"] == "无目录移交"
    report = json.loads(Path(data["report"]["json"]).read_text(encoding="utf-8"))
    by_code = {c["code"]: c for c in report["checks"]}
    assert by_code["GD-1-12"]["status"] == "failed" and by_code["GD-1-12"]["severity"] == "warning"
    assert by_code["GD-2-11"]["status"] == "not-checked" and by_code["GD-2-11"]["message"]


def make_bag(tmp_path: Path, name: str = "bag") -> Path:
    source = small_transfer(tmp_path / name)
    bagit.make_bag(str(source), {"Source-Organization": "某县扶贫开发局"}, checksums=["sha256"])
    return source


@pytest.mark.parametrize("kind", ["folder", "zip", "tar", "tar.gz"])
def test_bag_in_every_container(home, cli, tmp_path, kind):
    bag = make_bag(tmp_path)
    if kind == "folder":
        path = bag
    elif kind == "zip":
        path = Path(shutil.make_archive(str(tmp_path / "bag"), "zip", tmp_path, "bag"))
    else:
        path = tmp_path / f"bag.{kind}"
        with tarfile.open(path, "w:gz" if kind == "tar.gz" else "w") as archive:
            archive.add(bag, arcname="bag")
    result = cli("ingest", path, "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    report = json.loads(Path(data["report"]["json"]).read_text(encoding="utf-8"))
    by_code = {c["code"]: c for c in report["checks"]}
    assert by_code["GD-1-14"]["status"] == "passed"
    assert by_code["GD-2-2"]["status"] == "passed"
    stored = home.home / "aips" / data["aips"][0]["uuid"]
    assert (stored / "data/objects/户卷/002-申请书.txt").read_bytes() == \
        (bag / "data/户卷/002-申请书.txt").read_bytes()
    assert (stored / "data/metadata/submission/bag/bag-info.txt").exists() or \
        (stored / "data/metadata/submission/bag-info.txt").exists()


def test_bag_with_wrong_manifest_line_is_rejected_listing_every_problem(home, cli, tmp_path):
    bag = make_bag(tmp_path)
    manifest = bag / "manifest-sha256.txt"
    lines = manifest.read_text(encoding="utf-8").splitlines()
    lines[0] = "0" * 64 + lines[0][64:]
    lines[1] = "f" * 64 + lines[1][64:]
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = catalogue_counts(home)
    result = cli("ingest", bag)
    assert result.code == 1
    assert "GD-1-14" in result.err
    # both payload lines, and the tag manifest's line for the edited manifest itself
    assert result.err.count("sha256 摘要不符") == 3, result.err
    assert "manifest-sha256.txt" in result.err
    assert_untouched(home, before)


def test_sheet_row_whose_file_is_missing_is_rejected_with_row(home, cli, tmp_path):
    transfer = small_transfer(tmp_path / "t")
    (transfer / "户卷/002-申请书.txt").unlink()
    before = catalogue_counts(home)
    result = cli("ingest", transfer)
    assert result.code == 1
    assert "GD-2-11" in result.err and "row 3" in result.err and "户卷/002-申请书.txt" in result.err
    assert_untouched(home, before)
    assert list((home.home / "reports").glob("*/ingest-report.html"))


def test_empty_folder_is_rejected(home, cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    before = catalogue_counts(home)
    result = cli("ingest", empty)
    assert result.code == 1 and "DG-2-0" in result.err
    assert_untouched(home, before)


def test_symlink_in_folder_is_rejected(home, cli, tmp_path):
    transfer = small_transfer(tmp_path / "t")
    os.symlink("/etc/passwd", transfer / "户卷" / "passwd")
    before = catalogue_counts(home)
    result = cli("ingest", transfer)
    assert result.code == 1
    assert "symbolic link" in result.err and "passwd" in result.err
    assert_untouched(home, before)


def test_zip_with_path_traversal_is_rejected(home, cli, tmp_path):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ok/a.txt", "fine")
        archive.writestr("../../escaped.txt", "evil")
        archive.writestr("/abs/path.txt", "evil")
    before = catalogue_counts(home)
    result = cli("ingest", path)
    assert result.code == 1
    assert "../../escaped.txt" in result.err and "escapes" in result.err
    assert not (tmp_path / "escaped.txt").exists()
    assert_untouched(home, before)


def test_zip_symlink_member_is_rejected(home, cli, tmp_path):
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        archive.writestr(info, "/etc/passwd")
    result = cli("ingest", path)
    assert result.code == 1 and "symbolic link" in result.err


def test_tar_with_links_and_devices_is_rejected(home, cli, tmp_path):
    path = tmp_path / "bad.tar"
    with tarfile.open(path, "w") as archive:
        data = b"hello"
        info = tarfile.TarInfo("a.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("hard")
        link.type, link.linkname = tarfile.LNKTYPE, "a.txt"
        archive.addfile(link)
        device = tarfile.TarInfo("dev")
        device.type = tarfile.CHRTYPE
        archive.addfile(device)
        escape = tarfile.TarInfo("../up.txt")
        escape.size = len(data)
        archive.addfile(escape, io.BytesIO(data))
    result = cli("ingest", path)
    assert result.code == 1
    for needle in ("hard", "link to a.txt", "dev", "special file", "../up.txt"):
        assert needle in result.err, needle


def test_zip_bomb_is_refused_before_unpacking(home, cli, tmp_path):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.bin", b"\0" * (64 << 20))
    assert path.stat().st_size < 1 << 20
    result = cli("ingest", path)
    assert result.code == 1 and "compression ratio" in result.err
    assert not any((home.home / "staging").rglob("zeros.bin"))


def test_zip_file_count_limit(home, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("DANGAN_INGEST_MAX_FILES", "10")
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for n in range(11):
            archive.writestr(f"f{n}.txt", "x")
    result = cli("ingest", path)
    assert result.code == 1 and "more than the limit 10" in result.err


class LegacyNameInfo(zipfile.ZipInfo):
    """A member name written as raw bytes without the UTF-8 flag, as Windows tools do."""

    def _encodeFilenameFlags(self):  # noqa: N802 - zipfile's own hook
        return self.filename.encode("cp437"), self.flag_bits & ~0x800


def test_gbk_zip_names_are_repaired(home, cli, tmp_path):
    path = tmp_path / "gbk.zip"
    names = ["扶贫手册/张三户.txt", "目录说明.txt"]
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(LegacyNameInfo(name.encode("gbk").decode("cp437")),
                             "内容".encode("utf-8"))
    raw = path.read_bytes()
    assert "扶贫手册".encode("gbk") in raw and "扶贫手册".encode("utf-8") not in raw
    result = cli("ingest", path, "--json")
    assert result.code == 0, result.err
    uuid = json.loads(result.out)["aips"][0]["uuid"]
    stored = home.home / "aips" / uuid / "data/objects"
    assert (stored / "扶贫手册/张三户.txt").exists()
    show = json.loads(cli("show", uuid, "--json").out)
    paths = {f["path"] for f in show["files"]}
    assert "data/objects/扶贫手册/张三户.txt" in paths


def test_empty_file_is_a_warning_not_a_rejection(home, cli, tmp_path):
    transfer = tmp_path / "t"
    transfer.mkdir()
    (transfer / "empty.txt").write_bytes(b"")
    (transfer / "full.txt").write_text("内容", encoding="utf-8")
    result = cli("ingest", transfer, "--json")
    assert result.code == 0
    report = json.loads(Path(json.loads(result.out)["report"]["json"]).read_text(encoding="utf-8"))
    gd27 = next(c for c in report["checks"] if c["code"] == "GD-2-7")
    assert gd27["status"] == "failed" and gd27["severity"] == "warning"
    assert gd27["problems"][0]["path"] == "empty.txt"


def test_sm3_digests_when_the_policy_names_them(home, cli, tmp_path):
    (home.home / "policies").mkdir()
    (home.home / "policies" / "fixity.yaml").write_text("algorithms: [sha256, sm3]\n",
                                                        encoding="utf-8")
    transfer = small_transfer(tmp_path / "t")
    data = json.loads(cli("ingest", transfer, "--json").out)
    folder = home.home / "aips" / data["aips"][0]["uuid"]
    assert (folder / "manifest-sm3.txt").exists() and (folder / "tagmanifest-sm3.txt").exists()
    import hashlib

    target = folder / "data/objects/户卷/001-申请书.txt"
    expected = hashlib.new("sm3", target.read_bytes()).hexdigest()
    assert f"{expected}  data/objects/户卷/001-申请书.txt" in \
        (folder / "manifest-sm3.txt").read_text(encoding="utf-8")
    show = json.loads(cli("show", data["aips"][0]["uuid"], "--json").out)
    digests = {f["path"]: f["digests"] for f in show["files"]}
    assert digests["data/objects/户卷/001-申请书.txt"]["sm3"] == expected


def test_nonexistent_path_and_unknown_profile(home, cli, tmp_path):
    result = cli("ingest", tmp_path / "nope")
    assert result.code == 1 and "no such file" in result.err
    transfer = small_transfer(tmp_path / "t")
    result = cli("ingest", transfer, "--profile", "nosuch")
    assert result.code == 2 and "unknown metadata profile" in result.err
