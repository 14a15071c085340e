"""How fast the IIIF Image API answers, rendering on the fly with Pillow, against the floors.

One open county document scanned at 300 dpi (A4 colour, 2480 x 3508 JPEG by default; ``--dpi
600`` for 4960 x 7016) is ingested into a fresh home and served by the portal (in process,
Flask's test client: the figures leave out HTTP). Measured, each ``--repeat`` times, median
and all runs in seconds:

  baseline  download the file whole          /aip/<uuid>/file/<path>?inline=1 (what the
                                             portal did before: the browser decodes it all)
  baseline  Pillow alone: decode the file    the floor of a cold request
  baseline  Pillow alone: cut+encode a tile  the floor of a warm one
  info.json cold                             access check, retrieval, decode (cache emptied)
  tile 512 at full resolution, warm          the decoded image kept in memory
  tile 512 of the whole page (scale 8), warm
  tile 512 at full resolution, cold          every cache emptied before each run
  full/max (the whole page as JPEG), warm
  a viewer opening the page                  info.json + the tiles OpenSeadragon asks for
                                             first (the whole page at 512 wide), warm

Reproduce:  python -m bench.iiif_tiles [--repeat 7] [--dpi 300|600] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import tempfile
from datetime import date
from pathlib import Path

from bench.common import machine, save, table, timed

HEADER = ["序号", "档号", "责任者", "题名", "日期", "密级", "页数", "保管期限", "精准扶贫类别",
          "全宗号", "年度", "文件组合类型", "计算机文件名"]


def make_scan(path: Path, dpi: int) -> tuple[int, int]:
    """A page-like colour scan: paper tone, text-like strokes, a stamp (compresses as a real
    scan does, unlike flat colour)."""
    import random

    from PIL import Image, ImageDraw, ImageFilter

    width, height = round(8.27 * dpi), round(11.69 * dpi)
    image = Image.new("RGB", (width, height), (246, 242, 230))
    draw = ImageDraw.Draw(image)
    rng = random.Random(1)
    line = dpi // 6
    for y in range(dpi, height - dpi, line):
        x = dpi
        while x < width - dpi:
            w = rng.randint(dpi // 12, dpi // 5)
            draw.rectangle((x, y, x + w, y + line // 2), fill=(40, 40, 48))
            x += w + dpi // 20
    draw.ellipse((width - 3 * dpi, height - 3 * dpi, width - dpi, height - dpi),
                 outline=(200, 30, 30), width=dpi // 30)
    image = image.filter(ImageFilter.GaussianBlur(1))
    image.save(path, "JPEG", quality=88, dpi=(dpi, dpi))
    return width, height


def build(work: Path, dpi: int) -> tuple[object, str, str, str, tuple[int, int]]:
    from access.portal import create_app
    from access.rules import Reader
    from access.services import AccessService
    from ingest.pipeline import ingest
    from policies import load_settings

    transfer = work / "transfer"
    (transfer / "综合").mkdir(parents=True)
    code = "Q001-WS·2016-Y-FPB-0901"
    size = make_scan(transfer / "综合" / f"{code}.jpg", dpi)
    with open(transfer / "归档文件目录.csv", "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, HEADER)
        writer.writeheader()
        writer.writerow({"序号": "1", "档号": code, "责任者": "大通县扶贫开发局", "题名": "扫描件",
                         "日期": "20160501", "密级": "公开", "页数": "1", "保管期限": "永久",
                         "精准扶贫类别": "01", "全宗号": "Q001", "年度": "2016",
                         "文件组合类型": "单件", "计算机文件名": f"综合/{code}.jpg"})
    (work / "home").mkdir()
    settings = load_settings(work / "home", environ={})
    result = ingest(transfer, settings)
    assert result.status == "accepted", result.failures
    uuid = result.aips[0]["uuid"]
    AccessService(settings).record_decision(Reader("archivist", "bench"), uuid, None,
                                            open_date=date(2020, 1, 1), control="开放",
                                            basis="bench")
    app = create_app(settings)
    client = app.test_client()
    body = client.get(f"/iiif/{uuid}/manifest").get_json()
    service = body["items"][0]["items"][0]["items"][0]["body"]["service"][0]["id"]
    base = "/" + service.split("://", 1)[1].split("/", 1)[1]
    path = next(f.path for f in AccessService(settings).catalogue.files_of(uuid)
                if f.path.endswith(".jpg"))
    return app, uuid, base, path, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--dpi", type=int, default=300)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    from PIL import Image

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        app, uuid, base, path, (width, height) = build(Path(tmp), args.dpi)
        client = app.test_client()
        iiif = app.extensions["dangan"]["iiif"]
        data = client.get(f"/aip/{uuid}/file/{path}?inline=1").data

        def get(url: str) -> None:
            answer = client.get(url)
            assert answer.status_code == 200, (url, answer.status_code)

        def cold() -> None:
            iiif._decoded.clear()
            iiif._sizes.clear()

        decoded = Image.open(io.BytesIO(data))
        decoded.load()

        def pillow_tile() -> None:
            decoded.crop((1024, 1024, 1536, 1536)).save(io.BytesIO(), "JPEG", quality=85)

        def pillow_decode() -> None:
            Image.open(io.BytesIO(data)).load()

        def viewer() -> None:
            get(f"{base}/info.json")
            get(f"{base}/full/512,/0/default.jpg")

        get(f"{base}/info.json")   # warm the cache
        r = args.repeat
        rows = {
            "baseline: download the file whole": timed(
                lambda: get(f"/aip/{uuid}/file/{path}?inline=1"), r),
            "baseline: Pillow decode": timed(pillow_decode, r),
            "baseline: Pillow cut+encode a 512 tile": timed(pillow_tile, r),
            "info.json, cold": timed(lambda: get(f"{base}/info.json"), r, setup=cold),
            "tile 512 full resolution, warm": timed(
                lambda: get(f"{base}/1024,1024,512,512/512,/0/default.jpg"), r),
            "tile 512 of the page (scale 8), warm": timed(
                lambda: get(f"{base}/0,0,4096,4096/{min(512, width // 8)},/0/default.jpg"), r),
            "tile 512 full resolution, cold": timed(
                lambda: get(f"{base}/1024,1024,512,512/512,/0/default.jpg"), r, setup=cold),
            "full/max, warm": timed(lambda: get(f"{base}/full/max/0/default.jpg"), r),
            "viewer opening (info + 512-wide page), warm": timed(viewer, r),
        }
    out = {"machine": machine(), "image": {"width": width, "height": height,
                                           "bytes": len(data), "dpi": args.dpi},
           "repeat": r, "results": rows}
    saved = save(f"iiif_tiles_{args.dpi}dpi", out)
    print(f"{width}×{height} JPEG, {len(data) / 1e6:.1f} MB; median of {r} (s)")
    print(table([["", "median s", "runs"]] + [[k, f"{v['median_s']:.4f}", json.dumps(v["runs_s"])]
                                              for k, v in rows.items()]))
    print(f"saved {saved}")


if __name__ == "__main__":
    main()
