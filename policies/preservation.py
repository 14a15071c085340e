"""The preservation plan as data: per format, a preservation action and an access action.

``preservation.yaml`` lists rules by PRONOM PUID (optionally with extensions, or extensions
alone); the first rule matching a file wins and a file that no rule names is kept as it is.
Each rule says what is preserved (``keep`` the original, or a :class:`Conversion` making a
preservation copy) and what is served to readers (the ``original``, the ``preservation``
copy, or a :class:`Conversion` making an access copy). Conversions name a tool of the
registry (``tools``: the command and how its version is read, recorded as a PREMIS agent).

>>> from policies import load_settings
>>> policy = load_preservation_policy(load_settings("/nonexistent-home"))
>>> rule = policy.rule_for("fmt/412", "docx")
>>> rule.preservation.target, rule.preservation.tool, rule.access_source
('PDF/A-2b', 'libreoffice', 'preservation')
>>> policy.rule_for("fmt/353", "tif").access.target, policy.rule_for("fmt/353", "tif").preservation
('JPEG', None)
>>> policy.rule_for("fmt/101", "xml") is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from policies.config import Settings
from policies.errors import ConfigError
from policies.yamldoc import load_checked_policy

CHECKS = ("opens", "pages", "text", "pdfa", "duration")
ROLES = ("preservation", "access")


@dataclass(frozen=True)
class Tool:
    """One program of the tool registry.

    Attributes:
        name: registry key, e.g. ``"libreoffice"``.
        command: the program and its fixed first arguments, e.g. ``("soffice",)``.
        version: the command that prints its version (``("gs", "--version")``); empty for a
            Python library, whose ``__version__`` is read instead.
        python: the module of a Python library tool (``"PIL"``), else ``""``.
        package: where it comes from (for the "tool absent" message).
    """

    name: str
    command: tuple[str, ...] = ()
    version: tuple[str, ...] = ()
    python: str = ""
    package: str = ""


@dataclass(frozen=True)
class Conversion:
    """Make a derivative: ``tool`` turns the source into ``target``.

    Attributes:
        role: ``"preservation"`` or ``"access"``.
        target: the target format's name, e.g. ``"PDF/A-2b"``, ``"XLSX"``, ``"JPEG"``.
        tool: the registry name of the tool.
        puids: the PUIDs the output must be identified as.
        checks: the output checks (:data:`CHECKS`) it must pass before it is kept.
        text_similarity: share of the source's characters the output text must hold.
        without_text: the tool used instead when the source has no text layer (OCR), or "".
    """

    role: str
    target: str
    tool: str
    puids: frozenset[str]
    checks: tuple[str, ...]
    text_similarity: float
    without_text: str = ""


@dataclass(frozen=True)
class PreservationRule:
    """One rule: these formats get this preservation action and this access action.

    Attributes:
        name: the rule's name (shown in reports).
        puids / extensions: what it matches (as :class:`policies.formats.FormatRule`).
        preservation: the preservation copy to make, or None to keep the original as master.
        access: the access copy to make, or None when ``access_source`` is served.
        access_source: ``"original"``, ``"preservation"`` or ``"access"`` (a copy is made).
        on_failure: ``"warn"`` (original kept, failure reported) or ``"reject"`` (the record
            is refused).
    """

    name: str
    puids: frozenset[str]
    extensions: frozenset[str]
    preservation: Conversion | None
    access: Conversion | None
    access_source: str
    on_failure: str

    def matches(self, puid: str | None, extension: str) -> bool:
        """Whether a file identified as ``puid`` whose name ends in ``extension`` falls under it."""
        if self.puids and puid not in self.puids:
            return False
        return not self.extensions or extension.lower().lstrip(".") in self.extensions

    @property
    def conversions(self) -> tuple[Conversion, ...]:
        """The derivatives this rule makes, preservation first."""
        return tuple(c for c in (self.preservation, self.access) if c is not None)


@dataclass(frozen=True)
class PreservationPolicy:
    """The preservation plan in force.

    Attributes:
        rules: first match wins.
        tools: the tool registry, by name.
        at_ingest: whether ingest makes the derivatives (else only ``dangan migrate`` does).
        path: the file it was read from.
    """

    rules: tuple[PreservationRule, ...]
    tools: dict[str, Tool]
    at_ingest: bool
    path: Path

    def rule_for(self, puid: str | None, extension: str = "") -> PreservationRule | None:
        """The rule for a file, or None when the file is kept and served as it is."""
        for rule in self.rules:
            if rule.matches(puid or None, extension):
                return rule
        return None


def _conversion(doc, where: tuple, value: dict, role: str, tools: dict, threshold: float,
                ) -> Conversion:
    for key in ("tool", "without_text"):
        name = value.get(key)
        if name and name not in tools:
            raise ConfigError(f"{doc.at(where + (key,))}: no tool {name!r} in tools "
                              f"({', '.join(sorted(tools))})")
    bad = [c for c in value.get("checks", ()) if c not in CHECKS]
    if bad:
        raise ConfigError(f"{doc.at(where + ('checks',))}: unknown checks {bad} "
                          f"(known: {', '.join(CHECKS)})")
    similarity = float(value.get("text_similarity", threshold))
    if not 0 <= similarity <= 1:
        raise ConfigError(f"{doc.at(where)}: text_similarity {similarity} is not within 0..1")
    return Conversion(role, str(value["to"]), str(value["tool"]),
                      frozenset(value.get("puid", ())), tuple(value.get("checks", ("opens",))),
                      similarity, str(value.get("without_text", "")))


def load_preservation_policy(settings: Settings) -> PreservationPolicy:
    """Load and check the preservation plan.

    ``[normalise] at_ingest`` in the settings, when set, overrides the file's ``at_ingest``.

    Raises:
        ConfigError: schema violation, or a rule naming an unknown tool or check (file and line).
    """
    doc = load_checked_policy("preservation", settings)
    data = doc.data
    tools = {name: Tool(name, tuple(t.get("command", ())), tuple(t.get("version", ())),
                        str(t.get("python", "")), str(t.get("package", "")))
             for name, t in (data.get("tools") or {}).items()}
    threshold = float(data.get("text_similarity", 0.9))
    default_failure = str(data.get("on_failure", "warn"))
    rules = []
    for index, rule in enumerate(data.get("rules") or ()):
        where = ("rules", index)
        kept, served = rule.get("preservation", "keep"), rule.get("access", "original")
        preservation = (None if kept == "keep" else
                        _conversion(doc, where + ("preservation",), kept, "preservation", tools,
                                    threshold))
        access = (None if isinstance(served, str) else
                  _conversion(doc, where + ("access",), served, "access", tools, threshold))
        source = served if isinstance(served, str) else "access"
        if source == "preservation" and preservation is None:
            raise ConfigError(f"{doc.at(where + ('access',))}: access: preservation, but the "
                              "rule keeps the original (no preservation copy)")
        rules.append(PreservationRule(
            str(rule["name"]), frozenset(rule.get("puid", ())),
            frozenset(e.lower() for e in rule.get("extensions", ())), preservation, access,
            source, str(rule.get("on_failure", default_failure))))
    at_ingest = bool(data.get("at_ingest", False))
    override = settings.get("normalise", "at_ingest")
    if override not in (None, ""):
        at_ingest = bool(override)
    return PreservationPolicy(tuple(rules), tools, at_ingest, doc.path)
