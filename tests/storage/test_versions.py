"""AIP versions (storage/aip/versions.py): forward deltas, nothing rewritten, every version a
valid bag with valid METS, old AIPs as version 1, audits, repair, replication and rebuild of
the whole history — on the filesystem and on S3 (moto)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import bagit
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ingest"))
from fixity_support import FAST_INGEST, write_policy  # noqa: E402
from test_worm_ceph import _home_with_ceph, ceph, lock_bucket, refused, versions  # noqa: E402,F401
from transfers import small_transfer  # noqa: E402

from policies import load_settings, load_storage_policy  # noqa: E402
from storage.aip import validate_mets, versions_of  # noqa: E402
from storage.catalogue import Catalogue  # noqa: E402
from storage.copies import LocationSet  # noqa: E402

DANGAN = [sys.executable, "-c", "import sys, dangan; sys.exit(dangan.main())"]


def _policy(locations: dict[str, str]) -> str:
    lines = ["locations:"]
    for name, url in locations.items():
        lines += [f"  - name: {name}", f'    url: "{url}"']
    lines += ["copies:", f"  default: [{', '.join(locations)}]"]
    return "\n".join(lines) + "\n"


@pytest.fixture(params=["filesystem", "s3"])
def vrepo(request, home, tmp_path, monkeypatch):
    """A home with two copies per AIP (two folders, or two moto buckets) and one household
    volume of ``rows`` documents ingested; returns (settings, uuid, transfer)."""
    for name, value in FAST_INGEST.items():
        monkeypatch.setenv(name, value)
    if request.param == "s3":
        request.getfixturevalue("s3_env")
        new_bucket = request.getfixturevalue("new_bucket")
        locations = {"a": f"s3://{new_bucket()}/aips", "b": f"s3://{new_bucket()}/aips"}
    else:
        locations = {"a": f"file://{home.home}/store-a", "b": f"file://{home.home}/store-b"}
    write_policy(home.home, "storage", _policy(locations))
    settings = load_settings(home.home)
    rows = getattr(request, "param_rows", 3)
    transfer = small_transfer(tmp_path / "t", rows=rows)
    from ingest.pipeline import ingest

    result = ingest(transfer, settings)
    assert result.status == "accepted", result.failures
    return settings, result.aips[0]["uuid"], transfer


def _file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "new" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _location(settings, name: str):
    return LocationSet(load_storage_policy(settings), settings).get(name)


def _stored(settings, uuid: str, name: str = "a") -> dict[str, int]:
    return {i.path: i.size for i in _location(settings, name).list_files(uuid)}


def _fingerprints(settings, uuid: str, name: str = "a") -> dict[str, str]:
    location = _location(settings, name)
    found = {}
    for info in location.list_files(uuid):
        with location.open(uuid, info.path) as stream:
            found[info.path] = hashlib.sha256(stream.read()).hexdigest()
    return found


def _materialised_ok(cli, uuid: str, version: int, out: Path) -> bagit.Bag:
    got = cli("get", uuid, "--version", str(version), "-o", out)
    assert got.code == 0, got.err
    bag = bagit.Bag(str(out))
    bag.validate()                                          # bagit-python, every digest
    assert validate_mets((out / "data/metadata/mets.xml").read_bytes()) == []
    return bag


def _history(cli, uuid: str) -> list[dict]:
    got = cli("history", uuid, "--json")
    assert got.code == 0, got.err
    return json.loads(got.out)["versions"]


def test_old_aip_reads_as_version_1(vrepo, cli, tmp_path):
    settings, uuid, _ = vrepo
    before = _fingerprints(settings, uuid)
    versions = _history(cli, uuid)
    assert [(v["version"], v["kind"]) for v in versions] == [(1, "ingestion")]
    bag = _materialised_ok(cli, uuid, 1, tmp_path / "v1")
    assert sorted(p for p in bag.payload_files() if p.startswith("data/objects/")) == [
        f"data/objects/户卷/00{n}-申请书.txt" for n in (1, 2, 3)]
    newest = cli("get", uuid, "-o", tmp_path / "newest")
    assert newest.code == 0
    assert sorted(p.relative_to(tmp_path / "newest").as_posix()
                  for p in (tmp_path / "newest").rglob("*") if p.is_file()) == \
        sorted(before), "without --version, the newest (the only) version, every file"
    shown = cli("show", uuid, "--json")
    assert json.loads(shown.out)["version"] == 1
    assert _fingerprints(settings, uuid) == before


def test_add_replace_withdraw_and_record_versions(vrepo, cli, tmp_path):
    settings, uuid, transfer = vrepo
    before = _fingerprints(settings, uuid)
    added = _file(tmp_path, "回头看.txt", "2019 年回头看 入户核查 因病致贫 已脱贫\n")
    got = cli("update", uuid, "--add", f"{added}:户卷/004-回头看.txt", "--reason", "2019 回头看",
              "--json")
    assert got.code == 0, got.err
    assert json.loads(got.out)["version"] == 2
    fixed = _file(tmp_path, "更正.txt", "第1件 贫困户申请书（更正） 因病致贫\n")
    got = cli("update", uuid, "--replace", f"户卷/001-申请书.txt:{fixed}",
              "--withdraw", "户卷/002-申请书.txt", "--reason", "更正申请书，撤回误归档页")
    assert got.code == 0, got.err
    sheet = tmp_path / "更正目录.csv"
    lines = (transfer / "归档文件目录.csv").read_text(encoding="utf-8-sig").splitlines()
    sheet.write_text("\n".join([lines[0], lines[3].replace("第3件申请书", "第3件申请书（更正题名）")])
                     + "\n", encoding="utf-8-sig")
    got = cli("update", uuid, "--record", sheet, "--reason", "更正题名")
    assert got.code == 0, got.err

    # nothing stored before was rewritten or removed
    after = _fingerprints(settings, uuid)
    assert {p: after[p] for p in before} == before
    versions = _history(cli, uuid)
    assert [v["version"] for v in versions] == [1, 2, 3, 4]
    assert [v["supersedes"] for v in versions] == [None, 1, 2, 3]
    assert versions[1]["changes"]["added"] == ["data/objects/户卷/004-回头看.txt"]
    assert versions[2]["changes"]["replaced"] == ["data/objects/户卷/001-申请书.txt"]
    assert versions[2]["changes"]["withdrawn"] == ["data/objects/户卷/002-申请书.txt"]
    record = versions[3]["changes"]["records"]
    assert record[0]["archival_code"].endswith("0001-003")
    assert record[0]["fields"]["title"] == ["第3件申请书", "第3件申请书（更正题名）"]
    bags = {n: _materialised_ok(cli, uuid, n, tmp_path / f"v{n}") for n in (1, 2, 3, 4)}
    objects = {n: sorted(p for p in b.payload_files() if p.startswith("data/objects/"))
               for n, b in bags.items()}
    assert "data/objects/户卷/004-回头看.txt" not in objects[1]
    assert "data/objects/户卷/002-申请书.txt" in objects[2], "withdrawn stays in earlier versions"
    assert "data/objects/户卷/002-申请书.txt" not in objects[3]
    assert (tmp_path / "v2/data/objects/户卷/001-申请书.txt").read_text(encoding="utf-8") != \
        (tmp_path / "v3/data/objects/户卷/001-申请书.txt").read_text(encoding="utf-8")
    mets = (tmp_path / "v3/data/metadata/mets.xml").read_text(encoding="utf-8")
    assert "replacement" in mets and "更正申请书，撤回误归档页" in mets
    assert "version 3 supersedes version 2" in mets and "002-申请书.txt" in mets
    assert "第3件申请书（更正题名）" in (tmp_path / "v4/data/metadata/mets.xml").read_text(
        encoding="utf-8")
    # the catalogue and the search index follow the newest version
    found = cli("search", "入户核查")
    assert found.code == 0 and uuid in found.out, "the added file's text is searchable"
    catalogue = Catalogue.open(settings)
    titles = {i["title"] for i in catalogue.aip_details(uuid)["items"]}
    assert "第3件申请书（更正题名）" in titles
    shown = json.loads(cli("show", uuid, "--version", "2", "--json").out)
    assert shown["version"] == 2 and "data/objects/户卷/004-回头看.txt" in \
        {f["path"] for f in shown["files"]}


def test_rejected_update_changes_nothing(vrepo, cli, tmp_path):
    settings, uuid, _ = vrepo
    before = _fingerprints(settings, uuid), _fingerprints(settings, uuid, "b")
    archive = tmp_path / "new" / "附件.zip"
    archive.parent.mkdir()
    import zipfile

    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.txt", "x")
    got = cli("update", uuid, "--add", f"{archive}:户卷/附件.zip", "--reason", "误传压缩包")
    assert got.code == 1
    assert "拒绝更新" in got.err and "附件.zip" in got.err and "GD-3-3" in got.err
    assert (_fingerprints(settings, uuid), _fingerprints(settings, uuid, "b")) == before
    assert [v["version"] for v in _history(cli, uuid)] == [1]
    bad = cli("update", uuid, "--withdraw", "户卷/没有这个.txt", "--reason", "x")
    assert bad.code == 1 and "没有此文件" in bad.err
    assert (_fingerprints(settings, uuid), _fingerprints(settings, uuid, "b")) == before


def test_audit_checks_each_object_once_and_repairs_a_shared_object_once(vrepo, cli, tmp_path):
    settings, uuid, _ = vrepo
    for n in (1, 2):
        new = _file(tmp_path, f"n{n}.txt", f"第{n}次回头看 {n}\n" * 5)
        assert cli("update", uuid, "--add", f"{new}:户卷/10{n}-回头看.txt",
                   "--reason", f"回头看 {n}").code == 0
    stored = _stored(settings, uuid)
    audit = cli("audit", "--aip", uuid, "--all", "--no-repair", "--json")
    assert audit.code == 0, audit.out
    summary = json.loads(audit.out)["summary"]
    assert summary["files_read"] == 2 * len(stored), "every stored object, once per copy"
    shared = "data/objects/户卷/003-申请书.txt"       # in versions 1, 2 and 3
    location = _location(settings, "a")
    with location.open(uuid, shared) as stream:
        good = stream.read()
    _damage(location, uuid, shared, good)
    audit = cli("audit", "--aip", uuid, "--json")
    data = json.loads(audit.out)
    assert audit.code == 0, audit.out
    repairs = [r for r in data["repairs"] if r["location"] == "a"]
    assert len(repairs) == 1 and repairs[0]["replaced"] == {shared: "b"}
    with location.open(uuid, shared) as stream:
        assert stream.read() == good
    for n in (1, 2, 3):
        _materialised_ok(cli, uuid, n, tmp_path / f"after-{n}")


def _damage(location, uuid: str, path: str, good: bytes) -> None:
    bad = bytes([good[0] ^ 0xFF]) + good[1:]
    if hasattr(location, "root"):
        target = location.root / uuid / path
        os.chmod(target, 0o644)
        target.write_bytes(bad)
    else:
        location.client.put_object(Bucket=location.bucket, Key=location._key(uuid, path),
                                   Body=bad)


def test_dedup_after_ten_one_document_updates(vrepo, cli, tmp_path):
    """20 documents, 10 one-document updates: about 30 documents of payload stored."""
    settings, uuid, _ = vrepo
    doc = 512 << 10
    # a volume of 20 documents of 512 KiB each (a scanned page is larger still)
    more = [_file(tmp_path, f"d{n}.txt", f"{n:02d}" + os.urandom(doc // 2).hex()[: doc - 2])
            for n in range(4, 21)]
    args = [a for n, p in enumerate(more, 4) for a in ("--add", f"{p}:户卷/{n:03d}-材料.txt")]
    assert cli("update", uuid, *args, "--reason", "补充材料").code == 0
    base = _payload_bytes(settings, uuid)
    for n in range(10):
        new = _file(tmp_path, f"u{n}.txt", os.urandom(doc // 2).hex())
        target = f"户卷/{n + 4:03d}-材料.txt"
        got = cli("update", uuid, "--replace", f"{target}:{new}", "--reason", f"动态调整 {n}")
        assert got.code == 0, got.err
    grown = _payload_bytes(settings, uuid) - base
    assert grown == 10 * doc, "each update stores its one new document, nothing else of payload"
    # the extracted text of a document (a derivative, for search) is kept once per document
    # as at ingest; for these plain-text documents it is as large as the document
    objects = _stored(settings, uuid)
    text = sum(size for path, size in objects.items() if "data/metadata/text/" in path)
    stored = sum(objects.values()) - text
    print(f"payload stored {base + grown} B for 20 documents after 10 updates; all objects "
          f"but text {stored} B (METS, reports, manifests included), text {text} B; "
          f"naive: {11 * base} B of payload")
    assert stored < 38 * doc, "about 30 documents, the versions' METS and reports beside"
    assert text < 31 * doc
    assert len(_history(cli, uuid)) == 12


def _payload_bytes(settings, uuid: str) -> int:
    return sum(size for path, size in _stored(settings, uuid).items()
               if "data/objects/" in path)


def test_replicate_and_rebuild_bring_the_whole_history(vrepo, cli, tmp_path):
    settings, uuid, _ = vrepo
    new = _file(tmp_path, "n.txt", "回头看\n")
    assert cli("update", uuid, "--add", f"{new}:户卷/009-回头看.txt", "--reason", "回头看").code == 0
    assert cli("update", uuid, "--withdraw", "户卷/001-申请书.txt", "--reason", "撤回").code == 0
    history = _history(cli, uuid)
    # a third location joins the policy: replicate brings every version there
    policy = (settings.home / "policies" / "storage.yaml").read_text(encoding="utf-8")
    url = (f"file://{settings.home}/store-c" if "file://" in policy else
           policy.split('url: "')[1].split('"')[0].rsplit("/", 1)[0] + "/copy-c")
    policy = policy.replace("copies:", f'  - name: c\n    url: "{url}"\ncopies:').replace(
        "[a, b]", "[a, b, c]")
    (settings.home / "policies" / "storage.yaml").write_text(policy, encoding="utf-8")
    settings = load_settings(settings.home)
    got = cli("replicate", "--json")
    assert got.code == 0, got.out
    assert _fingerprints(settings, uuid, "c") == _fingerprints(settings, uuid, "a")
    # the catalogue rebuilt from c has the same history
    target = tmp_path / "rebuilt.db"
    got = cli("rebuild", "--from", "c", "--into", f"sqlite:///{target}", "--json")
    assert json.loads(got.out)["rebuilt"] == 1, got.out
    rebuilt = Catalogue(f"sqlite:///{target}")
    with rebuilt.session() as s:
        again = [v.to_dict() for v in versions_of(s, uuid)]
    assert [(v["version"], v["reason"], v["changes"]) for v in again] == \
        [(v["version"], v["reason"], v["changes"]) for v in history]
    assert {i["title"] for i in rebuilt.aip_details(uuid)["items"]} == \
        {i["title"] for i in Catalogue.open(settings).aip_details(uuid)["items"]}


# -------------------------------------------------------------------- crash safety (filesystem)

POINTS = ["update-staged", "update-built", "version-object", "version-objects-written",
          "version-committed-one", "update-stored"]


@pytest.mark.parametrize("point", POINTS)
def test_killed_update_leaves_the_old_version_and_rerun_completes_once(home, tmp_path, point,
                                                                       cli):
    write_policy(home.home, "storage", _policy({"a": f"file://{home.home}/store-a",
                                                "b": f"file://{home.home}/store-b"}))
    settings = load_settings(home.home)
    from ingest.pipeline import ingest

    uuid = ingest(small_transfer(tmp_path / "t", rows=2), settings).aips[0]["uuid"]
    before = _fingerprints(settings, uuid), _fingerprints(settings, uuid, "b")
    new = _file(tmp_path, "n.txt", "回头看 入户核查\n")
    args = ["update", uuid, "--add", f"{new}:户卷/009-回头看.txt", "--reason", "回头看", "--json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DANGAN_")}
    env.update(DANGAN_HOME=str(home.home), DANGAN_CRASH_AT=point, **FAST_INGEST)
    killed = subprocess.run([*DANGAN, *args], env=env, capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [v["version"] for v in _history(cli, uuid)] == [1], "the old version stays newest"
    _materialised_ok(cli, uuid, 1, tmp_path / "v1")
    after = _fingerprints(settings, uuid), _fingerprints(settings, uuid, "b")
    assert all({p: a[p] for p in b} == b for a, b in zip(after, before))
    env.pop("DANGAN_CRASH_AT")
    again = subprocess.run([*DANGAN, *args], env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["version"] == 2
    third = subprocess.run([*DANGAN, *args], env=env, capture_output=True, text=True,
                           timeout=300)
    assert third.returncode == 0 and json.loads(third.stdout)["status"] == "already-updated"
    assert [v["version"] for v in _history(cli, uuid)] == [1, 2]
    _materialised_ok(cli, uuid, 2, tmp_path / "v2")
    assert _audit_passes(cli, uuid)


def _audit_passes(cli, uuid: str) -> bool:
    got = cli("audit", "--aip", uuid, "--all", "--no-repair", "--json")
    return got.code == 0 and json.loads(got.out)["summary"]["failed"] == 0


def test_fixity_api_check_of_an_aip_covers_every_version(vrepo, cli, tmp_path):
    """The Storage-Service check (Auditor.check_aip, behind the fixity client's API) reads
    the objects of every version: damage to an object only version 2 stored is found."""
    from storage.fixity import Auditor

    settings, uuid, _ = vrepo
    new = _file(tmp_path, "n.txt", "回头看 入户核查\n" * 3)
    assert cli("update", uuid, "--add", f"{new}:户卷/009-回头看.txt", "--reason", "回头看").code == 0
    with Auditor(settings) as auditor:
        outcomes, earlier = auditor.check_aip(uuid, force=True)
    assert not earlier and {o.outcome for o in outcomes} == {"pass"}
    assert {o.files for o in outcomes} == {len(_stored(settings, uuid))}
    only_v2 = next(p for p in _stored(settings, uuid) if p.endswith("009-回头看.txt"))
    location = _location(settings, "b")
    with location.open(uuid, only_v2) as stream:
        _damage(location, uuid, only_v2, stream.read())
    with Auditor(settings) as auditor:
        outcomes, _ = auditor.check_aip(uuid, force=True)
    bad = {o.location: o for o in outcomes if o.outcome == "fail"}
    assert list(bad) == ["b"] and only_v2 in {f.path for f in bad["b"].findings}


# -------------------------------------------------------------------- WORM (radosgw)


def test_a_locked_aip_gets_a_new_version_and_nothing_locked_is_touched(ceph, radosgw, tmp_path,
                                                                        cli, monkeypatch):
    client = ceph
    bucket = lock_bucket(client)
    settings = _home_with_ceph(tmp_path, bucket, radosgw.endpoint, "COMPLIANCE")
    monkeypatch.setenv("DANGAN_HOME", str(settings.home))
    got = cli("ingest", small_transfer(tmp_path / "t", rows=2), "--json")
    assert got.code == 0, got.err
    uuid = json.loads(got.out)["aips"][0]["uuid"]
    before = versions(client, bucket, f"dangan/{uuid}/")
    heads = {k: client.head_object(Bucket=bucket, Key=k, VersionId=v) for k, v in before}
    assert all(h.get("ObjectLockLegalHoldStatus") == "ON" for h in heads.values())
    new = _file(tmp_path, "n.txt", "回头看 入户核查\n")
    fixed = _file(tmp_path, "f.txt", "第1件 更正\n")
    got = cli("update", uuid, "--add", f"{new}:户卷/009-回头看.txt",
              "--replace", f"户卷/001-申请书.txt:{fixed}", "--reason", "回头看")
    assert got.code == 0, got.err
    after = versions(client, bucket, f"dangan/{uuid}/")
    assert set(before) <= set(after), "every locked object version is still there"
    for key, version in before:   # the same versions, the same (untouched) modification time
        head = client.head_object(Bucket=bucket, Key=key, VersionId=version)
        assert head["LastModified"] == heads[key]["LastModified"]
        assert head.get("ObjectLockLegalHoldStatus") == "ON"
    added = sorted(set(after) - set(before))
    assert added and all(k.startswith(f"dangan/{uuid}/versions/v2-") for k, _ in added)
    for key, version in added:    # the new objects are locked like the AIP
        head = client.head_object(Bucket=bucket, Key=key, VersionId=version)
        assert head.get("ObjectLockLegalHoldStatus") == "ON", key
    assert refused(client, bucket, *added[0]) == "AccessDenied"
    _materialised_ok(cli, uuid, 2, tmp_path / "v2")
    _materialised_ok(cli, uuid, 1, tmp_path / "v1")
