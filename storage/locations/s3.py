"""A storage location on an S3-compatible object store (``s3://bucket/prefix``).

Layout under ``<prefix>``::

    <uuid>/bagit.txt, manifest-*.txt, data/...   the AIP bag, one object per bag file, nothing else
    .dangan/published/<uuid>                     the publication marker of a verified copy (JSON)
    .dangan/replace/<uuid>/<path>                a file being replaced in place (transient)
    .dangan/admin/<name>                         administrative objects (audit-log anchors)

**Visible**, precisely: an AIP is visible at an S3 location when, and only when, its
publication marker exists. ``has_aip`` and ``list_aips`` look only at markers; ``list_files``,
``head`` and ``open`` answer ObjectNotFound for an AIP without one; the catalogue records a
copy only after ``put_aip`` returned. ``put_aip`` writes the marker last: after every file was
uploaded, read back in full and matched against its expected size and digests, and after a
listing of ``<uuid>/`` showed exactly the expected files and sizes. Objects under ``<uuid>/``
without a marker are the leftovers of an interrupted upload: nothing treats them as an AIP.
The next ``put_aip`` of that AIP aborts the multipart uploads under ``<uuid>/``, deletes files
that do not belong, keeps leftovers that read back intact, uploads the rest and, once
published, deletes the versions the interrupted run left behind. The marker holds the size,
SHA-256 and version id of every file, so the bag under ``<uuid>/`` stays exactly the AIP.

Connection: boto3 with the standard AWS configuration, so credentials, region and endpoint
come from the environment (``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL`` or
``AWS_ENDPOINT_URL_S3``, ...) and ``~/.aws/config`` (including ``s3 = addressing_style = path``).
A location can name its own in the URL query, for two endpoints side by side::

    s3://aips/dangan?profile=offsite&endpoint_url=http://10.1.2.3:7480&addressing_style=path

Other query keys: ``region``, ``checksum`` (``sha256`` or ``none``), ``workers`` (files in
flight), ``part_mib`` (multipart part size, also the threshold), ``attempts``.

Writing: a file smaller than a part is sent with one PutObject carrying
``x-amz-checksum-sha256`` (the expected digest; a server that checks it rejects a damaged
body); a larger one goes up in parts through boto3's transfer manager with per-part SHA-256
checksums, one large file at a time, so memory stays bounded by the parts in flight. No server
here checks those headers, so every object is then read back and hashed with every algorithm
the AIP's manifests use; a mismatch uploads the file again, with back-off, up to ``attempts``
times. Transient errors (5xx, throttling, dropped connections) are retried by botocore's
``standard`` retry mode with exponential back-off. botocore errors are translated at this
boundary by :func:`map_exceptions`, the original attached as ``__cause__``.

WORM: on a bucket created with Object Lock (versioning on), :meth:`S3Location.set_retention`
gives the current version of every file of the copy, and its marker, a retain-until date
and/or a legal hold; the server then refuses to delete those versions, and whatever is later
written over a key only stacks a new version on the locked one. :meth:`S3Location.delete_aip`
checks the marker's lock first, so that a refused deletion removes nothing.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, quote, urlparse

import boto3
import botocore.session
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound
from botocore.utils import parse_timestamp

from policies.errors import (
    ConfigError,
    FixityError,
    ObjectLocked,
    ObjectNotFound,
    StorageError,
)
from storage.aip import digest_stream, new_hashers, read_chunks
from storage.locations.base import (
    CopyReport,
    ExpectedFile,
    Leftover,
    Location,
    Mismatch,
    ObjectInfo,
    ProgressFn,
    RetentionLock,
    crash_point,
    raise_first,
    verify_stored_bag,
)

MiB = 1 << 20
MARKERS = ".dangan/published/"
REPLACING = ".dangan/replace/"
ADMIN = ".dangan/admin/"
NOT_FOUND = {"NoSuchKey", "NotFound", "404", "NoSuchVersion", "NoSuchUpload"}
BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
                   "ExpiredToken"}


# --------------------------------------------------------------------------- errors


@contextmanager
def map_exceptions(what: str, *, deleting: bool = False) -> Iterator[None]:
    """Translate botocore's errors raised inside the block into Dangan's.

    Arguments:
        what: names the object or operation, for the message (``s3://b/p/uuid/path``).
        deleting: the block deletes or overwrites; a refusal is then ObjectLocked.

    Raises:
        ObjectNotFound: the key, version or upload does not exist.
        ObjectLocked: Object Lock (retention or legal hold) refused the operation.
        ConfigError: missing bucket, unknown profile, missing or wrong credentials.
        StorageError: any other server or connection failure.
    """
    try:
        yield
    except ClientError as exc:
        raise translate(exc, what, deleting=deleting) from exc
    except S3UploadFailedError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ClientError):
            raise translate(cause, what, deleting=deleting) from exc
        raise StorageError(f"{what}: upload failed: {exc}") from exc
    except (NoCredentialsError, ProfileNotFound) as exc:
        raise ConfigError(f"{what}: {exc} (see AWS_PROFILE, AWS_ACCESS_KEY_ID, "
                          "~/.aws/credentials)") from exc
    except BotoCoreError as exc:
        raise StorageError(f"{what}: {exc}") from exc


def translate(exc: ClientError, what: str, *, deleting: bool = False) -> StorageError | ConfigError:
    """The Dangan error for one botocore ClientError (see :func:`map_exceptions`)."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", "")) or code
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code == "NoSuchBucket":
        return ConfigError(f"{what}: the bucket does not exist (create it first)")
    if code in BAD_CREDENTIALS:
        return ConfigError(f"{what}: credentials refused: {code}")
    if code in NOT_FOUND or (status == 404 and code != "NoSuchBucket"):
        return ObjectNotFound(f"{what}: not found")
    if code in {"AccessDenied", "ObjectLocked", "InvalidRequest"} and (
            "lock" in message.lower() or deleting):
        return ObjectLocked(f"{what}: refused by the server: {message}")
    return StorageError(f"{what}: {code or status}: {message}")


