"""QR box labels (档案盒二维码): opaque tokens, boxes of household volumes, label sheets.

A QR code carries only ``<portal>/q/<token>``: 24 random URL-safe characters that the catalogue
maps to a volume (AIP) or a box; a box's page is found by a random reference too, never by its
sequential id. Nothing in the code — nor printed beside it — is a name or an
ID number; the page it opens asks for the viewer's own login and shows what their role allows.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import segno
from sqlalchemy import func, select

from access.models import Box, BoxMember, LabelToken
from access.rules import utcnow
from policies import NotFoundError, UsageError
from storage.catalogue import models as m
from storage.catalogue import Catalogue

TOKEN_BYTES = 18  # 24 URL-safe characters, 144 random bits
BOX_REF_BYTES = 12  # a box's public reference: 16 URL-safe characters, 96 random bits
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)
BUILTIN_FONT = "STSong-Light"  # reportlab's Adobe-GB1 CID font, when no font file is installed
# STSong-Light's encoding (UniGB-UCS2-H) has no code for U+00B7, the 档号 separator: it would
# print as a missing-glyph box. GB 2312's middle dot is reached there as U+30FB, and text
# extraction maps that glyph back to U+00B7.
_BUILTIN_FONT_TEXT = str.maketrans({"\u00b7": "\u30fb"})


@dataclass(frozen=True)
class Label:
    """One printed label: the QR code's URL and the (non-personal) lines printed beside it."""

    token: str
    url: str
    kind: str  # volume | box
    lines: tuple[str, ...]

    def svg(self, scale: int = 3) -> str:
        """The QR code as inline SVG."""
        return segno.make(self.url, error="m").svg_inline(scale=scale, border=2, omitsize=True)


LOOPBACK_HOSTS = ("localhost", "127.", "::1", "[::1]", "0.0.0.0", "ip6-localhost")


def public_base_url(configured: str | None) -> str:
    """The address QR codes carry: ``[portal] public_url`` (or ``--base-url``), checked.

    Raises:
        UsageError: unset, not an http(s) address, or a loopback host — a label glued on a box
            must open on any phone, and ``127.0.0.1`` opens nothing there.
    """
    from urllib.parse import urlsplit

    url = str(configured or "").strip().rstrip("/")
    if not url:
        raise UsageError(
            "no public address for the QR codes: set [portal] public_url in dangan.toml "
            "(the address phones reach the portal at), or pass --base-url"
        )
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise UsageError(f"[portal] public_url = {url!r}: not an http(s) address")
    if host.startswith(LOOPBACK_HOSTS) or host in LOOPBACK_HOSTS:
        raise UsageError(
            f"[portal] public_url = {url!r} is a loopback address: a scanned label would open "
            "nothing on a phone; set the address the portal is reached at from outside"
        )
    return url


def _new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def _live_token(s, kind: str, target: str | int) -> str | None:
    column = LabelToken.aip_uuid if kind == "volume" else LabelToken.box_id
    return s.scalars(
        select(LabelToken.token).where(
            column == target, LabelToken.kind == kind, LabelToken.revoked_at.is_(None)
        )
    ).first()


def existing_token(catalogue: Catalogue, kind: str, target: str | int) -> str | None:
    """The live token of a volume (AIP uuid) or box (id), or None: nothing is made."""
    with catalogue.session() as s:
        return _live_token(s, kind, target)


def token_for(catalogue: Catalogue, kind: str, target: str | int, actor: str) -> str:
    """The live token of a volume (AIP uuid) or box (id), made on first use (and audited)."""
    with catalogue.session() as s:
        token = _live_token(s, kind, target)
        if token is not None:
            return token
        token = _new_token()
        s.add(
            LabelToken(
                token=token,
                kind=kind,
                aip_uuid=target if kind == "volume" else None,
                box_id=target if kind == "box" else None,
                created_by=actor,
                created_at=utcnow(),
            )
        )
        catalogue.append_audit(s, actor, "label-token", str(target), {"kind": kind})
    return token


