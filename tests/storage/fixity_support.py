"""Shared pieces of the fixity tests: a repository with two copies of every AIP, direct access
to the stored bytes (filesystem folders or S3 objects) to damage them, and the damage kinds.

The fixtures live in :mod:`fixity_fixtures`, which test modules load as a pytest plugin
(``pytest_plugins = ["fixity_fixtures"]``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from policies import Settings

TWO_COPIES = """\
locations:
  - name: a
    url: "file://{home}/store-a"
  - name: b
    url: "file://{home}/store-b"
copies:
  default: [a, b]
"""

FAST_INGEST = {"DANGAN_FULLTEXT_OCR": "false"}   # OCR is not what these tests are about


def write_policy(home: Path, name: str, text: str) -> None:
    """Write ``$DANGAN_HOME/policies/<name>.yaml``."""
    folder = home / "policies"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")


def ingest_sample(settings: Settings, transfer: Path) -> list[str]:
    """Ingest a transfer; return the AIP UUIDs (the transfer is copied first: ingest moves
    nothing out of it, but tests share the session's sample)."""
    from ingest.pipeline import ingest

    result = ingest(transfer, settings)
    assert result.status == "accepted", result.failures
    return [a["uuid"] for a in result.aips]


@dataclass
class Repo:
    """A Dangan home whose AIPs each have a copy at location ``a`` and one at ``b``."""

    settings: Settings
    uuids: list[str]

    @property
    def home(self) -> Path:
        return self.settings.home

    def store(self, location: str) -> FsStore:
        return FsStore(self.home / f"store-{location}")


# -- stored bytes ------------------------------------------------------------------------------

class Store(Protocol):
    def read(self, uuid: str, path: str) -> bytes: ...
    def write(self, uuid: str, path: str, data: bytes) -> None: ...
    def delete(self, uuid: str, path: str) -> None: ...
    def paths(self, uuid: str) -> list[str]: ...


class FsStore:
    """The files of a filesystem location, touched directly (as damage would)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def file(self, uuid: str, path: str) -> Path:
        return self.root / uuid / path

    def read(self, uuid: str, path: str) -> bytes:
        return self.file(uuid, path).read_bytes()

    def write(self, uuid: str, path: str, data: bytes) -> None:
        target = self.file(uuid, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def delete(self, uuid: str, path: str) -> None:
        self.file(uuid, path).unlink()

    def paths(self, uuid: str) -> list[str]:
        base = self.root / uuid
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())


class S3Store:
    """The objects of an S3 location, touched directly with boto3."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix.strip("/") + "/"

    def key(self, uuid: str, path: str) -> str:
        return f"{self.prefix}{uuid}/{path}"

    def read(self, uuid: str, path: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self.key(uuid, path))["Body"].read()

    def write(self, uuid: str, path: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key(uuid, path), Body=data)

    def delete(self, uuid: str, path: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(uuid, path))

    def paths(self, uuid: str) -> list[str]:
        start = f"{self.prefix}{uuid}/"
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                      Prefix=start)
        return sorted(o["Key"][len(start):] for page in pages for o in page.get("Contents", []))


def payload_file(store: Store, uuid: str, index: int = 0) -> str:
    """A payload file of the AIP (bag path), by position."""
    return [p for p in store.paths(uuid) if p.startswith("data/objects/")][index]


def flip_byte(store: Store, uuid: str, path: str, offset: int = 100) -> None:
    data = bytearray(store.read(uuid, path))
    data[min(offset, len(data) - 1)] ^= 0x01
    store.write(uuid, path, bytes(data))


# Each damage: (name, function(store, uuid) -> damaged path, expected finding kind)
def _changed(store: Store, uuid: str) -> str:
    path = payload_file(store, uuid)
    flip_byte(store, uuid, path)
    return path


def _truncated(store: Store, uuid: str) -> str:
    path = payload_file(store, uuid, 1)
    store.write(uuid, path, store.read(uuid, path)[:40])
    return path


def _deleted(store: Store, uuid: str) -> str:
    path = payload_file(store, uuid, 2)
    store.delete(uuid, path)
    return path


def _extra(store: Store, uuid: str) -> str:
    path = "data/objects/stray-file.bin"
    store.write(uuid, path, b"not part of the AIP\n")
    return path


def _tag_manifest(store: Store, uuid: str) -> str:
    path = "tagmanifest-sha256.txt"
    text = store.read(uuid, path).decode()
    digit = text[0]
    store.write(uuid, path, (("1" if digit == "0" else "0") + text[1:]).encode())
    return path


def _payload_manifest(store: Store, uuid: str) -> str:
    path = "manifest-sha256.txt"
    lines = store.read(uuid, path).decode().splitlines(keepends=True)
    lines[0] = ("f" if lines[0][0] != "f" else "e") + lines[0][1:]
    store.write(uuid, path, "".join(lines).encode())
    return path


def _bag_info(store: Store, uuid: str) -> str:
    path = "bag-info.txt"
    store.write(uuid, path, store.read(uuid, path) + b"Contact-Name: someone else\n")
    return path


DAMAGE: dict[str, tuple[Callable[[Store, str], str], str]] = {
    "changed-byte": (_changed, "changed"),
    "truncated": (_truncated, "truncated"),
    "deleted-file": (_deleted, "missing"),
    "extra-file": (_extra, "untracked"),
    "edited-tag-manifest": (_tag_manifest, "tag-altered"),
    "edited-manifest": (_payload_manifest, "tag-altered"),
    "edited-bag-info": (_bag_info, "tag-altered"),
}


def audit_json(cli: Callable[..., Any], *args: str) -> tuple[int, dict[str, Any]]:
    """Run ``dangan audit … --json``; return (exit code, parsed output)."""
    result = cli("audit", *args, "--json")
    assert result.out.strip(), result.err
    return result.code, json.loads(result.out)


def events_of(settings: Settings, uuid: str, kind: str = "fixity check") -> list[Any]:
    """The catalogue's PREMIS events of one type for an AIP, oldest first."""
    from sqlalchemy import select

    from storage.catalogue import models as m
    from storage.catalogue import Catalogue

    catalogue = Catalogue.open(settings)
    with catalogue.session() as s:
        return list(s.scalars(select(m.Event).where(m.Event.aip_uuid == uuid, m.Event.type == kind)
                              .order_by(m.Event.at, m.Event.id)))


def s3_environment(monkeypatch: pytest.MonkeyPatch, access_key: str, secret_key: str) -> None:
    """AWS credentials for moto in this process and the audit's worker processes."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
