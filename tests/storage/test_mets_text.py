"""The files of a METS document are written as text when their values allow it: the bytes
must be exactly those of the element-by-element lxml build, for any values XML carries."""

import random

import pytest

from storage.aip import mets
from storage.aip import Agent, AipDescription, Event, FileEntry, Item, Retention, build_mets, parse_mets, validate_mets

# characters that serialisation escapes (in text, in attributes, or both), and some it keeps
AWKWARD = ["&", "<", ">", '"', "'", "\n", "\r", "\t", "]]>", "中文", "户卷·", "\u2028", "\x85",
           "😀", " ", "%", "#", "?", "+", "~", ""]


def _text(rnd: random.Random) -> str:
    return "".join(rnd.choice(AWKWARD + ["a", "Z", "0", ".", "-"]) for _ in range(rnd.randrange(6)))


def _path(rnd: random.Random, index: int) -> str:
    folders = "/".join(f"d{rnd.randrange(3)}{_text(rnd).replace('/', '')}"
                       for _ in range(rnd.randrange(3)))
    name = f"f{index}{_text(rnd)}".replace("/", "_").strip() or f"f{index}"
    path = f"data/objects/{folders}/{name}" if folders else f"data/objects/{name}"
    return "/".join(part if part not in (".", "..", "") else "x" for part in path.split("/"))


def random_aip(seed: int, files: int = 60) -> AipDescription:
    rnd = random.Random(seed)
    agents = (Agent("dangan-0.1", "Dangan", "software", "0.1"),
              Agent("siegfried-1", "Siegfried", "software", "1.11; sig"))
    items = (Item("item-000", "户卷 <1>", {"archival_code": "A-1", "pages": 3}, "户卷"),
             Item("item-001", "件 & 件", {"title": _text(rnd)}, "件", "item-000"))
    entries = []
    for index in range(files):
        digests = {"sha256": f"{rnd.getrandbits(256):064x}"}
        if rnd.random() < 0.4:
            digests["sm3"] = _text(rnd) or "0"
        if rnd.random() < 0.1:
            digests["blake2b"] = f"{rnd.getrandbits(512):0128x}"

        def maybe() -> str | None:
            return rnd.choice([None, "", _text(rnd), "fmt/208"])

        entries.append(FileEntry(
            id=f"file-{index:04d}", path=_path(rnd, index), original_name=_text(rnd),
            size=rnd.randrange(10**9), digests=digests, mime=maybe(), puid=maybe(),
            format_name=maybe(), format_version=maybe(),
            use=rnd.choice(["original", "metadata", "text", "submissionDocumentation"]),
            item_id=rnd.choice([None, "item-000", "item-001"])))
    events = (Event("e-1", "ingestion", "2026-01-01T00:00:00+00:00", "pass", "d", "",
                    ("dangan-0.1",)),
              Event("e-2", "format identification", "2026-01-01T00:00:00+00:00", "not-checked",
                    "", "", ("siegfried-1",), ("file-0000",) if entries else ()))
    return AipDescription("uuid-1", "A-1", "label", "2026-01-01T00:00:00+00:00", "dangan-0.1",
                          "某县", tuple(entries), items, events, agents,
                          Retention("Y", None, "2040-01-01", "basis"), "jzfp")


@pytest.mark.parametrize("seed", range(40))
def test_files_written_as_text_are_the_bytes_lxml_writes(seed):
    aip = random_aip(seed)
    assert all(mets._plain_file(entry) for entry in aip.files)
    assert build_mets(aip) == mets._render(aip, plain=False)


def test_text_written_files_validate_and_round_trip():
    aip = random_aip(7, files=300)
    xml = build_mets(aip)
    assert validate_mets(xml) == []
    assert parse_mets(xml) == aip


def test_an_aip_without_files_has_no_marks_left():
    aip = random_aip(3, files=0)
    xml = build_mets(aip)
    assert b"dangan:" + b"techMD" not in xml and validate_mets(xml) == []


def test_a_bad_value_still_names_its_field():
    aip = random_aip(5, files=5)
    bad = aip.files[3].__class__(**{**aip.files[3].__dict__, "original_name": "a\x01b"})
    aip = AipDescription(**{**aip.__dict__, "files": aip.files[:3] + (bad,) + aip.files[4:]})
    with pytest.raises(ValueError, match=r"files\[3\] \(file-0003\)\.original_name"):
        build_mets(aip)


@pytest.mark.parametrize("files", [0, 1, 255, 256, 257, 700])
def test_written_in_parts_the_file_holds_the_bytes_of_build_mets(tmp_path, files):
    aip = random_aip(files, files=files)
    mets.write_mets(aip, tmp_path / "mets.xml")
    assert (tmp_path / "mets.xml").read_bytes() == build_mets(aip) == mets._render(aip, plain=False)


@pytest.mark.parametrize("seed", range(10))
def test_the_physical_map_of_deep_folders_written_as_text_is_the_lxml_tree(seed):
    """Folders up to eight deep, met again after other folders and files: the text of the
    physical structMap is what the element-by-element build serialises."""
    rnd = random.Random(seed)
    aip = random_aip(seed, files=120)
    files = []
    for entry in aip.files:
        depth = rnd.randrange(9)
        folders = "/".join(f"{rnd.choice('ab')}{_text(rnd).replace('/', '')}" or "x"
                           for _ in range(depth))
        name = entry.path.rsplit("/", 1)[1]
        path = "/".join(p if p not in (".", "..", "") else "x"
                        for p in f"data/{folders}/{name}".split("/"))
        files.append(entry.__class__(**{**entry.__dict__, "path": path}))
    assert len({f.path for f in files}) == len(files)   # each name holds its index
    aip = AipDescription(**{**aip.__dict__, "files": tuple(files)})
    assert build_mets(aip) == mets._render(aip, plain=False)
    assert b"dangan:physical" not in build_mets(aip)
