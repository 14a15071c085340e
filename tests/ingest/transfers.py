"""Small hand-made transfers for ingest tests (the sample generator makes the big ones)."""

from __future__ import annotations

import csv
from pathlib import Path

HEADER = ["序号", "档号", "文号", "责任者", "题名", "日期", "密级", "页数", "备注", "保管期限",
          "精准扶贫类别", "致贫原因", "计算机文件名"]


def small_transfer(root: Path, rows: int = 3, *, volume: bool = True) -> Path:
    """A folder with ``rows`` text files and a UTF-8-BOM CSV catalogue sheet describing them.

    With ``volume`` the 档号 are household-volume codes of one volume, so the transfer
    becomes one AIP for the volume.
    """
    root.mkdir(parents=True)
    lines = []
    for n in range(1, rows + 1):
        code = (f"Q001-JF·02·630121100201-0001-{n:03d}" if volume
                else f"Q001-WS·2016-Y-FPB-{n:04d}")
        name = f"户卷/{n:03d}-申请书.txt"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"第{n}件 贫困户申请书 因病致贫 低保\n" * (n + 1), encoding="utf-8")
        lines.append([str(n), code, "", "某村委会", f"第{n}件申请书", "20160315", "限制", "1", "",
                      "永久", "02", "因病、因学", name])
    with open(root / "归档文件目录.csv", "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(lines)
    return root
