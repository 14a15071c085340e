"""Deterministic generator of a sample 精准扶贫 transfer (移交), as a county office delivers it.

The transfer holds a catalogue sheet (归档文件目录, XLSX or CSV), a ``综合`` folder of county- and
village-level documents numbered per DA/T 22 (``Q001-WS·2016-Y-FPB-0001``), and one folder per
household volume (一户一卷) named by its volume 档号 (``Q001-JF·02·630121100201-0001``) holding
PDFs with Chinese text, JPEG photos, sometimes a DOCX 帮扶计划 and sometimes an image-only scan.
The ``综合`` folder also holds files in the formats that preservation planning normalises: a
Word 97 DOC, a DOCX, an Excel 97 XLS, a PDF 1.7 without PDF/A identification and a bilevel
TIFF scan (see "formats to normalise" below).

Everything is derived from ``random.Random(seed)``: the same arguments give byte-identical files
(PDF dates, ZIP member dates and Office document properties are fixed). ``defects`` adds typical
county-office mistakes on top of the clean transfer; the summary says exactly what was changed.

All people, ID numbers, bank accounts, phone numbers, townships and villages are fictional; the
county codes are real GB/T 2260 codes so that the ID numbers' area codes validate.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import hashlib
import io
import math
import os
import random
import re
import zipfile
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import docx
import openpyxl
import pypdf
from openpyxl.styles import Alignment, Font
from openpyxl.writer.excel import ExcelWriter
from PIL import Image, ImageDraw, ImageFont
from pypdf.generic import ArrayObject, ByteStringObject
from reportlab import rl_config
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas as rl_canvas
from stdnum.cn import ric

__all__ = ["DEFECT_KINDS", "SampleSummary", "generate", "COLUMNS", "EICAR"]

# ------------------------------------------------------------------- public constants

DEFECT_KINDS: dict[str, str] = {
    "missing-dh": "one catalogue row has an empty 档号",
    "wrong-dh": "one catalogue row has a malformed 档号 (separators, category code or year)",
    "gap": "one item is removed with its row, so a 件号 sequence jumps",
    "bad-id": "one household's ID number carries a wrong check digit in the sheet",
    "missing-file": "one catalogue row points at a file that is absent",
    "extra-file": "a stray file (Thumbs.db or 新建文本文档.txt) is in no catalogue row",
    "bad-format": "a file outside the format allow-list (.rar archive) is listed in the sheet",
    "encrypted": "one listed PDF is password-protected",
    "macro": "a macro-enabled Word file (.docm with word/vbaProject.bin) is listed in the sheet",
    "eicar": "a listed file holds exactly the EICAR anti-virus test string",
    "secret": "one catalogue row has 密级 = 秘密",
    "gb18030-csv": "the sheet is a GB18030 CSV (no BOM) with full-width characters, not XLSX",
    "bad-date": "one catalogue row has a 日期 that is not a real date or lies in the future",
}

COLUMNS: tuple[str, ...] = (
    "序号", "档号", "文号", "责任者", "题名", "日期", "密级", "页数", "备注",
    "保管期限", "精准扶贫类别", "全宗号", "年度", "户主姓名", "户主公民身份号码", "行政村代码",
    "贫困户属性", "致贫原因", "家庭人口数", "识别年度", "脱贫年度", "计算机文件名",
)

EICAR: bytes = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

SHEET_STEM = "归档文件目录"
GENERAL_DIR = "综合"


@dataclass
class SampleSummary:
    """What :func:`generate` produced.

    ``item_count`` counts catalogue rows; ``file_count`` and ``total_bytes`` count every file
    written under ``out`` (catalogue sheet and stray files included); ``defects`` lists
    ``(kind, exactly what was changed)``; ``sheet`` is the catalogue sheet's path.
    """

    out: Path
    households: int
    item_count: int
    file_count: int
    total_bytes: int
    defects: list[tuple[str, str]] = field(default_factory=list)
    sheet: Path | None = None
    places: dict[str, str] = field(default_factory=dict)
    """Codes of the county, its (fictional) townships and villages the transfer uses ->
    their names (``dangan sample-transfer`` adds them to the home's place table)."""


# ------------------------------------------------------------------- vocabularies

_RETENTION = {"Y": "永久", "D30": "定期30年", "D10": "定期10年"}
_TZ = dt.timezone(dt.timedelta(hours=8))
_SHEET_TIME = dt.datetime(2021, 3, 15, 9, 0, 0)
_FONDS_RE = re.compile(r"[A-Z0-9]{4}")

@dataclass(frozen=True)
class County:
    """A county whose archives office makes the transfer: its GB/T 2260 code of today (the
    villages' codes begin with it), the code its people's ID numbers carry (the county's code
    when they were registered: Haidong's counties were renumbered in 2013, ID numbers kept the
    old 6321xx), its full and short name, and its fonds (全宗号)."""

    code: str
    id_area: str
    name: str
    short: str
    fonds: str

    @property
    def bank_town(self) -> str:
        """The name banks' branches carry (大通县 → 大通)."""
        return self.short.removesuffix("县")


#: the counties a sample can come from (Xining's and Haidong's, Qinghai); a multi-county holding
#: is several samples with different ``county`` (each its own fonds and village codes)
COUNTIES = {c.code: c for c in (
    County("630121", "630121", "大通回族土族自治县", "大通县", "Q001"),
    County("630223", "632126", "互助土族自治县", "互助县", "Q002"),
    County("630222", "632122", "民和回族土族自治县", "民和县", "Q003"),
    County("630224", "632127", "化隆回族自治县", "化隆县", "Q004"),
    County("632523", "632523", "贵德县", "贵德县", "Q005"),
)}
DEFAULT_COUNTY = "630121"
_CURRENT: ContextVar[County] = ContextVar("sample_county", default=COUNTIES[DEFAULT_COUNTY])


def _county() -> County:
    """The county of the generation under way."""
    return _CURRENT.get()
_TOWNSHIPS = (("100", "河西镇"), ("101", "石门镇"), ("102", "青林乡"), ("103", "柳沟乡"))
_VILLAGE_FIRST = "上下东西中红新前后大小阳沙柳杨石黑白卡元"
_VILLAGE_SECOND = "庄沟湾滩岭台坡川堡寨咀营塘峡园"
_BIRTH_AREAS = (None, None, None, "632521", "632221", "632523", "632722")  # None: own county

_SURNAMES = "马韩李王张赵祁冶鲁汪刘陈杨朱何胡孙吉雷谢"
_GIVEN_M = "文明国华永福生德海成才保忠金贵发春林军得元有全学占正龙"
_GIVEN_F = "英兰秀花梅玉芳珍霞琴莲娟菊燕凤萍桂红丽"
_TIBETAN_M = ("才让", "扎西", "多杰", "索南", "尼玛", "更登", "拉布", "公保")
_TIBETAN_F = ("卓玛", "拉毛", "措吉", "央金", "才吉", "德吉", "旦措", "周毛")

_ATTRIBUTES = (("一般贫困户", 60), ("低保贫困户", 30), ("特困供养贫困户", 10))
_CAUSES = (
    ("因病", 25), ("因残", 12), ("因学", 10), ("因灾", 5), ("缺土地", 6), ("缺水", 5),
    ("缺技术", 12), ("缺劳力", 10), ("缺资金", 10), ("交通条件落后", 3), ("自身发展动力不足", 2),
)
_DISEASES = ("高血压", "糖尿病", "类风湿性关节炎", "包虫病", "慢性支气管炎", "心脏病", "脑梗塞",
             "尿毒症", "慢性胃炎", "肺结核")
_SERIOUS = ("尿毒症", "脑梗塞", "心脏病", "包虫病")
_DISABILITY = ("肢体", "视力", "听力", "言语", "智力", "精神")
_GRADES = ("一级", "二级", "三级", "四级")
_BANKS = ("{c}农村信用合作联社{t}信用社", "中国农业银行{c}支行", "中国邮政储蓄银行{c}支行")
_HELPER_UNITS = ("县农牧和扶贫开发局", "县教育局", "县卫生健康局", "县财政局", "县交通运输局",
                 "县水利局", "县人力资源和社会保障局", "{t}人民政府")
_MEASURES = {
    "因病": ("医疗救助：落实基本医疗保险、大病保险和医疗救助“三重保障”，签约家庭医生",),
    "因残": ("落实困难残疾人生活补贴和重度残疾人护理补贴（残疾人两项补贴）",),
    "因学": ("教育资助：落实“雨露计划”和高中、中职、大学阶段助学金",),
    "因灾": ("落实农业保险理赔和临时救助，恢复生产",),
    "缺土地": ("易地扶贫搬迁：纳入县城集中安置点安置",),
    "缺水": ("实施农村饮水安全巩固提升工程，解决人畜饮水困难",),
    "缺技术": ("参加致富带头人和牛羊养殖实用技术培训",),
    "缺劳力": ("安排生态管护公益岗位（草原管护员）",),
    "缺资金": ("发放扶贫小额信贷5万元，财政贴息，用于发展牛羊养殖",),
    "交通条件落后": ("易地扶贫搬迁：由山区迁入交通便利的集中安置点",),
    "自身发展动力不足": ("开展扶志扶智教育，参加村级“积分超市”评比",),
}
_GENERIC_MEASURES = (
    "产业扶持：发放到户产业发展资金，购置基础母羊10只",
    "转移就业：推荐到县内企业务工，落实交通补贴",
    "光伏扶贫：享受村级光伏电站收益分配",
    "资产收益扶贫：入股村集体经济合作社，年底分红",
    "农村危房改造：拆除土坯危房，新建砖混结构住房",
)


# ------------------------------------------------------------------- people and households

@dataclass(frozen=True)
class _Village:
    code: str
    name: str
    township: str

    @property
    def address(self) -> str:
        """Full address from county to village."""
        return f"青海省{_county().name}{self.township}{self.name}"


@dataclass
class _Member:
    name: str
    relation: str
    sex: str
    id_number: str
    age: int
    health: str = "健康"
    disease: str = ""
    disability: str = ""
    schooling: str = ""
    labour: str = "普通劳动力"


@dataclass
class _Household:
    index: int
    village: _Village
    volume_no: int
    volume_code: str
    members: list[_Member]
    attribute: str
    causes: list[str]
    identified_year: int
    exit_year: int
    income_before: int
    income_after: int
    bank: str
    account: str
    phone: str
    house: str
    land_mu: float
    helper: str
    helper_unit: str
    helper_phone: str
    surveyor: str
    measures: list[str]
    dates: dict[str, dt.datetime]
    has_scan: bool
    has_plan: bool

    @property
    def head(self) -> _Member:
        """The household head (户主)."""
        return self.members[0]

    @property
    def causes_text(self) -> str:
        """致贫原因 joined with "、"."""
        return "、".join(self.causes)


def _weighted(rng: random.Random, table: Sequence[tuple[str, int]]) -> str:
    return rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]


def _person_name(rng: random.Random, sex: str, surname: str | None) -> str:
    if surname is None:
        return rng.choice(_TIBETAN_M if sex == "男" else _TIBETAN_F)
    pool = _GIVEN_M if sex == "男" else _GIVEN_F
    given = "".join(rng.sample(pool, 2)) if rng.random() < 0.8 else rng.choice(pool)
    return surname + given


