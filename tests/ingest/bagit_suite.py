"""BagIt conformance cases written from RFC 8493 (BagIt 1.0) and the 0.97 draft, named after
the Library of Congress conformance suite's cases where it has one (``v0.97/invalid/
missing-bagit.txt``) and after the RFC section otherwise.

Each case is built by a function into an empty folder: ``VALID`` bags must be accepted by
ingest, ``INVALID`` ones refused with a reason under a DA/T 70 code (GD-1-13 structure,
GD-1-14 digests, GD-2-1/GD-2-2 Payload-Oxum counts).
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable
from pathlib import Path

DECLARATION = {"1.0": b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
               "0.97": b"BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n"}
PAYLOAD = {"data/test-file.txt": "第一份文件\n".encode(), "data/子目录/二.txt": b"second\n"}


def _digest(algorithm: str, data: bytes) -> str:
    return hashlib.new(algorithm, data).hexdigest()


def _manifest(algorithm: str, files: dict[str, bytes]) -> bytes:
    lines = []
    for path, data in sorted(files.items()):
        encoded = path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        lines.append(f"{_digest(algorithm, data)}  {encoded}\n")
    return "".join(lines).encode()


def write_bag(root: Path, *, version: str = "1.0", algorithms: tuple[str, ...] = ("sha256",),
              payload: dict[str, bytes] | None = None, info: bytes | None = None,
              declaration: bytes | None = None, tagmanifest: bool = True,
              manifest_text: dict[str, bytes] | None = None,
              line_end: bytes = b"\n") -> Path:
    """A bag in ``root``: payload, bagit.txt, manifests, bag-info.txt (with Payload-Oxum) and
    tag manifests. Each keyword changes one thing, so a case is one deviation."""
    payload = dict(PAYLOAD if payload is None else payload)
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    for path, data in payload.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    (root / "bagit.txt").write_bytes(
        (DECLARATION[version] if declaration is None else declaration).replace(b"\n", line_end))
    for algorithm in algorithms:
        text = (manifest_text or {}).get(algorithm) or _manifest(algorithm, payload)
        (root / f"manifest-{algorithm}.txt").write_bytes(text.replace(b"\n", line_end))
    if info is None:
        size = sum(len(d) for d in payload.values())
        info = (f"Source-Organization: 某县扶贫开发局\nBagging-Date: 2019-06-30\n"
                f"Payload-Oxum: {size}.{len(payload)}\n").encode()
    (root / "bag-info.txt").write_bytes(info.replace(b"\n", line_end))
    if tagmanifest:
        tags = {n: (root / n).read_bytes() for n in ["bagit.txt", "bag-info.txt"]
                + [f"manifest-{a}.txt" for a in algorithms]}
        for algorithm in algorithms:
            (root / f"tagmanifest-{algorithm}.txt").write_bytes(_manifest(algorithm, tags))
    return root


# -- valid ----------------------------------------------------------------------------------
def basic(algorithm: str, version: str = "1.0") -> Callable[[Path], Path]:
    return lambda root: write_bag(root, version=version, algorithms=(algorithm,))


def two_manifests(root: Path) -> Path:
    return write_bag(root, algorithms=("sha256", "sha512"))


def crlf_line_endings(root: Path) -> Path:
    return write_bag(root, line_end=b"\r\n")


def no_tag_manifest(root: Path) -> Path:
    return write_bag(root, tagmanifest=False)


def bag_with_space(root: Path) -> Path:
    return write_bag(root, payload={"data/a file with spaces.txt": b"spaces\n"})


def bag_with_encoded_names(root: Path) -> Path:
    # RFC 8493 §2.1.3: a % in a path is written %25 in the manifest
    return write_bag(root, payload={"data/100% 完成.txt": b"percent\n"})


def duplicate_metadata_entries(root: Path) -> Path:
    return write_bag(root, info="Contact-Name: 张三\nContact-Name: 李四\nBagging-Date: 2019-06-30\n"
                               .encode())


def filename_normalization(root: Path) -> Path:
    """The manifest names a file in NFD, the file system holds it in NFC (a warning case)."""
    name = "data/café-档案.txt"
    bag = write_bag(root, payload={unicodedata.normalize("NFC", name): b"cafe\n"})
    nfd = _manifest("sha256", {unicodedata.normalize("NFD", name): b"cafe\n"})
    (bag / "manifest-sha256.txt").write_bytes(nfd)
    _retag(bag)
    return bag


def no_bag_info(root: Path) -> Path:
    bag = write_bag(root, tagmanifest=False)
    (bag / "bag-info.txt").unlink()
    return bag


VALID: dict[str, Callable[[Path], Path]] = {
    "v1.0/valid/basic-bag-sha256": basic("sha256"),
    "v1.0/valid/basic-bag-sha512": basic("sha512"),
    "v0.97/valid/basic-bag-md5": basic("md5", "0.97"),
    "v0.97/valid/basic-bag-sha1": basic("sha1", "0.97"),
    "v0.97/valid/basic-bag-sha224": basic("sha224", "0.97"),
    "v0.97/valid/basic-bag-sha256": basic("sha256", "0.97"),
    "v1.0/valid/two-payload-manifests": two_manifests,
    "v1.0/valid/crlf-line-endings": crlf_line_endings,
    "v1.0/valid/no-tag-manifest": no_tag_manifest,
    "v1.0/valid/no-bag-info": no_bag_info,
    "v1.0/valid/bag-with-space": bag_with_space,
    "v1.0/valid/bag-with-encoded-names": bag_with_encoded_names,
    "v0.97/valid/duplicate-metadata-entries": duplicate_metadata_entries,
    "v0.97/warning/filename-normalization": filename_normalization,
}


# -- invalid --------------------------------------------------------------------------------
def _retag(bag: Path) -> None:
    """Rewrite the tag manifests after a case changed a tag file (one deviation only)."""
    for tagmanifest in bag.glob("tagmanifest-*.txt"):
        algorithm = tagmanifest.name[len("tagmanifest-"):-len(".txt")]
        names = sorted(p.name for p in bag.iterdir() if p.is_file()
                       and not p.name.startswith("tagmanifest-"))
        tagmanifest.write_bytes(_manifest(algorithm, {n: (bag / n).read_bytes() for n in names}))


def missing_bagit_txt(root: Path) -> Path:
    bag = write_bag(root, version="0.97", algorithms=("md5",))
    (bag / "bagit.txt").unlink()
    _retag(bag)
    return bag


def whitespace_before_colon(version: str) -> Callable[[Path], Path]:
    declaration = f"BagIt-Version : {version}\nTag-File-Character-Encoding: UTF-8\n".encode()
    return lambda root: write_bag(root, version=version, declaration=declaration)


def bagit_txt_with_bom(root: Path) -> Path:
    return write_bag(root, declaration=b"\xef\xbb\xbf" + DECLARATION["1.0"])


def bagit_txt_extra_line(root: Path) -> Path:
    return write_bag(root, declaration=DECLARATION["1.0"] + b"Extra: line\n")


def bagit_txt_missing_encoding(root: Path) -> Path:
    return write_bag(root, declaration=b"BagIt-Version: 1.0\n")


def unknown_version(root: Path) -> Path:
    return write_bag(root, declaration=b"BagIt-Version: 2.0\nTag-File-Character-Encoding: UTF-8\n")


def missing_data_directory(root: Path) -> Path:
    bag = write_bag(root)
    for path in sorted(bag.joinpath("data").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    bag.joinpath("data").rmdir()
    return bag


def missing_manifest(root: Path) -> Path:
    bag = write_bag(root, tagmanifest=False)
    (bag / "manifest-sha256.txt").unlink()
    return bag


def missing_file(root: Path) -> Path:
    bag = write_bag(root)
    (bag / "data/子目录/二.txt").unlink()
    return bag


def file_not_in_manifest(root: Path) -> Path:
    bag = write_bag(root)
    (bag / "data/extra.txt").write_bytes(b"not listed\n")
    return bag


def wrong_checksum(root: Path) -> Path:
    bag = write_bag(root)
    (bag / "data/test-file.txt").write_bytes("第一份文件！\n".encode())   # same manifest, new bytes
    return bag


def wrong_tag_checksum(root: Path) -> Path:
    bag = write_bag(root)
    with open(bag / "bag-info.txt", "ab") as handle:
        handle.write(b"Contact-Name: changed after bagging\n")
    return bag


def out_of_scope_dot_notation(root: Path) -> Path:
    text = _manifest("sha256", {"data/../../outside.txt": b"x\n", **PAYLOAD})
    return write_bag(root, manifest_text={"sha256": text})


def out_of_scope_absolute(root: Path) -> Path:
    text = _manifest("sha256", {"/etc/passwd": b"x\n", **PAYLOAD})
    return write_bag(root, manifest_text={"sha256": text})


def manifest_lists_tag_file(root: Path) -> Path:
    # RFC 8493 §2.1.3: a payload manifest lists payload files (under data/) only
    text = _manifest("sha256", {**PAYLOAD, "bagit.txt": DECLARATION["1.0"]})
    return write_bag(root, manifest_text={"sha256": text})


def malformed_manifest_line(root: Path) -> Path:
    text = _manifest("sha256", PAYLOAD) + b"this-line-has-no-digest\n"
    return write_bag(root, manifest_text={"sha256": text})


def inconsistent_manifests(root: Path) -> Path:
    bag = write_bag(root, algorithms=("sha256", "sha512"))
    (bag / "manifest-sha512.txt").write_bytes(
        _manifest("sha512", {"data/test-file.txt": PAYLOAD["data/test-file.txt"]}))
    _retag(bag)
    return bag


def payload_oxum_mismatch(root: Path) -> Path:
    return write_bag(root, info=b"Payload-Oxum: 1.1\nBagging-Date: 2019-06-30\n")


def fetch_file_missing(root: Path) -> Path:
    """A holey bag: fetch.txt names a payload file that is not there."""
    bag = write_bag(root)
    (bag / "data/子目录/二.txt").unlink()
    (bag / "fetch.txt").write_bytes(b"http://example.invalid/2.txt 7 data/%E5%AD%90/2.txt\n")
    _retag(bag)
    return bag


def nfd_name_wrong_checksum(root: Path) -> Path:
    """The manifest names a file in NFD with a wrong digest: the digest is still compared."""
    bag = filename_normalization(root)
    (bag / unicodedata.normalize("NFC", "data/café-档案.txt")).write_bytes(b"CAFE\n")
    return bag


INVALID: dict[str, tuple[Callable[[Path], Path], str]] = {
    # name -> (builder, the code the refusal must carry)
    "v0.97/invalid/missing-bagit.txt": (missing_bagit_txt, "GD-1-13"),
    "v1.0/invalid/bagit-with-invalid-whitespace": (whitespace_before_colon("1.0"), "GD-1-13"),
    "v0.97/invalid/bagit-with-invalid-whitespace": (whitespace_before_colon("0.97"), "GD-1-13"),
    "v1.0/invalid/bagit-txt-with-bom": (bagit_txt_with_bom, "GD-1-13"),
    "v1.0/invalid/bagit-txt-extra-line": (bagit_txt_extra_line, "GD-1-13"),
    "v1.0/invalid/bagit-txt-missing-encoding": (bagit_txt_missing_encoding, "GD-1-13"),
    "v1.0/invalid/unknown-version": (unknown_version, "GD-1-13"),
    "v1.0/invalid/missing-data-directory": (missing_data_directory, "GD-1-13"),
    "v1.0/invalid/missing-manifest": (missing_manifest, "GD-1-13"),
    "v1.0/invalid/missing-file": (missing_file, "GD-1-13"),
    "v1.0/invalid/file-not-in-manifest": (file_not_in_manifest, "GD-1-13"),
    "v1.0/invalid/wrong-checksum": (wrong_checksum, "GD-1-14"),
    "v1.0/invalid/wrong-tag-checksum": (wrong_tag_checksum, "GD-1-14"),
    "v0.97/invalid/out-of-scope-file-paths-using-dot-notation": (out_of_scope_dot_notation,
                                                                 "GD-1-13"),
    "v1.0/invalid/out-of-scope-absolute-path": (out_of_scope_absolute, "GD-1-13"),
    "v1.0/invalid/payload-manifest-lists-tag-file": (manifest_lists_tag_file, "GD-1-13"),
    "v1.0/invalid/malformed-manifest-line": (malformed_manifest_line, "GD-1-13"),
    "v1.0/invalid/inconsistent-manifests": (inconsistent_manifests, "GD-1-13"),
    "v1.0/invalid/payload-oxum-mismatch": (payload_oxum_mismatch, "GD-2-1"),
    "v1.0/invalid/fetch-file-missing": (fetch_file_missing, "GD-1-13"),
    "v0.97/invalid/nfd-name-wrong-checksum": (nfd_name_wrong_checksum, "GD-1-14"),
}
