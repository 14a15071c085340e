"""ID numbers: encrypted at rest in the catalogue, found by keyed hash, masked when printed."""

from __future__ import annotations

import base64
import json
import os

import pytest
from sqlalchemy import select

from policies import ConfigError, load_settings
from storage.catalogue import models
from storage.catalogue import Catalogue
from storage.catalogue import PiiVault, find_items, reveal

ID_NUMBER = "630121195402144291"


def test_vault_round_trip_and_lookup_hash(home):
    vault = PiiVault.from_settings(home)
    key_file = home.home / "pii.key"
    assert key_file.exists() and key_file.stat().st_mode & 0o777 == 0o600
    token = vault.encrypt(ID_NUMBER, "head_id_number")
    assert ID_NUMBER not in token and vault.decrypt(token, "head_id_number") == ID_NUMBER
    assert vault.encrypt(ID_NUMBER, "head_id_number") != token, "a fresh nonce every time"
    with pytest.raises(ConfigError):
        vault.decrypt(token, "another_field")
    assert vault.lookup_hash(ID_NUMBER) == PiiVault.from_settings(home).lookup_hash(" 630121195402144291")
    assert vault.lookup_hash(ID_NUMBER) != PiiVault(os.urandom(32)).lookup_hash(ID_NUMBER)


def test_configured_key_is_used_and_a_bad_one_refused(home, monkeypatch):
    key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("DANGAN_SECURITY_PII_KEY", key)
    settings = load_settings(home.home)
    assert PiiVault.from_settings(settings).lookup_hash("x") == PiiVault(
        base64.b64decode(key)).lookup_hash("x")
    assert not (home.home / "pii.key").exists()
    monkeypatch.setenv("DANGAN_SECURITY_PII_KEY", "too-short")
    with pytest.raises(ConfigError, match="environment DANGAN_SECURITY_PII_KEY"):
        PiiVault.from_settings(load_settings(home.home))


def test_key_file_readable_by_others_is_refused(home):
    PiiVault.from_settings(home)
    (home.home / "pii.key").chmod(0o644)
    with pytest.raises(ConfigError, match="0600"):
        PiiVault.from_settings(home)


def test_ingested_id_numbers_are_encrypted_masked_and_findable(home, cli, sample, monkeypatch):
    monkeypatch.setenv("DANGAN_FULLTEXT_OCR", "false")
    result = cli("ingest", sample, "--json")
    assert result.code == 0, result.err
    catalogue = Catalogue.open(home)
    with catalogue.session() as s:
        items = s.scalars(select(models.Item)).all()
        records = [a.record for a in s.scalars(select(models.Aip)).all()]
    numbers = {i.fields["head_id_number"] for i in items if i.fields.get("head_id_number")}
    assert numbers and all("********" in n for n in numbers)
    assert "********" in json.dumps(records, ensure_ascii=False)
    vault = PiiVault.from_settings(home)
    # every AIP's METS: the general-documents AIP holds no ID numbers, household AIPs do
    mets = "".join(p.read_text(encoding="utf-8")
                   for p in sorted((home.home / "aips").glob("*/data/metadata/mets.xml")))
    originals = set()
    for item in items:
        if item.fields.get("head_id_number"):
            with catalogue.session() as s:
                originals.add(reveal(s, vault, item.aip_uuid, item.key, "head_id_number"))
    assert len(originals) >= 3 and all(len(o) == 18 for o in originals)
    raw = b"".join(p.read_bytes() for p in home.home.glob("catalogue.db*"))
    for original in originals:
        assert original.encode() not in raw, "no ID number in clear anywhere in the catalogue"
    assert any(o in mets for o in originals), "the AIP keeps the record as transferred"
    target = min(originals)
    with catalogue.session() as s:
        found = find_items(s, vault, target)
    assert found and all(field == "head_id_number" for _, _, field in found)
    aip = found[0][0]
    for shown in (cli("show", aip), cli("show", aip, "--json")):
        assert target not in shown.out
    assert target[:6] + "********" + target[-4:] in shown.out
    searched = cli("search", target)
    assert target not in searched.out


