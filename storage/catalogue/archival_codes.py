"""The repository-wide 档号 register: uniqueness, safe numbering, gap reports.

Every 档号 a transfer brings (or gets) is claimed here before its checks are reported: a code
already held by another transfer or AIP is a duplicate (GD-1-8). An empty 档号 gets the next
free 件号 of its bucket (everything before the number, e.g. ``Q001-WS·2016-Y-FPB``), and two
ingests running at once never get the same number: numbering takes a lock on the bucket rows
(``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's single write lock) inside one transaction.
Claims are ``reserved`` until the AIP is catalogued (then ``assigned``); a rejected transfer
releases its reservations. The same transfer submitted again finds its own reservations.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Integer,
    String,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from metadata_profiles import find_gaps
from storage.catalogue.database import Catalogue
from storage.catalogue.models import Base

RESERVED, ASSIGNED, DESTROYED = "reserved", "assigned", "destroyed"


class CodeBucket(Base):
    """One numbering bucket and the highest 件号 handed out in it (the row that is locked)."""

    __tablename__ = "archival_code_buckets"
    bucket: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class RegisteredCode(Base):
    """One 档号 held by the repository (reserved by a transfer, or assigned to an AIP)."""

    __tablename__ = "archival_codes"
    code: Mapped[str] = mapped_column(String(128), primary_key=True)
    bucket: Mapped[str] = mapped_column(String(128), index=True)
    number: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer, default=4)
    level: Mapped[str] = mapped_column(String(8), default="件")
    state: Mapped[str] = mapped_column(String(16))
    transfer: Mapped[str] = mapped_column(String(64), index=True)
    row_key: Mapped[str | None] = mapped_column(String(64))
    generated: Mapped[bool] = mapped_column(Boolean, default=False)
    aip_uuid: Mapped[str | None] = mapped_column(String(36), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class CodeClaim:
    """A 档号 written in a transfer, to be claimed."""

    code: str
    bucket: str
    number: int
    width: int = 4
    level: str = "件"


@dataclass(frozen=True)
class NumberRequest:
    """A row whose empty 档号 is to be generated.

    Attributes:
        row_key: stable key of the row in its transfer (``sheet/row``).
        bucket: the bucket the template renders into.
        render: number -> the full 档号.
        width: digits of the 件号.
    """

    row_key: str
    bucket: str
    render: Callable[[int], str]
    width: int = 4


@dataclass
class ClaimResult:
    """What claiming found and handed out.

    Attributes:
        conflicts: code -> who already holds it (an AIP or another transfer).
        generated: row key -> the 档号 generated for it.
    """

    conflicts: dict[str, str] = field(default_factory=dict)
    generated: dict[str, str] = field(default_factory=dict)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class CodeRegistry:
    """The 档号 register of one catalogue."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue

    def _lock(self, s: Session, buckets: Iterable[str]) -> None:
        buckets = sorted(set(buckets))
        if self.catalogue.is_sqlite:
            # the first write of the transaction takes SQLite's one write lock
            s.execute(text("UPDATE archival_code_buckets SET last_number = last_number WHERE 0"))
            return
        from sqlalchemy.dialects.postgresql import insert

        if buckets:
            s.execute(insert(CodeBucket).values([{"bucket": b, "last_number": 0} for b in buckets])
                      .on_conflict_do_nothing())
            s.execute(select(CodeBucket.bucket).where(CodeBucket.bucket.in_(buckets))
                      .order_by(CodeBucket.bucket).with_for_update())

    def claim(self, transfer: str, codes: Iterable[CodeClaim],
              requests: Iterable[NumberRequest] = ()) -> ClaimResult:
        """Reserve a transfer's codes and generate the missing ones, in one transaction.

        Arguments:
            transfer: the transfer's content fingerprint (the same bytes claim the same codes).
            codes: the codes the transfer writes.
            requests: rows whose 档号 is to be generated.

        Returns:
            The conflicts found and the codes generated.
        """
        codes, requests = list({c.code: c for c in codes}.values()), list(requests)
        result = ClaimResult()
        with self.catalogue.session() as s:
            self._lock(s, [c.bucket for c in codes] + [r.bucket for r in requests])
            held = {row.code: row for row in s.scalars(
                select(RegisteredCode).where(RegisteredCode.code.in_([c.code for c in codes])))}
            for claim in codes:
                row = held.get(claim.code)
                if row is None:
                    s.add(RegisteredCode(code=claim.code, bucket=claim.bucket, number=claim.number,
                                         width=claim.width, level=claim.level, state=RESERVED,
                                         transfer=transfer, at=_now()))
                elif row.state == DESTROYED:
                    result.conflicts[claim.code] = (f"已销毁的 AIP {row.aip_uuid}（档号永不"
                                                    "重复使用）")
                elif row.transfer != transfer or row.state == ASSIGNED:
                    result.conflicts[claim.code] = (f"AIP {row.aip_uuid}" if row.aip_uuid
                                                    else "另一移交（尚未完成）")
            s.flush()
            for request in requests:
                result.generated[request.row_key] = self._generate(s, transfer, request)
        return result

    def _generate(self, s: Session, transfer: str, request: NumberRequest) -> str:
        mine = s.scalars(select(RegisteredCode).where(
            RegisteredCode.transfer == transfer, RegisteredCode.row_key == request.row_key,
            RegisteredCode.state == RESERVED)).first()
        if mine is not None:
            return mine.code
        bucket = s.get(CodeBucket, request.bucket)
        if bucket is None:
            bucket = CodeBucket(bucket=request.bucket, last_number=0)
            s.add(bucket)
        used = s.scalar(select(func.max(RegisteredCode.number))
                        .where(RegisteredCode.bucket == request.bucket)) or 0
        number = max(bucket.last_number, used) + 1
        code = request.render(number)
        while s.get(RegisteredCode, code) is not None:  # a code written outside numbering
            number += 1
            code = request.render(number)
        bucket.last_number = number
        s.add(RegisteredCode(code=code, bucket=request.bucket, number=number, width=request.width,
                             state=RESERVED, transfer=transfer, row_key=request.row_key,
                             generated=True, at=_now()))
        s.flush()
        return code

    def retire(self, s: Session, aip_uuid: str) -> list[dict[str, object]]:
        """Inside the transaction that destroys an AIP: its 档号 stay in the register as
        ``destroyed``, never to be handed out or claimed again; return them (for the
        tombstone, from which :meth:`restore_retired` puts them back after a rebuild)."""
        rows = list(s.scalars(select(RegisteredCode).where(RegisteredCode.aip_uuid == aip_uuid)
                              .order_by(RegisteredCode.code)))
        for row in rows:
            row.state = DESTROYED
        return [{"code": r.code, "bucket": r.bucket, "number": r.number, "width": r.width,
                 "level": r.level} for r in rows]

    def restore_retired(self, s: Session, aip_uuid: str,
                        codes: Iterable[dict[str, object]]) -> int:
        """Register again the 档号 of a destroyed AIP (``dangan rebuild`` reading its
        tombstone), so that no transfer and no numbering reuses them; return how many."""
        restored = 0
        for entry in codes:
            code = str(entry["code"])
            row = s.get(RegisteredCode, code)
            if row is not None:
                row.state, row.aip_uuid = DESTROYED, row.aip_uuid or aip_uuid
                continue
            bucket, number = str(entry["bucket"]), int(entry["number"])  # type: ignore[arg-type]
            s.add(RegisteredCode(code=code, bucket=bucket, number=number,
                                 width=int(entry.get("width") or 4),  # type: ignore[arg-type]
                                 level=str(entry.get("level") or "件"), state=DESTROYED,
                                 transfer=f"destroyed:{aip_uuid}", aip_uuid=aip_uuid,
                                 at=_now()))
            held = s.get(CodeBucket, bucket) if number > 0 else None
            if number <= 0:
                pass                    # a code known only by its text: no numbering to keep
            elif held is None:
                s.add(CodeBucket(bucket=bucket, last_number=number))
            elif held.last_number < number:
                held.last_number = number
            s.flush()
            restored += 1
        return restored

    def release(self, transfer: str) -> int:
        """Drop the reservations a transfer still holds (it was rejected); return how many."""
        with self.catalogue.session() as s:
            self._lock(s, [])
            result = s.execute(delete(RegisteredCode).where(
                RegisteredCode.transfer == transfer, RegisteredCode.state == RESERVED))
            return int(result.rowcount or 0)

    def assign(self, s: Session, transfer: str, code_to_aip: dict[str, str]) -> None:
        """Inside the catalogue transaction of an ingest: the codes now belong to their AIPs,
        and the transfer's other reservations (rows not accepted) are released."""
        for code, aip_uuid in code_to_aip.items():
            s.execute(update(RegisteredCode).where(RegisteredCode.code == code,
                                                   RegisteredCode.transfer == transfer)
                      .values(state=ASSIGNED, aip_uuid=aip_uuid))
        s.execute(delete(RegisteredCode).where(RegisteredCode.transfer == transfer,
                                               RegisteredCode.state == RESERVED))

    def numbers(self, buckets: Iterable[str]) -> dict[str, set[int]]:
        """Numbers held (reserved or assigned) in each bucket."""
        found: dict[str, set[int]] = defaultdict(set)
        buckets = list(set(buckets))
        if not buckets:
            return found
        with self.catalogue.session() as s:
            for bucket, number in s.execute(select(RegisteredCode.bucket, RegisteredCode.number)
                                            .where(RegisteredCode.bucket.in_(buckets))):
                found[bucket].add(number)
        return found

    def gaps(self, prefix: str = "") -> dict[str, list[int]]:
        """Gap report: bucket -> 件号 missing from 1 … the highest assigned one."""
        by_bucket: dict[str, set[int]] = defaultdict(set)
        with self.catalogue.session() as s:
            rows = s.execute(select(RegisteredCode.bucket, RegisteredCode.number)
                             .where(RegisteredCode.state == ASSIGNED,
                                    RegisteredCode.bucket.startswith(prefix)))
            for bucket, number in rows:
                by_bucket[bucket].add(number)
        return {b: find_gaps(n) for b, n in sorted(by_bucket.items()) if find_gaps(n)}

    def widths(self, buckets: Iterable[str]) -> dict[str, int]:
        """The 件号 width used in each bucket (for printing gaps)."""
        with self.catalogue.session() as s:
            return dict(s.execute(select(RegisteredCode.bucket, func.max(RegisteredCode.width))
                                  .where(RegisteredCode.bucket.in_(list(buckets)))
                                  .group_by(RegisteredCode.bucket)).all())
