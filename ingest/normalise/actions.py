"""What normalisation plans and what it produces: actions, derivatives, output checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from policies import Conversion, PreservationPolicy, PreservationRule

ROLE_FOLDERS = {"preservation": "data/preservation", "access": "data/access"}
"""Where the derivatives of ``data/objects/<path>`` sit in the AIP."""


@dataclass(frozen=True)
class Action:
    """One derivative to make from one source file.

    Attributes:
        role: ``"preservation"`` or ``"access"``.
        conversion: the policy's conversion (target, tool, checks, threshold).
        rule: the rule it comes from.
        on_failure: ``"warn"`` or ``"reject"``.
    """

    role: str
    conversion: Conversion
    rule: PreservationRule
    on_failure: str = "warn"


@dataclass(frozen=True)
class Check:
    """One check of a derivative: ``passed``, ``failed`` or ``not-checked`` with a reason."""

    name: str
    status: str
    detail: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass
class Derivative:
    """What running an :class:`Action` produced.

    Attributes:
        role: ``"preservation"`` or ``"access"``.
        source: the source file it was made from.
        output: the derivative file (inside the work folder), or None when none was made.
        target: the target format's name (``"PDF/A-2b"``).
        tool: the tool's registry name; ``tool_version`` its version line (PREMIS agent).
        command: the command line run (``PIL …`` for a library tool).
        outcome: ``"passed"`` (made and every check passed or was not applicable),
            ``"failed"`` (the tool failed or a check failed: the output is not kept) or
            ``"not-checked"`` (not made, e.g. the tool is absent: ``message`` says so).
        message: the tool's error output, or why nothing was made.
        puid, format_name, format_version, mime: the output as identified again.
        checks: the output checks, in order.
        on_failure: the rule's ``warn`` / ``reject``.
    """

    role: str
    source: Path
    output: Path | None
    target: str
    tool: str
    tool_version: str = ""
    command: list[str] = field(default_factory=list)
    outcome: str = "not-checked"
    message: str = ""
    puid: str | None = None
    format_name: str | None = None
    format_version: str | None = None
    mime: str | None = None
    checks: list[Check] = field(default_factory=list)
    on_failure: str = "warn"

    @property
    def kept(self) -> bool:
        """Whether the derivative is good to keep (made, and no check failed)."""
        return self.outcome == "passed" and self.output is not None

    def to_dict(self) -> dict:
        """For reports and JSON output (paths as strings)."""
        return {"role": self.role, "source": str(self.source),
                "output": str(self.output) if self.output else None, "target": self.target,
                "tool": self.tool, "tool_version": self.tool_version,
                "command": list(self.command), "outcome": self.outcome,
                "message": self.message, "puid": self.puid, "format_name": self.format_name,
                "checks": [c.to_dict() for c in self.checks], "on_failure": self.on_failure}


def plan(policy: PreservationPolicy, puid: str | None, name: str) -> list[Action]:
    """The derivatives the policy asks for a file identified as ``puid``, named ``name``.

    Returns:
        Preservation action first, then access; ``[]`` when the file is kept and served as is.
    """
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    rule = policy.rule_for(puid, extension)
    if rule is None:
        return []
    return [Action(c.role, c, rule, rule.on_failure) for c in rule.conversions]


def derivative_path(source_path: str, role: str, extension: str) -> str:
    """The bag path of a derivative of ``data/objects/<rel>``: same folders under the role's
    folder, the source's whole name kept and the target's extension added.

    >>> derivative_path("data/objects/户卷/申请书.doc", "preservation", "pdf")
    'data/preservation/户卷/申请书.doc.pdf'
    """
    rel = source_path.removeprefix("data/objects/")
    return f"{ROLE_FOLDERS[role]}/{rel}.{extension}"