def _transfer_with_numbers_outside_the_id_column(root):
    """The small transfer with one ID number in 备注 (6-8-4 groups), in a 题名 (full-width)
    and in a file's name, none of them in the 户主公民身份号码 column."""
    import csv
    import io

    from PIL import Image

    import transfers

    transfers.small_transfer(root, rows=3)
    sheet = root / "归档文件目录.csv"
    rows = list(csv.reader(io.StringIO(sheet.read_text(encoding="utf-8-sig"))))
    head = rows[0]
    rows[1][head.index("备注")] = "户主身份证 630121 19540214 4291"
    rows[2][head.index("题名")] = "户主（６３０１２１１９５４０２１４４２９１）申请书"
    photo = f"户卷/003-入户照片-{ID_NUMBER}.jpg"
    (root / rows[3][head.index("计算机文件名")]).unlink()
    Image.new("RGB", (8, 8), "white").save(root / photo, "JPEG")
    rows[3][head.index("计算机文件名")] = photo
    with open(sheet, "w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return root


FORMS = (ID_NUMBER, "630121 19540214 4291", "19540214", "１９５４０２１４")


def test_id_numbers_outside_the_id_column_are_encrypted_and_masked(home, cli, tmp_path,
                                                                   monkeypatch):
    from access.rules import Reader
    from access.services import AccessService

    monkeypatch.setenv("DANGAN_FULLTEXT_OCR", "false")   # the photo's event names its path
    transfer = _transfer_with_numbers_outside_the_id_column(tmp_path / "t")
    result = cli("ingest", transfer, "--json")
    assert result.code == 0, result.err
    uuid = json.loads(result.out)["aips"][0]["uuid"]
    catalogue = Catalogue.open(home)
    with catalogue.session() as s:
        stored = {
            "items": [(i.title, i.fields) for i in s.scalars(select(models.Item))],
            "aips": [(a.label, a.record) for a in s.scalars(select(models.Aip))],
            "files": [f.original_name for f in s.scalars(select(models.File))],
            "events": [(e.detail, e.outcome_detail) for e in s.scalars(select(models.Event))],
            "search": [(d.title, d.text) for d in s.scalars(select(models.SearchDoc))],
            "audit": [e.detail for e in s.scalars(select(models.AuditEntry))],
        }
        paths = [f.path for f in s.scalars(select(models.File))]
    dumped = json.dumps(stored, ensure_ascii=False)
    for form in FORMS:
        assert form not in dumped, form
    assert "630121 ******** 4291" in dumped and "入户照片-630121********4291.jpg" in dumped
    # the bag path stays as submitted: the stored object's name, in every copy and manifest
    assert f"data/objects/户卷/003-入户照片-{ID_NUMBER}.jpg" in paths
    vault = PiiVault.from_settings(home)
    with catalogue.session() as s:
        found = {field for _, _, field in find_items(s, vault, "630121-19540214-4291")}
    assert found == {"remarks", "title", "computer_filename", "file_name"}
    # what people see: `dangan show`, the staff page, the auditors' events
    for shown in (cli("show", uuid).out, cli("show", uuid, "--json").out):
        assert not [f for f in FORMS if f in shown]
        assert "入户照片-630121********4291.jpg" in shown
    service = AccessService(home, catalogue)
    for reader in (Reader("archivist", "a"), Reader("auditor", "b")):
        view = json.dumps(service.aip(reader, uuid), ensure_ascii=False, default=str)
        assert not [f for f in FORMS if f in view], reader
    # the masked path still addresses the file: `dangan get` and the portal's links
    out = tmp_path / "photo.jpg"
    got = cli("get", uuid, "data/objects/户卷/003-入户照片-630121********4291.jpg", "-o", out)
    assert got.code == 0, got.err
    ref = service.file(Reader("archivist", "a"), uuid,
                       "data/objects/户卷/003-入户照片-630121********4291.jpg")
    assert ref.path.endswith(f"{ID_NUMBER}.jpg")
