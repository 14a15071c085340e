"""Check results: every check is passed, failed or not-checked, with its reason.

A finding carries a stable code — the DA/T 70-2018 item (``GD-1-14``) where the standard has
one, ``DG-…`` (Dangan's own) where it is silent — so that the 检测报告 a bureau files can be
read against the standard, and tests can assert on codes rather than on wording.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

PASSED, FAILED, NOT_CHECKED = "passed", "failed", "not-checked"
PROPERTIES = {"1": "真实性", "2": "完整性", "3": "可用性", "4": "安全性"}


@dataclass(slots=True)
class Problem:
    """One concrete problem found by a check: which file, which row, what exactly."""

    message: str
    path: str | None = None
    row: int | None = None
    column: str | None = None
    sheet: str | None = None
    expected: str | None = None
    actual: str | None = None
    severity: str | None = None          # None: the check's own severity
    code: str | None = None              # the finding's own rule code, when finer than the check's
    message_en: str | None = None

    def where(self) -> str:
        """A short "file, sheet, row, column" locator for messages."""
        parts = [self.path or ""]
        if self.sheet:
            parts.append(f"sheet {self.sheet}")
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column:
            parts.append(f"column {self.column}")
        return ", ".join(p for p in parts if p)


@dataclass
class CheckResult:
    """The outcome of one check on a transfer.

    Attributes:
        code: DA/T 70 item (GD-x-y) or Dangan's own code (DG-…).
        name: what was checked, in Chinese (the report's language).
        status: passed | failed | not-checked.
        message: one sentence: why it passed, what failed, or why it was not checked.
        severity: "error" rejects the transfer when failed; "warning" does not.
        problems: every problem found, not just the first.
    """

    code: str
    name: str
    status: str
    message: str = ""
    severity: str = "error"
    problems: list[Problem] = field(default_factory=list)

    @property
    def rejects(self) -> bool:
        """Whether this result makes the transfer unacceptable."""
        return self.status == FAILED and self.severity == "error"

    @property
    def property_name(self) -> str:
        """The DA/T 70 property (真实性 …) of a GD code, or 其他."""
        parts = self.code.split("-")
        return PROPERTIES.get(parts[1], "其他") if parts[0] in ("GD", "DG") and len(parts) > 1 else "其他"

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data; a problem's unset attributes are left out.

        Built field by field rather than with ``dataclasses.asdict``, whose recursive deep
        copy costs more than the rest of the report when a check lists a problem for each of
        tens of thousands of files.
        """
        data: dict[str, Any] = {name: getattr(self, name) for name in _RESULT_FIELDS}
        # errors first: in a long list the problems that refuse the transfer come first
        problems = sorted(self.problems, key=lambda p: (p.severity or self.severity) != "error")
        data["problems"] = [{k: v for k in _PROBLEM_FIELDS if (v := getattr(p, k)) is not None}
                            for p in problems]
        data["property"] = self.property_name
        return data


_RESULT_FIELDS = tuple(f.name for f in fields(CheckResult) if f.name != "problems")
_PROBLEM_FIELDS = tuple(f.name for f in fields(Problem))   # in order, as vars() gave them
assert fields(CheckResult)[-1].name == "problems", "to_dict keeps asdict's key order"


def passed(code: str, name: str, message: str = "") -> CheckResult:
    """A check that ran and found nothing wrong."""
    return CheckResult(code, name, PASSED, message)


def failed(code: str, name: str, message: str, problems: list[Problem] | None = None,
           severity: str = "error") -> CheckResult:
    """A check that ran and found problems."""
    return CheckResult(code, name, FAILED, message, severity, problems or [])


def not_checked(code: str, name: str, reason: str) -> CheckResult:
    """A check that could not run; the reason is mandatory and it never counts as passed."""
    if not reason:
        raise ValueError("a not-checked result needs its reason")
    return CheckResult(code, name, NOT_CHECKED, reason, "warning")


def from_problems(code: str, name: str, problems: list[Problem], ok_message: str,
                  fail_message: str, severity: str = "error") -> CheckResult:
    """Passed when ``problems`` is empty, otherwise failed listing all of them.

    A problem may carry its own severity: the result is an error when any problem is one
    (or inherits ``severity``), a warning when all are warnings.
    """
    if not problems:
        return passed(code, name, ok_message)
    errors = [p for p in problems if (p.severity or severity) == "error"]
    return failed(code, name, f"{fail_message}（{len(problems)} 处）", problems,
                  "error" if errors else "warning")
