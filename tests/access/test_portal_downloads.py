"""The first portal: search with highlights, AIP page, verified downloads, ranges, zip."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ingest"))
from transfers import small_transfer  # noqa: E402

from access.portal import create_app  # noqa: E402


@pytest.fixture
def ingested(home, cli, tmp_path):
    transfer = small_transfer(tmp_path / "t", rows=3)
    result = cli("ingest", transfer, "--json")
    assert result.code == 0, result.err
    return transfer, json.loads(result.out)["aips"][0]["uuid"]


@pytest.fixture
def client(home, ingested):
    app = create_app(home, {"TESTING": True})
    return app.test_client()


def login_if_needed(client):
    """Portals with accounts let an admin in; the plain portal needs nothing."""
    hook = getattr(client.application, "test_login", None)
    if hook:
        hook(client, "admin")


def test_search_page_highlights_two_character_words(client, ingested):
    login_if_needed(client)
    page = client.get("/search", query_string={"q": "因病"})
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "<mark>因病</mark>" in body
    assert ingested[1] in body


def test_aip_page_lists_files_digests_and_events(client, ingested):
    login_if_needed(client)
    transfer, uuid = ingested
    body = client.get(f"/aip/{uuid}").get_data(as_text=True)
    digest = hashlib.sha256((transfer / "户卷/001-申请书.txt").read_bytes()).hexdigest()
    assert digest in body and "ingestion" in body and "message digest calculation" in body


def test_file_download_equals_original_and_supports_ranges(client, ingested):
    login_if_needed(client)
    transfer, uuid = ingested
    original = (transfer / "户卷/003-申请书.txt").read_bytes()
    url = f"/aip/{uuid}/file/data/objects/户卷/003-申请书.txt"
    whole = client.get(url)
    assert whole.status_code == 200 and whole.data == original
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Type"].startswith("text/plain")
    part = client.get(url, headers={"Range": "bytes=5-20"})
    assert part.status_code == 206 and part.data == original[5:21]
    assert part.headers["Content-Range"] == f"bytes 5-20/{len(original)}"
    tail = client.get(url, headers={"Range": "bytes=-7"})
    assert tail.status_code == 206 and tail.data == original[-7:]
    beyond = client.get(url, headers={"Range": f"bytes={len(original) + 10}-"})
    assert beyond.status_code == 416
    assert client.get(f"/aip/{uuid}/file/data/objects/nope.txt").status_code == 404


def test_download_of_a_damaged_file_fails_instead_of_serving_wrong_bytes(client, home, ingested):
    login_if_needed(client)
    _, uuid = ingested
    stored = home.home / "aips" / uuid / "data/objects/户卷/001-申请书.txt"
    data = bytearray(stored.read_bytes())
    data[0] ^= 0xFF
    stored.write_bytes(bytes(data))
    with pytest.raises(Exception) as excinfo:
        response = client.get(f"/aip/{uuid}/file/data/objects/户卷/001-申请书.txt")
        response.get_data()
    assert "intact" in str(excinfo.value) or "differs" in str(excinfo.value)


def test_whole_aip_zip_is_a_valid_bag_with_original_bytes(client, home, ingested, tmp_path):
    login_if_needed(client)
    transfer, uuid = ingested
    response = client.get(f"/aip/{uuid}.zip")
    assert response.status_code == 200 and response.is_streamed
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    assert archive.testzip() is None
    names = archive.namelist()
    assert f"{uuid}/bagit.txt" in names and f"{uuid}/data/metadata/mets.xml" in names
    assert archive.read(f"{uuid}/data/objects/户卷/002-申请书.txt") == \
        (transfer / "户卷/002-申请书.txt").read_bytes()
    import bagit

    archive.extractall(tmp_path / "dip")
    bagit.Bag(str(tmp_path / "dip" / uuid)).validate()


def test_cli_get_verifies_and_refuses_a_damaged_copy(cli, home, ingested, tmp_path):
    transfer, uuid = ingested
    out = tmp_path / "out.txt"
    assert cli("get", uuid, "户卷/002-申请书.txt", "-o", out).code == 0
    assert out.read_bytes() == (transfer / "户卷/002-申请书.txt").read_bytes()
    whole = tmp_path / "whole"
    assert cli("get", uuid, "-o", whole).code == 0
    import bagit

    bagit.Bag(str(whole)).validate()
    stored = home.home / "aips" / uuid / "data/objects/户卷/002-申请书.txt"
    stored.write_bytes(stored.read_bytes()[:-1])
    bad = tmp_path / "bad.txt"
    result = cli("get", uuid, "户卷/002-申请书.txt", "-o", bad)
    assert result.code == 1 and "no copy could be read intact" in result.err
    assert not bad.exists()


def test_cli_search_and_show(cli, ingested):
    _, uuid = ingested
    result = cli("search", "因学", "--json")
    hits = json.loads(result.out)["hits"]
    assert result.code == 0 and hits and hits[0]["aip"] == uuid
    shown = json.loads(cli("show", uuid[:8], "--json").out)
    assert shown["uuid"] == uuid
    assert shown["copies"][0]["files"]["bagit.txt"].startswith("file://")
    assert cli("show", "00000000-0000").code == 2
