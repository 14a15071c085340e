"""How the portal shows codes, names and times to people: vocabulary codes by their label
from the record's profile (the code kept in a tooltip), fields by their Chinese name, dates
as ``YYYY-MM-DD``, times without seconds' fractions, PREMIS events and copy states in
Chinese. Template filters and globals, registered by :func:`init_app`."""

from __future__ import annotations

import functools
import re
from datetime import date, datetime
from typing import Any

from flask import Flask, current_app
from flask_babel import gettext as _

from access.portal.i18n import N_
from markupsafe import Markup, escape

from access.portal.event_text import event_text

FACET_FIELDS = {"category": "jzfp_category", "retention": "retention_period",
                "household_type": "household_type", "poverty_causes": "poverty_causes",
                "level": "aggregation_level"}
"""Search facet -> the profile field whose vocabulary labels its values."""

EVENT_NAMES = {
    "ingestion": N_("接收入库"), "validation": N_("验证"), "format identification": N_("格式识别"),
    "message digest calculation": N_("摘要计算"), "virus check": N_("病毒检查"),
    "fixity check": N_("固定性检查"), "replication": N_("复制"), "deletion": N_("删除"), "repair": N_("修复"),
    "normalization": N_("格式转换"), "migration": N_("格式迁移"), "metadata modification": N_("元数据修改"),
    "de-identification": N_("脱敏"), "appraisal": N_("鉴定"), "accession": N_("进馆"),
    "capture": N_("采集"), "information package creation": N_("信息包生成"), "transfer": N_("移交"),
    "metadata extraction": N_("元数据提取"), "quick check": N_("快速校验"),
}
"""PREMIS event types (the Library of Congress vocabulary's labels) in Chinese."""

COPY_STATUS_NAMES = {"verified": N_("完好（已校验）"), "damaged": N_("已损坏"), "missing": N_("缺失"),
                     "pending": N_("待写入"), "failed": N_("写入失败"), "mismatch": N_("不一致"),
                     "unreadable": N_("无法读取"), "in-progress": N_("写入中")}
REPAIR_NAMES = {"pending": N_("待批准修复"), "done": N_("已修复"), "failed": N_("修复失败"),
                "rejected": N_("修复被拒绝"), "unrepairable": N_("无法修复（无完好副本）"),
                None: N_("尚未提出修复")}
OUTCOME_NAMES = {"pass": N_("通过"), "fail": N_("未通过"), "error": N_("未能完成"),
                 "present": N_("快速校验：文件齐全、大小相符"), "not-checked": N_("未检查")}
FIELD_EXTRA = {"category_code": N_("档案门类代码"), "language": N_("语种"), "seq": N_("序号"),
               "electronic_record_id": N_("电子文件号"), "retention_expiry": N_("保管期满日期"),
               "box_qr_id": N_("档案盒二维码标识")}
"""Field names the profiles may not list (older records); the profile's ``zh`` wins."""
LANGUAGE_NAMES = {
    "zho": N_("中文"), "chi": N_("中文"), "bod": N_("藏文"), "tib": N_("藏文"), "mon": N_("蒙古文"),
    "uig": N_("维吾尔文"), "eng": N_("英文"),
}
PII_NAMES = {"none": N_("无"), "personal": N_("个人信息"), "sensitive": N_("敏感个人信息")}

_COMPACT_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
_ISO_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})")


@functools.lru_cache(maxsize=8)
def _profile(name: str):
    from metadata_profiles import ProfileError, load_profile

    try:
        return load_profile(name, current_app.extensions["dangan"]["settings"].home)
    except (ProfileError, KeyError, RuntimeError):
        return None


def _profiles(name: str | None) -> list[Any]:
    """The record's profile first, then every other one (facets span profiles)."""
    from metadata_profiles import available_profiles

    names = [name] if name else []
    names += [n for n in available_profiles() if n != name]
    return [p for p in map(_profile, names) if p is not None]


def _english() -> bool:
    from flask_babel import get_locale

    return str(get_locale() or "zh").startswith("en")


def field_label(name: str, profile: str | None = None) -> str:
    """A field's Chinese name (``category_code`` -> ``档案门类代码``); its English one on
    English pages when the profile gives it."""
    for p in _profiles(profile):
        if p.has_field(name):
            spec = p.field(name)
            return spec.en if spec.en and _english() else spec.zh
    return FIELD_EXTRA.get(name, name)


def term_label(field: str, code: Any, profile: str | None = None) -> str | None:
    """The vocabulary label of ``code`` in ``field`` (None when it has none)."""
    if code is None:
        return None
    text = str(code)
    if field == "language":
        name = LANGUAGE_NAMES.get(text.lower())
        return _(name) if name else None
    if field == "pii_level":
        return _(PII_NAMES[text]) if text in PII_NAMES else None
    for p in _profiles(profile):
        if not p.has_field(field):
            continue
        spec = p.field(field)
        vocabulary = p.vocabularies.get(spec.vocabulary or "")
        term = vocabulary.lookup(text) if vocabulary else None
        if term is not None and term.en and term.en != text and _english():
            return term.en
        if term is not None and term.zh and term.zh != text:
            return term.zh
    return None


def coded(field: str, code: Any, profile: str | None = None) -> Markup:
    """A code shown by its label, the code in a tooltip (``<span title="Y">永久</span>``);
    a value without a label as it is."""
    if code is None or code == "":
        return Markup("—")
    label = term_label(field, code, profile)
    if label is None:
        return escape(str(code))
    return Markup('<span class="term" title="{}">{}</span>').format(str(code), label)