class _SourceChanged(StorageError):
    """A file in the source folder no longer has its expected digest (not retried)."""


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class S3Options:
    """How one S3 location connects and transfers.

    Attributes:
        endpoint_url, profile, region, addressing_style: override the AWS configuration
            (None: take it from the environment and ``~/.aws/config``).
        checksum: ``sha256`` sends SHA-256 checksum headers; ``none`` sends none.
        workers: files uploaded and read back at the same time.
        part_mib: multipart part size in MiB; smaller files go up in one request.
        attempts: uploads of one file before a read-back mismatch is final.
        retries: botocore attempts per request (standard mode, exponential back-off).
        backoff: first pause in seconds between our own attempts (doubled each time).
    """

    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    addressing_style: str | None = None
    checksum: str = "sha256"
    workers: int = 8
    part_mib: int = 16
    attempts: int = 3
    retries: int = 6
    backoff: float = 0.5
    connect_timeout: float = 10.0
    read_timeout: float = 120.0

    @classmethod
    def parse(cls, query: Mapping[str, str], base: "S3Options | None" = None) -> "S3Options":
        """Options from a URL query (``name=value`` pairs) on top of ``base``.

        Raises:
            ConfigError: an unknown key or a value of the wrong kind.
        """
        base = base or cls()
        known = {f.name: f for f in fields(cls)}
        changes: dict[str, Any] = {}
        for key, raw in query.items():
            if key not in known:
                raise ConfigError(f"s3 location: unknown option {key!r} "
                                  f"(known: {', '.join(sorted(known))})")
            kind = type(getattr(base, key)) if getattr(base, key) is not None else str
            try:
                changes[key] = kind(raw)
            except ValueError as exc:
                raise ConfigError(f"s3 location: {key}={raw!r} is not a {kind.__name__}") from exc
        options = replace(base, **changes)
        if options.checksum not in ("sha256", "none"):
            raise ConfigError(f"s3 location: checksum={options.checksum!r}: use sha256 or none")
        if options.addressing_style not in (None, "path", "virtual", "auto"):
            raise ConfigError(f"s3 location: addressing_style={options.addressing_style!r}: "
                              "use path, virtual or auto")
        if options.part_mib < 5 or options.workers < 1 or options.attempts < 1:
            raise ConfigError("s3 location: part_mib must be >= 5, workers and attempts >= 1")
        return options

    @property
    def part_size(self) -> int:
        return self.part_mib * MiB