def revoke_token(catalogue: Catalogue, token: str, actor: str) -> None:
    """Revoke a token (a lost or replaced label); its QR code stops working."""
    with catalogue.session() as s:
        row = s.get(LabelToken, token)
        if row is None or row.revoked_at is not None:
            raise NotFoundError("no live label token")
        row.revoked_at = utcnow()
        catalogue.append_audit(
            s, actor, "label-revoke", str(row.aip_uuid or row.box_id), {"kind": row.kind}
        )


def resolve(catalogue: Catalogue, token: str) -> tuple[str, str]:
    """What a scanned token names: ``("volume", aip_uuid)`` or ``("box", box_ref)``.

    Raises:
        NotFoundError: unknown or revoked token.
    """
    with catalogue.session() as s:
        row = s.get(LabelToken, token[:40])
        if row is None or row.revoked_at is not None:
            raise NotFoundError("unknown or revoked label")
        if row.kind == "volume":
            return "volume", row.aip_uuid
        box = s.get(Box, row.box_id)
        if box is None:
            raise NotFoundError("unknown or revoked label")
        return "box", box.ref


def _new_box_ref() -> str:
    return secrets.token_urlsafe(BOX_REF_BYTES)


def _box(s, ref: str) -> Box:
    box = s.scalars(select(Box).where(Box.ref == str(ref)[:32])).first()
    if box is None:
        raise NotFoundError("no such box")
    return box


def box_into(catalogue: Catalogue, aip_uuids: Sequence[str], code: str, actor: str) -> str:
    """Put household volumes into a box called ``code`` (made if new); return its reference
    (the random identifier its page is found by).

    Raises:
        UsageError: a volume is already in another box, or the code is empty.
    """
    if not code.strip():
        raise UsageError("请填写盒号（档案盒须有盒号）。")
    with catalogue.session() as s:
        box = s.scalars(select(Box).where(Box.code == code.strip())).first()
        if box is None:
            box = Box(
                ref=_new_box_ref(), code=code.strip(), created_by=actor, created_at=utcnow()
            )
            s.add(box)
            s.flush()
        position = (
            s.scalar(select(func.max(BoxMember.position)).where(BoxMember.box_id == box.id)) or 0
        )
        for uuid in aip_uuids:
            if s.get(m.Aip, uuid) is None:
                raise NotFoundError(f"没有 AIP {uuid}")
            member = s.scalars(select(BoxMember).where(BoxMember.aip_uuid == uuid)).first()
            if member is not None:
                if member.box_id != box.id:
                    raise UsageError(f"户卷 {s.get(m.Aip, uuid).archival_code or uuid} 已装入另一个档案盒。")
                continue
            position += 1
            s.add(BoxMember(box_id=box.id, aip_uuid=uuid, position=position))
        catalogue.append_audit(s, actor, "box", code, {"volumes": list(aip_uuids)})
        return box.ref


def box_id(catalogue: Catalogue, ref: str) -> int:
    """The catalogue's id of the box with this reference.

    Raises:
        NotFoundError: no such box.
    """
    with catalogue.session() as s:
        return _box(s, ref).id


def box_contents(catalogue: Catalogue, ref: str) -> tuple[str, list[str]]:
    """A box's code and its volumes (AIP uuids) in order.

    Raises:
        NotFoundError: no box with this reference.
    """
    with catalogue.session() as s:
        box = _box(s, ref)
        uuids = list(
            s.scalars(
                select(BoxMember.aip_uuid)
                .where(BoxMember.box_id == box.id)
                .order_by(BoxMember.position)
            )
        )
    return box.code, uuids


def list_boxes(catalogue: Catalogue) -> list[dict]:
    """Every box with its reference and volume count."""
    with catalogue.session() as s:
        rows = s.execute(
            select(Box.ref, Box.code, func.count(BoxMember.id))
            .outerjoin(BoxMember, BoxMember.box_id == Box.id)
            .group_by(Box.ref, Box.code)
            .order_by(Box.code)
        ).all()
    return [{"ref": r, "code": c, "volumes": n} for r, c, n in rows]