def _check_char(body17: str) -> str:
    """ISO 7064 MOD 11-2 check character of a GB 11643 number."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return "10X98765432"[sum(int(d) * w for d, w in zip(body17, weights)) % 11]


def _id_number(rng: random.Random, area: str, birth: dt.date, sex: str, used: set[str]) -> str:
    """A fictional 18-character 公民身份号码 with a correct check digit."""
    if not ric.is_valid(f"{area}{birth:%Y%m%d}000" + _check_char(f"{area}{birth:%Y%m%d}000")):
        raise ValueError(f"area code {area} is not one ID numbers can carry")
    while True:
        seq = rng.randrange(0, 500) * 2 + (1 if sex == "男" else 0)
        body = f"{area}{birth:%Y%m%d}{seq:03d}"
        number = body + _check_char(body)
        if number not in used and ric.is_valid(number):
            used.add(number)
            return number


def _birth_date(rng: random.Random, year: int) -> dt.date:
    return dt.date(year, rng.randint(1, 12), rng.randint(1, 28))


def _schooling(rng: random.Random, age: int) -> str:
    if age < 3:
        return ""
    for limit, label in ((6, "学前教育"), (12, "小学"), (15, "初中")):
        if age < limit:
            return label
    if age < 18:
        return rng.choice(("高中", "中职"))
    if age < 23 and rng.random() < 0.3:
        return rng.choice(("大学本科", "高职（专科）"))
    return ""


def _member(rng: random.Random, ctx: dict, relation: str, sex: str, age: int,
            surname: str | None) -> _Member:
    area = (None if relation in ("户主", "之子", "之女", "之孙子", "之孙女")
            else rng.choice(_BIRTH_AREAS)) or _county().id_area
    birth = _birth_date(rng, ctx["year"] - age)
    number = _id_number(rng, area, birth, sex, ctx["used"])
    m = _Member(_person_name(rng, sex, surname), relation, sex, number, age)
    m.schooling = _schooling(rng, age)
    m.labour = "无劳动力" if age < 16 or age > 70 else ("弱劳动力" if age > 60 else "普通劳动力")
    roll = rng.random()
    if age >= 16 and roll < 0.12:
        m.health, m.disease = "长期慢性病", rng.choice(_DISEASES)
    elif age >= 16 and roll < 0.15:
        _make_disabled(rng, m)
    return m


def _make_disabled(rng: random.Random, m: _Member) -> None:
    m.health = "残疾"
    m.disability = f"{rng.choice(_DISABILITY)}残疾{rng.choice(_GRADES)}"
    if m.disability.endswith(("一级", "二级")):
        m.labour = "丧失劳动力"


def _make_members(rng: random.Random, size: int, year: int, attribute: str,
                  used: set[str]) -> list[_Member]:
    tibetan = rng.random() < 0.2
    surname = None if tibetan else rng.choice(_SURNAMES)
    ctx = {"year": year, "used": used}
    head_age = rng.randint(62, 80) if attribute == "特困供养贫困户" else rng.randint(28, 72)
    head_sex = "男" if rng.random() < 0.85 else "女"
    members = [_member(rng, ctx, "户主", head_sex, head_age, surname)]
    if size >= 2:
        spouse_sex = "女" if head_sex == "男" else "男"
        spouse_surname = None if tibetan else rng.choice(_SURNAMES)
        relation = "配偶"
        members.append(_member(rng, ctx, relation, spouse_sex,
                               max(20, head_age + rng.randint(-5, 3)), spouse_surname))
    while len(members) < size:
        members.append(_relative(rng, ctx, members, surname))
    return members


def _relative(rng: random.Random, ctx: dict, members: list[_Member],
              surname: str | None) -> _Member:
    head_age = members[0].age
    has_parent = any(m.relation in ("之父", "之母") for m in members)
    if head_age < 45 and not has_parent and rng.random() < 0.4:
        sex = rng.choice(("男", "女"))
        return _member(rng, ctx, "之父" if sex == "男" else "之母", sex,
                       min(92, head_age + rng.randint(22, 30)), surname)
    if head_age >= 58 and rng.random() < 0.6:
        sex = rng.choice(("男", "女"))
        return _member(rng, ctx, "之孙子" if sex == "男" else "之孙女", sex,
                       rng.randint(1, max(1, head_age - 45)), surname)
    sex = rng.choice(("男", "女"))
    age = rng.randint(max(0, head_age - 40), max(0, head_age - 20))
    return _member(rng, ctx, "之子" if sex == "男" else "之女", sex, age, surname)


def _apply_causes(rng: random.Random, members: list[_Member], causes: list[str]) -> None:
    """Make the members' health, disability and schooling agree with 致贫原因."""
    adults = [m for m in members if m.age >= 16] or members
    if "因病" in causes and not any(m.disease for m in members):
        m = rng.choice(adults)
        m.disease = rng.choice(_DISEASES)
        m.health = "患有大病" if m.disease in _SERIOUS else "长期慢性病"
    if "因残" in causes and not any(m.disability for m in members):
        _make_disabled(rng, rng.choice(adults))
    if "因学" in causes and not any(m.schooling in ("高中", "中职", "大学本科", "高职（专科）")
                                    for m in members):
        kids = [m for m in members if m.relation in ("之子", "之女", "之孙子", "之孙女")]
        if kids:
            kid = max(kids, key=lambda m: m.age)
            kid.schooling = rng.choice(("高中", "中职", "大学本科"))
            kid.age = max(kid.age, 16)
        else:
            causes[causes.index("因学")] = "缺资金"


def _pick_causes(rng: random.Random, index: int) -> list[str]:
    first = "因病" if index == 0 else _weighted(rng, _CAUSES)
    causes = [first]
    if rng.random() < 0.5:
        second = _weighted(rng, _CAUSES)
        if second != first:
            causes.append(second)
    return causes


def _measures(rng: random.Random, hh_causes: list[str], attribute: str, house: str) -> list[str]:
    out: list[str] = []
    for cause in hh_causes:
        out.extend(m for m in _MEASURES[cause] if m not in out)
    if attribute == "低保贫困户":
        out.append("社会保障兜底：纳入农村最低生活保障（低保），按月发放低保金")
    if attribute == "特困供养贫困户":
        out.append("社会保障兜底：纳入特困人员供养，落实基本生活费和照料护理")
    if house != "安全住房" and not any("易地扶贫搬迁" in m for m in out):
        out.append(_GENERIC_MEASURES[4])
    out.extend(rng.sample(_GENERIC_MEASURES[:4], k=rng.randint(1, 2)))
    return out


def _household_dates(rng: random.Random, identified: int, exit_year: int) -> dict[str, dt.datetime]:
    day = dt.timedelta(days=1)
    apply = dt.datetime(identified, rng.randint(3, 5), rng.randint(1, 20), 9, 30)
    survey = apply + rng.randint(3, 10) * day
    review = survey + rng.randint(5, 15) * day
    notice = review + rng.randint(5, 15) * day
    handbook = notice + rng.randint(20, 60) * day
    plan = handbook + rng.randint(0, 30) * day
    exit_date = dt.datetime(exit_year, rng.randint(10, 11), rng.randint(1, 28), 10, 0)
    return {"apply": apply, "survey": survey, "review": review, "notice": notice,
            "handbook": handbook, "plan": plan, "exit": exit_date,
            "photo": survey.replace(hour=15), "photo_new": exit_date - 3 * day}


