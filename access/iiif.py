"""IIIF for the scans: a Presentation 3 manifest per AIP (item or household volume) whose
images the reader may see, and an Image API 3.0 level 1 service per image, rendered on the fly
with Pillow.

Everything goes through :class:`access.services.AccessService`, so the portal's rules decide:
an image is in a manifest, and served, only when the reader may download its file (the
``content`` tier); a hidden record is 404, a record seen only as a listing 403. Viewing a
restricted image is audited once per reader and image every :data:`AUDIT_EVERY` seconds, not
once per tile.

* Manifest: ``/iiif/<aip>/manifest`` (built with ``iiif-prezi3``), one canvas per image, in the
  order of the AIP's items.
* Image service: ``/iiif/<aip>/image/<id>`` where ``id`` is the first 16 hex digits of the
  file's SHA-256; ``info.json`` and ``{region}/{size}/{rotation}/{quality}.{format}`` with
  region ``full``, ``square`` or ``x,y,w,h``; size ``max``, ``w,``, ``,h``, ``w,h`` or
  ``!w,h`` (no upscaling); rotation ``0``; quality ``default``; format ``jpg`` or ``png``.
* Decoded images, and their halvings as zoomed-out tiles need them, are kept in memory
  (:data:`CACHE_PIXELS` pixels in all) so that the tiles of one image are cut from one decode
  (figures: ``bench/iiif_tiles.py``).
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from access import rules as r
from policies import DanganError, NotFoundError

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from access.services import AccessService

IMAGE_MIMES = frozenset(
    {"image/jpeg", "image/png", "image/tiff", "image/gif", "image/bmp", "image/webp"}
)
TILE = 512
MAX_AREA = 40_000_000         # the largest image an answer may be (pixels)
CACHE_PIXELS = 120_000_000    # decoded images kept for their next tiles
AUDIT_EVERY = 900             # seconds between audit entries of one reader viewing one image
FORMATS = {"jpg": ("JPEG", "image/jpeg"), "png": ("PNG", "image/png")}
IMAGE_CONTEXT = "http://iiif.io/api/image/3/context.json"
PRESENTATION_PROFILE = 'application/ld+json;profile="http://iiif.io/api/presentation/3/context.json"'
IMAGE_PROFILE = 'application/ld+json;profile="http://iiif.io/api/image/3/context.json"'
_REGION = re.compile(r"^(\d+),(\d+),(\d+),(\d+)$")
_SIZE = re.compile(r"^(!)?(\d*),(\d*)$")

GONE = ("DELETED", "DESTROYING", "DESTROYED")   # no image of these is served


class IiifError(DanganError):
    """A bad Image API request (HTTP 400)."""

    exit_code = 2


@dataclass(frozen=True)
class ImageEntry:
    """One image of an AIP as a reader may see it."""

    id: str
    path: str        # the stored path
    shown: str       # the path as pages show it (ID numbers masked)
    item: str | None
    label: str
    mime: str
    sha256: str
    width: int
    height: int


class Iiif:
    """The IIIF door of one portal.

    Arguments:
        service: the access services (rules, retrieval, audit).
    """

    def __init__(self, service: AccessService) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._sizes: dict[str, tuple[int, int]] = {}
        self._decoded: OrderedDict[str, PILImage.Image] = OrderedDict()
        self._audited: dict[tuple[str, str, str], float] = {}

    # -- which images ----------------------------------------------------------------------
    def images(self, reader: r.Reader, uuid: str) -> tuple[dict[str, Any], list[ImageEntry]]:
        """The AIP's view and the images in it this reader may see (item order).

        Raises:
            NotFoundError: no such AIP, or the reader may not know of it.
        """
        view = self.service.aip(reader, uuid, via="iiif")
        if view["status"] in GONE:   # deleted or destroyed by appraisal: its files are gone
            return view, []
        stored = {f.path: f for f in self.service.catalogue.files_of(view["uuid"])}
        shown_of = {r.mask_numbers(p): p for p in stored}
        titles = {i["key"]: i["title"] for i in view["items"]}
        order = {i["key"]: n for n, i in enumerate(view["items"])}
        out = []
        for f in view["files"]:
            mime = (f["mime"] or "").split(";")[0]
            if not f["download"] or mime not in IMAGE_MIMES or not f["sha256"]:
                continue
            if f.get("derived_from"):
                continue        # the image server renders the master; its JPEG copy is not a page
            path = f["path"] if f["path"] in stored else shown_of.get(f["path"], f["path"])
            width, height = self._size(reader, view["uuid"], path, f["sha256"])
            label = titles.get(f["item"]) or f["path"].rsplit("/", 1)[-1]
            out.append(ImageEntry(f["sha256"][:16], path, f["path"], f["item"], label, mime,
                                  f["sha256"], width, height))
        out.sort(key=lambda e: (order.get(e.item, len(order)), e.shown))
        return view, out

    def _size(self, reader: r.Reader, uuid: str, path: str, sha256: str) -> tuple[int, int]:
        with self._lock:
            known = self._sizes.get(sha256)
        if known is None:   # the header alone: a manifest of many scans decodes none
            from PIL import Image

            ref = self.service.file(reader, uuid, path, "iiif", audit=False)
            with Image.open(io.BytesIO(b"".join(self.service.retriever.open(ref)))) as image:
                known = image.size
            with self._lock:
                self._sizes[sha256] = known
        return known

    def entry(self, reader: r.Reader, uuid: str, image_id: str) -> ImageEntry:
        """One image by its id, the rules asked again (raises NotFoundError / Forbidden)."""
        if not re.fullmatch(r"[0-9a-f]{16}", image_id):
            raise NotFoundError(f"no image {image_id}")
        if self.service.catalogue.get_aip(uuid).status in GONE:
            raise NotFoundError(f"no image {image_id}")
        matches = [f for f in self.service.catalogue.files_of(uuid)
                   if (f.sha256 or "").startswith(image_id)
                   and (f.mime or "").split(";")[0] in IMAGE_MIMES]
        if not matches:
            raise NotFoundError(f"no image {image_id}")
        f = matches[0]
        ref = self._check(reader, uuid, f.path)
        width, height = self._size(reader, uuid, f.path, ref.sha256)
        mime = (f.mime or "").split(";")[0]
        return ImageEntry(image_id, f.path, r.mask_numbers(f.path), f.item_key, "", mime,
                          ref.sha256, width, height)

    def _check(self, reader: r.Reader, uuid: str, path: str) -> Any:
        """The file's reference if the reader may see it; audited once per AUDIT_EVERY."""
        key = (reader.actor, uuid, path)
        now = time.monotonic()
        with self._lock:
            last = self._audited.get(key)
            due = last is None or now - last > AUDIT_EVERY
            if due:
                self._audited[key] = now
                if len(self._audited) > 10_000:
                    self._audited.clear()
        return self.service.file(reader, uuid, path, "iiif", audit=due)

    # -- pixels ----------------------------------------------------------------------------
    def _decode(self, reader: r.Reader, uuid: str, path: str, sha256: str,
                audit: bool = True) -> PILImage.Image:
        from PIL import Image

        with self._lock:
            image = self._decoded.get(sha256)
            if image is not None:
                self._decoded.move_to_end(sha256)
                return image
        ref = self.service.file(reader, uuid, path, "iiif", audit=audit)
        data = b"".join(self.service.retriever.open(ref))
        image = Image.open(io.BytesIO(data))
        image.seek(0)
        image.load()
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        with self._lock:
            self._sizes[sha256] = image.size
        self._keep(sha256, image)
        return image

    def render(self, reader: r.Reader, uuid: str, image_id: str, region: str, size: str,
               rotation: str, quality: str, fmt: str) -> tuple[bytes, str]:
        """An Image API image request: the bytes and their media type.

        Raises:
            IiifError: a parameter this level-1 service does not support (400).
            NotFoundError, Forbidden: as for the file itself.
        """
        if fmt not in FORMATS:
            raise IiifError(f"format {fmt} is not offered (jpg, png)")
        if rotation != "0":
            raise IiifError("rotation is not supported (0 only)")
        if quality not in ("default", "color"):
            raise IiifError(f"quality {quality} is not offered (default)")
        entry = self.entry(reader, uuid, image_id)
        box = parse_region(region, entry.width, entry.height)
        width, height = parse_size(size, box[2] - box[0], box[3] - box[1])
        image = self._decode(reader, uuid, entry.path, entry.sha256, audit=False)
        from PIL import Image

        # a downscaled answer is cut from the nearest halving of the image at or above its
        # scale (kept with the image), so a zoomed-out tile reads few pixels
        scale = min((box[2] - box[0]) / width, (box[3] - box[1]) / height)
        factor = 1
        while factor * 2 <= scale and factor < 64:
            factor *= 2
        if factor > 1:
            image = self._reduced(entry.sha256, image, factor)
            box = (box[0] // factor, box[1] // factor, max(box[0] // factor + 1, box[2] // factor),
                   max(box[1] // factor + 1, box[3] // factor))
        out = image.crop(box)
        if out.size != (width, height):
            out = out.resize((width, height), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        kind, mime = FORMATS[fmt]
        out.save(buffer, kind, **({"quality": 85} if kind == "JPEG" else {}))
        return buffer.getvalue(), mime

    def _reduced(self, sha256: str, image: PILImage.Image, factor: int) -> PILImage.Image:
        """The image reduced by ``factor`` (a power of 2), made once from the next level."""
        key = f"{sha256}/{factor}"
        with self._lock:
            known = self._decoded.get(key)
            if known is not None:
                self._decoded.move_to_end(key)
                return known
        source = image if factor == 2 else self._reduced(sha256, image, factor // 2)
        reduced = source.reduce(2)
        self._keep(key, reduced)
        return reduced

    def _keep(self, key: str, image: PILImage.Image) -> None:
        with self._lock:
            self._decoded[key] = image
            total = sum(i.width * i.height for i in self._decoded.values())
            while total > CACHE_PIXELS and len(self._decoded) > 1:
                _, dropped = self._decoded.popitem(last=False)
                total -= dropped.width * dropped.height

    # -- documents -------------------------------------------------------------------------
    def info(self, entry: ImageEntry, service_id: str) -> dict[str, Any]:
        """The image's ``info.json`` (Image API 3.0, level 1)."""
        factors, f = [], 1
        while f == 1 or max(entry.width, entry.height) / f > TILE / 2:
            factors.append(f)
            f *= 2
        sizes, w, h = [], entry.width, entry.height
        while w > 64 and h > 64 and len(sizes) < 8:
            sizes.append({"width": w, "height": h})
            w, h = (w + 1) // 2, (h + 1) // 2
        return {
            "@context": IMAGE_CONTEXT,
            "id": service_id,
            "type": "ImageService3",
            "protocol": "http://iiif.io/api/image",
            "profile": "level1",
            "width": entry.width,
            "height": entry.height,
            "maxArea": MAX_AREA,
            "sizes": sorted(sizes, key=lambda s: s["width"]) or [
                {"width": entry.width, "height": entry.height}],
            "tiles": [{"width": TILE, "height": TILE, "scaleFactors": factors}],
            "extraFormats": ["png"],
            "extraQualities": ["color"],
        }

    def manifest(self, reader: r.Reader, uuid: str, base: str) -> dict[str, Any]:
        """The AIP's Presentation 3 manifest (``base``: the portal's root URL).

        Raises:
            NotFoundError: hidden, or no image the reader may see.
        """
        from iiif_prezi3 import KeyValueString, Manifest

        view, images = self.images(reader, uuid)
        if not images:
            raise NotFoundError(f"no image in {uuid} is open to you")
        root = f"{base.rstrip('/')}/iiif/{view['uuid']}"
        manifest = Manifest(id=f"{root}/manifest", label={"zh": [view["label"] or view["uuid"]]})
        metadata = [("档号", view["archival_code"]), ("AIP", view["uuid"]),
                    ("开放日期", view["open_date"]), ("控制标识", view["control"])]
        manifest.metadata = [KeyValueString(label={"zh": [k]}, value={"zh": [str(v)]})
                             for k, v in metadata if v]
        manifest.homepage = [{"id": f"{base.rstrip('/')}/aip/{view['uuid']}", "type": "Text",
                              "label": {"zh": ["档案记录"]}, "format": "text/html"}]
        for n, image in enumerate(images, 1):
            service_id = f"{root}/image/{image.id}"
            canvas = manifest.make_canvas(id=f"{root}/canvas/{n}", label={"zh": [image.label]},
                                          width=image.width, height=image.height)
            page = canvas.add_image(
                image_url=f"{service_id}/full/max/0/default.jpg",
                anno_page_id=f"{root}/canvas/{n}/page",
                anno_id=f"{root}/canvas/{n}/image",
                format="image/jpeg", width=image.width, height=image.height,
            )
            page.items[0].body.make_service(id=service_id, type="ImageService3",
                                            profile="level1")
        return json.loads(manifest.json())


def parse_region(region: str, width: int, height: int) -> tuple[int, int, int, int]:
    """An Image API region as a crop box (left, top, right, bottom), clipped to the image."""
    if region == "full":
        return 0, 0, width, height
    if region == "square":
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        return left, top, left + side, top + side
    match = _REGION.match(region)
    if not match:
        raise IiifError(f"region {region} is not offered (full, square, x,y,w,h)")
    x, y, w, h = map(int, match.groups())
    if w == 0 or h == 0 or x >= width or y >= height:
        raise IiifError(f"region {region} is outside the image ({width}×{height})")
    return x, y, min(x + w, width), min(y + h, height)


def parse_size(size: str, width: int, height: int) -> tuple[int, int]:
    """An Image API size for a region of ``width`` × ``height`` (no upscaling)."""
    if size in ("max", "full"):
        w, h = width, height
        if w * h > MAX_AREA:
            scale = (MAX_AREA / (w * h)) ** 0.5
            w, h = max(1, int(w * scale)), max(1, int(h * scale))
        return w, h
    match = _SIZE.match(size)
    if not match or not (match.group(2) or match.group(3)):
        raise IiifError(f"size {size} is not offered (max, w,  ,h  w,h  !w,h)")
    best, sw, sh = match.group(1), match.group(2), match.group(3)
    if best:
        if not (sw and sh):
            raise IiifError(f"size {size}: !w,h needs both")
        scale = min(int(sw) / width, int(sh) / height)
        w, h = round(width * scale), round(height * scale)
    elif sw and sh:
        w, h = int(sw), int(sh)
    elif sw:
        w = int(sw)
        h = round(height * w / width)
    else:
        h = int(sh)
        w = round(width * h / height)
    w, h = max(1, w), max(1, h)
    if w > width or h > height:
        raise IiifError(f"size {size} would enlarge the region ({width}×{height}); not offered")
    if w * h > MAX_AREA:
        raise IiifError(f"size {size} is larger than maxArea {MAX_AREA}")
    return w, h