def volume_labels(
    catalogue: Catalogue,
    aip_uuids: Iterable[str],
    base_url: str,
    actor: str,
    create: bool = True,
) -> list[Label]:
    """Labels of household volumes: QR + 档号 + "户卷" — never the household head's name.

    With ``create`` false no token is made: volumes without a live one are left out.
    """
    labels = []
    for uuid in aip_uuids:
        aip = catalogue.get_aip(uuid)
        token = (
            token_for(catalogue, "volume", aip.uuid, actor)
            if create
            else existing_token(catalogue, "volume", aip.uuid)
        )
        if token is None:
            continue
        labels.append(
            Label(
                token,
                f"{base_url.rstrip('/')}/q/{token}",
                "volume",
                (aip.archival_code or aip.uuid[:8], "户卷 · 扫码登录后查看"),
            )
        )
    return labels


def box_labels(
    catalogue: Catalogue,
    box_refs: Iterable[str],
    base_url: str,
    actor: str,
    create: bool = True,
) -> list[Label]:
    """Labels of boxes: QR + 盒号 + how many volumes, and the 档号 range they hold.

    With ``create`` false no token is made: boxes without a live one are left out.
    """
    labels = []
    for ref in box_refs:
        code, uuids = box_contents(catalogue, ref)
        ident = box_id(catalogue, ref)
        token = (
            token_for(catalogue, "box", ident, actor)
            if create
            else existing_token(catalogue, "box", ident)
        )
        if token is None:
            continue
        codes = sorted(a.archival_code or "" for a in (catalogue.get_aip(u) for u in uuids))
        span = f"{codes[0]} — {codes[-1]}" if codes else ""
        labels.append(
            Label(
                token,
                f"{base_url.rstrip('/')}/q/{token}",
                "box",
                (code, f"档案盒 · {len(uuids)} 卷", span),
            )
        )
    return labels


FONT_PACKAGE = "fonts-wqy-microhei"  # the Debian package of a CJK font reportlab can embed


_LOADED: dict[str, tuple[str, str]] = {}  # font file -> (registered name, source)
_REFUSED: set[str] = set()  # font files reportlab cannot load (missing, CFF outlines)


class LabelFontError(RuntimeError):
    """No font can draw the labels' Chinese text."""


def _loadable_font(path: str) -> tuple[str, int] | None:
    """``(path, subfont index)`` of the first face in ``path`` that reportlab can embed and that
    has the glyphs of a label (TrueType outlines: a ``.ttc`` of CFF/PostScript outlines such as
    Debian's Noto Sans CJK is refused by reportlab), else None."""
    from reportlab.pdfbase.ttfonts import TTFError, TTFont

    if not Path(path).is_file():
        return None
    for index in range(4):
        try:
            face = TTFont(f"DanganProbe{index}", path, subfontIndex=index)
        except TTFError:
            if not path.endswith(".ttc"):
                return None
            continue
        except (OSError, ValueError, IndexError):  # not a font, or no face at this index
            return None
        if all(ord(ch) in face.face.charToGlyph for ch in "户卷档案盒"):
            return path, index
    return None


