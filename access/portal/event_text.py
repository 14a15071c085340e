"""PREMIS event details in Chinese: the phrases Dangan's own code writes into an event's
detail and outcome note (ingest, full text, OCR, fixity checks, retrieval, replication,
repair, deletion, versions, normalisation), translated piece by piece. A detail is split at
``; `` and each piece matched against the phrases below; a piece no phrase knows stays as it
was written (file names, tool versions, messages of other tools). The page shows the Chinese
with the text as recorded in a tooltip (:func:`event_text`)."""

from __future__ import annotations

import re
from collections.abc import Callable

from markupsafe import Markup, escape

_PURPOSES = {"audit": "定期审计", "api": "接口请求", "repair": "修复", "ingest": "接收",
             "scheduled": "计划任务", "manual": "人工发起"}


def _none(text: str) -> str:
    return "无" if text.strip() == "none" else text


def _purpose(match: re.Match) -> str:
    return f"目的：{_PURPOSES.get(match[1], match[1])}"


Rule = tuple[re.Pattern[str], "str | Callable[[re.Match], str]"]

_RULES: list[Rule] = [(re.compile(p + r"\Z", re.S), t) for p, t in [
    # ingest (ingest/pipeline.py, ingest/acceptance.py)
    (r"(\S+) computed in the single read that staged each file",
     r"在暂存各文件的同一次读取中计算 \1 摘要"),
    (r"PRONOM by Siegfried", "PRONOM 格式由 Siegfried 识别"),
    (r"MIME by libmagic", "MIME 类型由 libmagic 识别"),
    (r"(\d+) files, (\d+) unidentified", r"共 \1 个文件，\2 个未识别格式"),
    (r"DA/T 70-2018 transfer checks: (\d+) passed, (\d+) failed as warnings, (\d+) not checked",
     r"DA/T 70-2018 移交检测：\1 项通过，\2 项未通过（记为警告），\3 项未检查"),
    (r"warnings: (.*)", lambda m: f"警告：{_none(m[1])}"),
    (r"not checked: (.*)", lambda m: f"未检查：{_none(m[1])}"),
    (r"no virus scanner configured", "未配置病毒扫描程序"),
    (r"virus scan did not complete: (.*)", r"病毒扫描未完成：\1"),
    (r"(\S+) found (\d+) infected file\(s\)", r"\1 发现 \2 个染毒文件"),
    (r"(\S+) scanned (\d+) files: no virus found", r"\1 扫描了 \2 个文件，未发现病毒"),
    (r"(GD-[\d-]+) not checked", r"\1 未检查"),
    (r"(GD-[\d-]+) failed", r"\1 未通过"),
    (r"transfer (\S+) from (.*)", r"移交 \1，来源：\2"),
    # full text and OCR (ingest/fulltext.py, ingest/textjobs.py)
    (r"full text: (\d+) files read \((\d+) pages by OCR, (.*?)\), (\d+) not checked, (\d+) "
     r"failed, (\d+) with OCR queued as a text job",
     lambda m: f"全文提取：读取 {m[1]} 个文件（OCR 识别 {m[2]} 页，"
               f"{'未安装 tesseract' if m[3] == 'no tesseract' else m[3]}），{m[4]} 个未检查，"
               f"{m[5]} 个失败，{m[6]} 个已排队等待 OCR"),
    (r"texts in (\S+)", r"文本存于 \1"),
    (r"OCR of (\d+) page\(s\) in (\d+) file\(s\) by (.*?), model (\S+)",
     r"OCR 识别 \2 个文件共 \1 页（\3，语言模型 \4）"),
    (r"texts kept in the catalogue \(derived_texts\)", "文本存于目录库（derived_texts）"),
    (r"(.+): pages ([\d,]+)", r"\1：第 \2 页"),
    (r"(.+): OCR queued as a text job", r"\1：已排队等待 OCR"),
    (r"(.+): OCR of (\d+) page\(s\) queued as a text job", r"\1：\2 页已排队等待 OCR"),
    (r"(.+): (\d+) page\(s\) without a text layer not read: (.*)",
     r"\1：\2 页没有文字层，未读取（\3）"),
    (r"(.+): no text extractor for (.*)", r"\1：没有适用于 \2 的文本提取程序"),
    (r"(.+): no legible text", r"\1：未识别出文字"),
    (r"(.+): OCR is switched off \(\[fulltext\] ocr = false\)", r"\1：OCR 已关闭（[fulltext] ocr = false）"),
    # fixity checks (storage/fixity/records.py)
    (r"full check: every byte re-read and hashed", "全量校验：每个字节重新读取并计算摘要"),
    (r"quick check \(not a fixity check\): presence, size and stored checksum, no bytes read",
     "快速校验（不是固定性检查）：只核对文件存在、大小和记录的校验值，未读取内容"),
    (r"copy at (.*)", r"副本位置：\1"),
    (r"purpose (\S+)", _purpose),
    (r"algorithms (\S+)", r"算法：\1"),
    (r"tool (.*)", r"工具：\1"),
    (r"started (\S+)", r"开始：\1"),
    (r"finished (\S+)", r"结束：\1"),
    (r"(\d+) files, (\d+) read \((\d+) from an interrupted run's checkpoint\), (\d+) bytes read",
     r"共 \1 个文件，读取 \2 个（其中 \3 个沿用中断运行的检查点），读取 \4 字节"),
    # retrieval, replication, repair, deletion (storage/copies, storage/fixity/repair.py)
    (r"retrieval of (.*) from (.*)", r"读取 \1（自 \2）"),
    (r"repair (\d+) of the copy at (.*) from verified copies \((.*)\)",
     lambda m: f"修复 {m[1]}：以已校验副本修复 {m[2]} 处的副本（"
               + ("无" if m[3] == "none" else re.sub(r": (\d+) files", r"：\1 个文件", m[3]))
               + "）"),
    (r"waits for `dangan repair approve (\d+)`", r"等待批准（dangan repair approve \1）"),
    (r"reason: (.*)", r"原因：\1"),
    (r"copies removed: (.*)", lambda m: f"已删除副本：{_none(m[1])}"),
    (r"kept: (.*)", r"保留：\1"),
    # versions (ingest/update.py, ingest/migrate.py)
    (r"version (\d+) supersedes version (\d+): (.*)", r"第 \1 版取代第 \2 版：\3"),
    # normalisation and migration (ingest/normalise)
    (r"(preservation|access) copy (\S+) by (\S+) (\S+): (.*)",
     lambda m: f"由 {m[3]} {'（未安装）' if m[4] == '(absent)' else m[4]} 生成"
               f"{'保存版本' if m[1] == 'preservation' else '利用版本'}（{m[2]}）：{m[5]}"),
    (r"identified as (\S+)", r"识别为 \1"),
]]


def translate(text: str) -> str:
    """``text`` with every phrase this module knows in Chinese (the rest unchanged)."""
    if not text:
        return text
    out = []
    for piece in text.split("; "):
        for pattern, template in _RULES:
            match = pattern.match(piece)
            if match:
                out.append(template(match) if callable(template) else match.expand(template))
                break
        else:
            out.append(piece)
    return "；".join(out)


def event_text(text: str | None) -> Markup:
    """An event's detail as the page shows it: in Chinese, the recorded text in a tooltip
    (only when they differ)."""
    if not text:
        return Markup("")
    shown = translate(text)
    if shown == text:
        return escape(text)
    return Markup('<span class="recorded" title="{}">{}</span>').format(text, shown)