def _make_villages(rng: random.Random, households: int) -> list[_Village]:
    count = max(1, min(households, max(2, -(-households // 35)), 60))
    names = rng.sample([a + b for a in _VILLAGE_FIRST for b in _VILLAGE_SECOND], count)
    townships = _TOWNSHIPS[: max(1, min(len(_TOWNSHIPS), -(-count // 2)))]
    per_township: dict[str, int] = {}
    villages = []
    for i, name in enumerate(names):
        t_code, t_name = townships[i % len(townships)]
        per_township[t_code] = per_township.get(t_code, 0) + 1
        code = f"{_county().code}{t_code}{200 + per_township[t_code]:03d}"
        villages.append(_Village(code, name + "村", t_name))
    return sorted(villages, key=lambda v: v.code)


def _make_households(rng: random.Random, count: int, villages: list[_Village],
                     fonds: str) -> list[_Household]:
    used: set[str] = set()
    scan_offset, plan_offset = rng.randrange(4), rng.randrange(3)
    volumes: dict[str, int] = {}
    out = []
    for i in range(count):
        village = villages[i * len(villages) // count]
        volumes[village.code] = volumes.get(village.code, 0) + 1
        hh = _make_household(rng, i, village, volumes[village.code], fonds, used)
        hh.has_scan = (i + scan_offset) % 4 == 0
        hh.has_plan = (i + plan_offset) % 3 == 0
        out.append(hh)
    return out


def _make_household(rng: random.Random, index: int, village: _Village, volume_no: int,
                    fonds: str, used: set[str]) -> _Household:
    attribute = "低保贫困户" if index == 1 else _weighted(rng, _ATTRIBUTES)
    if attribute == "特困供养贫困户":
        size = rng.randint(1, 2)
    else:
        size = rng.choices(range(1, 9), weights=(4, 10, 18, 24, 20, 12, 7, 5))[0]
    identified = rng.choices((2014, 2015, 2016), weights=(60, 25, 15))[0]
    exit_year = rng.randint(max(identified, 2015), 2020)
    members = _make_members(rng, size, identified, attribute, used)
    causes = _pick_causes(rng, index)
    _apply_causes(rng, members, causes)
    house = rng.choices(("安全住房", "C级危房", "D级危房"), weights=(55, 30, 15))[0]
    township = village.township
    helper_sex = rng.choice(("男", "女"))
    return _Household(
        index=index, village=village, volume_no=volume_no,
        volume_code=f"{fonds}-JF·02·{village.code}-{volume_no:04d}",
        members=members, attribute=attribute, causes=causes,
        identified_year=identified, exit_year=exit_year,
        income_before=rng.randint(1500, 2850), income_after=rng.randint(3900, 9800),
        bank=rng.choice(_BANKS).format(t=township, c=_county().bank_town),
        account="62" + "".join(str(rng.randrange(10)) for _ in range(17)),
        phone=f"1399700{rng.randrange(10000):04d}", house=house,
        land_mu=round(rng.uniform(0.5, 6.0), 1),
        helper=_person_name(rng, helper_sex, rng.choice(_SURNAMES)),
        helper_unit=rng.choice(_HELPER_UNITS).format(t=township),
        helper_phone=f"1399701{rng.randrange(10000):04d}",
        surveyor=_person_name(rng, rng.choice(("男", "女")), rng.choice(_SURNAMES)),
        measures=_measures(rng, causes, attribute, house),
        dates=_household_dates(rng, identified, exit_year),
        has_scan=False, has_plan=False,
    )


# ------------------------------------------------------------------- PDF drawing

_FONT = "STSong-Light"
_PAGE_W, _PAGE_H = A4
_MARGIN = 56.0
_NO_LINE_START = "，。、；：）》”！？"


@functools.cache
def _register_font() -> str:
    pdfmetrics.registerFont(UnicodeCIDFont(_FONT))
    return _FONT


@functools.lru_cache(maxsize=None)
def _char_width(ch: str, size: float) -> float:
    return pdfmetrics.stringWidth(ch, _FONT, size)


def _wrap(text: str, size: float, width: float) -> list[str]:
    """Break text into lines no wider than ``width`` (CJK: any character may break)."""
    lines: list[str] = []
    for part in text.split("\n"):
        line: list[str] = []
        used = 0.0
        for ch in part:
            w = _char_width(ch, size)
            if used + w > width and line and ch not in _NO_LINE_START:
                lines.append("".join(line))
                line, used = [], 0.0
            line.append(ch)
            used += w
        lines.append("".join(line))
    return lines


def _cn_date(when: dt.datetime) -> str:
    return f"{when.year}年{when.month}月{when.day}日"


class _Pdf:
    """A small flowing-text writer on a reportlab canvas (pages counted as they are made)."""

    def __init__(self, title: str, author: str, when: dt.datetime, footer: bool = True,
                 version: tuple[int, int] | None = None) -> None:
        _register_font()
        self._buf = io.BytesIO()
        self.c = rl_canvas.Canvas(self._buf, pagesize=A4, invariant=1, pdfVersion=version)
        stamp = when.strftime("D:%Y%m%d%H%M%S+08'00'")
        self.c.setDateFormatter(lambda *_: stamp)
        self.c.setTitle(title)
        self.c.setAuthor(author)
        self.c.setCreator("精准扶贫档案整理")
        self.c.setSubject("精准扶贫档案")
        self.pages = 1
        self.y = _PAGE_H - _MARGIN
        self._footer_on = footer

    def _room(self, height: float) -> None:
        if self.y - height < _MARGIN + 16:
            self._footer()
            self.c.showPage()
            self.pages += 1
            self.y = _PAGE_H - _MARGIN

    def _footer(self) -> None:
        if self._footer_on:
            self.c.setFont(_FONT, 8)
            self.c.drawCentredString(_PAGE_W / 2, 30, f"第{self.pages}页    示例数据：人物、证件号码、账号均为虚构")

    def title(self, text: str, size: float = 18, after: float = 14) -> None:
        """A centred heading, wrapped when wider than the text area."""
        lines = _wrap(text, size, _PAGE_W - 2 * _MARGIN)
        self._room(len(lines) * size * 1.3 + after)
        self.c.setFont(_FONT, size)
        for ln in lines:
            self.y -= size * 1.3
            self.c.drawCentredString(_PAGE_W / 2, self.y, ln)
        self.y -= after

    def line(self, text: str, size: float = 12, align: str = "left", after: float = 6) -> None:
        """A single line, left, right or centre aligned."""
        self._room(size + after)
        self.c.setFont(_FONT, size)
        self.y -= size
        x_right = _PAGE_W - _MARGIN
        if align == "right":
            self.c.drawRightString(x_right, self.y, text)
        elif align == "center":
            self.c.drawCentredString(_PAGE_W / 2, self.y, text)
        else:
            self.c.drawString(_MARGIN, self.y, text)
        self.y -= after

    def para(self, text: str, size: float = 12, indent: bool = True, leading: float = 1.6) -> None:
        """A wrapped paragraph with a two-character first-line indent."""
        body = ("\u3000\u3000" if indent else "") + text
        for ln in _wrap(body, size, _PAGE_W - 2 * _MARGIN):
            self._room(size * leading)
            self.c.setFont(_FONT, size)
            self.y -= size * leading
            self.c.drawString(_MARGIN, self.y, ln)
        self.y -= size * 0.4

    def table(self, rows: Sequence[Sequence[str]], widths: Sequence[float],
              size: float = 10) -> None:
        """A ruled grid; ``widths`` are fractions of the text width."""
        total = _PAGE_W - 2 * _MARGIN
        cols = [w * total for w in widths]
        for row in rows:
            cells = [_wrap(str(v), size, cw - 6) for v, cw in zip(row, cols)]
            height = max(len(c) for c in cells) * size * 1.3 + 6
            self._room(height)
            self._table_row(cells, cols, height, size)
        self.y -= 8

    def _table_row(self, cells: list[list[str]], cols: list[float], height: float,
                   size: float) -> None:
        x = _MARGIN
        self.c.setFont(_FONT, size)
        for lines, cw in zip(cells, cols):
            self.c.rect(x, self.y - height, cw, height)
            ty = self.y - 3 - size
            for ln in lines:
                self.c.drawString(x + 3, ty, ln)
                ty -= size * 1.3
            x += cw
        self.y -= height

    def image_page(self, jpeg: bytes) -> None:
        """Fill the page with a JPEG (passed through unchanged, DCTDecode)."""
        self.c.drawImage(ImageReader(io.BytesIO(jpeg)), 0, 0, width=_PAGE_W, height=_PAGE_H)

    def finish(self) -> tuple[bytes, int]:
        """Close the document; return its bytes and page count."""
        self._footer()
        self.c.showPage()
        self.c.save()
        return self._buf.getvalue(), self.pages


# ------------------------------------------------------------------- household documents

_KIN = {"之子": "儿子", "之女": "女儿", "之父": "父亲", "之母": "母亲", "之孙子": "孙子",
        "之孙女": "孙女"}


def _members_phrase(hh: _Household) -> str:
    parts = []
    for m in hh.members[1:]:
        label = ("妻子" if m.sex == "女" else "丈夫") if m.relation == "配偶" else _KIN[m.relation]
        parts.append(f"{label}{m.name}（{m.age}岁，{_health_text(m)}）")
    return "、".join(parts) if parts else "仅本人一人生活"


def _health_text(m: _Member) -> str:
    if m.disability:
        return m.disability
    if m.disease:
        return f"患{m.disease}"
    return m.schooling + "在读" if m.schooling and m.age >= 6 else "健康"


def _cause_sentence(hh: _Household, cause: str) -> str:
    sick = next((m for m in hh.members if m.disease), hh.head)
    disabled = next((m for m in hh.members if m.disability), hh.head)
    student = next((m for m in hh.members if m.schooling in ("高中", "中职", "大学本科", "高职（专科）")),
                   hh.head)
    return {
        "因病": f"{sick.name}患有{sick.disease or '慢性病'}，常年吃药治疗，医疗费用支出大，家庭因病致贫",
        "因残": f"{disabled.name}为{disabled.disability or '肢体残疾'}，丧失部分劳动能力，家庭因残致贫",
        "因学": f"{student.name}在{student.schooling or '高中'}就读，学费和生活费负担重，家庭因学致贫",
        "因灾": f"{hh.identified_year - 1}年遭受冰雹灾害，农作物大面积减产，因灾致贫",
        "缺土地": f"全家仅有山旱地{hh.land_mu}亩，土地贫瘠，收入来源单一",
        "缺水": "所在社人畜饮水困难，耕地无灌溉条件",
        "缺技术": "家庭劳动力缺乏种植养殖技术和务工技能",
        "缺劳力": "家中缺少劳动力，主要劳动力年老体弱",
        "缺资金": "缺少发展生产的资金，无法扩大养殖规模",
        "交通条件落后": "居住在山区，距乡镇较远，交通条件落后，出行困难",
        "自身发展动力不足": "家庭成员发展生产的意愿不强，自身发展动力不足",
    }[cause]


def _house_sentence(hh: _Household) -> str:
    if hh.house == "安全住房":
        return "现住房为砖木结构，基本安全"
    return f"现住房为上世纪建的土坯房，经鉴定为{hh.house}，急需危房改造"


def _pdf_application(hh: _Household, when: dt.datetime) -> tuple[bytes, int]:
    head, v = hh.head, hh.village
    p = _Pdf(f"{head.name}贫困户申请书", head.name, when)
    p.title("贫困户申请书")
    p.line(f"{v.township}人民政府、{v.name}村民委员会：", size=12, after=4)
    p.para(f"我叫{head.name}，{head.sex}，{head.age}岁，公民身份号码{head.id_number}，"
           f"系{v.address}村民。全家共有{len(hh.members)}口人，{_members_phrase(hh)}。")
    p.para("；".join(_cause_sentence(hh, c) for c in hh.causes) + f"。{_house_sentence(hh)}。"
           f"{hh.identified_year - 1}年家庭年人均纯收入仅{hh.income_before}元，生活十分困难。")
    if hh.attribute != "一般贫困户":
        p.para(f"本户已享受{'农村低保' if hh.attribute == '低保贫困户' else '特困人员供养'}政策。")
    p.para("为此，本人自愿申请纳入建档立卡贫困户，恳请村民委员会和乡镇人民政府予以评议审核。"
           "本人保证以上情况真实，如有虚假，愿承担相应责任。")
    p.para("此致")
    p.line("敬礼！", after=24)
    p.line(f"申请人：{head.name}（按手印）", align="right")
    p.line(_cn_date(when), align="right")
    return p.finish()


def _pdf_survey(hh: _Household, when: dt.datetime) -> tuple[bytes, int]:
    head, v = hh.head, hh.village
    p = _Pdf(f"{head.name}户入户调查表", v.township + "人民政府", when)
    p.title("建档立卡贫困户入户调查表", size=16, after=8)
    p.line(f"{_county().name}{v.township}{v.name}        调查日期：{_cn_date(when)}", size=10)
    p.table([
        ("户主姓名", head.name, "公民身份号码", head.id_number),
        ("家庭人口", f"{len(hh.members)}人", "联系电话", hh.phone),
        ("开户银行", hh.bank, "银行账号", hh.account),
        ("贫困户属性", hh.attribute, "致贫原因", hh.causes_text),
        ("年人均纯收入", f"{hh.income_before}元", "住房状况", hh.house),
        ("耕地面积", f"{hh.land_mu}亩", "饮水安全", "否" if "缺水" in hh.causes else "是"),
    ], (0.17, 0.30, 0.18, 0.35))
    p.line("家庭成员情况", size=12, after=4)
    rows = [("序号", "姓名", "与户主关系", "性别", "公民身份号码", "年龄", "健康状况", "残疾类别",
             "在校生", "劳动能力")]
    for n, m in enumerate(hh.members, 1):
        rows.append((str(n), m.name, m.relation, m.sex, m.id_number, str(m.age), m.health,
                     m.disability or "无", m.schooling or "否", m.labour))
    p.table(rows, (0.05, 0.09, 0.09, 0.05, 0.21, 0.06, 0.12, 0.1, 0.1, 0.13), size=8)
    _survey_income(p, hh)
    p.line(f"调查人：{hh.surveyor}        户主签字：{head.name}        村委会（盖章）", size=11)
    return p.finish()


def _survey_income(p: _Pdf, hh: _Household) -> None:
    n = len(hh.members)
    total = hh.income_before * n
    transfer = 3000 if hh.attribute != "一般贫困户" else 600
    p.line("家庭收入情况（上年度，元）", size=12, after=4)
    p.table([
        ("工资性收入", str(max(0, total - transfer - 800)), "生产经营性收入", "1200"),
        ("转移性收入（低保金、养老金、生态补偿）", str(transfer), "生产经营支出", "400"),
        ("家庭纯收入", str(total), "年人均纯收入", str(hh.income_before)),
    ], (0.3, 0.2, 0.3, 0.2))


def _pdf_notices(hh: _Household, when: dt.datetime) -> tuple[bytes, int]:
    head, v = hh.head, hh.village
    p = _Pdf(f"{v.name}建档立卡贫困户两公示一公告", v.name + "村民委员会", when)
    row = [("户主姓名", "家庭人口", "贫困户属性", "致贫原因"),
           (head.name, f"{len(hh.members)}人", hh.attribute, hh.causes_text)]
    widths = (0.25, 0.2, 0.25, 0.3)
    review = hh.dates["review"]
    p.title(f"{v.name}建档立卡贫困户评议结果公示（第一次公示）", size=14)
    p.para(f"根据精准扶贫工作要求，经农户申请、入户调查、村民代表大会于{_cn_date(review)}民主评议，"
           "拟将以下农户识别为建档立卡贫困户，现予公示，公示期7天。如有异议，请向村民委员会或驻村工作队反映。")
    p.table(row, widths)
    p.line(f"{v.name}村民委员会    {_cn_date(review + dt.timedelta(days=1))}", align="right", after=18)
    p.title(f"{v.township}人民政府审核结果公示（第二次公示）", size=14)
    p.para("经乡镇人民政府审核，以下农户符合建档立卡贫困户识别标准，现在行政村内公示7天。")
    p.table(row, widths)
    p.line(f"{v.township}人民政府    {_cn_date(when - dt.timedelta(days=5))}", align="right", after=18)
    p.title(f"{_county().short}扶贫开发局建档立卡贫困户审批结果公告", size=14)
    p.para(f"经县扶贫开发领导小组审定，{v.name}{head.name}户纳入{hh.identified_year}年度建档立卡贫困户，"
           "录入全国扶贫开发信息系统，现予以公告。")
    p.table(row, widths)
    p.line(f"{_county().name}扶贫开发局    {_cn_date(when)}", align="right")
    return p.finish()


def _pdf_handbook(hh: _Household, when: dt.datetime) -> tuple[bytes, int]:
    head, v = hh.head, hh.village
    p = _Pdf(f"{head.name}户扶贫手册", _county().name + "扶贫开发局", when)
    p.title("扶 贫 手 册", size=22, after=6)
    p.line("（建档立卡贫困户）", size=12, align="center", after=14)
    p.table([
        ("户主姓名", head.name, "家庭住址", v.address),
        ("识别年度", f"{hh.identified_year}年", "贫困户属性", hh.attribute),
        ("致贫原因", hh.causes_text, "家庭人口", f"{len(hh.members)}人"),
        ("帮扶责任人", hh.helper, "帮扶单位", hh.helper_unit),
        ("联系电话", hh.helper_phone, "开户银行", hh.bank),
    ], (0.16, 0.30, 0.16, 0.38))
    p.line("帮扶措施", size=13, after=4)
    for n, measure in enumerate(hh.measures, 1):
        p.para(f"{n}．{measure}。", size=11, indent=False)
    p.line("收入情况台账", size=13, after=4)
    rows = [("年度", "年人均纯收入（元）", "主要收入来源", "是否达到脱贫标准")]
    years = list(range(hh.identified_year, hh.exit_year + 1))
    for i, year in enumerate(years):
        step = i / (len(years) - 1) if len(years) > 1 else 1
        income = hh.income_before + int((hh.income_after - hh.income_before) * step)
        done = "是" if year == hh.exit_year else "否"
        rows.append((str(year), str(income), "务工、养殖、转移性收入", done))
    p.table(rows, (0.15, 0.25, 0.4, 0.2))
    p.line("帮扶责任人走访记录", size=13, after=4)
    p.para(f"{_cn_date(when)}，帮扶责任人{hh.helper}入户走访，宣讲精准扶贫政策，"
           f"核实家庭人口和收入情况，了解“两不愁三保障”落实情况，帮助制定帮扶计划。", size=11)
    p.line(f"户主签字：{head.name}        帮扶责任人签字：{hh.helper}", size=11, align="right")
    return p.finish()


def _pdf_exit(hh: _Household, when: dt.datetime) -> tuple[bytes, int]:
    head, v = hh.head, hh.village
    p = _Pdf(f"{head.name}户脱贫确认书", v.name + "村民委员会", when)
    p.title("贫困户脱贫确认书")
    p.para(f"{v.name}{head.name}户，家庭人口{len(hh.members)}人，公民身份号码{head.id_number}，"
           f"于{hh.identified_year}年识别为建档立卡贫困户（{hh.attribute}），致贫原因为{hh.causes_text}。")
    p.para(f"经入户核实，该户{hh.exit_year}年家庭年人均纯收入{hh.income_after}元，高于当年国家扶贫标准；"
           "不愁吃、不愁穿，义务教育、基本医疗、住房安全有保障，饮水安全有保障，达到脱贫标准。"
           "经村民代表大会民主评议、村内公示无异议，乡镇人民政府审核、县扶贫开发领导小组审定，"
           f"同意该户于{hh.exit_year}年度脱贫退出。脱贫后继续享受相关扶持政策。")
    p.para(f"脱贫年度：{hh.exit_year}年", indent=False)
    p.table([("户主签字", head.name, "帮扶责任人签字", hh.helper),
             ("村党支部书记签字", "", "驻村第一书记签字", ""),
             ("村民委员会（盖章）", "", f"{v.township}人民政府（盖章）", "")],
            (0.22, 0.28, 0.22, 0.28), size=11)
    p.line(_cn_date(when), align="right")
    return p.finish()


# ------------------------------------------------------------------- county and village documents

@dataclass(frozen=True)
class _DocSpec:
    year: int
    retention: str
    category: str
    numbered: bool
    title: str
    kind: str
    secrecy: str = "公开"


_COUNTY_DOCS = (
    _DocSpec(2016, "Y", "01", True, "关于印发《{county}2016年精准扶贫精准脱贫工作实施方案》的通知", "plan"),
    _DocSpec(2016, "Y", "01", True, "{county}脱贫攻坚领导小组2016年第一次会议纪要", "minutes"),
    _DocSpec(2016, "Y", "03", True, "关于印发《{county}“十三五”易地扶贫搬迁实施方案》的通知", "relocation"),
    _DocSpec(2016, "Y", "01", False, "{county}2016年度精准扶贫工作总结", "summary"),
    _DocSpec(2016, "D10", "01", False, "{county}2016年第三季度精准扶贫工作进展情况报告", "progress"),
    _DocSpec(2017, "D30", "01", True, "转发省扶贫开发局关于做好2017年度建档立卡动态调整工作的通知", "forward"),
    _DocSpec(2017, "D30", "03", True, "关于下达2017年农村危房改造补助资金的通知", "funds"),
    _DocSpec(2018, "D10", "03", False, "2018年贫困村致富带头人培训班签到表", "signin"),
    _DocSpec(2019, "Y", "01", False, "{county}2019年度脱贫攻坚统计数据报告", "stats"),
    _DocSpec(2020, "Y", "01", True, "{county}脱贫攻坚工作总结（2016—2020年）", "summary"),
)

_VILLAGE_DOCS = (
    _DocSpec(0, "Y", "01", False, "{village}脱贫攻坚工作计划", "village-plan"),
    _DocSpec(0, "Y", "03", False, "{village}易地扶贫搬迁安置户名单", "village-list", "限制"),
    _DocSpec(0, "D30", "03", False, "{village}农村危房改造户花名册", "village-list", "限制"),
)

_POLICY_PARAS = (
    "坚持精准扶贫、精准脱贫基本方略，做到扶持对象精准、项目安排精准、资金使用精准、措施到户精准、"
    "因村派人精准、脱贫成效精准。",
    "对因病致贫、因残致贫的贫困户，落实基本医疗保险、大病保险、医疗救助政策，实行先诊疗后付费；"
    "对因学致贫的家庭，落实教育资助政策，确保不让一个孩子因贫失学。",
    "对居住在生存条件恶劣地区的贫困人口实施易地扶贫搬迁，做到搬得出、稳得住、能致富；"
    "对住房不安全的贫困户实施农村危房改造。",
    "对无劳动能力的贫困人口实行社会保障兜底，将符合条件的贫困户全部纳入农村低保，"
    "做好农村低保制度与扶贫开发政策有效衔接。",
    "各乡镇要严格执行建档立卡“两公示一公告”程序，做好动态调整，确保应纳尽纳、应退尽退，"
    "扶贫档案做到一户一档、一村一册。",
    "发展牛羊养殖、青稞种植、光伏扶贫和乡村旅游等特色产业，推行扶贫小额信贷，带动贫困户稳定增收。",
)


def _general_body(p: _Pdf, spec: _DocSpec, rng: random.Random, villages: list[_Village]) -> None:
    if spec.kind in ("signin", "stats"):
        _general_table(p, spec, rng, villages)
        return
    paras = rng.sample(_POLICY_PARAS, k=rng.randint(3, 5))
    if spec.kind == "minutes":
        p.para("会议听取了各乡镇建档立卡贫困户精准识别工作汇报，研究了脱贫攻坚重点任务，议定事项如下：")
    for n, text in enumerate(paras, 1):
        p.para(f"{'一二三四五六'[n - 1]}、{text}")
    if spec.kind in ("progress", "summary"):
        p.para(f"截至{spec.year}年底，全县累计减少贫困人口{rng.randint(3000, 9000)}人，"
               f"完成易地扶贫搬迁{rng.randint(300, 1500)}户、危房改造{rng.randint(500, 2000)}户，"
               f"贫困发生率下降到{rng.randint(1, 9)}.{rng.randint(0, 9)}%。")


def _general_table(p: _Pdf, spec: _DocSpec, rng: random.Random, villages: list[_Village]) -> None:
    if spec.kind == "signin":
        rows = [("序号", "姓名", "所在村", "联系电话", "签到")]
        for n in range(1, rng.randint(12, 25)):
            name = _person_name(rng, rng.choice(("男", "女")), rng.choice(_SURNAMES))
            phone = f"1399702{rng.randrange(10000):04d}"
            rows.append((str(n), name, rng.choice(villages).name, phone, name))
        p.table(rows, (0.1, 0.2, 0.25, 0.25, 0.2))
        return
    rows = [("指标", "单位", "数值")]
    for label, unit in (("建档立卡贫困户", "户"), ("建档立卡贫困人口", "人"), ("当年脱贫人口", "人"),
                        ("贫困村退出", "个"), ("因病致贫户", "户"), ("低保贫困户", "户")):
        rows.append((label, unit, str(rng.randint(50, 9000))))
    p.table(rows, (0.5, 0.2, 0.3))


def _village_body(p: _Pdf, spec: _DocSpec, rng: random.Random, village: _Village,
                  households: list[_Household]) -> None:
    if spec.kind == "village-plan":
        p.para(f"{village.name}共有建档立卡贫困户{len(households)}户。本村脱贫攻坚工作以“两不愁三保障”为目标，"
               "因户施策：因病致贫户落实医疗救助，因学致贫户落实教育资助，无劳动能力的纳入低保兜底，"
               "住房不安全的实施危房改造，生存条件差的实施易地扶贫搬迁。")
        for text in rng.sample(_POLICY_PARAS, k=2):
            p.para(text)
        return
    keyword = "易地扶贫搬迁" if "搬迁" in spec.title else "危房改造"
    listed = [hh for hh in households if any(keyword in m for m in hh.measures)] or households
    rows = [("序号", "户主姓名", "家庭人口", "贫困户属性", "住房状况")]
    for n, hh in enumerate(listed, 1):
        rows.append((str(n), hh.head.name, str(len(hh.members)), hh.attribute, hh.house))
    p.table(rows, (0.1, 0.25, 0.15, 0.25, 0.25))


def _pdf_general(spec: _DocSpec, meta: dict, when: dt.datetime, seed: int, villages: list[_Village],
                 village: _Village | None, households: list[_Household]) -> tuple[bytes, int]:
    rng = random.Random(seed)
    p = _Pdf(meta["题名"], meta["责任者"], when)
    p.title(meta["责任者"] + ("文件" if spec.numbered else ""), size=20, after=6)
    if meta["文号"]:
        p.line(meta["文号"], size=12, align="center", after=10)
    p.title(meta["题名"], size=15, after=10)
    if village is None:
        _general_body(p, spec, rng, villages)
    else:
        _village_body(p, spec, rng, village, households)
    p.line(meta["责任者"], align="right", after=4)
    p.line(_cn_date(when), align="right")
    return p.finish()


# ------------------------------------------------------------------- images

@functools.cache
def _stamp_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


@functools.cache
def _photo_base(variant: int) -> Image.Image:
    """A drawn rural scene with grain: variant 1 is a new house, the others old houses."""
    rng = random.Random(9000 + variant)
    w, h = (560, 760) if variant == 3 else (720, 540)
    img = Image.new("RGB", (w, h))
    d = ImageDraw.Draw(img)
    horizon = int(h * 0.45)
    for y in range(horizon):
        t = y / horizon
        d.line([(0, y), (w, y)], fill=(int(90 + 100 * t), int(150 + 70 * t), int(220 + 25 * t)))
    _draw_mountains(d, rng, w, horizon)
    d.rectangle([0, horizon, w, h], fill=(150, 125, 80) if variant != 1 else (120, 140, 80))
    _draw_house(d, rng, w, h, horizon, new=variant == 1)
    noise = Image.frombytes("L", (w, h), rng.randbytes(w * h))
    return Image.blend(img, Image.merge("RGB", (noise, noise, noise)), 0.07)


def _draw_mountains(d: ImageDraw.ImageDraw, rng: random.Random, w: int, horizon: int) -> None:
    for shade in (0, 1):
        pts = [(0, horizon)]
        x = 0
        while x < w:
            x += rng.randint(60, 160)
            pts.append((x, horizon - rng.randint(40, 150) // (shade + 1)))
        pts.append((w, horizon))
        d.polygon(pts, fill=(110 - 30 * shade, 120 - 20 * shade, 100 - 20 * shade))


def _draw_house(d: ImageDraw.ImageDraw, rng: random.Random, w: int, h: int, horizon: int,
                new: bool) -> None:
    x0, x1 = int(w * 0.2), int(w * 0.8)
    top, base = horizon - int(h * 0.05), int(h * 0.82)
    wall = (225, 225, 220) if new else (170, 135, 95)
    d.rectangle([x0, top, x1, base], fill=wall, outline=(60, 50, 40))
    roof = (170, 40, 35) if new else (90, 80, 70)
    d.polygon([(x0 - 20, top), ((x0 + x1) // 2, top - int(h * 0.15)), (x1 + 20, top)], fill=roof)
    door_w = (x1 - x0) // 6
    mid = (x0 + x1) // 2
    d.rectangle([mid - door_w // 2, base - int(h * 0.22), mid + door_w // 2, base],
                fill=(110, 60, 30))
    for wx in (x0 + door_w, x1 - 2 * door_w):
        d.rectangle([wx, top + 30, wx + door_w, top + 30 + door_w], fill=(80, 120, 160),
                    outline=(40, 40, 40), width=3)
    if not new:
        for _ in range(6):
            cx, cy = rng.randint(x0, x1), rng.randint(top, base)
            end = (cx + rng.randint(-30, 30), cy + rng.randint(10, 40))
            d.line([(cx, cy), end], fill=(60, 45, 30), width=2)


def _photo_jpeg(seed: int, variant: int, when: dt.datetime) -> bytes:
    """A photo from a cached base with a seed-dependent crop, exposure and date stamp."""
    rng = random.Random(seed)
    base = _photo_base(variant)
    w, h = (480, 640) if variant == 3 else (640, 480)
    x, y = rng.randint(0, base.width - w), rng.randint(0, base.height - h)
    img = base.crop((x, y, x + w, y + h))
    gain = rng.uniform(0.88, 1.12)
    img = img.point([min(255, int(i * gain)) for i in range(256)] * 3)
    d = ImageDraw.Draw(img)
    d.text((w - 150, h - 34), when.strftime("%Y/%m/%d"), fill=(255, 150, 30), font=_stamp_font(20))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=rng.randint(78, 88))
    return buf.getvalue()


# Scans: no CJK raster font is shipped with Pillow, so Chinese characters are drawn as
# stroke-built glyph shapes (stable per character); digits and Latin letters use Pillow's font.

_SCAN_DPI = 200
_SCAN_SIZE = (1654, 2339)  # A4 at 200 dpi


@functools.lru_cache(maxsize=8192)
def _glyph(ch: str, size: int) -> Image.Image:
    """An 'L' mask of one character: real glyph for ASCII, stroke-built shape for CJK."""
    im = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(im)
    if ch.isascii():
        d.text((size * 0.15, 0), ch, fill=255, font=_stamp_font(int(size * 0.9)))
        return im
    if ch.isspace() or ch in "，。、；：（）“”《》！？":
        if not ch.isspace():
            d.ellipse([size * 0.2, size * 0.7, size * 0.35, size * 0.85], fill=255)
        return im
    _draw_strokes(d, random.Random(ord(ch)), size)
    return im


def _draw_strokes(d: ImageDraw.ImageDraw, rng: random.Random, size: int) -> None:
    pen = max(2, size // 10)
    lo, hi = size * 0.12, size * 0.88
    layout = rng.choice(("one", "lr", "tb"))
    boxes = {"one": [(lo, lo, hi, hi)],
             "lr": [(lo, lo, size * 0.42, hi), (size * 0.48, lo, hi, hi)],
             "tb": [(lo, lo, hi, size * 0.45), (lo, size * 0.52, hi, hi)]}[layout]
    for x0, y0, x1, y1 in boxes:
        for kind in "hv" + "".join(rng.choice("hhvpnkd") for _ in range(rng.randint(1, 3))):
            fx, fy = rng.uniform(0, 1), rng.uniform(0, 1)
            px, py = x0 + fx * (x1 - x0), y0 + fy * (y1 - y0)
            if kind == "h":
                d.line([(x0, py), (x1, py)], fill=255, width=pen)
            elif kind == "v":
                d.line([(px, y0), (px, y1)], fill=255, width=pen)
            elif kind == "p":
                d.line([(x1 - (x1 - x0) * 0.2, y0), (x0, y1)], fill=255, width=pen)
            elif kind == "n":
                d.line([(px, py), (x1, y1)], fill=255, width=pen)
            elif kind == "d":
                d.line([(px, py), (px + size * 0.08, py + size * 0.1)], fill=255, width=pen + 1)
            else:
                d.rectangle([x0 + (x1 - x0) * 0.2, y0 + (y1 - y0) * 0.2, x1 - (x1 - x0) * 0.2,
                             y1 - (y1 - y0) * 0.2], outline=255, width=pen)


@functools.cache
def _scan_paper() -> Image.Image:
    rng = random.Random(7100)
    w, h = _SCAN_SIZE
    paper = Image.new("RGB", (w, h), (247, 245, 238))
    noise = Image.frombytes("L", (w, h), rng.randbytes(w * h))
    return Image.blend(paper, Image.merge("RGB", (noise, noise, noise)), 0.035)


def _scan_text(img: Image.Image, x: int, y: int, text: str, size: int, ink: tuple) -> None:
    ink_layer = Image.new("RGB", (size, size), ink)
    for ch in text:
        img.paste(ink_layer, (x, y), _glyph(ch, size))
        x += size if not ch.isascii() else int(size * 0.6)


def _scan_seal(img: Image.Image, cx: int, cy: int) -> None:
    d = ImageDraw.Draw(img)
    red = (205, 40, 45)
    d.ellipse([cx - 150, cy - 150, cx + 150, cy + 150], outline=red, width=9)
    star = []
    for k, f in zip(range(10), [1.0, 0.4] * 5):
        angle = math.pi / 2 + k * math.pi / 5
        star.append((cx + 50 * f * math.cos(angle), cy - 50 * f * math.sin(angle)))
    d.polygon(star, fill=red)


def _scan_review_jpeg(hh: _Household, when: dt.datetime, seed: int) -> bytes:
    """A scanned 民主评议记录 page: colour, 200 dpi, handwritten-style values and a red seal."""
    rng = random.Random(seed)
    img = _scan_paper().copy()
    ink, pen = (35, 35, 40), (30, 45, 120)
    v, head = hh.village, hh.head
    _scan_text(img, 430, 180, "贫困户民主评议会议记录", 72, ink)
    lines = [
        (f"时间：{when:%Y}年{when.month}月{when.day}日", pen),
        (f"地点：{v.name}村委会会议室", ink),
        (f"主持人：{hh.surveyor}    记录人：{hh.helper}", pen),
        (f"应到村民代表{rng.randint(25, 40)}人，实到{rng.randint(20, 25)}人", pen),
        (f"评议对象：{head.name}户，家庭人口{len(hh.members)}人", pen),
        (f"致贫原因：{hh.causes_text}", pen),
        (f"表决结果：同意{rng.randint(18, 20)}人，不同意0人，弃权{rng.randint(0, 2)}人", pen),
        ("评议意见：同意纳入建档立卡贫困户", pen),
        ("参会代表签字：", ink),
    ]
    y = 420
    draw = ImageDraw.Draw(img)
    for text, colour in lines:
        _scan_text(img, 170, y, text, 46, colour)
        draw.line([(160, y + 62), (1500, y + 62)], fill=(150, 150, 150), width=2)
        y += 110
    for _ in range(rng.randint(8, 14)):
        _scan_text(img, rng.randint(170, 1300), y + rng.randint(0, 200),
                   _person_name(rng, "男", rng.choice(_SURNAMES)), 40, pen)
    _scan_seal(img, 1250 + rng.randint(-40, 40), 2000 + rng.randint(-40, 40))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=70, dpi=(_SCAN_DPI, _SCAN_DPI))
    return buf.getvalue()


def _pdf_scan(hh: _Household, when: dt.datetime, seed: int) -> tuple[bytes, int]:
    """An image-only PDF (no text layer) wrapping the scanned page."""
    p = _Pdf("扫描件-评议记录", hh.village.name + "村民委员会", when, footer=False)
    p.image_page(_scan_review_jpeg(hh, when, seed))
    return p.finish()


# ------------------------------------------------------------------- Office packages

def _zip_time(when: dt.datetime) -> tuple[int, int, int, int, int, int]:
    return (when.year, when.month, when.day, when.hour, when.minute, (when.second // 2) * 2)


def _fixed_zip(data: bytes, when: dt.datetime,
               edit: Callable[[str, bytes], bytes] | None = None,
               extra: Sequence[tuple[str, bytes]] = ()) -> bytes:
    """Rewrite a ZIP package with fixed member dates and attributes (optionally editing parts)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        members = [(i.filename, src.read(i.filename)) for i in src.infolist()] + list(extra)
        for name, blob in members:
            info = zipfile.ZipInfo(name, date_time=_zip_time(when))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 0
            info.external_attr = 0
            dst.writestr(info, edit(name, blob) if edit else blob)
    return out.getvalue()


def _plan_docx(hh: _Household, when: dt.datetime) -> bytes:
    """帮扶计划 as DOCX (python-docx), with fixed core properties and ZIP dates."""
    d = docx.Document()
    props = d.core_properties
    props.author = props.last_modified_by = hh.helper
    props.title = f"{hh.head.name}户帮扶计划"
    props.created = props.modified = when
    props.revision = 1
    props.comments = ""
    d.add_heading(f"{hh.head.name}户帮扶计划（{hh.identified_year}—{hh.exit_year}年）", level=1)
    d.add_paragraph(f"帮扶对象：{hh.village.address} {hh.head.name}户，家庭人口{len(hh.members)}人，"
                    f"{hh.attribute}，致贫原因：{hh.causes_text}。")
    d.add_paragraph(f"帮扶责任人：{hh.helper}（{hh.helper_unit}），联系电话：{hh.helper_phone}。")
    table = d.add_table(rows=1, cols=3)
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, ("年度", "帮扶措施", "预期成效")):
        cell.text = text
    years = range(hh.identified_year, hh.exit_year + 1)
    for i, measure in enumerate(hh.measures):
        row = table.add_row().cells
        row[0].text = str(list(years)[min(i, len(years) - 1)])
        row[1].text = measure
        row[2].text = "稳定增收，实现脱贫" if i == len(hh.measures) - 1 else "按期落实"
    d.add_paragraph(f"户主签字：{hh.head.name}    帮扶责任人签字：{hh.helper}    {_cn_date(when)}")
    buf = io.BytesIO()
    d.save(buf)
    return _fixed_zip(buf.getvalue(), when)


_VBA_SOURCE = (b'Attribute VB_Name = "ThisDocument"\r\nSub AutoOpen()\r\n'
               b'    MsgBox "\xb0\xef\xb7\xf6\xbc\xc6\xbb\xae"\r\nEnd Sub\r\n')


def _vba_project() -> bytes:
    """A vbaProject.bin stand-in: OLE compound-file signature and VBA source text."""
    header = bytes.fromhex("D0CF11E0A1B11AE1") + bytes(16) + b"\x3e\x00\x03\x00\xfe\xff\x09\x00"
    return (header + bytes(512 - len(header)) + _VBA_SOURCE).ljust(1536, b"\x00")


def _to_docm(docx_bytes: bytes, when: dt.datetime) -> bytes:
    """Turn a DOCX into a macro-enabled DOCM (vbaProject.bin part, macroEnabled content type)."""
    def edit(name: str, blob: bytes) -> bytes:
        if name == "[Content_Types].xml":
            text = blob.decode("utf-8").replace(
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
                "application/vnd.ms-word.document.macroEnabled.main+xml")
            vba = '<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>'
            return text.replace("<Default ", vba + "<Default ", 1).encode("utf-8")
        if name == "word/_rels/document.xml.rels":
            rel = ('<Relationship Id="rIdVba1" Type="http://schemas.microsoft.com/office/2006/'
                   'relationships/vbaProject" Target="vbaProject.bin"/>')
            text = blob.decode("utf-8").replace("</Relationships>", rel + "</Relationships>")
            return text.encode("utf-8")
        return blob
    return _fixed_zip(docx_bytes, when, edit, extra=[("word/vbaProject.bin", _vba_project())])


def _encrypt_pdf(data: bytes, password: str) -> bytes:
    """Password-protect a PDF with pypdf (RC4-128, fixed file identifier, so deterministic)."""
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    file_id = ArrayObject([ByteStringObject(hashlib.md5(data).digest())] * 2)
    writer._ID = file_id
    writer.encrypt(password, algorithm="RC4-128")
    writer._ID = file_id
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


# ------------------------------------------------------------------- transfer plan

@dataclass
class _Item:
    path: str
    fields: dict
    render: Callable[[], tuple[bytes, int]]
    when: dt.datetime
    household: _Household | None = None
    bucket: tuple | None = None
    in_sheet: bool = True
    on_disk: bool = True
    pages: int = 0
    seq: int = 0


@dataclass
class _Plan:
    items: list[_Item]
    households: list[_Household]
    fonds: str
    extras: list[tuple[str, bytes]] = field(default_factory=list)
    sheet_encoding: str | None = None
    touched: set[int] = field(default_factory=set)
    applied: list[tuple[str, str]] = field(default_factory=list)


def _household_fields(hh: _Household, fonds: str, item_no: int, title: str, category: str,
                      retention: str, when: dt.datetime, creator: str, note: str = "") -> dict:
    return {
        "档号": f"{hh.volume_code}-{item_no:03d}", "文号": "", "责任者": creator, "题名": title,
        "日期": when.strftime("%Y%m%d"), "密级": "限制", "备注": note,
        "保管期限": _RETENTION[retention], "精准扶贫类别": category, "全宗号": fonds,
        "年度": str(when.year), "户主姓名": hh.head.name, "户主公民身份号码": hh.head.id_number,
        "行政村代码": hh.village.code, "贫困户属性": hh.attribute, "致贫原因": hh.causes_text,
        "家庭人口数": len(hh.members), "识别年度": hh.identified_year, "脱贫年度": hh.exit_year,
    }


class _Doc(NamedTuple):
    short: str          # file-name title
    ext: str
    title: str          # 题名 in the sheet
    category: str       # 精准扶贫类别
    retention: str      # Y / D30 / D10
    when: dt.datetime
    creator: str        # 责任者
    note: str           # 备注
    render: Callable[[], tuple[bytes, int]]


def _household_docs(rng: random.Random, hh: _Household) -> list[_Doc]:
    """The documents of one household volume, in filing order."""
    d, head, v = hh.dates, hh.head.name, hh.village
    s = [rng.getrandbits(32) for _ in range(3)]
    docs = [
        _Doc("贫困户申请书", "pdf", f"{head}贫困户申请书", "02", "Y", d["apply"], head, "",
         lambda: _pdf_application(hh, d["apply"])),
        _Doc("入户调查表", "pdf", f"{head}户建档立卡入户调查表", "02", "Y", d["survey"], v.township + "人民政府", "",
         lambda: _pdf_survey(hh, d["survey"])),
    ]
    if hh.has_scan:
        docs.append(_Doc("扫描件-评议记录", "pdf", f"{v.name}{head}户民主评议会议记录", "02", "Y", d["review"],
                     v.name + "村民委员会", "纸质原件扫描", lambda: _pdf_scan(hh, d["review"], s[0])))
    docs += [
        _Doc("两公示一公告", "pdf", f"{head}户建档立卡两公示一公告", "02", "Y", d["notice"],
         _county().name + "扶贫开发局", "", lambda: _pdf_notices(hh, d["notice"])),
        _Doc("扶贫手册", "pdf", f"{head}户扶贫手册", "02", "Y", d["handbook"], _county().name + "扶贫开发局", "",
         lambda: _pdf_handbook(hh, d["handbook"])),
    ]
    if hh.has_plan:
        docs.append(_Doc("帮扶计划", "docx", f"{head}户帮扶计划", "03", "D30", d["plan"], hh.helper, "",
                     lambda: (_plan_docx(hh, d["plan"]), 1)))
    docs.append(_Doc("脱贫确认书", "pdf", f"{head}户脱贫确认书", "04", "Y", d["exit"], v.name + "村民委员会", "",
                 lambda: _pdf_exit(hh, d["exit"])))
    docs.append(_Doc("入户照片", "jpg", f"{head}户入户走访照片", "05", "Y", d["photo"], hh.helper, "数码照片",
                 lambda: (_photo_jpeg(s[1], (0, 2, 3)[s[1] % 3], d["photo"]), 1)))
    if any(k in m for m in hh.measures for k in ("危房改造", "易地扶贫搬迁")):
        docs.append(_Doc("新居照片", "jpg", f"{head}户危房改造（搬迁）后新居照片", "05", "Y", d["photo_new"],
                     hh.helper, "数码照片", lambda: (_photo_jpeg(s[2], 1, d["photo_new"]), 1)))
    return docs


def _household_items(rng: random.Random, hh: _Household, fonds: str) -> list[_Item]:
    items = []
    for n, doc in enumerate(_household_docs(rng, hh), 1):
        fields = _household_fields(hh, fonds, n, doc.title, doc.category, doc.retention, doc.when,
                                   doc.creator, doc.note)
        items.append(_Item(f"{hh.volume_code}/{n:03d}-{doc.short}.{doc.ext}", fields, doc.render,
                           doc.when, hh))
    return items


def _general_specs(rng: random.Random, villages: list[_Village],
                   by_village: dict[str, list[_Household]]) -> list[tuple]:
    specs: list[tuple] = [(spec, None, spec.year) for spec in _COUNTY_DOCS]
    for i, village in enumerate(villages):
        spec = _VILLAGE_DOCS[i % len(_VILLAGE_DOCS)]
        specs.append((spec, village, rng.randint(2016, 2019)))
    out = []
    for spec, village, year in specs:
        when = dt.datetime(year, rng.randint(1, 12), rng.randint(1, 28), 10, 0)
        households = by_village.get(village.code, []) if village else []
        out.append((spec, village, when, rng.getrandbits(32), households))
    order = {"Y": 0, "D30": 1, "D10": 2}
    return sorted(out, key=lambda t: (t[2].year, order[t[0].retention], t[2]))


def _general_items(rng: random.Random, villages: list[_Village], households: list[_Household],
                   fonds: str) -> list[_Item]:
    by_village: dict[str, list[_Household]] = {}
    for hh in households:
        by_village.setdefault(hh.village.code, []).append(hh)
    counters: dict[tuple, int] = {}
    doc_numbers: dict[int, int] = {}
    items = []
    for spec, village, when, seed, hhs in _general_specs(rng, villages, by_village):
        bucket = (when.year, spec.retention, "FPB")
        counters[bucket] = counters.get(bucket, 0) + 1
        code = f"{fonds}-WS·{when.year}-{spec.retention}-FPB-{counters[bucket]:04d}"
        doc_numbers[when.year] = doc_numbers.get(when.year, rng.randint(3, 9)) + rng.randint(1, 6)
        meta = _general_fields(spec, village, when, code, fonds, doc_numbers[when.year])
        render = functools.partial(_pdf_general, spec, dict(meta), when, seed, villages, village,
                                   hhs)
        items.append(_Item(f"{GENERAL_DIR}/{code}.pdf", meta, render, when, bucket=bucket))
    return items


def _general_fields(spec: _DocSpec, village: _Village | None, when: dt.datetime, code: str,
                    fonds: str, doc_no: int) -> dict:
    creator = f"{village.name}村民委员会" if village else f"{_county().name}扶贫开发局"
    title = spec.title.format(county=_county().name, village=village.name if village else "")
    return {
        "档号": code, "文号": f"大扶〔{when.year}〕{doc_no}号" if spec.numbered else "",
        "责任者": creator, "题名": title, "日期": when.strftime("%Y%m%d"), "密级": spec.secrecy,
        "备注": "", "保管期限": _RETENTION[spec.retention], "精准扶贫类别": spec.category,
        "全宗号": fonds, "年度": str(when.year), "户主姓名": "", "户主公民身份号码": "",
        "行政村代码": village.code if village else "", "贫困户属性": "", "致贫原因": "",
        "家庭人口数": "", "识别年度": "", "脱贫年度": "",
    }


# ------------------------------------------------------------------- formats to normalise

# Files in the formats a county office also sends, so that a sample shows normalisation: a
# Word 97 DOC and an Excel 97 XLS (small fixtures under ``sample_files/``, written once with
# LibreOffice from python-docx / openpyxl sources: the binary formats have no maintained
# Python writer, and a committed file is byte-identical by construction), a DOCX, a PDF 1.7
# without PDF/A identification, and a bilevel TIFF scan (CCITT G4, 200 dpi). Their content
# names no county, or the generation's county. They are drawn from their own random stream
# and numbered after the county documents of their year, so every other file and 档号 of a
# sample is what it was without them.
_FIXTURES = Path(__file__).with_name("sample_files")


class _FormatSpec(NamedTuple):
    when: dt.datetime
    retention: str
    category: str
    ext: str
    title: str          # {county} is the generation's county
    creator: str        # {county} as well
    doc_no: str
    secrecy: str
    note: str
    render: str         # name of the render function below


_FORMAT_SPECS = (
    _FormatSpec(dt.datetime(2018, 5, 20, 9, 0), "D30", "01", "doc",
                "青海省扶贫开发局关于进一步加强精准扶贫档案管理工作的通知", "青海省扶贫开发局",
                "青扶贫〔2018〕56号", "公开", "收文（Word 97 文档）", "doc"),
    _FormatSpec(dt.datetime(2018, 7, 12, 15, 0), "Y", "01", "docx",
                "{county}扶贫开发领导小组2018年第二次会议纪要", "{county}扶贫开发领导小组", "",
                "公开", "", "docx"),
    _FormatSpec(dt.datetime(2019, 12, 20, 16, 0), "Y", "01", "xls",
                "各乡镇2019年建档立卡贫困人口动态调整统计表", "{county}扶贫开发局", "", "公开",
                "Excel 97 工作簿", "xls"),
    _FormatSpec(dt.datetime(2020, 6, 8, 10, 0), "Y", "01", "pdf",
                "{county}2020年脱贫攻坚普查工作方案", "{county}扶贫开发局", "", "公开",
                "PDF 1.7，非 PDF/A", "pdf17"),
    _FormatSpec(dt.datetime(2016, 3, 2, 9, 0), "Y", "01", "tif",
                "{county}扶贫开发领导小组成员名单", "{county}扶贫开发领导小组", "", "公开",
                "纸质原件扫描（TIFF）", "tiff"),
)


def _render_doc(spec: _FormatSpec, county: County, rng: random.Random) -> tuple[bytes, int]:
    return (_FIXTURES / "archives-notice.doc").read_bytes(), 1


def _render_xls(spec: _FormatSpec, county: County, rng: random.Random) -> tuple[bytes, int]:
    return (_FIXTURES / "township-stats.xls").read_bytes(), 1


def _render_docx(spec: _FormatSpec, county: County, rng: random.Random) -> tuple[bytes, int]:
    """A 会议纪要 as DOCX (python-docx), fixed properties and ZIP dates."""
    when = spec.when
    title = spec.title.format(county=county.name)
    d = docx.Document()
    props = d.core_properties
    props.author = props.last_modified_by = f"{county.name}扶贫开发局"
    props.title = title
    props.created = props.modified = when
    props.revision = 1
    props.comments = ""
    d.add_heading(title, level=1)
    d.add_paragraph(f"{when.year}年{when.month}月{when.day}日，{county.name}扶贫开发领导小组召开"
                    f"{when.year}年第二次会议，听取各乡镇精准扶贫工作汇报，研究部署下一阶段工作。"
                    "会议议定事项如下：")
    for n, text in enumerate(rng.sample(_POLICY_PARAS, k=3), 1):
        d.add_paragraph(f"{'一二三'[n - 1]}、{text}")
    d.add_paragraph(f"出席：{county.name}扶贫开发领导小组成员{rng.randint(11, 17)}人。")
    d.add_paragraph(f"{county.name}扶贫开发领导小组办公室    {_cn_date(when)}")
    buf = io.BytesIO()
    d.save(buf)
    return _fixed_zip(buf.getvalue(), when), 1


def _render_pdf17(spec: _FormatSpec, county: County, rng: random.Random) -> tuple[bytes, int]:
    """A PDF 1.7 as office software exports it: text layer, no PDF/A identification."""
    title = spec.title.format(county=county.name)
    p = _Pdf(title, f"{county.name}扶贫开发局", spec.when, version=(1, 7))
    p.title(title, size=16, after=10)
    p.para("根据国务院第七次全国人口普查领导小组和国家脱贫攻坚普查领导小组的部署，"
           f"{county.name}开展脱贫攻坚普查工作，全面了解建档立卡户脱贫质量。")
    for n, text in enumerate(rng.sample(_POLICY_PARAS, k=3), 1):
        p.para(f"{'一二三'[n - 1]}、{text}")
    p.line(f"{county.name}扶贫开发局", align="right", after=4)
    p.line(_cn_date(spec.when), align="right")
    return p.finish()


def _render_tiff(spec: _FormatSpec, county: County, rng: random.Random) -> tuple[bytes, int]:
    """A bilevel scan of a typed list (CCITT Group 4, 200 dpi, no date tag)."""
    img = _scan_paper().copy()
    ink = (30, 30, 30)
    _scan_text(img, 300, 180, spec.title.format(county=county.name)[:16], 64, ink)
    y = 400
    roles = ("组长", "副组长", "副组长", "成员", "成员", "成员", "成员", "成员", "成员")
    for role in roles:
        name = _person_name(rng, rng.choice("男男女"), rng.choice(_SURNAMES))
        _scan_text(img, 220, y, f"{role}：{name}", 48, ink)
        y += 120
    _scan_seal(img, 1250, 1900)
    bilevel = img.convert("L").point(lambda v: 255 if v > 150 else 0, mode="1")
    buf = io.BytesIO()
    bilevel.save(buf, "TIFF", compression="group4", dpi=(_SCAN_DPI, _SCAN_DPI))
    return buf.getvalue(), 1


_FORMAT_RENDER = {"doc": _render_doc, "xls": _render_xls, "docx": _render_docx,
                  "pdf17": _render_pdf17, "tiff": _render_tiff}


def _format_items(seed: int, fonds: str, general: list[_Item]) -> list[_Item]:
    """The files to normalise, numbered after the county documents of their year."""
    county = _county()
    used: dict[tuple, int] = {}
    for it in general:
        if it.bucket:
            used[it.bucket] = used.get(it.bucket, 0) + 1
    items = []
    for spec in sorted(_FORMAT_SPECS, key=lambda f: f.when):
        bucket = (spec.when.year, spec.retention, "FPB")
        used[bucket] = used.get(bucket, 0) + 1
        code = f"{fonds}-WS·{spec.when.year}-{spec.retention}-FPB-{used[bucket]:04d}"
        fields = {
            "档号": code, "文号": spec.doc_no, "责任者": spec.creator.format(county=county.name),
            "题名": spec.title.format(county=county.name), "日期": spec.when.strftime("%Y%m%d"),
            "密级": spec.secrecy, "备注": spec.note, "保管期限": _RETENTION[spec.retention],
            "精准扶贫类别": spec.category, "全宗号": fonds, "年度": str(spec.when.year),
            "户主姓名": "", "户主公民身份号码": "", "行政村代码": "", "贫困户属性": "",
            "致贫原因": "", "家庭人口数": "", "识别年度": "", "脱贫年度": "",
        }
        render = functools.partial(_FORMAT_RENDER[spec.render], spec, county,
                                   random.Random(f"{seed}/formats/{spec.render}"))
        items.append(_Item(f"{GENERAL_DIR}/{code}.{spec.ext}", fields, render, spec.when,
                           bucket=bucket))
    return items


# ------------------------------------------------------------------- defects

def _pick(plan: _Plan, rng: random.Random, predicate: Callable[[_Item], bool]) -> _Item:
    pool = [it for it in plan.items if it.in_sheet and id(it) not in plan.touched and predicate(it)]
    if not pool:
        raise ValueError("the sample is too small to apply the requested defects")
    item = rng.choice(pool)
    plan.touched.add(id(item))
    return item


def _where(item: _Item) -> str:
    return f"row 序号 {item.seq} ({item.path})"


def _defect_gap(plan: _Plan, rng: random.Random) -> str:
    buckets: dict[tuple, list[_Item]] = {}
    for it in plan.items:
        if it.bucket:
            buckets.setdefault(it.bucket, []).append(it)
    candidates = [b for b, its in sorted(buckets.items()) if len(its) >= 3]
    if not candidates:
        raise ValueError("gap: no 件号 bucket with three or more items")
    members = buckets[rng.choice(candidates)]
    victim = members[rng.randrange(1, len(members) - 1)]
    plan.items.remove(victim)
    prev_no, next_no = (members[members.index(victim) + k].fields["档号"][-4:] for k in (-1, 1))
    return (f"removed {victim.fields['档号']} ({victim.path}) and its row; "
            f"件号 jumps {prev_no} → {next_no}")


def _append_to_volume(plan: _Plan, hh: _Household, short: str, ext: str, title: str,
                      category: str, retention: str, blob: bytes) -> _Item:
    volume = [it for it in plan.items if it.household is hh]
    last = volume[-1]
    item_no = max(int(it.fields["档号"].rsplit("-", 1)[1]) for it in volume) + 1
    when = last.when + dt.timedelta(days=2)
    fields = _household_fields(hh, plan.fonds, item_no, f"{hh.head.name}户{title}", category,
                               retention, when, hh.helper)
    path = f"{hh.volume_code}/{item_no:03d}-{short}.{ext}"
    item = _Item(path, fields, lambda: (blob, 1), when, hh)
    plan.items.insert(plan.items.index(last) + 1, item)
    plan.touched.add(id(item))
    return item


def _defect_bad_format(plan: _Plan, rng: random.Random) -> str:
    blob = b"Rar!\x1a\x07\x00" + rng.randbytes(rng.randint(3000, 9000))
    hh = rng.choice(plan.households)
    item = _append_to_volume(plan, hh, "农户资料", "rar", "相关资料（压缩包）", "02", "Y", blob)
    return f"added {item.path} (RAR archive, not on the allow-list) with row 档号 {item.fields['档号']}"


def _defect_macro(plan: _Plan, rng: random.Random) -> str:
    hh = rng.choice(plan.households)
    blob = _to_docm(_plan_docx(hh, hh.dates["plan"]), hh.dates["plan"])
    item = _append_to_volume(plan, hh, "帮扶计划", "docm", "帮扶计划（启用宏）", "03", "D30", blob)
    return (f"added {item.path} (.docm with word/vbaProject.bin, macroEnabled content type) "
            f"with row 档号 {item.fields['档号']}")


def _defect_eicar(plan: _Plan, rng: random.Random) -> str:
    item = _append_to_volume(plan, rng.choice(plan.households), "附件", "txt", "附件", "02", "Y", EICAR)
    return (f"added {item.path} holding the 68-byte EICAR test string "
            f"with row 档号 {item.fields['档号']}")


def _defect_missing_dh(plan: _Plan, rng: random.Random) -> str:
    item = _pick(plan, rng, lambda it: bool(it.fields["档号"]))
    old, item.fields["档号"] = item.fields["档号"], ""
    return f"{_where(item)}: 档号 left empty (was {old})"


def _wrong_code(code: str, rng: random.Random) -> str:
    if "-JF·" in code:
        variants = [code.replace("·", "-"), code.replace("-JF·", "-JFP·"), code[:-4] + code[-3:]]
    else:
        year = code.split("·")[1][:4]
        variants = [code.replace("-WS·", "-WSS·"), code.replace(f"·{year}", f"·{year[2:]}"),
                    code.replace("-WS·", "·WS-")]
    return rng.choice(variants)


def _defect_wrong_dh(plan: _Plan, rng: random.Random) -> str:
    item = _pick(plan, rng, lambda it: bool(it.fields["档号"]))
    old = item.fields["档号"]
    item.fields["档号"] = _wrong_code(old, rng)
    return f"{_where(item)}: 档号 {old} written as {item.fields['档号']}"


def _defect_bad_id(plan: _Plan, rng: random.Random) -> str:
    hh = rng.choice(plan.households)
    good = hh.head.id_number
    bad = good[:17] + rng.choice([c for c in "0123456789X" if c != good[17]])
    rows = [it for it in plan.items if it.household is hh and it.in_sheet]
    for it in rows:
        it.fields["户主公民身份号码"] = bad
    seqs = ", ".join(str(it.seq) for it in rows)
    return (f"household {hh.volume_code}: 户主公民身份号码 {good} written as {bad} "
            f"(wrong check digit) in rows 序号 {seqs}")


def _defect_missing_file(plan: _Plan, rng: random.Random) -> str:
    item = _pick(plan, rng, lambda it: it.household is not None)
    item.on_disk = False
    return f"{_where(item)}: file {item.path} not delivered"


def _defect_extra_file(plan: _Plan, rng: random.Random) -> str:
    if rng.random() < 0.5:
        hh = rng.choice(plan.households)
        path = f"{hh.volume_code}/Thumbs.db"
        blob = bytes.fromhex("D0CF11E0A1B11AE1") + rng.randbytes(rng.randint(1500, 4000))
    else:
        path = "新建文本文档.txt"
        blob = "缺的材料：脱贫确认书待补签字\r\n".encode("gbk")
    plan.extras.append((path, blob))
    return f"stray file {path} ({len(blob)} bytes) in no catalogue row"


def _defect_encrypted(plan: _Plan, rng: random.Random) -> str:
    item = _pick(plan, rng, lambda it: it.path.endswith(".pdf") and "扫描件" not in it.path)
    password = rng.choice(("123456", "888888", "fpb2016"))
    plain = item.render

    def render() -> tuple[bytes, int]:
        blob, pages = plain()
        return _encrypt_pdf(blob, password), pages

    item.render = render
    return f"{_where(item)}: {item.path} password-protected (RC4-128, user password {password})"


def _defect_secret(plan: _Plan, rng: random.Random) -> str:
    item = _pick(plan, rng, lambda it: it.household is None)
    old, item.fields["密级"] = item.fields["密级"], "秘密"
    return f"{_where(item)}: 密级 {old} written as 秘密"


def _defect_bad_date(plan: _Plan, rng: random.Random) -> str:
    item = _pick(plan, rng, lambda it: True)
    old = item.fields["日期"]
    if rng.random() < 0.5:
        item.fields["日期"] = f"{old[:4]}02{rng.choice(('30', '31'))}"
    else:
        slips = (old[:2] + old[3] + old[2], old[0] + old[2] + old[1] + old[3])
        item.fields["日期"] = next(y for y in slips if int(y) > 2040) + old[4:]
    return f"{_where(item)}: 日期 {old} written as {item.fields['日期']}"


def _fullwidth(text: str, digits: bool) -> str:
    out = []
    for ch in text:
        if ch == "·":
            out.append("・")
        elif ch == "-":
            out.append("－")
        elif ch.isascii() and ch.isalpha() or (digits and ch.isdigit()):
            out.append(chr(ord(ch) + 0xFEE0))
        else:
            out.append(ch)
    return "".join(out)


def _defect_gb18030(plan: _Plan, rng: random.Random) -> str:
    plan.sheet_encoding = "gb18030"
    notes = []
    for digits in (False, True):
        item = _pick(plan, rng, lambda it: bool(it.fields["档号"]))
        old = item.fields["档号"]
        item.fields["档号"] = _fullwidth(old, digits)
        notes.append(f"{_where(item)}: 档号 {old} as {item.fields['档号']}")
    item = _pick(plan, rng, lambda it: it.household is not None)
    name = item.fields["户主姓名"]
    item.fields["题名"] = item.fields["题名"].replace(name, name + "\u3000", 1)
    item.fields["责任者"] = item.fields["责任者"] + "\u3000"
    notes.append(f"{_where(item)}: full-width spaces in 题名 and 责任者")
    return "sheet written as 归档文件目录.csv in GB18030 without BOM (no XLSX); " + "; ".join(notes)


_DEFECT_ORDER: tuple[tuple[str, Callable[[_Plan, random.Random], str]], ...] = (
    ("gap", _defect_gap),
    ("bad-format", _defect_bad_format),
    ("macro", _defect_macro),
    ("eicar", _defect_eicar),
    ("missing-dh", _defect_missing_dh),
    ("wrong-dh", _defect_wrong_dh),
    ("bad-id", _defect_bad_id),
    ("secret", _defect_secret),
    ("bad-date", _defect_bad_date),
    ("missing-file", _defect_missing_file),
    ("encrypted", _defect_encrypted),
    ("extra-file", _defect_extra_file),
    ("gb18030-csv", _defect_gb18030),
)

_STRUCTURAL = {"gap", "bad-format", "macro", "eicar"}


def _number_rows(plan: _Plan) -> None:
    n = 0
    for it in plan.items:
        if it.in_sheet:
            n += 1
            it.seq = n


def _apply_defects(plan: _Plan, kinds: Sequence[str], seed: int) -> None:
    _number_rows(plan)
    for kind, func in _DEFECT_ORDER:
        if kind in kinds:
            plan.applied.append((kind, func(plan, random.Random(f"{seed}/defect/{kind}"))))
            if kind in _STRUCTURAL:
                _number_rows(plan)


# ------------------------------------------------------------------- writing

@contextlib.contextmanager
def _binary_pdf_streams():
    """Write PDF streams without ASCII85 (smaller files, much faster); restore afterwards."""
    saved = rl_config.useA85
    rl_config.useA85 = 0
    try:
        yield
    finally:
        rl_config.useA85 = saved


def _write_files(out: Path, plan: _Plan) -> None:
    with _binary_pdf_streams():
        for it in plan.items:
            blob, it.pages = it.render()
            if it.on_disk:
                _write(out / it.path, blob, it.when)
    for path, blob in plan.extras:
        _write(out / path, blob, _SHEET_TIME)


def _write(path: Path, blob: bytes, when: dt.datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    stamp = when.replace(tzinfo=_TZ).timestamp()
    os.utime(path, (stamp, stamp))


def _rows(plan: _Plan) -> list[list]:
    rows = []
    for it in plan.items:
        if it.in_sheet:
            values = {**it.fields, "序号": it.seq, "页数": it.pages, "计算机文件名": it.path}
            rows.append([values[c] for c in COLUMNS])
    return rows


def _write_xlsx(path: Path, title: str, rows: list[list]) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = SHEET_STEM
    ws.append([title])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(COLUMNS))
    ws["A1"].font = Font(bold=True, size=14)
    ws["A1"].alignment = Alignment(horizontal="center")
    ws.append(list(COLUMNS))
    for row in rows:
        ws.append(row)
    ws.freeze_panes = "A3"
    for letter, width in (("B", 34), ("E", 40), ("O", 21), ("V", 48)):
        ws.column_dimensions[letter].width = width
    props = wb.properties
    props.creator = props.lastModifiedBy = f"{_county().name}扶贫开发局"
    props.title = title
    props.created = props.modified = _SHEET_TIME
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(wb, archive).save()
    _write(path, _fixed_zip(buf.getvalue(), _SHEET_TIME), _SHEET_TIME)


def _write_csv(path: Path, rows: list[list], encoding: str) -> None:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    _write(path, buf.getvalue().encode(encoding), _SHEET_TIME)


def _write_sheet(out: Path, plan: _Plan, sheet_format: str) -> Path:
    rows = _rows(plan)
    if plan.sheet_encoding:
        path = out / f"{SHEET_STEM}.csv"
        _write_csv(path, rows, plan.sheet_encoding)
    elif sheet_format == "csv":
        path = out / f"{SHEET_STEM}.csv"
        _write_csv(path, rows, "utf-8-sig")
    else:
        path = out / f"{SHEET_STEM}.xlsx"
        _write_xlsx(path, f"{_county().name}扶贫开发局 精准扶贫档案 归档文件目录", rows)
    return path


# ------------------------------------------------------------------- entry point

def _check_args(out: Path, households: int, defects: Sequence[str], fonds: str,
                sheet_format: str) -> list[str]:
    if isinstance(defects, str):
        defects = [defects]
    unknown = [k for k in defects if k not in DEFECT_KINDS]
    if unknown:
        raise ValueError(f"unknown defect kind(s) {', '.join(unknown)}; "
                         f"known: {', '.join(DEFECT_KINDS)}")
    if not isinstance(households, int) or households < 1:
        raise ValueError("households must be a positive integer")
    if not _FONDS_RE.fullmatch(fonds):
        raise ValueError(f"fonds {fonds!r} must be 4 capital letters or digits (e.g. Q001)")
    if sheet_format not in ("xlsx", "csv"):
        raise ValueError("sheet_format must be 'xlsx' or 'csv'")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an empty directory; "
                         "choose a new output directory")
    return list(dict.fromkeys(defects))


def generate(out: Path, households: int = 5, seed: int = 1, defects: Sequence[str] = (),
             fonds: str | None = None, sheet_format: str = "xlsx",
             county: str = DEFAULT_COUNTY) -> SampleSummary:
    """Write a sample transfer to ``out`` (new or empty directory) and return its summary.

    ``households`` household volumes are spread over a few fictional villages of ``county``
    (a code of :data:`COUNTIES`; its villages' codes and people's ID numbers carry it);
    ``fonds`` defaults to that county's (全宗号), so samples of two counties never share a 档号;
    ``defects`` is any subset of :data:`DEFECT_KINDS` (``gb18030-csv`` replaces the sheet
    whatever ``sheet_format`` says); ``sheet_format`` is ``"xlsx"`` or ``"csv"`` (UTF-8 with
    BOM). The same arguments always give byte-identical files; file modification times are set
    to the documents' dates. Raises ValueError for bad arguments or a non-empty ``out``.
    While writing, reportlab's global ``rl_config.useA85`` is switched off (and restored), so
    do not run two generations in threads of one process.
    """
    out = Path(out)
    if county not in COUNTIES:
        raise ValueError(f"unknown county {county!r}; known: "
                         + ", ".join(f"{c.code} {c.name}" for c in COUNTIES.values()))
    fonds = fonds or COUNTIES[county].fonds
    kinds = _check_args(out, households, defects, fonds, sheet_format)
    token = _CURRENT.set(COUNTIES[county])
    try:
        return _generate(out, households, seed, kinds, fonds, sheet_format)
    finally:
        _CURRENT.reset(token)


def _generate(out: Path, households: int, seed: int, kinds: list[str], fonds: str,
              sheet_format: str) -> SampleSummary:
    rng = random.Random(seed)
    villages = _make_villages(rng, households)
    hhs = _make_households(rng, households, villages, fonds)
    items = _general_items(rng, villages, hhs, fonds)
    items += _format_items(seed, fonds, items)
    for hh in hhs:
        items += _household_items(rng, hh, fonds)
    plan = _Plan(items=items, households=hhs, fonds=fonds)
    _apply_defects(plan, kinds, seed)
    out.mkdir(parents=True, exist_ok=True)
    _write_files(out, plan)
    sheet = _write_sheet(out, plan, sheet_format)
    files = [p for p in out.rglob("*") if p.is_file()]
    return SampleSummary(out=out, households=households,
                         item_count=sum(it.in_sheet for it in plan.items), file_count=len(files),
                         total_bytes=sum(p.stat().st_size for p in files),
                         defects=list(plan.applied), sheet=sheet, places=_places(villages))


def _places(villages: list[_Village]) -> dict[str, str]:
    """The county's, townships' and villages' names by code (行政区划代码)."""
    county = _county()
    out = {county.code: county.name}
    for v in villages:
        out[v.code[:9]] = v.township
        out[v.code] = v.name
    return out
