"""A small, realistic holding for the access tests: county documents (a PDF with a text
layer, an image-only scan, a DOCX) and two household volumes full of personal information.

Chinese text is drawn with WenQuanYi Micro Hei (Debian's ``fonts-wqy-microhei``) when it is
installed: embedded in the PDFs' text layers, and on the scanned pages so that OCR can read
them. Without it the PDFs use reportlab's built-in CID font STSong-Light (no font file; readers
bring the glyphs, and pdfminer reads the text layer back exactly, see test_fulltext.py), and
the scans hold no legible text: the tests that read scans by OCR then skip
(:func:`ocr_unavailable`). People, ID numbers and phone numbers are fictional (the ID numbers'
check digits are valid, as real ones would be).
"""

from __future__ import annotations

import csv
import shutil
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

PASSWORD = "correct horse battery"   # every test account's password

FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
FONT_PACKAGE = "fonts-wqy-microhei"
BUILTIN_FONT = "STSong-Light"  # reportlab's Adobe-GB1 CID font: needs no file
HEADER = [
    "序号",
    "档号",
    "文号",
    "责任者",
    "题名",
    "日期",
    "密级",
    "页数",
    "备注",
    "保管期限",
    "精准扶贫类别",
    "全宗号",
    "年度",
    "文件组合类型",
    "户主姓名",
    "户主公民身份号码",
    "行政村代码",
    "贫困户属性",
    "致贫原因",
    "家庭人口数",
    "识别年度",
    "脱贫年度",
    "计算机文件名",
]

POLICY_TEXT = (
    "关于做好因病致贫家庭医疗救助工作的通知。各乡镇：为落实健康扶贫政策，对建档立卡"
    "贫困户中的低保对象实行先诊疗后付费，村级光伏扶贫电站收益优先用于公益岗位。"
)
SCAN_TEXT = (
    "河西镇养殖专业合作社帮扶协议。合作社吸纳贫困户入股，按年分红，"
    "县扶贫开发局负责监督资金使用，确保群众稳定增收。"
)
DOCX_TEXT = "易地扶贫搬迁安置点建设进度汇报：集中安置区住房已全部完工。"


def check_digit(body17: str) -> str:
    """GB 11643 (ISO 7064 MOD 11-2) check character."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return "10X98765432"[sum(int(d) * w for d, w in zip(body17, weights)) % 11]


def id_number(body17: str) -> str:
    return body17 + check_digit(body17)


@dataclass
class Household:
    """One fictional household volume."""

    code: str
    village: str
    head: str
    id_number: str
    causes: str
    disease: str
    phone: str
    kind: str = "低保贫困户"
    rows: list[dict] = field(default_factory=list)


HOUSEHOLDS = [
    Household(
        "Q001-JF·02·630121100201-0001",
        "630121100201",
        "马文明",
        id_number("63012119540214429"),
        "因病、缺技术",
        "高血压",
        "13997005572",
    ),
    Household(
        "Q001-JF·02·630121100202-0001",
        "630121100202",
        "扎西卓玛",
        id_number("63012119620803170"),
        "因残",
        "肢体残疾二级",
        "13897112345",
        kind="一般贫困户",
    ),
]


def ocr_unavailable(scanned_pdf: bool = False) -> str | None:
    """Why the tests that OCR generated pages cannot run here (naming the Debian packages to
    install), or None when they can. ``scanned_pdf``: pages rendered from a PDF (pdftoppm)."""
    from ingest.fulltext import ocr_available

    reasons = []
    engine = ocr_available("chi_sim")
    if engine:
        reasons.append(f"{engine}: apt-get install tesseract-ocr tesseract-ocr-chi-sim")
    if scanned_pdf and shutil.which("pdftoppm") is None:
        reasons.append("pdftoppm is not installed: apt-get install poppler-utils")
    if not FONT.exists():
        reasons.append(f"no font to draw the pages with ({FONT}): apt-get install {FONT_PACKAGE}")
    return "; ".join(reasons) or None


def pdf_font(builtin: bool = False) -> str:
    """The font of the text PDFs, registered with reportlab on first use: WenQuanYi Micro Hei
    (embedded) when installed and ``builtin`` is false, else the built-in STSong-Light."""
    from reportlab.pdfbase import pdfmetrics

    name = BUILTIN_FONT if builtin or not FONT.exists() else "WQY"
    if name not in pdfmetrics.getRegisteredFontNames():
        from reportlab.pdfbase.cidfonts import UnicodeCIDFont
        from reportlab.pdfbase.ttfonts import TTFont

        font = UnicodeCIDFont(name) if name == BUILTIN_FONT else TTFont(name, str(FONT),
                                                                          subfontIndex=0)
        pdfmetrics.registerFont(font)
    return name


def text_pdf(path: Path, title: str, body: str, font: str | None = None) -> None:
    """A one-page A4 PDF with a real text layer (in ``font``, a registered reportlab font;
    default :func:`pdf_font`)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    font = font or pdf_font()
    pdf = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    pdf.setFont(font, 16)
    pdf.drawString(60, 780, title)
    pdf.setFont(font, 11)
    y = 740
    for line in textwrap.wrap(body, 38):
        pdf.drawString(60, y, line)
        y -= 20
    pdf.save()