def parse_s3_url(url: str) -> tuple[str, str, dict[str, str]]:
    """Split ``s3://bucket/prefix?k=v`` into (bucket, prefix ending in ``/`` or empty, query)."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ConfigError(f"not an s3://bucket/prefix URL: {url!r}")
    prefix = parsed.path.strip("/")
    return parsed.netloc, f"{prefix}/" if prefix else "", dict(parse_qsl(parsed.query))


def make_client(options: S3Options) -> Any:
    """A boto3 S3 client for these options on top of the standard AWS configuration."""
    config = Config(
        retries={"mode": "standard", "max_attempts": options.retries},
        connect_timeout=options.connect_timeout, read_timeout=options.read_timeout,
        max_pool_connections=max(10, options.workers * 2 + 4),
        # checksums are sent explicitly (PutObject) or per part; no aws-chunked trailers,
        # which older S3-compatible servers do not understand
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": options.addressing_style} if options.addressing_style else None,
    )
    with map_exceptions("s3 client"):
        core = botocore.session.get_session()
        core.get_component("response_parser_factory").set_parser_defaults(
            timestamp_parser=_parse_timestamp)
        session = boto3.session.Session(profile_name=options.profile, botocore_session=core)
        kwargs: dict[str, Any] = {"config": config}
        if options.endpoint_url:
            kwargs["endpoint_url"] = options.endpoint_url
        if options.region or not session.region_name:
            kwargs["region_name"] = options.region or "us-east-1"
        return session.client("s3", **kwargs)


def _parse_timestamp(value: str) -> datetime:
    """ISO 8601 times (every listed object has one) without dateutil, which would cost
    seconds of CPU per 20,000-object listing; other forms by botocore's own parser."""
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return parse_timestamp(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def _check_uuid(uuid: str) -> None:
    if not uuid or "/" in uuid or uuid.startswith("."):
        raise ObjectNotFound(f"not an AIP identifier: {uuid!r}")


def _check_path(path: str) -> None:
    parts = path.split("/")
    if not path or path.startswith("/") or ".." in parts or "" in parts:
        raise ObjectNotFound(f"not a bag path: {path!r}")


# --------------------------------------------------------------------------- the location


class S3Location(Location):
    """AIPs as objects under ``s3://bucket/prefix/<uuid>/``.

    Arguments:
        name: the location's name in the storage policy.
        url: ``s3://bucket/prefix``, optionally with a query of :class:`S3Options` keys.
        options: defaults for the options (the URL's query overrides them).
        client: a boto3 S3 client to use instead of making one.
    """

    def __init__(self, name: str, url: str, *, options: S3Options | None = None,
                 client: Any = None) -> None:
        self.name = name
        try:
            self.bucket, self.prefix, query = parse_s3_url(url)
            self.options = S3Options.parse(query, options)
        except ConfigError as exc:
            raise ConfigError(f"location {name}: {exc}") from exc
        self.url = f"s3://{self.bucket}/{self.prefix}"
        self.client = client or make_client(self.options)
        self.transfer = TransferConfig(
            multipart_threshold=self.options.part_size, multipart_chunksize=self.options.part_size,
            max_concurrency=self.options.workers, max_io_queue=self.options.workers * 2,
            use_threads=True, preferred_transfer_client="classic")
        self._published: set[str] = set()
        self._lock_enabled: bool | None = None
        self._large_gate = threading.Semaphore(1)   # one multipart upload at a time

    # -- keys --------------------------------------------------------------------------------
    def _key(self, uuid: str, path: str) -> str:
        return f"{self.prefix}{uuid}/{path}"

    def _marker_key(self, uuid: str) -> str:
        return f"{self.prefix}{MARKERS}{uuid}"

    def url_for(self, uuid: str, path: str | None = None) -> str:
        base = f"s3://{self.bucket}/{self.prefix}{uuid}/"
        return f"{base}{quote(path)}" if path else base

    # -- writing -----------------------------------------------------------------------------
    def put_aip(self, uuid: str, source: Path, expected: Mapping[str, ExpectedFile], *,
                move: bool = False, progress: ProgressFn | None = None) -> CopyReport:
        """Upload the bag in ``source``, read every object back, then publish it.

        ``move`` is ignored: the source folder is only read. A copy already published is
        verified against its own manifests and the expected payload, and reused.

        Raises:
            FixityError: a file still read back wrong after ``attempts`` uploads, or the
                published copy found in place differs; nothing new becomes visible.
            StorageError: the server failed (after retries).
        """
        _check_uuid(uuid)
        report = CopyReport(self.name, self.url_for(uuid), started=_now())
        if self.has_aip(uuid):
            payload = {p: e for p, e in expected.items() if p.startswith("data/objects/")}
            raise_first(verify_stored_bag(self, uuid, payload), uuid)
            report.reused = True
        else:
            self._upload_aip(uuid, Path(source), expected, report, progress)
        report.files = len(expected)
        report.bytes = sum(e.size for e in expected.values())
        report.finished = _now()
        return report

    def _upload_aip(self, uuid: str, source: Path, expected: Mapping[str, ExpectedFile],
                    report: CopyReport, progress: ProgressFn | None) -> None:
        aborted = self._abort_uploads(f"{self.prefix}{uuid}/")
        if aborted:
            report.notes.append(f"aborted {aborted} multipart upload(s) of an interrupted run")
        leftovers = {info.path: info for info in self._list(uuid)}
        untracked = sorted(set(leftovers) - set(expected))
        if untracked:
            self._delete_versions(f"{self.prefix}{uuid}/",
                                  only={self._key(uuid, p) for p in untracked})
            report.notes.append(f"removed {len(untracked)} leftover object(s) not in the bag")
        versions = self._store_files(uuid, source, expected, leftovers, report, progress)
        crash_point("pending-written")
        stored = {info.path: info for info in self._list(uuid)}
        problems = [Mismatch("missing", p) for p in sorted(set(expected) - set(stored))]
        problems += [Mismatch("untracked", p) for p in sorted(set(stored) - set(expected))]
        problems += [Mismatch("size", p, "", str(expected[p].size), str(stored[p].size))
                     for p in sorted(set(expected) & set(stored))
                     if stored[p].size != expected[p].size]
        raise_first(problems, uuid)
        self._write_marker(uuid, expected, versions)
        if leftovers:
            try:
                stale = self._delete_versions(f"{self.prefix}{uuid}/", keep={
                    (self._key(uuid, p), v or "null") for p, v in versions.items()})
            except ObjectLocked as exc:   # a bucket default retention locked them on arrival
                report.notes.append(f"stale versions of an interrupted run are locked: {exc}")
            else:
                if stale:
                    report.notes.append(f"removed {stale} stale version(s) of an interrupted run")

    def _store_files(self, uuid: str, source: Path, expected: Mapping[str, ExpectedFile],
                     leftovers: Mapping[str, ObjectInfo], report: CopyReport,
                     progress: ProgressFn | None) -> dict[str, str | None]:
        # the largest files first, so that the long uploads start while small ones fill in
        order = sorted(expected, key=lambda p: (-expected[p].size, p))

        def store(path: str) -> tuple[str, str | None]:
            version = self._store_file(uuid, path, source / path, expected[path],
                                       leftovers.get(path), report)
            if progress:
                progress(expected[path].size)
            return path, version

        with ThreadPoolExecutor(self.options.workers) as pool:
            return dict(pool.map(store, order))

    def _store_file(self, uuid: str, path: str, source: Path, want: ExpectedFile,
                    leftover: ObjectInfo | None, report: CopyReport) -> str | None:
        """Upload one file (unless an intact leftover is there) and read it back."""
        key = self._key(uuid, path)
        what = self.url_for(uuid, path)
        upload = leftover is None or leftover.size != want.size
        tries = self.options.attempts + (0 if upload else 1)   # checking a leftover is free
        failure: StorageError | None = None
        for attempt in range(1, tries + 1):
            try:
                if upload:
                    self._upload_file(key, source, want, what)
                return self._check_object(key, want, what)
            except _SourceChanged:
                raise
            except (FixityError, StorageError) as exc:
                if isinstance(exc, (ObjectLocked, ConfigError)):
                    raise
                failure = exc
                if upload or attempt > 1:
                    report.notes.append(f"{path}: attempt {attempt} failed: {exc}")
                    if attempt < tries:
                        time.sleep(self.options.backoff * 2 ** (attempt - 1))
                upload = True   # a leftover that did not read back intact is replaced at once
        assert failure is not None
        raise failure

    def _upload_file(self, key: str, source: Path, want: ExpectedFile, what: str) -> None:
        if want.size < self.options.part_size:
            data = source.read_bytes()
            digest = new_hashers(["sha256"])["sha256"]
            digest.update(data)
            if len(data) != want.size or digest.hexdigest() != want.digests["sha256"]:
                raise _SourceChanged(f"{source}: changed while being stored")
            extra = ({"ChecksumSHA256": _b64(want.digests["sha256"])}
                     if self.options.checksum == "sha256" else {})
            with map_exceptions(what):
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)
            return
        extra = {"ChecksumAlgorithm": "SHA256"} if self.options.checksum == "sha256" else {}
        with self._large_gate, map_exceptions(what):
            self.client.upload_file(str(source), self.bucket, key, ExtraArgs=extra,
                                    Config=self.transfer)

    def _check_object(self, key: str, want: ExpectedFile, what: str,
                      version: str | None = None) -> str | None:
        """Read an object back in full and compare; return its version id."""
        args = {"VersionId": version} if version else {}
        with map_exceptions(what):
            response = self.client.get_object(Bucket=self.bucket, Key=key, **args)
            body = response["Body"]
            try:
                size, got = digest_stream(read_chunks(body), list(want.digests) or ["sha256"],
                                          expected_size=want.size)
            finally:
                body.close()
        if size != want.size:
            raise FixityError(f"{what}: read back {size} bytes, expected {want.size}",
                              path=key, expected=str(want.size), actual=str(size))
        for algorithm, value in want.digests.items():
            if got[algorithm] != value:
                raise FixityError(f"{what}: {algorithm} read back differs", path=key,
                                  algorithm=algorithm, expected=value, actual=got[algorithm])
        return response.get("VersionId")

    def _write_marker(self, uuid: str, expected: Mapping[str, ExpectedFile],
                      versions: Mapping[str, str | None]) -> None:
        body = json.dumps({
            "aip": uuid, "published": _now(),
            "files": {p: {"size": e.size, "sha256": e.digests.get("sha256"),
                          "version": versions.get(p)} for p, e in sorted(expected.items())},
        }, ensure_ascii=False, indent=1).encode("utf-8")
        self._put_small(self._marker_key(uuid), body, f"{self.url}{MARKERS}{uuid}")
        self._published.add(uuid)

    def _put_small(self, key: str, data: bytes, what: str) -> str | None:
        digest = new_hashers(["sha256"])["sha256"]
        digest.update(data)
        extra = ({"ChecksumSHA256": _b64(digest.hexdigest())}
                 if self.options.checksum == "sha256" else {})
        with map_exceptions(what):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)
        return self._check_object(key, ExpectedFile(len(data), {"sha256": digest.hexdigest()}),
                                  what)

    def _abort_uploads(self, prefix: str) -> int:
        """Abort every unfinished multipart upload under ``prefix``; return how many."""
        count = 0
        with map_exceptions(f"s3://{self.bucket}/{prefix}: multipart uploads"):
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for upload in page.get("Uploads", []):
                    try:
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    except ClientError as exc:
                        if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                            raise
                    count += 1
        return count

    def _versions(self, prefix: str) -> Iterator[tuple[str, str, bool]]:
        """(key, version id, is latest) of every version and delete marker under a prefix."""
        with map_exceptions(f"s3://{self.bucket}/{prefix}: versions"):
            paginator = self.client.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    version = entry.get("VersionId") or "null"
                    yield entry["Key"], version, bool(entry.get("IsLatest"))

    def _current_versions(self, prefix: str) -> Iterator[tuple[str, str]]:
        """(key, version id) of the current version of every object under a prefix."""
        with map_exceptions(f"s3://{self.bucket}/{prefix}: versions"):
            paginator = self.client.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for entry in page.get("Versions", []):
                    if entry.get("IsLatest"):
                        yield entry["Key"], entry.get("VersionId") or "null"

    def _delete_versions(self, prefix: str, *, only: set[str] | None = None,
                         keep: set[tuple[str, str]] | None = None) -> int:
        """Delete versions under ``prefix`` (all, or of the ``only`` keys, except ``keep``).

        Raises:
            ObjectLocked: the server refused to delete a locked version.
        """
        doomed = [(k, v) for k, v, _latest in self._versions(prefix)
                  if (only is None or k in only) and (keep is None or (k, v) not in keep)]
        for start in range(0, len(doomed), 1000):
            batch = doomed[start:start + 1000]
            with map_exceptions(f"s3://{self.bucket}/{prefix}: delete", deleting=True):
                response = self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": k, "VersionId": v} for k, v in batch], "Quiet": True})
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                message = f"s3://{self.bucket}/{first['Key']}: {first.get('Code')}: " \
                          f"{first.get('Message')} ({len(errors)} refused)"
                locked = "lock" in str(first.get("Message")).lower()
                if first.get("Code") == "AccessDenied" or locked:
                    raise ObjectLocked(message)
                raise StorageError(message)
        return len(doomed)

    # -- reading -----------------------------------------------------------------------------
    def has_aip(self, uuid: str) -> bool:
        _check_uuid(uuid)
        if uuid in self._published:
            return True
        try:
            with map_exceptions(f"{self.url}{MARKERS}{uuid}"):
                self.client.head_object(Bucket=self.bucket, Key=self._marker_key(uuid))
        except ObjectNotFound:
            return False
        self._published.add(uuid)
        return True

    def _require(self, uuid: str) -> None:
        if not self.has_aip(uuid):
            raise ObjectNotFound(f"AIP {uuid} is not at {self.name}")

    def list_aips(self) -> Iterator[str]:
        prefix = f"{self.prefix}{MARKERS}"
        for key, _size, _modified in self._list_keys(prefix):
            yield key[len(prefix):]

    def _list_keys(self, prefix: str) -> Iterator[tuple[str, int, datetime | None]]:
        with map_exceptions(f"s3://{self.bucket}/{prefix}: list"):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for entry in page.get("Contents", []):
                    yield entry["Key"], int(entry["Size"]), entry.get("LastModified")

    def _list(self, uuid: str) -> Iterator[ObjectInfo]:
        prefix = f"{self.prefix}{uuid}/"
        for key, size, modified in self._list_keys(prefix):
            if key.endswith("/"):   # a "folder" placeholder some consoles create
                continue
            yield ObjectInfo(key[len(prefix):], size, modified.timestamp() if modified else None)

    def list_files(self, uuid: str) -> Iterator[ObjectInfo]:
        self._require(uuid)
        yield from self._list(uuid)

    def head(self, uuid: str, path: str) -> ObjectInfo:
        """Size and modification time; the stored SHA-256 only when the server keeps a
        full-object one (a composite multipart checksum is not a digest of the file)."""
        _check_path(path)
        self._require(uuid)
        with map_exceptions(self.url_for(uuid, path)):
            response = self.client.head_object(Bucket=self.bucket, Key=self._key(uuid, path),
                                               ChecksumMode="ENABLED")
        checksum = None
        if response.get("ChecksumSHA256") and response.get("ChecksumType") == "FULL_OBJECT":
            checksum = base64.b64decode(response["ChecksumSHA256"]).hex()
        modified = response.get("LastModified")
        return ObjectInfo(path, int(response["ContentLength"]),
                          modified.timestamp() if modified else None, checksum)

    def open(self, uuid: str, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        _check_path(path)
        self._require(uuid)
        if end is not None and end <= start:
            return io.BytesIO(b"")
        args: dict[str, Any] = {}
        if start or end is not None:
            args["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        what = self.url_for(uuid, path)
        try:
            with map_exceptions(what):
                response = self.client.get_object(Bucket=self.bucket, Key=self._key(uuid, path),
                                                  **args)
        except StorageError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and cause.response.get("Error", {}).get(
                    "Code") == "InvalidRange":
                return io.BytesIO(b"")   # beyond the end: nothing, as a file would give
            raise
        return _Body(response["Body"], what)  # type: ignore[return-value]

    def verify_aip(self, uuid: str, expected: Mapping[str, ExpectedFile],
                   algorithms: tuple[str, ...] = ("sha256",)) -> list[Mismatch]:
        """Re-read every file of the copy (``workers`` at a time) and compare."""
        stored = {info.path: info for info in self.list_files(uuid)}
        problems = [Mismatch("missing", p) for p in sorted(set(expected) - set(stored))]

        def check(path: str) -> list[Mismatch]:
            want = expected[path]
            algs = [a for a in algorithms if a in want.digests] or ["sha256"]
            try:
                digests = {a: want.digests.get(a, "") for a in algs}
                self._check_object(self._key(uuid, path), ExpectedFile(want.size, digests),
                                   self.url_for(uuid, path))
            except FixityError as exc:
                if exc.algorithm:
                    return [Mismatch("changed", path, exc.algorithm, exc.expected, exc.actual)]
                return [Mismatch("size", path, "", exc.expected, exc.actual)]
            return []

        with ThreadPoolExecutor(self.options.workers) as pool:
            for found in pool.map(check, sorted(set(expected) & set(stored))):
                problems.extend(found)
        problems.extend(Mismatch("untracked", p) for p in sorted(set(stored) - set(expected)))
        return problems

    # -- deleting ----------------------------------------------------------------------------
    def delete_aip(self, uuid: str) -> None:
        """Remove the copy: its marker first (it stops being visible), then every version.

        Raises:
            ObjectNotFound: no published copy here.
            ObjectLocked: a retention date or legal hold applies (nothing is deleted), or the
                server refused.
        """
        self._require(uuid)
        lock = self.get_retention(uuid)
        if lock is not None and lock.in_force():
            raise ObjectLocked(f"{self.url_for(uuid)}: retained ({lock.describe()})")
        self._delete_versions(self._marker_key(uuid), only={self._marker_key(uuid)})
        self._published.discard(uuid)
        crash_point("delete-marker-gone")
        self._delete_versions(f"{self.prefix}{uuid}/")

    def discard_pending(self) -> list[str]:
        """Remove what interrupted uploads left (objects and multipart uploads of AIPs that
        have no marker, files being replaced); return the AIP identifiers cleaned. Do not
        run it while something writes to this location (``dangan storage clean`` checks)."""
        cleaned = []
        for leftover in self.leftovers():
            self.discard_leftover(leftover)
            cleaned.append(leftover.uuid or leftover.name)
        return sorted(set(cleaned))

    def leftovers(self) -> list[Leftover]:
        """Objects under ``<uuid>/`` of AIPs without a publication marker (``half-written``;
        ``multipart`` when only an unfinished multipart upload is there), and files being
        replaced in place under ``.dangan/replace/``."""
        published = set(self.list_aips())
        sizes: dict[str, int] = {}
        newest: dict[str, float] = {}
        objects: set[str] = set()

        def note(name: str, size: int, when: datetime | None) -> None:
            sizes[name] = sizes.get(name, 0) + size
            if when is not None:
                newest[name] = max(newest.get(name, 0.0), when.timestamp())

        for key, size, when in self._list_keys(self.prefix):
            name = key[len(self.prefix):].split("/", 1)[0]
            if name and not name.startswith(".") and name not in published:
                objects.add(name)
                note(name, size, when)
        uploads: set[str] = set()
        with map_exceptions(f"{self.url}: multipart uploads"):
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for upload in page.get("Uploads", []):
                    name = upload["Key"][len(self.prefix):].split("/", 1)[0]
                    if name and not name.startswith(".") and name not in published:
                        uploads.add(name)
                        note(name, self._parts_size(upload), upload.get("Initiated"))
        found = [Leftover(self.name, "half-written" if name in objects else "multipart",
                          f"{name}/", name, sizes.get(name, 0), newest.get(name))
                 for name in sorted(objects | uploads)]
        replacing: dict[str, tuple[int, float | None]] = {}
        for key, size, when in self._list_keys(f"{self.prefix}{REPLACING}"):
            uuid = key[len(f"{self.prefix}{REPLACING}"):].split("/", 1)[0]
            total, latest = replacing.get(uuid, (0, None))
            stamp = when.timestamp() if when else None
            replacing[uuid] = (total + size, max(filter(None, [latest, stamp]), default=None))
        found += [Leftover(self.name, "replacing", f"{REPLACING}{uuid}/", uuid, size, when)
                  for uuid, (size, when) in sorted(replacing.items())]
        return found

    def _parts_size(self, upload: Mapping[str, Any]) -> int:
        with map_exceptions(f"s3://{self.bucket}/{upload['Key']}: parts"):
            paginator = self.client.get_paginator("list_parts")
            return sum(int(part.get("Size", 0))
                       for page in paginator.paginate(Bucket=self.bucket, Key=upload["Key"],
                                                      UploadId=upload["UploadId"])
                       for part in page.get("Parts", []))

    def discard_leftover(self, leftover: Leftover) -> None:
        """Abort the uploads and delete every version under the leftover's prefix; refused
        for an AIP that is published meanwhile.

        Raises:
            ObjectLocked: a bucket's default retention locked the objects on arrival.
        """
        if leftover.kind == "replacing":
            self._delete_versions(f"{self.prefix}{leftover.name}")
            return
        uuid = leftover.name.rstrip("/")
        _check_uuid(uuid)
        if self.has_aip(uuid):
            raise StorageError(f"{self.url_for(uuid)}: published meanwhile: not a leftover")
        self._abort_uploads(f"{self.prefix}{uuid}/")
        self._delete_versions(f"{self.prefix}{uuid}/")

    # -- repair in place and administrative objects -------------------------------------------
    def put_file(self, uuid: str, path: str, source: Path, expected: ExpectedFile) -> None:
        """Replace one file of a published copy: the new bytes are uploaded beside the AIP,
        verified, copied into place server-side and verified again; on any failure the
        file in place is left as it was."""
        _check_path(path)
        self._require(uuid)
        staging = f"{self.prefix}{REPLACING}{uuid}/{path}"
        what = self.url_for(uuid, path)
        try:
            self._upload_checked(staging, Path(source), expected, what)
            with self._large_gate, map_exceptions(what):
                self.client.copy({"Bucket": self.bucket, "Key": staging}, self.bucket,
                                 self._key(uuid, path), Config=self.transfer)
            self._check_object(self._key(uuid, path), expected, what)
        finally:
            self._delete_versions(staging, only={staging})

    def put_new_file(self, uuid: str, path: str, source: Path, expected: ExpectedFile) -> None:
        """Upload an object that is not there yet straight to its key, read back in full
        (no staging copy: nothing is replaced, so nothing needs keeping aside)."""
        _check_path(path)
        self._require(uuid)
        self._upload_checked(self._key(uuid, path), Path(source), expected,
                             self.url_for(uuid, path))

    def _upload_checked(self, key: str, source: Path, want: ExpectedFile, what: str) -> None:
        for attempt in range(1, self.options.attempts + 1):
            self._upload_file(key, source, want, what)
            try:
                self._check_object(key, want, what)
                return
            except FixityError:
                if attempt == self.options.attempts:
                    raise
                time.sleep(self.options.backoff * 2 ** (attempt - 1))

    def delete_file(self, uuid: str, path: str) -> None:
        """Remove one file (every version of it) from a published copy."""
        _check_path(path)
        self._require(uuid)
        key = self._key(uuid, path)
        if not self._delete_versions(key, only={key}):
            raise ObjectNotFound(f"{self.url_for(uuid, path)}: not found")

    def write_admin_object(self, name: str, data: bytes) -> None:
        """Store ``data`` at ``.dangan/admin/<name>`` (one PutObject: old or new, never half)."""
        _check_path(name)
        self._put_small(f"{self.prefix}{ADMIN}{name}", data, f"{self.url}{ADMIN}{name}")

    def read_admin_object(self, name: str) -> bytes:
        _check_path(name)
        what = f"{self.url}{ADMIN}{name}"
        with map_exceptions(what):
            response = self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}{ADMIN}{name}")
            return response["Body"].read()

    # -- WORM ---------------------------------------------------------------------------------
    def lock_enabled(self) -> bool:
        """Whether the bucket was created with Object Lock (the server can enforce retention)."""
        if self._lock_enabled is None:
            try:
                with map_exceptions(f"s3://{self.bucket}: object lock configuration"):
                    config = self.client.get_object_lock_configuration(Bucket=self.bucket)
            except ObjectNotFound:
                self._lock_enabled = False
            except StorageError as exc:
                if "ObjectLockConfigurationNotFound" not in str(exc):
                    raise
                self._lock_enabled = False
            else:
                enabled = config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
                self._lock_enabled = enabled == "Enabled"
        return self._lock_enabled

    def set_retention(self, uuid: str, lock: RetentionLock,
                      paths: Iterable[str] | None = None) -> str:
        """Give the current version of every file of the copy, and its marker, this lock
        (with ``paths``: of those files only, the marker left as it is).

        A retain-until date is set (the server refuses to shorten one in COMPLIANCE mode);
        the legal hold is switched to ``lock.legal_hold``.

        Returns:
            ``"server"`` on an Object Lock bucket, else ``"catalogue"`` (nothing is sent).
        """
        self._require(uuid)
        if not self.lock_enabled():
            return "catalogue"
        # the current version of every file: the verified one, or the one a repair wrote
        targets: list[tuple[str, str | None]] = list(
            self._current_versions(f"{self.prefix}{uuid}/"))
        if paths is not None:
            wanted = {self._key(uuid, p) for p in paths}
            targets = [t for t in targets if t[0] in wanted]
        else:
            targets.append((self._marker_key(uuid), None))

        def apply(target: tuple[str, str | None]) -> None:
            key, version = target
            args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
            if version and version != "null":
                args["VersionId"] = version
            with map_exceptions(f"s3://{self.bucket}/{key}: retention", deleting=True):
                if lock.retain_until is not None:
                    self.client.put_object_retention(**args, Retention={
                        "Mode": lock.mode, "RetainUntilDate": lock.retain_until})
                self.client.put_object_legal_hold(
                    **args, LegalHold={"Status": "ON" if lock.legal_hold else "OFF"})

        with ThreadPoolExecutor(self.options.workers) as pool:
            list(pool.map(apply, targets))
        return "server"

    def get_retention(self, uuid: str) -> RetentionLock | None:
        """The lock on the copy's marker (set together with every file's), or None."""
        self._require(uuid)
        with map_exceptions(f"{self.url}{MARKERS}{uuid}"):
            response = self.client.head_object(Bucket=self.bucket, Key=self._marker_key(uuid))
        until = response.get("ObjectLockRetainUntilDate")
        hold = response.get("ObjectLockLegalHoldStatus") == "ON"
        if until is None and not hold:
            return None
        if until is not None and until.tzinfo is None:
            until = until.replace(tzinfo=timezone.utc)
        return RetentionLock(response.get("ObjectLockMode") or "COMPLIANCE", until, hold)


class _Body(io.RawIOBase):
    """An object's body as a file: read errors become StorageError."""

    def __init__(self, body: Any, what: str) -> None:
        self.body, self.what = body, what

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        with map_exceptions(self.what):
            try:
                return self.body.read(None if size is None or size < 0 else size)
            except (OSError, ValueError) as exc:
                raise StorageError(f"{self.what}: read failed: {exc}") from exc

    def readinto(self, buffer: Any) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self.body.close()
        finally:
            super().close()
