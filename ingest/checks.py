"""The four-property checks (四性检测, DA/T 70-2018) run on every transfer.

Each check looks at a :class:`CheckContext` (the analysed transfer, its validated rows, the
format policy, what looking inside the files and the virus scan found) and returns one
:class:`~ingest.findings.CheckResult` under its DA/T 70 code (``DG-…`` where the standard is
silent). Checks that cannot run say so as not-checked with the reason, so the report never
implies more than was done. Row problems carry sheet, row and column; file problems the path.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from ingest.analysis import Analysis
from ingest.findings import CheckResult, Problem, failed, from_problems, not_checked, passed
from ingest.inspect import Inspection
from ingest.records import RecordSet, RowRecord
from ingest.staging import suffix
from ingest.virus import ScanResult
from metadata_profiles.text import shown_text
from metadata_profiles import Finding, find_gaps, format_numbers, parse_code
from policies import FormatDecision, FormatPolicy

Check = Callable[["CheckContext"], CheckResult]
AS_UPDATE = "（库内已有此户卷：新材料请用 dangan ingest --as-update 接收为新版本，或 dangan update）"


@dataclass
class CheckContext:
    """Everything the checks look at.

    Attributes:
        analysis: the staged, analysed transfer.
        records: validated catalogue rows (empty without a sheet).
        formats: the format policy.
        inspections: content-relative path -> what looking inside found.
        scan: the virus scan's result, or None when no scanner is configured.
        catalogue_ok: whether the catalogue database answered (GD-3-2).
    """

    analysis: Analysis
    records: RecordSet
    formats: FormatPolicy
    inspections: dict[str, Inspection] = field(default_factory=dict)
    scan: ScanResult | None = None
    catalogue_ok: bool = True

    def row_problem(self, record: RowRecord, finding: Finding) -> Problem:
        """A validator finding as a report problem with sheet, row and column."""
        sheet = self.analysis.sheet
        column = None
        if finding.field:
            column = (sheet.heading(record.row.sheet, finding.field) if sheet else None) \
                or finding.heading
        return Problem(finding.message_zh, path=sheet.path if sheet else None,
                       sheet=record.row.sheet or None, row=record.row.row, column=column,
                       actual=finding.value, severity=finding.severity, code=finding.code,
                       message_en=finding.message_en)

    def file_of(self, record: RowRecord) -> str | None:
        """Content-relative path of the file a row describes, if found."""
        return self.analysis.row_files.get(record.row.key)


def _row_findings(ctx: CheckContext, code: str, rules: set[str] | None = None) -> list[Problem]:
    problems = []
    sheet = ctx.analysis.sheet
    for finding in ctx.records.columns:
        if finding.code == code and (rules is None or finding.rule in rules):
            problems.append(Problem(finding.message_zh, path=sheet.path if sheet else None,
                                    column=finding.heading, severity=finding.severity,
                                    code=finding.code, message_en=finding.message_en))
    for record in ctx.records.rows.values():
        for finding in record.findings:
            if finding.code == code and (rules is None or finding.rule in rules):
                problems.append(ctx.row_problem(record, finding))
    return problems


def _profile_check(code: str, name: str, ok: str, bad: str,
                   rules: set[str] | None = None) -> Check:
    def check(ctx: CheckContext) -> CheckResult:
        if ctx.analysis.sheet is None:
            return not_checked(code, name, "没有归档文件目录，无著录项可检")
        problems = _row_findings(ctx, code, rules)
        rows = len(ctx.records.rows)
        return from_problems(code, name, problems, ok.format(rows=rows,
                                                             profile=ctx.analysis.profile.id), bad)

    check.__doc__ = f"{code}: {name}."
    check.__name__ = f"check_{code.replace('-', '_').lower()}"
    return check


check_lengths = _profile_check("GD-1-2", "元数据长度符合要求", "{rows} 条著录的字段长度均未超限",
                               "字段超长")
check_types = _profile_check("GD-1-3", "元数据类型、格式符合要求",
                             "{rows} 条著录的数据类型、日期、身份证号等格式均正确", "类型或格式不符")
check_vocabularies = _profile_check("GD-1-4", "元数据值域符合要求", "{rows} 条著录的值均在规定值域内",
                                    "值不在值域内")
check_plausibility = _profile_check("GD-1-5", "元数据值合理", "年度、日期、脱贫年度等均合理",
                                    "值不合理")
check_characters = _profile_check("GD-1-6", "元数据无非法字符", "未发现控制字符或私用区字符",
                                  "含非法字符")
check_columns = _profile_check("GD-2-3", "元数据项完整", "方案 {profile} 的必备著录项在目录中均有对应列",
                               "目录缺少著录项")
check_mandatory = _profile_check("GD-2-4", "必填著录项非空", "{rows} 条著录的必填项均已填写",
                                 "必填著录项为空")
check_secrets = _profile_check("DG-4-9", "无国家秘密载体（密级）", "未发现秘密、机密、绝密文件",
                               "含国家秘密载体，本系统不得接收")


def check_archival_codes(ctx: CheckContext) -> CheckResult:
    """GD-1-7: every 档号 matches a DA/T 22 / DA/T 13 / household-volume form and its parts."""
    name = "档号规范（DA/T 22 / DA/T 13）"
    if ctx.analysis.sheet is None:
        return not_checked("GD-1-7", name, "没有归档文件目录")
    problems = _row_findings(ctx, "GD-1-7")
    forms = Counter(r.code.form.zh or r.code.form.name for r in ctx.records.rows.values()
                    if r.code is not None)
    summary = "、".join(f"{form} {n} 条" for form, n in forms.items()) or "无"
    return from_problems("GD-1-7", name, problems, f"档号均符合规范：{summary}", "档号不规范")


def check_duplicates(ctx: CheckContext) -> CheckResult:
    """GD-1-8: no 档号 twice in the transfer or held in the repository; no 文号 + 题名 twice."""
    name = "档号不重复"
    sheet = ctx.analysis.sheet
    if sheet is None:
        return not_checked("GD-1-8", name, "没有归档文件目录")
    records = list(ctx.records.rows.values())
    counts = Counter(r.code.text for r in records if r.code is not None)
    pairs = Counter((r.values.get("document_no"), r.values.get("title")) for r in records
                    if r.values.get("document_no"))
    conflicts = ctx.records.claims.conflicts
    problems = []
    for record in records:
        where = {"path": sheet.path, "sheet": record.row.sheet or None, "row": record.row.row,
                 "column": sheet.heading(record.row.sheet, "archival_code") or "档号"}
        code = record.code
        if code is not None and counts[code.text] > 1:
            problems.append(Problem(f"档号在目录中重复: {code.text}", **where))
        elif code is not None and code.text in conflicts:
            problems.append(Problem(f"档号已被 {conflicts[code.text]} 使用: {code.text}"
                                    f"{AS_UPDATE}", **where))
        elif code is not None and code.volume in conflicts and code.volume != code.text:
            problems.append(Problem(f"户卷档号已被 {conflicts[code.volume]} 使用: {code.volume}"
                                    f"{AS_UPDATE}", **where))
        pair = (record.values.get("document_no"), record.values.get("title"))
        if pair[0] and pairs[pair] > 1:
            problems.append(Problem(f"文号与题名重复: {pair[0]} {pair[1]}", **{
                **where, "column": sheet.heading(record.row.sheet, "document_no") or "文号"}))
    return from_problems("GD-1-8", name, problems, "目录内及与库内均无重复档号", "档号重复")


def check_retention_schedule(ctx: CheckContext) -> CheckResult:
    """DG-1-9: each 保管期限 agrees with the retention schedule (a warning: the bureau decides)."""
    name = "保管期限符合保管期限表"
    sheet = ctx.analysis.sheet
    if sheet is None:
        return not_checked("DG-1-9", name, "没有归档文件目录")
    problems = []
    assigned = 0
    for record in ctx.records.rows.values():
        decision = record.retention
        if decision is None:
            continue
        if decision.source == "schedule" and decision.period:
            assigned += 1
        if decision.conflict:
            problems.append(Problem(
                f"目录著录为 {decision.period}，保管期限表规则 {decision.rule.id}"
                f"（{decision.rule.record_type}）为 {decision.conflict}",
                path=sheet.path, sheet=record.row.sheet or None, row=record.row.row,
                column=sheet.heading(record.row.sheet, "retention_period") or "保管期限",
                expected=decision.conflict, actual=decision.period, severity="warning"))
    extra = f"；{assigned} 条按保管期限表补充" if assigned else ""
    return from_problems("DG-1-9", name, problems, f"与保管期限表一致{extra}",
                         "保管期限与保管期限表不一致", severity="warning")


def check_files_match_metadata(ctx: CheckContext) -> CheckResult:
    """GD-1-10: file name (extension), size and page count match the catalogue row."""
    name = "文件名、大小、格式与元数据一致"
    sheet = ctx.analysis.sheet
    if sheet is None:
        return not_checked("GD-1-10", name, "没有归档文件目录")
    problems = []
    for record in ctx.records.rows.values():
        rel = ctx.file_of(record)
        if rel is None:
            continue
        where = {"path": sheet.path, "sheet": record.row.sheet or None, "row": record.row.row}
        staged = ctx.analysis.content.get(rel)
        if staged is None:  # quarantined
            continue
        size = record.values.get("file_size")
        if isinstance(size, int) and size != staged.size:
            problems.append(Problem(f"计算机文件大小与实际不符: {rel}", expected=str(size),
                                    actual=str(staged.size), column="计算机文件大小", **where))
        info = ctx.analysis.formats.get(rel)
        if info is not None and info.puid and "extension mismatch" in (info.warning or ""):
            problems.append(Problem(f"扩展名与识别的格式不符: {rel}",
                                    expected=f"{info.format_name or ''}（{info.puid}）",
                                    actual=PurePosixPath(rel).suffix, severity="warning",
                                    column="计算机文件名", **where))
        pages = ctx.inspections.get(rel, Inspection()).pages
        written = record.values.get("page_count")
        if pages and isinstance(written, int) and written != pages:
            problems.append(Problem(f"页数与 PDF 实际页数不符: {rel}", expected=str(pages),
                                    actual=str(written), severity="warning", column="页数", **where))
    return from_problems("GD-1-10", name, problems,
                         "文件扩展名、大小与页数均与目录一致（文件时间无可比对的元数据）",
                         "文件与元数据不一致")


def check_metadata_points_at_file(ctx: CheckContext) -> CheckResult:
    """GD-1-11: the file a row names is the one its 档号 says (folder and number)."""
    name = "元数据与文件对应关系正确"
    sheet, profile = ctx.analysis.sheet, ctx.analysis.profile
    if sheet is None or profile.codes is None:
        return not_checked("GD-1-11", name, "没有归档文件目录或档号规则")
    problems = []
    for record in ctx.records.rows.values():
        rel, code = ctx.file_of(record), record.code
        if rel is None or code is None or record.generated:
            continue
        where = {"path": sheet.path, "sheet": record.row.sheet or None, "row": record.row.row,
                 "column": sheet.heading(record.row.sheet, "archival_code") or "档号"}
        path = PurePosixPath(rel)
        named = parse_code(path.stem, profile.codes, profile.normalise)
        if named is not None and named.text != code.text:
            problems.append(Problem(f"文件 {rel} 以档号 {named.text} 命名，目录档号为 {code.text}",
                                    **where))
            continue
        folder = parse_code(path.parts[0], profile.codes, profile.normalise) \
            if len(path.parts) > 1 else None
        if code.volume and folder is not None and folder.text != code.volume:
            problems.append(Problem(f"文件 {rel} 位于户卷 {folder.text}，目录档号为 {code.text}",
                                    **where))
            continue
        number = path.name.split("-", 1)[0]
        # inside its volume's own folder a file named "NNN-…" carries its 件号
        if folder is not None and number.isdigit() and int(number) != code.number:
            problems.append(Problem(f"文件 {rel} 的件号 {number} 与档号 {code.text} 不符", **where))
    return from_problems("GD-1-11", name, problems, "目录条目与文件的档号、户卷、件号一一对应",
                         "元数据指向的文件不符")


def check_not_empty(ctx: CheckContext) -> CheckResult:
    """DG-2-0: the transfer contains at least one record file."""
    a = ctx.analysis
    name = "移交内容非空"
    if not a.content:
        return failed("DG-2-0", name, "移交中没有任何档案文件（空文件夹或只有目录表）",
                      [Problem("no record files", path=shown_text(str(a.staged.source)))])
    return passed("DG-2-0", name, f"共 {len(a.content)} 个文件")


def check_catalogue_present(ctx: CheckContext) -> CheckResult:
    """GD-1-12: a catalogue (description) file is present."""
    a = ctx.analysis
    name = "说明文件和目录文件齐全"
    if a.sheet_file is None:
        return failed("GD-1-12", name, "未提供归档文件目录；整个移交作为一个 AIP 接收，按文件夹名著录",
                      severity="warning")
    return passed("GD-1-12", name, f"归档文件目录: {a.sheet_file.rel}")


def check_metadata_readable(ctx: CheckContext) -> CheckResult:
    """GD-3-1: the catalogue sheet can be read (every worksheet, its encoding)."""
    a = ctx.analysis
    name = "元数据可读"
    if a.sheet is None:
        return not_checked("GD-3-1", name, "没有归档文件目录可读")
    problems = list(a.sheet.problems)
    if not problems and not a.sheet.rows:
        problems.append(Problem("目录中没有数据行", path=a.sheet.path))
    sheets = "、".join(s or "CSV" for s in a.sheet.sheets)
    skipped = f"；无表头的工作表 {'、'.join(a.sheet.skipped)} 未读取" if a.sheet.skipped else ""
    return from_problems("GD-3-1", name, problems,
                         f"读取 {len(a.sheet.rows)} 行（{a.sheet.encoding}；工作表 {sheets}）{skipped}",
                         "归档文件目录无法读取")


def check_database(ctx: CheckContext) -> CheckResult:
    """GD-3-2: the catalogue database is reachable (the 档号 register was consulted)."""
    name = "数据库可访问"
    if not ctx.catalogue_ok:
        return failed("GD-3-2", name, "目录数据库无法访问")
    return passed("GD-3-2", name, "目录数据库可访问（已查询档号登记）")


def check_bag_digests(ctx: CheckContext) -> CheckResult:
    """GD-1-14: the package is unchanged since sending (the sender's manifest digests)."""
    a = ctx.analysis
    name = "数据包未被篡改（摘要值比对）"
    if a.bag is None:
        return not_checked("GD-1-14", name, "移交不是 BagIt 包，没有发送方提供的摘要值可比对")
    if not a.bag.algorithms:
        return failed("GD-1-14", name, "BagIt 包无法读取", a.bag.structure)
    return from_problems("GD-1-14", name, a.bag.digests,
                         f"全部文件的 {'/'.join(a.bag.algorithms)} 摘要与清单一致",
                         "文件摘要与 BagIt 清单不符")


def check_bag_structure(ctx: CheckContext) -> CheckResult:
    """GD-1-13: the package's folder structure (BagIt completeness and validity)."""
    a = ctx.analysis
    name = "数据包目录结构规范"
    if a.bag is None:
        return not_checked("GD-1-13", name, "移交不是 BagIt 包")
    return from_problems("GD-1-13", name, a.bag.structure, "BagIt 结构完整（bagit-python）",
                         "BagIt 结构有误")


def check_signatures(ctx: CheckContext) -> CheckResult:
    """GD-1-1: signatures and seals carried by the records (no verifier is configured)."""
    return not_checked("GD-1-1", "电子签名、签章、时间戳有效",
                       "未配置电子签名/签章验证程序；本检测不声明签名有效")


def check_item_count(ctx: CheckContext) -> CheckResult:
    """GD-2-1: the number of items equals the transfer register."""
    a = ctx.analysis
    name = "条目数量与移交登记相符"
    problems: list[Problem] = []
    sources = []
    if a.bag is not None and a.bag.oxum is not None:
        sources.append("Payload-Oxum")
        declared = a.bag.oxum[1]
        actual = sum(1 for f in a.staged.files if f.rel.startswith(a.content_prefix))
        if declared != actual:
            problems.append(Problem("Payload-Oxum 文件数与实际不符", path="bag-info.txt",
                                    expected=str(declared), actual=str(actual)))
    if a.sheet is not None and a.sheet.rows:
        sources.append("归档文件目录")
        found = sum(1 for rel in a.row_files.values() if rel)
        if found != len(a.sheet.rows):
            for row in a.sheet.rows:
                if not a.row_files.get(row.key):
                    problems.append(Problem(
                        f"目录条目数 {len(a.sheet.rows)} 与找到的文件数 {found} 不符：此条目无文件",
                        path=a.sheet.path, sheet=row.sheet or None, row=row.row,
                        expected=str(len(a.sheet.rows)), actual=str(found)))
    if not sources:
        return not_checked("GD-2-1", name, "既无归档文件目录也无 Payload-Oxum，没有登记数量可比")
    return from_problems("GD-2-1", name, problems, f"与{'、'.join(sources)}相符", "数量不符")


def check_byte_count(ctx: CheckContext) -> CheckResult:
    """GD-2-2: the byte count equals the transfer register (Payload-Oxum)."""
    a = ctx.analysis
    name = "字节数与移交登记相符"
    if a.bag is None or a.bag.oxum is None:
        return not_checked("GD-2-2", name, "没有登记字节数（仅 BagIt 的 Payload-Oxum 提供）")
    actual = sum(f.size for f in a.staged.files if f.rel.startswith(a.content_prefix))
    if actual != a.bag.oxum[0]:
        return failed("GD-2-2", name, "Payload-Oxum 字节数与实际不符",
                      [Problem("byte count", path="bag-info.txt", expected=str(a.bag.oxum[0]),
                               actual=str(actual))])
    return passed("GD-2-2", name, f"{actual} 字节")


def check_process_history(ctx: CheckContext) -> CheckResult:
    """GD-2-5: process (业务行为) metadata travels with the transfer."""
    name = "过程元数据（业务行为记录）齐全"
    info = ctx.analysis.bag.info if ctx.analysis.bag is not None else {}
    if info.get("Bagging-Date"):
        source = info.get("Source-Organization", "未注明来源单位")
        return passed("GD-2-5", name, f"移交包记录了打包日期 {info['Bagging-Date']}（{source}）；"
                                       "接收过程由本系统以 PREMIS 事件记录")
    return not_checked("GD-2-5", name, "移交未携带业务行为（过程）元数据；接收过程由本系统以 "
                                       "PREMIS 事件记录")


def check_sequence_gaps(ctx: CheckContext) -> CheckResult:
    """GD-2-6: each 件号 (and 案卷号) sequence runs from 1 without gaps.

    Numbers already held in the repository count, so a bucket continued from an earlier
    transfer is not reported.
    """
    name = "件号连续无断号"
    sheet, codes = ctx.analysis.sheet, ctx.analysis.profile.codes
    if sheet is None or codes is None:
        return not_checked("GD-2-6", name, "没有归档文件目录或档号规则")
    numbers: dict[str, set[int]] = defaultdict(set)
    widths: dict[str, int] = {}
    for record in ctx.records.rows.values():
        code = record.code
        if code is None:
            continue
        numbers[code.bucket].add(code.number)
        widths[code.bucket] = code.width
        volume = parse_code(code.volume, codes, ctx.analysis.profile.normalise) \
            if code.volume and code.volume != code.text else None
        if volume is not None:
            numbers[volume.bucket].add(volume.number)
            widths[volume.bucket] = volume.width
    severity = "error" if codes.gaps == "error" else "warning"
    problems = []
    for bucket in sorted(numbers):
        gaps = find_gaps(numbers[bucket] | ctx.records.held.get(bucket, set()))
        if gaps:
            problems.append(Problem(f"{bucket} 断号: {format_numbers(gaps, widths[bucket])}",
                                    path=sheet.path, column="档号",
                                    expected=format_numbers(gaps, widths[bucket]),
                                    severity=severity))
    if codes.gaps == "ignore":
        return passed("GD-2-6", name, f"按方案设置不检查断号（{len(problems)} 处未计）")
    return from_problems("GD-2-6", name, problems, f"{len(numbers)} 个编号序列均从 1 起连续",
                         "件号有断号", severity=severity)


def check_content_present(ctx: CheckContext) -> CheckResult:
    """GD-2-7: every record has content (no empty files)."""
    a = ctx.analysis
    name = "每份文件均有内容"
    empty = [Problem("空文件（0 字节）", path=a.content_prefix + rel)
             for rel, f in sorted(a.content.items()) if f.size == 0]
    return from_problems("GD-2-7", name, empty, "没有空文件", "存在空文件", severity="warning")


def check_rows_have_files(ctx: CheckContext) -> CheckResult:
    """GD-2-11: every catalogue row points at a file that is in the package."""
    a = ctx.analysis
    name = "目录条目均有对应文件"
    if a.sheet is None:
        return not_checked("GD-2-11", name, "没有归档文件目录")
    problems = []
    for row in a.sheet.rows:
        if a.row_files.get(row.key) is None:
            wanted = row.values.get("computer_filename") or row.values.get("archival_code") or "?"
            column = "computer_filename" if row.values.get("computer_filename") else "archival_code"
            problems.append(Problem(f"目录所列文件不存在: {wanted}", path=a.sheet.path,
                                    sheet=row.sheet or None, row=row.row,
                                    column=a.sheet.heading(row.sheet, column)
                                    or ("计算机文件名" if column == "computer_filename" else "档号")))
    return from_problems("GD-2-11", name, problems, f"{len(a.sheet.rows)} 条目均找到文件",
                         "目录所列文件缺失")


def check_formats_identified(ctx: CheckContext) -> CheckResult:
    """DG-3-1: every file's format was identified by signature (PRONOM)."""
    a = ctx.analysis
    name = "文件格式识别"
    unknown = [Problem("格式无法识别（无 PRONOM 标识）", path=a.content_prefix + rel,
                       actual=info.mime or "")
               for rel, info in sorted(a.formats.items()) if info.puid is None]
    return from_problems("DG-3-1", name, unknown,
                         f"{len(a.formats)} 个文件均由 Siegfried/PRONOM 识别",
                         "有文件格式无法识别", severity="warning")


def check_format_policy(ctx: CheckContext) -> CheckResult:
    """GD-3-3: each file's format is allowed by the format policy (GB/T 18894, DA/T 31)."""
    a = ctx.analysis
    name = "文件格式符合归档要求"
    problems = []
    allowed = Counter()
    decided: dict[tuple[str | None, str], tuple[FormatDecision, str]] = {}
    for rel, info in sorted(a.formats.items()):
        key = (info.puid, suffix(rel))
        if key not in decided:   # the policy's answer depends on these two only
            decision = ctx.formats.decide(*key)
            decided[key] = (decision, (f"{decision.name}（{info.puid or '未识别'}）: "
                                       f"{decision.reason or decision.action}"))
        decision, message = decided[key]
        if decision.action == "allow":
            allowed[decision.name] += 1
            continue
        problems.append(Problem(message, path=a.content_prefix + rel,
                                actual=info.puid or info.mime or "",
                                severity="error" if decision.action == "reject" else "warning"))
    summary = "、".join(f"{n} {k}" for k, n in allowed.items()) or "无"
    return from_problems("GD-3-3", name, problems, f"全部格式在允许清单内（{summary}）",
                         "有文件格式被拒收或需警告")


def check_encryption(ctx: CheckContext) -> CheckResult:
    """GD-3-8: no encrypted or password-protected files, no macros."""
    a = ctx.analysis
    name = "无加密、无密码保护、无宏"
    problems = []
    for rel, found in sorted(ctx.inspections.items()):
        for kind, why in (("encrypted", found.encrypted), ("macro", found.macro)):
            if why:
                action = ctx.formats.content_action(kind)
                if action != "allow":
                    problems.append(Problem(why, path=a.content_prefix + rel,
                                            severity="error" if action == "reject" else "warning"))
    return from_problems("GD-3-8", name, problems,
                         f"{len(ctx.inspections)} 个文件未发现加密、密码保护或宏",
                         "发现加密文件或含宏文件")


def check_readable(ctx: CheckContext) -> CheckResult:
    """GD-3-4: files open: PDFs parse page by page, images decode, containers decompress."""
    a = ctx.analysis
    name = "内容可正常打开"
    problems, read, skipped = [], 0, []
    action = ctx.formats.content_action("unreadable")
    for rel, found in sorted(ctx.inspections.items()):
        if found.readable is False and action != "allow":
            problems.append(Problem(found.reason, path=a.content_prefix + rel,
                                    severity="error" if action == "reject" else "warning"))
        elif found.readable:
            read += 1
        else:
            skipped.append(rel)
    if not ctx.inspections:
        return not_checked("GD-3-4", name, "没有文件")
    note = f"；{len(skipped)} 个文件的格式不在检测范围或已加密" if skipped else ""
    return from_problems("GD-3-4", name, problems, f"{read} 个文件可正常解析{note}",
                         "文件无法打开")


def check_antivirus(ctx: CheckContext) -> CheckResult:
    """GD-4-1: a virus scanner is present, and its version is recorded."""
    name = "已配置杀毒软件"
    scan = ctx.scan
    if scan is None:
        return not_checked("GD-4-1", name, "未配置病毒扫描程序（[antivirus] scanner）")
    if scan.error and not scan.ran:
        return failed("GD-4-1", name, f"病毒扫描程序无法运行: {scan.error}")
    return passed("GD-4-1", name, f"{scan.engine}: {scan.version}")


def check_virus_scan(ctx: CheckContext) -> CheckResult:
    """GD-4-2: the package was scanned and is clean (an infected file rejects its unit)."""
    name = "病毒检测"
    scan = ctx.scan
    if scan is None:
        return not_checked("GD-4-2", name, "未配置病毒扫描程序，未扫描")
    if not scan.ran:
        return not_checked("GD-4-2", name, f"扫描未完成: {scan.error}")
    root = str(ctx.analysis.staged.root).rstrip("/") + "/"
    problems = [Problem(f"发现病毒 {signature}（文件已隔离，不会进入存储）",
                        path=path.removeprefix(root), actual=signature)
                for path, signature in sorted(scan.infected.items())]
    return from_problems("GD-4-2", name, problems,
                         f"{scan.scanned} 个文件扫描未发现病毒（{scan.engine}）", "发现病毒")


def check_stray_files(ctx: CheckContext) -> CheckResult:
    """GD-4-3: no stray files: every file is described by the catalogue."""
    a = ctx.analysis
    name = "无多余文件"
    if a.sheet is None:
        return not_checked("GD-4-3", name, "没有归档文件目录，无法判断多余文件")
    described = {rel for rel in a.row_files.values() if rel}
    stray = [Problem("文件不在归档文件目录中", path=a.content_prefix + rel)
             for rel in sorted(set(a.content) - described)]
    return from_problems("GD-4-3", name, stray, "全部文件均在目录中", "发现目录之外的文件")


def check_filing_security(ctx: CheckContext) -> CheckResult:
    """GD-4-7: the producer's filing process (outside what a transfer shows)."""
    return not_checked("GD-4-7", "归档过程安全可控", "归档环节的权限与日志由移交单位负责，接收时无法检测；"
                                                  "本系统的接收过程记入防篡改审计日志")


CHECKS: tuple[Check, ...] = (
    check_signatures, check_lengths, check_types, check_vocabularies, check_plausibility,
    check_characters, check_archival_codes, check_duplicates, check_retention_schedule,
    check_files_match_metadata, check_metadata_points_at_file, check_catalogue_present,
    check_bag_structure, check_bag_digests,
    check_not_empty, check_item_count, check_byte_count, check_columns, check_mandatory,
    check_process_history, check_sequence_gaps, check_content_present, check_rows_have_files,
    check_metadata_readable, check_database, check_formats_identified, check_format_policy,
    check_readable, check_encryption,
    check_antivirus, check_virus_scan, check_stray_files, check_secrets, check_filing_security,
)


def run_checks(ctx: CheckContext) -> list[CheckResult]:
    """Run every check on a transfer, in report order (真实性, 完整性, 可用性, 安全性)."""
    return [check(ctx) for check in CHECKS]