def day(value: Any) -> str:
    """Any date the catalogue holds (``20161012``, ``2016-10-12``, a datetime) as
    ``YYYY-MM-DD``; other text unchanged; nothing as ``—``."""
    if value is None or value == "":
        return "—"
    if isinstance(value, (date, datetime)):
        return value.strftime("%Y-%m-%d")
    text = str(value)
    compact = _COMPACT_DATE.match(text)
    if compact:
        return "-".join(compact.groups())
    iso = _ISO_DATE.match(text)
    return "-".join(iso.groups()) if iso else text


def when(value: Any) -> str:
    """A moment as ``YYYY-MM-DD HH:MM`` (UTC, as stored; no seconds' fractions)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    match = _ISO_TIME.match(str(value))
    return f"{match.group(1)} {match.group(2)}" if match else day(value)


def field_value(name: str, value: Any, profile: str | None = None) -> Markup:
    """A field's value as a page shows it: labels for codes, dates formatted, lists joined."""
    if isinstance(value, list):
        return Markup("、").join(field_value(name, v, profile) for v in value)
    if isinstance(value, dict):
        return escape(", ".join(f"{k}: {v}" for k, v in value.items()))
    if name in ("date", "open_date", "retention_expiry", "monitoring_identified_date",
                "risk_eliminated_date") and value not in (None, ""):
        return escape(day(value))
    if name in PLACE_FIELDS and value not in (None, ""):
        return place(value, PLACE_FIELDS[name], full=True)
    return coded(name, value, profile)


_FORMATS: dict[str, str] = {}


def format_name(puid: str) -> str | None:
    """The name of a PRONOM format the holding has (``fmt/43`` -> ``JPEG File Interchange
    Format 1.01``), read from the catalogue when a PUID is first met."""
    if puid not in _FORMATS:
        from sqlalchemy import select

        from storage.catalogue import models as m

        with current_app.extensions["dangan"]["catalogue"].session() as s:
            for code, name, version in s.execute(
                    select(m.File.puid, m.File.format_name, m.File.format_version)
                    .where(m.File.puid.is_not(None)).distinct()):
                if name:
                    _FORMATS[code] = f"{name} {version}".strip() if version else name
        _FORMATS.setdefault(puid, "")
    return _FORMATS[puid] or None


REGION_FACETS = {"county": N_("县级行政区划代码"), "township": N_("乡级行政区划代码"),
                 "village": N_("村级行政区划代码")}


def facet_value(facet: str, value: Any) -> Markup:
    """A search facet's value as people read it (the code in a tooltip)."""
    if facet in FACET_FIELDS:
        return coded(FACET_FIELDS[facet], value)
    if facet == "formats":
        if value == "unknown":
            return Markup('<span class="term" title="unknown">{}</span>').format(_("未识别格式"))
        name = format_name(str(value))
        if name:
            return Markup('<span class="term" title="{}">{}</span>').format(str(value), name)
    if facet == "year":
        return escape(_("%(y)s年", y=value))
    if facet in REGION_FACETS:
        return place(value, REGION_FACETS[facet])
    return escape(str(value))


PLACE_FIELDS = {"village_code": N_("村级行政区划代码"), "county_code": N_("县级行政区划代码"),
                "township_code": N_("乡级行政区划代码"), "region_code": N_("行政区划代码")}
"""Record fields holding an administrative code, shown by the place's name."""


def place_name(code: Any, full: bool = False) -> str | None:
    """The name of an administrative code from the place table (the shipped one under the
    home's ``places.yaml``); with ``full``, the county's and township's names before it."""
    from metadata_profiles import PlacesError, place_name as named

    try:
        return named(str(code), current_app.extensions["dangan"]["settings"].home, full=full)
    except PlacesError:
        current_app.logger.exception("the place table cannot be read")
        return None


def place(code: Any, kind: str = N_("行政区划代码"), full: bool = False) -> Markup:
    """A code by its place's name, the full name and the code in a tooltip (``<span
    title="大通回族土族自治县河西镇上庄村 · 村级行政区划代码 630121100201">上庄村</span>``);
    a code the table does not know as it is, its kind in the tooltip."""
    if code is None or code == "":
        return Markup("—")
    name = place_name(code, full)
    if name is None:
        return Markup('<span class="term code" title="{}">{}</span>').format(_(kind), str(code))
    whole = place_name(code, True)
    tip = f"{whole} · {_(kind)} {code}" if whole != name else f"{_(kind)} {code}"
    return Markup('<span class="term" title="{}">{}</span>').format(tip, name)


def _mask_numbers(text: str) -> str:
    from access.rules import mask_numbers

    return mask_numbers(text)


def search_link(value: Any, facet: str) -> str:
    """The address of a search of everything under one facet value (charts link to it)."""
    from flask import url_for

    return url_for("search.search_page", **{facet: value})


def init_app(app: Flask) -> None:
    """Register the filters (``day``, ``when``) and globals (``coded``, ``field_label``…),
    and answer ``/favicon.ico`` (browsers ask for it on every page)."""

    def favicon():
        response = app.send_static_file("favicon.ico")
        response.cache_control.max_age = 86400
        return response

    app.add_url_rule("/favicon.ico", "favicon", favicon)
    app.jinja_env.filters.update(day=day, when=when, search_link=search_link)
    app.jinja_env.globals.update(
        coded=coded, field_label=field_label, field_value=field_value, term_label=term_label,
        event_name=lambda t: _(EVENT_NAMES.get(t, t)),
        copy_status_name=lambda s: _(COPY_STATUS_NAMES.get(s, s)),
        repair_name=lambda s: _(REPAIR_NAMES.get(s, s or "")),
        check_outcome_name=lambda o: _(OUTCOME_NAMES.get(o, o or "—")),
        facet_value=facet_value, mask_numbers=_mask_numbers, event_text=event_text,
        place=place,
        named_places=lambda pairs: [(place_name(c) or c, n) for c, n in pairs],
    )