def page_image(text: str, width: int = 2480, height: int = 1600, size: int = 42):
    """A scanned-looking page: black text on white at about 300 dpi. Without the font (which
    no Python package ships for Chinese) the page stays blank: a scan with nothing legible."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (width, height), 255)
    if not FONT.exists():
        return image
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(FONT), size)
    y = 160
    for line in textwrap.wrap(text, 45):
        draw.text((150, y), line, font=font, fill=0)
        y += int(size * 1.7)
    return image


def scan_pdf(path: Path, text: str) -> None:
    """An image-only PDF (no text layer), as a scanner makes it."""
    page_image(text).convert("RGB").save(path, "PDF", resolution=300.0)


def photo(path: Path) -> None:
    """A small photograph-like JPEG without text."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (640, 480), (120, 160, 200))
    draw = ImageDraw.Draw(image)
    draw.rectangle((100, 220, 540, 420), fill=(150, 110, 80))
    draw.polygon([(80, 220), (320, 90), (560, 220)], fill=(170, 60, 50))
    image.save(path, "JPEG", quality=85)


def docx_file(path: Path, text: str) -> None:
    import docx

    document = docx.Document()
    document.add_paragraph(text)
    document.save(str(path))


def build_transfer(root: Path) -> Path:
    """Write the transfer folder (files + 归档文件目录.csv) and return it."""
    general = root / "综合"
    general.mkdir(parents=True)
    rows = []

    def row(
        code,
        title,
        date,
        rel,
        *,
        creator="大通县扶贫开发局",
        secrecy="公开",
        category="01",
        hh: Household | None = None,
        remark="",
    ):
        rows.append(
            {
                "序号": str(len(rows) + 1),
                "档号": code,
                "文号": "",
                "责任者": creator,
                "题名": title,
                "日期": date,
                "密级": secrecy,
                "页数": "1",
                "备注": remark,
                "保管期限": "永久",
                "精准扶贫类别": category,
                "全宗号": "Q001",
                "年度": date[:4],
                "文件组合类型": "单件",
                "户主姓名": hh.head if hh else "",
                "户主公民身份号码": hh.id_number if hh else "",
                "行政村代码": hh.village if hh else "",
                "贫困户属性": hh.kind if hh else "",
                "致贫原因": hh.causes if hh else "",
                "家庭人口数": "4" if hh else "",
                "识别年度": "2015" if hh else "",
                "脱贫年度": "2019" if hh else "",
                "计算机文件名": rel,
            }
        )

    text_pdf(
        general / "Q001-WS·2016-Y-FPB-0001.pdf",
        "关于做好因病致贫家庭医疗救助工作的通知",
        POLICY_TEXT,
    )
    row(
        "Q001-WS·2016-Y-FPB-0001",
        "关于做好因病致贫家庭医疗救助工作的通知",
        "20160305",
        "综合/Q001-WS·2016-Y-FPB-0001.pdf",
    )
    scan_pdf(general / "Q001-WS·2016-Y-FPB-0002.pdf", SCAN_TEXT)
    row(
        "Q001-WS·2016-Y-FPB-0002",
        "[合作社帮扶协议]",
        "20160412",
        "综合/Q001-WS·2016-Y-FPB-0002.pdf",
        remark="纸质原件扫描",
    )
    docx_file(general / "Q001-WS·2016-Y-FPB-0003.docx", DOCX_TEXT)
    row(
        "Q001-WS·2016-Y-FPB-0003",
        "易地扶贫搬迁安置点建设进度汇报",
        "20160520",
        "综合/Q001-WS·2016-Y-FPB-0003.docx",
        category="03",
    )
    for hh in HOUSEHOLDS:
        folder = root / hh.code
        folder.mkdir()
        body = (
            f"申请人{hh.head}，公民身份号码{hh.id_number}，联系电话{hh.phone}，"
            f"家住{hh.village}。因{hh.disease}长期治疗，家庭困难，申请纳入建档立卡贫困户。"
        )
        text_pdf(folder / "001-贫困户申请书.pdf", f"{hh.head}贫困户申请书", body)
        row(
            f"{hh.code}-001",
            f"{hh.head}贫困户申请书",
            "20150412",
            f"{hh.code}/001-贫困户申请书.pdf",
            creator=hh.head,
            secrecy="限制",
            category="02",
            hh=hh,
        )
        photo(folder / "002-入户照片.jpg")
        row(
            f"{hh.code}-002",
            f"{hh.head}户入户走访照片",
            "20150415",
            f"{hh.code}/002-入户照片.jpg",
            creator="河西镇人民政府",
            secrecy="限制",
            category="02",
            hh=hh,
            remark="数码照片",
        )
    with open(root / "归档文件目录.csv", "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return root


#: the names of the holding's township and villages (the home's place table)
PLACES = {"630121100": "河西镇", "630121100201": "上庄村", "630121100202": "下庄村"}


#: texts no researcher may ever see: ID numbers, heads' names, health details, phones
SECRETS = (
    [h.id_number for h in HOUSEHOLDS]
    + [h.head for h in HOUSEHOLDS]
    + [h.disease for h in HOUSEHOLDS]
    + [h.phone for h in HOUSEHOLDS]
)


PUBLIC_URL = "https://dangan.example.gov.cn"


def served_settings(settings):
    """The holding's settings as a served portal has them: ``[portal] public_url`` set (the
    address QR labels carry; the portal refuses to print labels for a loopback address)."""
    import copy
    import dataclasses

    values = copy.deepcopy(settings.values)
    values["portal"]["public_url"] = PUBLIC_URL
    return dataclasses.replace(settings, values=values)
