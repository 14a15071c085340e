"""Records are rated from their content too: a document whose catalogue row names nobody but
whose text lists a household held in the repository, with its 贫困户属性 and 危房等级, or an ID
number, is personal information, kept 控制 and marked for review instead of opening."""

from __future__ import annotations

import csv
import io
import json

from sqlalchemy import select

from access.rules import PUBLIC, Reader
from access.services import AccessService
from storage.catalogue import models
from storage.catalogue import Catalogue
from transfers import small_transfer


def _county_documents(root, texts: list[str]):
    """File-level county documents dated 1990 (their 25 years have passed): open unless
    something in them is personal."""
    small_transfer(root, rows=len(texts), volume=False)
    sheet = root / "归档文件目录.csv"
    rows = list(csv.reader(io.StringIO(sheet.read_text(encoding="utf-8-sig"))))
    head = rows[0]
    for number, (row, text) in enumerate(zip(rows[1:], texts), start=1):
        row[head.index("档号")] = f"Q009-WS·1990-Y-FPB-{number:04d}"
        row[head.index("日期")] = "19900315"
        row[head.index("密级")] = "公开"
        row[head.index("致贫原因")] = ""
        row[head.index("精准扶贫类别")] = "01"
        row[head.index("题名")] = "易地扶贫搬迁安置户名单"
        (root / row[head.index("计算机文件名")]).write_text(text, encoding="utf-8")
    with open(sheet, "w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return root


def _items(home, uuid):
    with Catalogue.open(home).session() as s:
        return {i.key: i.fields for i in s.scalars(select(models.Item).where(
            models.Item.aip_uuid == uuid))}


def test_content_naming_a_held_household_is_rated_and_marked_for_review(
        home, cli, sample, tmp_path, monkeypatch):
    monkeypatch.setenv("DANGAN_FULLTEXT_OCR", "false")
    assert cli("ingest", sample).code == 0
    with Catalogue.open(home).session() as s:
        head = next(f["head_name"] for f in s.scalars(select(models.Item.fields))
                    if isinstance(f, dict) and f.get("head_name"))
    transfer = _county_documents(tmp_path / "county", [
        f"安置户：{head}，低保贫困户，D级危房，搬迁至县城安置点。\n",
        "全县共搬迁安置 1200 户，因病致贫户占 38%。\n",             # aggregate: nobody named
        "户主身份证号 630121 19540214 4291，已核实。\n",
    ])
    result = cli("ingest", transfer, "--json")
    assert result.code == 0, result.err
    uuid = json.loads(result.out)["aips"][0]["uuid"]
    items = _items(home, uuid)
    by_file = {f.get("computer_filename"): f for f in items.values()}
    named, aggregate, numbered = (by_file[f"户卷/{n:03d}-申请书.txt"] for n in (1, 2, 3))
    assert named["pii_level"] == "sensitive" and named["control_id"] == "控制"
    assert named["content_pii"] == ["household_name", "household_name_with_words"]
    assert named["pii_review"] == "待审查"
    assert numbered["pii_level"] == "sensitive" and numbered["content_pii"] == ["id_number"]
    assert aggregate["pii_level"] == "none" and aggregate["control_id"] == "开放"
    assert "content_pii" not in aggregate
    # an anonymous reader never gets the named document's content
    service = AccessService(home)
    view = service.aip(PUBLIC, uuid)
    shown = {i["key"]: i for i in view["items"]}
    keys = {f.get("computer_filename"): k for k, f in items.items()}
    assert shown.get(keys["户卷/001-申请书.txt"], {}).get("view", "hidden") != "content"
    assert shown[keys["户卷/002-申请书.txt"]]["view"] == "content"
    text = json.dumps(view, ensure_ascii=False)
    assert head not in text
    found = json.loads(cli("search", head, "--json").out)
    assert found["total"] >= 1                       # staff (the command line) find it
    public = service.search(PUBLIC, head) if hasattr(service, "search") else None
    if public is not None:
        assert head not in json.dumps(public, ensure_ascii=False, default=str)
    archivist = service.aip(Reader("archivist", "a"), uuid)
    assert any(i["fields"].get("pii_review") == "待审查" for i in archivist["items"])
