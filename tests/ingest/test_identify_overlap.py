"""Format identification beside staging gives what identification of the staged copy gives."""

from __future__ import annotations

import json

from ingest.formats import SUBPROCESS_MIN, BackgroundIdentification, identify


def test_background_identification_matches_identification_in_place(tmp_path):
    root = tmp_path / "many"
    (root / "子目录").mkdir(parents=True)
    for n in range(SUBPROCESS_MIN + 20):
        folder = root / "子目录" if n % 2 else root
        (folder / f"{n:04d}.txt").write_text(f"第{n}份 脱贫攻坚\n", encoding="utf-8")
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(root / "img.png")
    early = BackgroundIdentification.start(root, workers=2)
    assert early is not None
    found = early.results()
    rels = sorted(found)
    direct = identify([root / r for r in rels], workers=2)
    assert [found[r] for r in rels] == direct
    assert found["0000.txt"].puid == "x-fmt/111" and found["0000.txt"].mime == "text/plain"
    assert found["img.png"].mime == "image/png"


def test_small_folders_are_identified_after_staging(tmp_path):
    (tmp_path / "a.txt").write_text("x", encoding="utf-8")
    assert BackgroundIdentification.start(tmp_path) is None


def test_ingest_of_a_large_folder_records_formats(cli, tmp_path):
    root = tmp_path / "t"
    root.mkdir()
    for n in range(SUBPROCESS_MIN + 5):
        (root / f"{n:04d}.txt").write_text(f"文件{n}", encoding="utf-8")
    result = cli("ingest", root, "--json")
    assert result.code == 0, result.err
    uuid = json.loads(result.out)["aips"][0]["uuid"]
    files = json.loads(cli("show", uuid, "--json").out)["files"]
    objects = [f for f in files if f["path"].startswith("data/objects/")]
    assert len(objects) == SUBPROCESS_MIN + 5
    assert all(f["puid"] == "x-fmt/111" and f["mime"] == "text/plain" for f in objects)
