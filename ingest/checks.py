"""The checks run on every transfer, each reported under its DA/T 70-2018 code.

Each function looks at the :class:`~ingest.analysis.Analysis` of a staged transfer and
returns one :class:`~ingest.findings.CheckResult`. Checks this version cannot perform are
listed as not-checked with the reason, so that the report never implies more than was done.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from ingest.analysis import Analysis, normalise_code
from ingest.findings import (
    CheckResult, Problem, failed, from_problems, not_checked, passed,
)

Check = Callable[[Analysis], CheckResult]


def check_not_empty(a: Analysis) -> CheckResult:
    """DG-2-0: the transfer contains at least one record file."""
    name = "移交内容非空"
    if not a.content:
        return failed("DG-2-0", name, "移交中没有任何档案文件（空文件夹或只有目录表）",
                      [Problem("no record files", path=str(a.staged.source))])
    return passed("DG-2-0", name, f"共 {len(a.content)} 个文件")


def check_catalogue_present(a: Analysis) -> CheckResult:
    """GD-1-12: a catalogue (description) file is present."""
    name = "说明文件和目录文件齐全"
    if a.sheet_file is None:
        return failed("GD-1-12", name, "未提供归档文件目录；整个移交作为一个 AIP 接收，按文件夹名著录",
                      severity="warning")
    return passed("GD-1-12", name, f"归档文件目录: {a.sheet_file.rel}")


def check_metadata_readable(a: Analysis) -> CheckResult:
    """GD-3-1: the catalogue sheet can be read."""
    name = "元数据可读"
    if a.sheet is None:
        return not_checked("GD-3-1", name, "没有归档文件目录可读")
    problems = list(a.sheet.problems)
    if not problems and not a.sheet.rows:
        problems.append(Problem("目录中没有数据行", path=a.sheet.path))
    return from_problems("GD-3-1", name, problems, f"读取 {len(a.sheet.rows)} 行",
                         "归档文件目录无法读取")


def check_bag_digests(a: Analysis) -> CheckResult:
    """GD-1-14: the package is unchanged since sending (the sender's manifest digests)."""
    name = "数据包未被篡改（摘要值比对）"
    if a.bag is None:
        return not_checked("GD-1-14", name, "移交不是 BagIt 包，没有发送方提供的摘要值可比对")
    if not a.bag.algorithms:
        return failed("GD-1-14", name, "BagIt 包无法读取", a.bag.structure)
    return from_problems("GD-1-14", name, a.bag.digests,
                         f"全部文件的 {'/'.join(a.bag.algorithms)} 摘要与清单一致",
                         "文件摘要与 BagIt 清单不符")


def check_bag_structure(a: Analysis) -> CheckResult:
    """GD-1-13: the package's folder structure (BagIt completeness and validity)."""
    name = "数据包目录结构规范"
    if a.bag is None:
        return not_checked("GD-1-13", name, "移交不是 BagIt 包")
    return from_problems("GD-1-13", name, a.bag.structure, "BagIt 结构完整（bagit-python）",
                         "BagIt 结构有误")


def check_item_count(a: Analysis) -> CheckResult:
    """GD-2-1: the number of items equals the transfer register."""
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
            problems.append(Problem("目录条目数与找到的文件数不符", path=a.sheet.path,
                                    expected=str(len(a.sheet.rows)), actual=str(found)))
    if not sources:
        return not_checked("GD-2-1", name, "既无归档文件目录也无 Payload-Oxum，没有登记数量可比")
    return from_problems("GD-2-1", name, problems, f"与{'、'.join(sources)}相符",
                         "数量不符")


def check_byte_count(a: Analysis) -> CheckResult:
    """GD-2-2: the byte count equals the transfer register (Payload-Oxum)."""
    name = "字节数与移交登记相符"
    if a.bag is None or a.bag.oxum is None:
        return not_checked("GD-2-2", name, "没有登记字节数（仅 BagIt 的 Payload-Oxum 提供）")
    actual = sum(f.size for f in a.staged.files if f.rel.startswith(a.content_prefix))
    if actual != a.bag.oxum[0]:
        return failed("GD-2-2", name, "Payload-Oxum 字节数与实际不符",
                      [Problem("byte count", path="bag-info.txt", expected=str(a.bag.oxum[0]),
                               actual=str(actual))])
    return passed("GD-2-2", name, f"{actual} 字节")


def check_rows_have_files(a: Analysis) -> CheckResult:
    """GD-2-11 / GD-1-11: every catalogue row points at a file that is in the package."""
    name = "目录条目均有对应文件"
    if a.sheet is None:
        return not_checked("GD-2-11", name, "没有归档文件目录")
    problems = []
    for row in a.sheet.rows:
        if a.row_files.get(row.row) is None:
            wanted = row.values.get("computer_filename") or row.values.get("archival_code") or "?"
            problems.append(Problem(f"目录所列文件不存在: {wanted}", path=a.sheet.path,
                                    sheet=row.sheet or None, row=row.row,
                                    column="计算机文件名" if row.values.get("computer_filename") else "档号"))
    return from_problems("GD-2-11", name, problems, f"{len(a.sheet.rows)} 条目均找到文件",
                         "目录所列文件缺失")


def check_stray_files(a: Analysis) -> CheckResult:
    """GD-4-3: no stray files: every file is described by the catalogue."""
    name = "无多余文件"
    if a.sheet is None:
        return not_checked("GD-4-3", name, "没有归档文件目录，无法判断多余文件")
    described = {rel for rel in a.row_files.values() if rel}
    stray = [Problem("文件不在归档文件目录中", path=a.content_prefix + rel)
             for rel in sorted(set(a.content) - described)]
    return from_problems("GD-4-3", name, stray, "全部文件均在目录中", "发现目录之外的文件")


def check_mandatory_fields(a: Analysis) -> CheckResult:
    """GD-2-4: mandatory profile fields are non-empty in every row."""
    name = "必填著录项非空"
    if a.sheet is None:
        return not_checked("GD-2-4", name, "没有归档文件目录")
    problems = []
    for row in a.sheet.rows:
        for spec in a.profile.mandatory:
            if not row.values.get(spec.name, "").strip():
                problems.append(Problem(f"必填项“{spec.zh}”为空", path=a.sheet.path,
                                        sheet=row.sheet or None, row=row.row, column=spec.zh))
    return from_problems("GD-2-4", name, problems,
                         f"{len(a.profile.mandatory)} 个必填项均已填写（{a.profile.id}）",
                         "必填著录项为空")


def check_duplicate_codes(a: Analysis, existing: Iterable[str] = ()) -> CheckResult:
    """GD-1-8: no two rows (nor an AIP already stored) share one 档号."""
    name = "档号不重复"
    if a.sheet is None:
        return not_checked("GD-1-8", name, "没有归档文件目录")
    codes = [(row, normalise_code(row.values.get("archival_code", ""))) for row in a.sheet.rows]
    counts = Counter(code for _, code in codes if code)
    stored = set(existing)
    problems = []
    for row, code in codes:
        if counts.get(code, 0) > 1:
            problems.append(Problem(f"档号重复: {code}", path=a.sheet.path, sheet=row.sheet or None,
                                    row=row.row, column="档号"))
        elif code in stored:
            problems.append(Problem(f"档号已存在于库中: {code}", path=a.sheet.path,
                                    sheet=row.sheet or None, row=row.row, column="档号"))
    return from_problems("GD-1-8", name, problems, "目录内及与库内均无重复档号", "档号重复")


def check_content_present(a: Analysis) -> CheckResult:
    """GD-2-7: every record has content (no empty files)."""
    name = "每份文件均有内容"
    empty = [Problem("空文件（0 字节）", path=a.content_prefix + rel)
             for rel, f in sorted(a.content.items()) if f.size == 0]
    return from_problems("GD-2-7", name, empty, "没有空文件", "存在空文件", severity="warning")


def check_formats_identified(a: Analysis) -> CheckResult:
    """DG-3-1: every file's format was identified by signature (PRONOM)."""
    name = "文件格式识别"
    unknown = [Problem("格式无法识别（无 PRONOM 标识）", path=a.content_prefix + rel,
                       actual=info.mime or "")
               for rel, info in sorted(a.formats.items()) if info.puid is None]
    return from_problems("DG-3-1", name, unknown,
                         f"{len(a.formats)} 个文件均由 Siegfried/PRONOM 识别",
                         "有文件格式无法识别", severity="warning")


NOT_YET = {
    "GD-1-7": ("档号规范性（DA/T 13/22）", "档号完整规则随元数据方案检测提供，本版本未检测"),
    "GD-2-6": ("件号连续无断号", "本版本未检测件号连续性"),
    "GD-3-3": ("文件格式符合归档要求", "本版本未配置格式策略（允许/警告/拒绝）"),
    "GD-3-4": ("内容可正常打开", "本版本未做可读性检测"),
    "GD-4-1": ("已安装杀毒软件", "未配置病毒扫描程序"),
    "GD-4-2": ("病毒检测", "未配置病毒扫描程序，未扫描"),
}


def run_checks(a: Analysis, existing_codes: Iterable[str] = ()) -> list[CheckResult]:
    """Run every check on a transfer, in report order."""
    results = [check(a) for check in (
        check_not_empty, check_catalogue_present, check_metadata_readable, check_bag_structure,
        check_bag_digests, check_item_count, check_byte_count, check_rows_have_files,
        check_stray_files, check_mandatory_fields)]
    results.append(check_duplicate_codes(a, existing_codes))
    results += [check_content_present(a), check_formats_identified(a)]
    results += [not_checked(code, name, reason) for code, (name, reason) in NOT_YET.items()]
    return results