def label_font() -> tuple[str, str]:
    """The font the PDF labels are drawn in, registered with reportlab: ``(name, source)``.

    The first of :data:`FONT_CANDIDATES` that reportlab can actually load, else its built-in
    Adobe-GB1 CID font STSong-Light (no file needed; the PDF then names a font the viewer must
    have). Raises :class:`LabelFontError` naming the Debian package when neither works."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfbase.ttfonts import TTFont

    for candidate in FONT_CANDIDATES:
        if candidate in _LOADED:
            return _LOADED[candidate]
        found = None if candidate in _REFUSED else _loadable_font(candidate)
        if found is None:
            _REFUSED.add(candidate)
        else:
            name = f"DanganLabel{len(_LOADED)}"
            pdfmetrics.registerFont(TTFont(name, found[0], subfontIndex=found[1]))
            _LOADED[candidate] = (name, f"{found[0]} (face {found[1]})")
            return _LOADED[candidate]
    try:
        pdfmetrics.registerFont(UnicodeCIDFont(BUILTIN_FONT))
    except Exception as exc:  # noqa: BLE001 - reportlab raises several kinds here
        raise LabelFontError(
            f"no font can draw the labels' Chinese text: none of {', '.join(FONT_CANDIDATES)} "
            f"loads in reportlab (TrueType outlines needed) and its built-in {BUILTIN_FONT} "
            f"failed ({exc}); install the Debian package {FONT_PACKAGE}"
        ) from exc
    return BUILTIN_FONT, "built-in CID font"


def _font() -> str:
    return label_font()[0]


def label_sheet_pdf(labels: Sequence[Label], title: str = "档案二维码标签") -> bytes:
    """An A4 sheet (2 × 5 labels per page, 95 × 52 mm) with vector QR codes."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4, pageCompression=1, invariant=1)
    pdf.setTitle(title)
    font = _font()
    width, height = A4
    cols, rows, w, h = 2, 5, 95 * mm, 52 * mm
    left, top = (width - cols * w) / 2, height - (height - rows * h) / 2
    for index, label in enumerate(labels):
        if index and index % (cols * rows) == 0:
            pdf.showPage()
        slot = index % (cols * rows)
        x, y = left + (slot % cols) * w, top - (slot // cols + 1) * h
        pdf.setStrokeGray(0.7)
        pdf.rect(x + 1 * mm, y + 1 * mm, w - 2 * mm, h - 2 * mm)
        _draw_qr(pdf, label.url, x + 4 * mm, y + 5 * mm, 42 * mm)
        pdf.setFillGray(0)
        for line_no, line in enumerate(label.lines):
            if font == BUILTIN_FONT:
                line = line.translate(_BUILTIN_FONT_TEXT)
            size = 10 if line_no == 0 else 8
            line_x, line_y = x + 49 * mm, y + h - (10 + 9 * line_no) * mm
            if line_no == 0:    # the 档号 / 盒号: whole on one line, smaller if it must be
                _draw_fitted(pdf, font, line, line_x, line_y, 43 * mm, size)
            else:
                pdf.setFont(font, size)
                _draw_wrapped(pdf, line, line_x, line_y, 43 * mm, size)
    pdf.save()
    return out.getvalue()


def _draw_qr(pdf, url: str, x: float, y: float, size: float) -> None:
    qr = segno.make(url, error="m")
    matrix = [list(row) for row in qr.matrix]
    cell = size / (len(matrix) + 4)
    pdf.setFillGray(0)
    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            if dark:
                pdf.rect(
                    x + (c + 2) * cell, y + size - (r + 3) * cell, cell, cell, stroke=0, fill=1
                )


MIN_CODE_SIZE = 5.5  # points: the smallest a 档号 is printed before it is split at a separator


def _draw_fitted(pdf, font: str, text: str, x: float, y: float, width: float, size: float
                 ) -> None:
    """One line, never broken inside: the font shrinks until the text fits; a code too long
    even at :data:`MIN_CODE_SIZE` is split after its last fitting separator (``-`` or ``·``)."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    while size > MIN_CODE_SIZE and stringWidth(text, font, size) > width:
        size -= 0.25
    pdf.setFont(font, size)
    if stringWidth(text, font, size) <= width:
        pdf.drawString(x, y, text)
        return
    cut = max(text.rfind(sep, 0, len(text) - 1) for sep in "-·\u30fb")
    while cut > 0 and stringWidth(text[: cut + 1], font, size) > width:
        cut = max(text.rfind(sep, 0, cut) for sep in "-·\u30fb")
    if cut <= 0:
        pdf.drawString(x, y, text)
        return
    pdf.drawString(x, y, text[: cut + 1])
    _draw_fitted(pdf, font, text[cut + 1 :], x, y - size * 1.3, width, size)


def _draw_wrapped(pdf, text: str, x: float, y: float, width: float, size: float) -> None:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    line = ""
    font = pdf._fontname
    for ch in text:
        if stringWidth(line + ch, font, size) > width:
            pdf.drawString(x, y, line)
            y -= size * 1.3
            line = ""
        line += ch
    pdf.drawString(x, y, line)
