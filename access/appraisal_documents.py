"""The documents of an appraisal batch: the 销毁清册 (destruction list) and the 鉴定报告
(appraisal report), as XLSX (openpyxl) and as a printable A4 PDF (reportlab, in the same CJK
font as the labels). Each written document's SHA-256 is entered in the audit log, and a copy is
kept under ``$DANGAN_HOME/appraisal/<batch>/`` as part of the permanent record."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from policies import Settings
from storage.catalogue import Catalogue

LIST_COLUMNS = ("序号", "档号", "题名", "年度", "保管期限", "到期日期", "鉴定意见", "理由", "处置结果")
PERIODS = {"Y": "永久", "D30": "定期30年", "D10": "定期10年"}


def _rows(summary: dict[str, Any], only_destroy: bool) -> list[list[str]]:
    entries = [e for e in summary["entries"] if e["decision"] == "destroy" or not only_destroy]
    outcome = {"done": "已执行", "deferred": "暂缓（锁定或期限未满）", "held": "冻结", "pending": "待执行"}
    return [[str(n), e["archival_code"] or e["aip"], e["title"], e["year"] or "",
             PERIODS.get(e["retention_period"] or "", e["retention_period"] or ""),
             e["expiry_date"] or "", e["decision_label"] or "未决定", e["reason"] or "",
             outcome.get(e["outcome"], e["outcome"])]
            for n, e in enumerate(entries, start=1)]


def _signatures(summary: dict[str, Any]) -> list[tuple[str, str]]:
    return [("鉴定批次", f"{summary['id']}（第 {summary['revision']} 版）"),
            ("提出人", summary["proposer"]), ("提出日期", (summary["created_at"] or "")[:10]),
            ("批准人", summary["approver"] or "（未批准）"),
            ("批准日期", (summary["approved_at"] or "")[:10]),
            ("监销人", summary["witness"] or "（未执行）"),
            ("销毁日期", (summary["executed_at"] or "")[:10])]


def destruction_list_xlsx(summary: dict[str, Any], title: str) -> bytes:
    """The list as a workbook: a heading, one row per record, the signatures below."""
    import openpyxl
    from openpyxl.styles import Alignment, Font

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = title
    sheet.append([f"{title}　{summary['title']}"])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append(list(LIST_COLUMNS))
    for row in _rows(summary, only_destroy=title == "销毁清册"):
        sheet.append(row)
    sheet.append([])
    for label, value in _signatures(summary):
        sheet.append([label, value])
    for column, width in zip("ABCDEFGHI", (6, 30, 40, 8, 10, 12, 14, 30, 14)):
        sheet.column_dimensions[column].width = width
    for cells in sheet.iter_rows(min_row=2):
        for cell in cells:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def destruction_list_pdf(summary: dict[str, Any], title: str) -> bytes:
    """The list as an A4 landscape PDF with a signature block."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    from access.labels import label_font

    font = label_font()[0]
    body = ParagraphStyle("body", fontName=font, fontSize=8.5, leading=11, wordWrap="CJK")
    heading = ParagraphStyle("heading", parent=body, fontSize=16, leading=22, alignment=1)
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=landscape(A4), leftMargin=12 * mm,
                            rightMargin=12 * mm, topMargin=12 * mm, bottomMargin=12 * mm,
                            title=f"{title} {summary['id']}", author="Dangan")
    data = [[Paragraph(c, body) for c in LIST_COLUMNS]]
    data += [[Paragraph(c, body) for c in row] for row in _rows(summary, title == "销毁清册")]
    widths = [12, 52, 76, 13, 18, 22, 24, 40, 16]
    table = Table(data, colWidths=[w * mm for w in widths], repeatRows=1)
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.black),
                               ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
                               ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    signatures = Table([[Paragraph(f"{k}：{v}", body) for k, v in _signatures(summary)[i:i + 4]]
                        for i in (0, 4)], colWidths=[68 * mm] * 4)
    doc.build([Paragraph(f"{title}", heading), Paragraph(summary["title"], body),
               Spacer(1, 4 * mm), table, Spacer(1, 8 * mm), signatures])
    return out.getvalue()


def write_documents(settings: Settings, catalogue: Catalogue, batch_id: str, out: Path,
                    actor: str = "dangan") -> dict[str, str]:
    """Write the 销毁清册 and 鉴定报告 of a batch (XLSX and PDF) to ``out``; return
    path → SHA-256, each entered in the audit log."""
    from storage.appraisal import batch_summary

    summary = batch_summary(catalogue, batch_id)
    kept = settings.home / "appraisal" / batch_id
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for title in ("销毁清册", "鉴定报告"):
        if title == "销毁清册" and summary["kind"] != "disposal":
            continue
        for suffix, render in ((".xlsx", destruction_list_xlsx), (".pdf", destruction_list_pdf)):
            data = render(summary, title)
            name = f"{batch_id}-{title}-r{summary['revision']}{suffix}"
            (out / name).write_bytes(data)
            kept.mkdir(parents=True, exist_ok=True)
            (kept / name).write_bytes(data)
            digest = hashlib.sha256(data).hexdigest()
            written[str(out / name)] = digest
            catalogue.audit(actor, "appraisal-document", batch_id,
                            {"document": name, "sha256": digest, "revision": summary["revision"],
                             "status": summary["status"]})
    return written
