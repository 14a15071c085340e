"""Real input files for the normalisation tests, made at test time (python-docx, openpyxl,
reportlab, Pillow, and LibreOffice / ffmpeg themselves for XLS and video)."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.ingest.transfers import HEADER

TEXT = "贫困户建档立卡申请书：本户因病致贫，家庭人均纯收入低于国家扶贫标准，申请纳入低保。"
FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


def need(program: str, package: str) -> None:
    """Skip the test when ``program`` is not installed, naming the Debian package."""
    if shutil.which(program) is None:
        pytest.skip(f"{program} not installed (apt-get install {package})")


def docx(path: Path, text: str = TEXT) -> Path:
    import docx as python_docx

    document = python_docx.Document()
    document.add_paragraph(text)
    document.add_paragraph("村委会意见：同意。")
    document.save(str(path))
    return path


def corrupt_docx(path: Path) -> Path:
    """A DOCX whose package is sound (it identifies as fmt/412) but whose document.xml is cut
    in half: no reader can load it."""
    import zipfile

    good = docx(path.with_name(f"good-{path.name}"))
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "word/document.xml":
                data = data[: len(data) // 2]
            out.writestr(info, data)
    good.unlink()
    return path


def doc(folder: Path) -> Path:
    """A Word 97-2003 .doc, written by LibreOffice from a DOCX."""
    need("soffice", "libreoffice-writer-nogui")
    source = docx(folder / "src-doc.docx")
    subprocess.run(["soffice", f"-env:UserInstallation={(folder / 'lo').as_uri()}", "--headless",
                    "--convert-to", "doc:MS Word 97", "--outdir", str(folder), str(source)],
                   check=True, capture_output=True, timeout=300)
    made = folder / "src-doc.doc"
    target = folder / "申请书.doc"
    made.rename(target)
    return target


def xls(folder: Path) -> Path:
    """An Excel 97-2003 .xls, written by LibreOffice from an XLSX."""
    need("soffice", "libreoffice-calc-nogui")
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["户主", "致贫原因", "人口"])
    sheet.append(["张三", "因病致贫", 4])
    sheet.append(["李四", "因学致贫", 3])
    book.save(folder / "src-xls.xlsx")
    subprocess.run(["soffice", f"-env:UserInstallation={(folder / 'lo').as_uri()}", "--headless",
                    "--convert-to", "xls:MS Excel 97", "--outdir", str(folder),
                    str(folder / "src-xls.xlsx")], check=True, capture_output=True, timeout=300)
    target = folder / "花名册.xls"
    (folder / "src-xls.xls").rename(target)
    return target


def office_pdf(folder: Path, pages: int = 2) -> Path:
    """A plain PDF 1.x as Word processors export it (LibreOffice, fonts embedded), ``pages`` long."""
    need("soffice", "libreoffice-writer-nogui")
    import docx as python_docx
    from docx.enum.text import WD_BREAK

    document = python_docx.Document()
    for number in range(pages):
        paragraph = document.add_paragraph(f"{TEXT} 第{number + 1}页")
        if number + 1 < pages:
            paragraph.add_run().add_break(WD_BREAK.PAGE)
    document.save(str(folder / "src-pdf.docx"))
    subprocess.run(["soffice", f"-env:UserInstallation={(folder / 'lo').as_uri()}", "--headless",
                    "--convert-to", "pdf", "--outdir", str(folder), str(folder / "src-pdf.docx")],
                   check=True, capture_output=True, timeout=300)
    target = folder / "申请书.pdf"
    (folder / "src-pdf.pdf").rename(target)
    return target


def pdf(path: Path, text: str = TEXT, pages: int = 2, embedded: bool = True) -> Path:
    """A plain (not PDF/A) PDF; the Chinese font is embedded (WenQuanYi) or not (STSong-Light,
    whose text Ghostscript cannot carry over)."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfgen import canvas

    if embedded:
        if not FONT.is_file():
            pytest.skip("fonts-wqy-microhei not installed (apt-get install fonts-wqy-microhei)")
        from reportlab.pdfbase.ttfonts import TTFont

        pdfmetrics.registerFont(TTFont("WQY", str(FONT), subfontIndex=0))
        font = "WQY"
    else:
        from reportlab.pdfbase.cidfonts import UnicodeCIDFont

        pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
        font = "STSong-Light"
    page = canvas.Canvas(str(path))
    for number in range(pages):
        page.setFont(font, 12)
        page.drawString(50, 750, text[:40])
        page.drawString(50, 730, text[40:] + f" 第{number + 1}页")
        page.showPage()
    page.save()
    return path


def scan_pdf(path: Path) -> Path:
    """A PDF of one scanned page: an image of Chinese text, no text layer."""
    from PIL import Image, ImageDraw, ImageFont

    if not FONT.is_file():
        pytest.skip("fonts-wqy-microhei not installed (apt-get install fonts-wqy-microhei)")
    image = Image.new("RGB", (1654, 800), "white")
    draw = ImageDraw.Draw(image)
    face = ImageFont.truetype(str(FONT), 64)
    draw.text((80, 120), "贫困户建档立卡申请书", font=face, fill="black")
    draw.text((80, 320), "本户因病致贫申请低保", font=face, fill="black")
    image.save(path, "PDF", resolution=200)
    return path


def tiff(path: Path) -> Path:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (400, 300), "white")
    ImageDraw.Draw(image).rectangle((40, 40, 360, 260), outline="black", width=5)
    image.save(path, "TIFF", compression="tiff_lzw")
    return path


def video(path: Path) -> Path:
    """Two seconds of MPEG-2 video (ffmpeg's test pattern and tone), in an MPEG-PS file."""
    need("ffmpeg", "ffmpeg")
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=duration=2:size=320x240:rate=25", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=2", "-c:v", "mpeg2video", "-c:a", "mp2",
                    "-shortest", str(path)], check=True, capture_output=True, timeout=300)
    return path


def office_transfer(root: Path, corrupt: bool = False) -> Path:
    """A household volume of three files: a DOCX, a TIFF scan and a text file.

    With ``corrupt`` the DOCX's document.xml is cut in half: its package still passes the
    readability check (GD-3-4 opens the ZIP), LibreOffice cannot load it."""
    need("soffice", "libreoffice-writer-nogui")
    (root / "户卷").mkdir(parents=True)
    names = ["户卷/001-申请书.docx", "户卷/002-扫描件.tif", "户卷/003-说明.txt"]
    (corrupt_docx if corrupt else docx)(root / names[0])
    tiff(root / names[1])
    (root / names[2]).write_text("户情说明 因病致贫\n", encoding="utf-8")
    with open(root / "归档文件目录.csv", "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for n, name in enumerate(names, 1):
            writer.writerow([str(n), f"Q001-JF·02·630121100201-0001-{n:03d}", "", "某村委会",
                             f"第{n}件", "20160315", "限制", "1", "", "永久", "02", "因病", name])
    return root
