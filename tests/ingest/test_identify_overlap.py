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


def test_the_childs_answers_are_read_while_the_files_are_still_being_copied(tmp_path):
    """Nobody asks for the results yet (staging is copying): the child's answers, far more
    than a pipe holds, are read as they come, so the child finishes every batch meanwhile
    and libmagic has its files; results() then only collects."""
    import time

    from ingest.formats import BATCH

    root = tmp_path / "many"
    root.mkdir()
    for n in range(4 * BATCH):     # each answer line about 100 KiB: several pipes full
        (root / f"{'长名' * 20}{n:05d}.bin").write_bytes(b"\0\1" + n.to_bytes(6, "big"))
    early = BackgroundIdentification.start(root, workers=2)
    assert early is not None
    deadline = time.monotonic() + 30
    while not early._job._done and time.monotonic() < deadline:
        time.sleep(0.05)
    assert early._job._done, "the child's answers were not read before results() was called"
    assert early._job._child.poll() is None   # it waits for requests, not on a full pipe
    found = early.results()
    assert len(found) == 4 * BATCH
    assert {f.mime_by for f in found.values()} == {"libmagic"}   # extension-only: asked
    early.cancel()


def test_a_cancelled_identification_stops_its_child_and_reader(tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    for n in range(SUBPROCESS_MIN + 5):
        (root / f"{n:05d}.txt").write_text(f"{n}\n", encoding="utf-8")
    early = BackgroundIdentification.start(root, workers=1)
    assert early is not None
    early.cancel()
    assert not early._reader.is_alive()
    assert early._job._child.returncode is not None
