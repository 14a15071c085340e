"""The OAI-PMH 2.0 data provider: what a harvester may take of the holdings.

Only what an anonymous reader may find in the portal's search is ever exposed: the records are
the search documents whose access row an anonymous :class:`access.rules.Scope` lets through
(open: 开放 and the open date passed), and their metadata is the view
:meth:`access.services.AccessService.aip` gives an anonymous reader (de-identified where the
record holds personal information). A restricted household file is not listed at all, as the
anonymous search does not list it.

* Identifiers: ``oai:<repository_id>:<aip uuid>/<item key>``.
* Datestamps: when the record's public view last changed — the latest of its AIP's ingest, the
  latest review decision on the record or its whole AIP, and its open date — in seconds, UTC.
* Sets: ``fonds:<全宗号>``, ``category:<精准扶贫类别代码>``, ``year:<年度>`` (each under its parent
  set ``fonds``, ``category``, ``year``), listed only where an anonymous reader sees a record.
* Formats: ``oai_dc`` (题名 → title, 责任者 → creator, 日期 → date, 档号 → identifier,
  类别 → subject, language ``zh``) and ``dangan`` (every field of the de-identified record).
* Resumption tokens carry the keyset cursor (datestamp, document id) of the last record sent
  and the original ``metadataPrefix``/``from``/``until``/``set``, never an offset: records
  ingested while a harvest is under way come after the cursor (their datestamp is newer) and
  are sent on a later page; a record withdrawn meanwhile shifts nothing, so none is skipped; a
  record changed meanwhile (a review decision) is sent again with its new datestamp.
* Deleted records: ``deletedRecord`` is ``persistent``. An AIP deleted by an appraisal
  decision (``dangan delete``) keeps its catalogue record (status DELETED); its items that an
  anonymous reader could see when it was deleted are listed as ``<header status="deleted">``
  stamped with the deletion (:meth:`OaiProvider.tombstones`); so are those of AIPs destroyed
  by an appraisal batch (DESTROYING, DESTROYED: their catalogue record and items stay beside
  the tombstone). A record withdrawn from public view by a review decision (控制) after it was
  open is announced as deleted too, stamped with that decision (:meth:`OaiProvider.withdrawn`):
  a harvester that took it must drop it.

The protocol is written with lxml (see README, "OAI-PMH" for why no library serves it); every
answer validates against the OAI-PMH 2.0 schema (``access/schemas``).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lxml import etree
from sqlalchemy import func, select, text

from access import rules as r
from access.models import OpenDecision, SearchAccess
from policies import NotFoundError
from storage.catalogue import models as m

if TYPE_CHECKING:
    from access.services import AccessService

OAI = "http://www.openarchives.org/OAI/2.0/"
OAI_DC = "http://www.openarchives.org/OAI/2.0/oai_dc/"
DC = "http://purl.org/dc/elements/1.1/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
DANGAN = "urn:x-dangan:oai:record:1"
OAI_SCHEMA = "http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd"
WITHDRAWN_IDS = 1 << 53     # keyset ids of withdrawn records' deleted headers: this + item id
OAI_DC_SCHEMA = "http://www.openarchives.org/OAI/2.0/oai_dc.xsd"
SCHEMAS = Path(__file__).with_name("schemas")

VERBS = {
    # verb -> (required, optional, exclusive)
    "Identify": ((), (), None),
    "ListMetadataFormats": ((), ("identifier",), None),
    "ListSets": ((), (), "resumptionToken"),
    "GetRecord": (("identifier", "metadataPrefix"), (), None),
    "ListIdentifiers": (("metadataPrefix",), ("from", "until", "set"), "resumptionToken"),
    "ListRecords": (("metadataPrefix",), ("from", "until", "set"), "resumptionToken"),
}
SET_KINDS = {"fonds": "全宗", "category": "精准扶贫类别", "year": "年度"}
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SECOND = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_SET_VALUE = re.compile(r"^[A-Za-z0-9\-_.!~*'()]+$")


class OaiError(Exception):
    """An OAI-PMH error condition (answered inside a 200 response, as the protocol says)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, order=True)
class Entry:
    """One harvestable record, ordered by its keyset (datestamp, document id)."""

    stamp: datetime
    doc_id: int
    aip_uuid: str = field(compare=False)
    item_key: str = field(compare=False)
    sets: tuple[str, ...] = field(compare=False, default=())
    deleted: bool = field(compare=False, default=False)

    def in_set(self, spec: str) -> bool:
        return any(s == spec or s.startswith(spec + ":") for s in self.sets)


@dataclass(frozen=True)
class Config:
    """The provider's settings (``[oai]`` in dangan.toml)."""

    repository_name: str
    repository_id: str
    admin_email: str
    page_size: int

    @classmethod
    def from_settings(cls, settings: Any) -> Config:
        size = settings.int("oai", "page_size")
        return cls(
            repository_name=str(settings.get("oai", "repository_name")),
            repository_id=str(settings.get("oai", "repository_id")),
            admin_email=str(settings.get("oai", "admin_email")),
            page_size=max(1, size),
        )


def _stamp(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(value: datetime | date | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return aware.astimezone(timezone.utc).replace(microsecond=0)
    return datetime.combine(value, time(0), tzinfo=timezone.utc)


def parse_datestamp(value: str, until: bool) -> tuple[datetime, str]:
    """A from/until argument as a UTC datetime and its granularity (a day's ``until`` is
    the day's last second).

    Raises:
        OaiError: badArgument for any other form.
    """
    if _SECOND.match(value):
        try:
            parsed = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            raise OaiError("badArgument", f"不是有效的日期时间: {value}") from None
        return parsed.replace(tzinfo=timezone.utc), "seconds"
    if _DAY.match(value):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise OaiError("badArgument", f"不是有效的日期: {value}") from None
        moment = datetime.combine(day, time(0), tzinfo=timezone.utc)
        return (moment + timedelta(days=1, seconds=-1) if until else moment), "day"
    raise OaiError(
        "badArgument", f"日期须为 YYYY-MM-DD 或 YYYY-MM-DDThh:mm:ssZ（UTC）: {value}"
    )


def encode_token(args: Mapping[str, str], last: Entry) -> str:
    """A resumption token: the original arguments and the keyset of the last record sent."""
    body = {**{k: v for k, v in args.items() if v}, "k": [_stamp(last.stamp), last.doc_id]}
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, verb: str) -> tuple[dict[str, str], tuple[datetime, int]]:
    """The arguments and keyset a token carries.

    Raises:
        OaiError: badResumptionToken when it is not one of ours (or of another verb).
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
        stamp, doc_id = body.pop("k")
        key = (datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc),
               int(doc_id))
        args = {str(k): str(v) for k, v in body.items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        raise OaiError("badResumptionToken", "无效的 resumptionToken") from None
    allowed = {"metadataPrefix", "from", "until", "set"}
    if verb == "ListSets" or "metadataPrefix" not in args or set(args) - allowed:
        raise OaiError("badResumptionToken", "该 resumptionToken 不属于此请求")
    return args, key


class OaiProvider:
    """Answers OAI-PMH requests for one Dangan home, as an anonymous reader may see it.

    Arguments:
        service: the access services (the same rules as the portal).
        config: repository name, identifier namespace, admin e-mail, page size.
    """

    def __init__(self, service: AccessService, config: Config) -> None:
        self.service = service
        self.config = config
        self.reader = r.Reader()  # anonymous
        self._cache: tuple[Any, list[Entry]] | None = None

    # -- the records -----------------------------------------------------------------------
    def entries(self, aip_uuid: str | None = None) -> list[Entry]:
        """Every record an anonymous reader may find, in keyset order, with the tombstones
        (``aip_uuid``: only that AIP's). The rules' own SQL form of the anonymous scope picks
        the rows, the Python test applies after it; JSON columns are read for the three keys
        the sets need only."""
        service = self.service
        service.index.sync()
        # the whole list is kept until documents, decisions or deletions change (the search
        # index's generation) or the day turns (open dates pass): a harvest's pages share it
        key = (service.index.generation, date.today())
        cached = self._cache
        if aip_uuid is None and cached is not None and cached[0] == key:
            return cached[1]
        scope = r.scope_for(self.reader, service.rules)
        where, params = scope.sql("listed", alias="search_access")
        query = (
            select(
                SearchAccess.doc_id,
                SearchAccess.aip_uuid,
                SearchAccess.item_key,
                SearchAccess.control,
                SearchAccess.open_date,
                m.SearchDoc.facets["category"].as_string().label("category"),
                m.SearchDoc.facets["year"].as_string().label("year"),
                m.Aip.created_at,
                m.Item.fields["fonds_code"].as_string().label("fonds"),
            )
            .join(m.SearchDoc, m.SearchDoc.id == SearchAccess.doc_id)
            .join(m.Aip, m.Aip.uuid == SearchAccess.aip_uuid)
            .outerjoin(
                m.Item,
                (m.Item.aip_uuid == SearchAccess.aip_uuid) & (m.Item.key == SearchAccess.item_key),
            )
            .where(text(where).bindparams(**params))
        )
        decisions = select(OpenDecision.aip_uuid, OpenDecision.item_key,
                           func.max(OpenDecision.decided_at)).group_by(OpenDecision.aip_uuid,
                                                                       OpenDecision.item_key)
        if aip_uuid is not None:
            query = query.where(SearchAccess.aip_uuid == aip_uuid)
            decisions = decisions.where(OpenDecision.aip_uuid == aip_uuid)
        with service.catalogue.session() as s:
            decided = {(aip, key): at for aip, key, at in s.execute(decisions)}
            rows = s.execute(query).all()
        out = []
        for row in rows:
            access = {"aip_uuid": row.aip_uuid, "item_key": row.item_key,
                      "control": row.control, "open_date": row.open_date}
            if row.item_key is None or not scope.listed_visible(access):
                continue
            times = [_utc(row.created_at), _utc(decided.get((row.aip_uuid, None))),
                     _utc(decided.get((row.aip_uuid, row.item_key)))]
            if row.open_date:
                times.append(_utc(date.fromisoformat(str(row.open_date))))
            stamp = max(t for t in times if t is not None)
            out.append(Entry(stamp, row.doc_id, row.aip_uuid, row.item_key,
                             _sets({"category": row.category, "year": row.year},
                                   {"fonds_code": row.fonds})))
        out.extend(e for e in self.tombstones() if aip_uuid is None or e.aip_uuid == aip_uuid)
        listed = {(e.aip_uuid, e.item_key) for e in out}
        out.extend(e for e in self.withdrawn(listed)
                   if aip_uuid is None or e.aip_uuid == aip_uuid)
        out.sort()
        if aip_uuid is None:
            self._cache = (key, out)
        return out

    def tombstones(self) -> list[Entry]:
        """The deleted records harvesters are told of (``<header status="deleted">``): the
        items of AIPs deleted by an appraisal decision (status DELETED: their catalogue
        record stays, so the list is persistent) that an anonymous reader could see on the
        day they were deleted. A record never public is never announced, not even as
        deleted. Datestamp: the deletion."""
        from access.facts import decisions_for, facts_of_items

        service = self.service
        with service.catalogue.session() as s:
            gone = m.Aip.status.in_(("DELETED", "DESTROYING", "DESTROYED"))
            aips = {a.uuid: a for a in s.scalars(select(m.Aip).where(gone))}
            if not aips:
                return []
            deleted_at = dict(
                s.execute(
                    select(m.Event.aip_uuid, func.max(m.Event.at))
                    .where(m.Event.aip_uuid.in_(aips), m.Event.type == "deletion",
                           m.Event.outcome == "pass")
                    .group_by(m.Event.aip_uuid)
                ).all()
            )
            items: dict[str, list[m.Item]] = {}
            for item in s.scalars(select(m.Item).where(m.Item.aip_uuid.in_(aips))
                                  .order_by(m.Item.id)):
                items.setdefault(item.aip_uuid, []).append(item)
            decisions = decisions_for(s, list(aips))
        out = []
        for uuid, aip in aips.items():
            when = _utc(deleted_at.get(uuid))
            if when is None:
                continue
            facts = facts_of_items(aip, items.get(uuid, []), service.rules, decisions)
            for item in items.get(uuid, []):
                record = facts.get(item.key)
                if record is None or r.tier(self.reader, record, service.rules,
                                            today=when.date()) is r.Tier.HIDDEN:
                    continue
                fields = item.fields or {}
                facets = {"category": fields.get("jzfp_category"), "year": fields.get("year")}
                # keyset ids of tombstones are negative: never equal to a search document's
                out.append(Entry(when, -item.id, uuid, item.key, _sets(facets, fields),
                                 deleted=True))
        return out

    def withdrawn(self, listed: set[tuple[str, str]]) -> list[Entry]:
        """Records of live AIPs that an anonymous reader could see once and no longer can:
        withdrawn from public view by a review decision (控制) after they were open — a
        harvester that took them must drop them, so they are announced as deleted
        (``<header status="deleted">``), stamped with the decision that withdrew them
        (the last time they went from visible to hidden). ``listed``: the (aip, item) pairs
        listed now, which are not announced. A record never open is never announced."""
        from access.facts import facts_of_items
        from access.rules import Decision

        service = self.service
        gone = ("DELETED", "DESTROYING", "DESTROYED")
        with service.catalogue.session() as s:
            rows = list(s.scalars(
                select(OpenDecision).join(m.Aip, m.Aip.uuid == OpenDecision.aip_uuid)
                .where(m.Aip.status.notin_(gone))
                .order_by(OpenDecision.decided_at, OpenDecision.id)))
            if not rows:
                return []
            uuids = sorted({row.aip_uuid for row in rows})
            aips = {a.uuid: a for a in s.scalars(select(m.Aip).where(m.Aip.uuid.in_(uuids)))}
            items: dict[str, list[m.Item]] = {}
            for item in s.scalars(select(m.Item).where(m.Item.aip_uuid.in_(uuids))
                                  .order_by(m.Item.id)):
                items.setdefault(item.aip_uuid, []).append(item)
            for aip in aips.values():
                s.expunge(aip)
            for kept in items.values():
                for item in kept:
                    s.expunge(item)
        by_aip: dict[str, list[OpenDecision]] = {}
        for row in rows:
            by_aip.setdefault(row.aip_uuid, []).append(row)
        out = []
        rules = service.rules
        for uuid, decided in by_aip.items():
            aip, own = aips.get(uuid), items.get(uuid, [])
            if aip is None or not own:
                continue
            shown: dict[str, bool] = {}
            hidden_at: dict[str, datetime] = {}
            decisions: dict[tuple[str, str | None], Decision] = {}
            # the state before the first decision, then after each one, on its day
            moments = [(decided[0].decided_at, None)] + [(row.decided_at, row) for row in decided]
            for at, row in moments:
                if row is not None:
                    key = (row.aip_uuid, row.item_key)
                    before = decisions.get(key, Decision())
                    decisions[key] = Decision(row.open_date or before.open_date,
                                              row.control or before.control)
                facts = facts_of_items(aip, own, rules, decisions)
                when = _utc(at)
                for item in own:
                    record = facts.get(item.key)
                    visible = record is not None and r.tier(
                        self.reader, record, rules, today=when.date()) is not r.Tier.HIDDEN
                    if shown.get(item.key) and not visible and row is not None:
                        hidden_at[item.key] = when
                    shown[item.key] = shown.get(item.key, False) or visible
                    if visible:
                        hidden_at.pop(item.key, None)
            for item in own:
                when = hidden_at.get(item.key)
                if when is None or (uuid, item.key) in listed:
                    continue
                fields = item.fields or {}
                facets = {"category": fields.get("jzfp_category"), "year": fields.get("year")}
                # keyset id past every search document's: a withdrawal in the same second
                # as a harvest's cursor sorts after it, so the harvest going on gets it
                out.append(Entry(when, WITHDRAWN_IDS + item.id, uuid, item.key,
                                 _sets(facets, fields), deleted=True))
        return out

    @property
    def deleted_record(self) -> str:
        """``persistent``: a deleted AIP's catalogue record is kept, so are its tombstones."""
        return "persistent"

    def identifier(self, entry: Entry) -> str:
        return f"oai:{self.config.repository_id}:{entry.aip_uuid}/{entry.item_key}"

    def _find(self, identifier: str) -> Entry:
        prefix = f"oai:{self.config.repository_id}:"
        if identifier.startswith(prefix):
            aip, _, key = identifier[len(prefix):].partition("/")
            for entry in self.entries(aip):
                if entry.aip_uuid == aip and entry.item_key == key:
                    return entry
        raise OaiError("idDoesNotExist", f"没有这个标识符: {identifier}")

    # -- the answer ------------------------------------------------------------------------
    def handle(self, args: Mapping[str, list[str]], base_url: str) -> bytes:
        """The XML answer to one request (arguments as lists: a repeated one is refused)."""
        root = etree.Element(f"{{{OAI}}}OAI-PMH", nsmap={None: OAI, "xsi": XSI})
        root.set(f"{{{XSI}}}schemaLocation", f"{OAI} {OAI_SCHEMA}")
        etree.SubElement(root, f"{{{OAI}}}responseDate").text = _stamp(r.utcnow())
        request_el = etree.SubElement(root, f"{{{OAI}}}request")
        request_el.text = base_url
        try:
            verb, values = self._arguments(args)
            for k, v in values.items():
                request_el.set(k, v)
            request_el.set("verb", verb)
            body = getattr(self, f"_{verb}")(values, base_url)
            root.append(body)
        except OaiError as exc:
            if exc.code in ("badVerb", "badArgument"):  # the base URL alone, as 3.2 says
                request_el.attrib.clear()
            error = etree.SubElement(root, f"{{{OAI}}}error", code=exc.code)
            error.text = exc.message
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)

    def _arguments(self, args: Mapping[str, list[str]]) -> tuple[str, dict[str, str]]:
        verbs = args.get("verb") or []
        if len(verbs) != 1 or verbs[0] not in VERBS:
            raise OaiError("badVerb", "缺少 verb、verb 重复或不是 OAI-PMH 2.0 的动词")
        verb = verbs[0]
        required, optional, exclusive = VERBS[verb]
        values: dict[str, str] = {}
        for name, given in args.items():
            if name == "verb":
                continue
            if name not in (*required, *optional, exclusive):
                raise OaiError("badArgument", f"{verb} 不接受参数 {name}")
            if len(given) != 1:
                raise OaiError("badArgument", f"参数 {name} 重复")
            values[name] = given[0]
        if exclusive and exclusive in values:
            if len(values) > 1:
                raise OaiError("badArgument", f"{exclusive} 须单独使用")
            return verb, values
        missing = [n for n in required if n not in values]
        if missing:
            raise OaiError("badArgument", f"{verb} 缺少参数 {', '.join(missing)}")
        return verb, values

    def _e(self, parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
        el = etree.SubElement(parent, f"{{{OAI}}}{name}")
        if text is not None:
            el.text = text
        return el

    def _Identify(self, values: dict[str, str], base_url: str) -> etree._Element:
        body = etree.Element(f"{{{OAI}}}Identify")
        entries = self.entries()
        earliest = entries[0].stamp if entries else r.utcnow()
        self._e(body, "repositoryName", self.config.repository_name)
        self._e(body, "baseURL", base_url)
        self._e(body, "protocolVersion", "2.0")
        self._e(body, "adminEmail", self.config.admin_email)
        self._e(body, "earliestDatestamp", _stamp(min(earliest, r.utcnow())))
        self._e(body, "deletedRecord", self.deleted_record)
        self._e(body, "granularity", "YYYY-MM-DDThh:mm:ssZ")
        return body

    def _formats(self, base_url: str) -> list[tuple[str, str, str]]:
        return [
            ("oai_dc", OAI_DC_SCHEMA, OAI_DC),
            ("dangan", base_url.rstrip("/") + "/dangan.xsd", DANGAN),
        ]

    def _ListMetadataFormats(self, values: dict[str, str], base_url: str) -> etree._Element:
        if "identifier" in values:
            self._find(values["identifier"])
        body = etree.Element(f"{{{OAI}}}ListMetadataFormats")
        for prefix, schema, namespace in self._formats(base_url):
            fmt = self._e(body, "metadataFormat")
            self._e(fmt, "metadataPrefix", prefix)
            self._e(fmt, "schema", schema)
            self._e(fmt, "metadataNamespace", namespace)
        return body

    def _ListSets(self, values: dict[str, str], base_url: str) -> etree._Element:
        if "resumptionToken" in values:
            raise OaiError("badResumptionToken", "ListSets 一次答全，不发 resumptionToken")
        specs: set[str] = set()
        for entry in self.entries():
            if not entry.deleted:
                specs.update(entry.sets)
        if not specs:
            raise OaiError("noSetHierarchy", "没有可公开的集合")
        body = etree.Element(f"{{{OAI}}}ListSets")
        parents = sorted({s.split(":", 1)[0] for s in specs})
        for spec in parents + sorted(specs):
            el = self._e(body, "set")
            self._e(el, "setSpec", spec)
            self._e(el, "setName", _set_name(spec))
        return body

    def _check_prefix(self, prefix: str) -> None:
        if prefix not in ("oai_dc", "dangan"):
            raise OaiError("cannotDisseminateFormat", f"不提供元数据格式 {prefix}（可用 oai_dc、dangan）")

    def _GetRecord(self, values: dict[str, str], base_url: str) -> etree._Element:
        self._check_prefix(values["metadataPrefix"])
        entry = self._find(values["identifier"])
        body = etree.Element(f"{{{OAI}}}GetRecord")
        views = _Views(self.service, self.reader)
        body.append(self._record(entry, values["metadataPrefix"], views, base_url))
        return body

    def _ListIdentifiers(self, values: dict[str, str], base_url: str) -> etree._Element:
        return self._list("ListIdentifiers", values, base_url)

    def _ListRecords(self, values: dict[str, str], base_url: str) -> etree._Element:
        return self._list("ListRecords", values, base_url)

    def _list(self, verb: str, values: dict[str, str], base_url: str) -> etree._Element:
        key: tuple[datetime, int] | None = None
        if "resumptionToken" in values:
            args, key = decode_token(values["resumptionToken"], verb)
        else:
            args = dict(values)
        prefix = args["metadataPrefix"]
        self._check_prefix(prefix)
        start = end = None
        grains = set()
        if args.get("from"):
            start, grain = parse_datestamp(args["from"], until=False)
            grains.add(grain)
        if args.get("until"):
            end, grain = parse_datestamp(args["until"], until=True)
            grains.add(grain)
        if len(grains) > 1:
            raise OaiError("badArgument", "from 与 until 的粒度须相同")
        if start and end and start > end:
            raise OaiError("badArgument", "from 晚于 until")
        spec = args.get("set")
        if spec is not None and not _valid_spec(spec):
            raise OaiError("badArgument", f"不是有效的 setSpec: {spec}")
        matching = [
            e for e in self.entries()
            if (start is None or e.stamp >= start) and (end is None or e.stamp <= end)
            and (spec is None or e.in_set(spec))
        ]
        before = [e for e in matching if key is not None and (e.stamp, e.doc_id) <= key]
        rest = matching[len(before):] if key is not None else matching
        if not rest:
            if key is not None:
                raise OaiError("noRecordsMatch", "该 resumptionToken 之后已没有记录（其余记录已不再公开）")
            raise OaiError("noRecordsMatch", "没有符合条件的记录")
        page = rest[: self.config.page_size]
        body = etree.Element(f"{{{OAI}}}{verb}")
        views = _Views(self.service, self.reader)
        for entry in page:
            if verb == "ListIdentifiers":
                body.append(self._header(entry))
            else:
                body.append(self._record(entry, prefix, views, base_url))
        if key is not None or len(rest) > len(page):
            token = self._e(body, "resumptionToken")
            token.set("completeListSize", str(len(matching)))
            token.set("cursor", str(len(before)))
            if len(rest) > len(page):
                token.text = encode_token(args, page[-1])
        return body

    def _header(self, entry: Entry) -> etree._Element:
        header = etree.Element(f"{{{OAI}}}header")
        if entry.deleted:
            header.set("status", "deleted")
        self._e(header, "identifier", self.identifier(entry))
        self._e(header, "datestamp", _stamp(entry.stamp))
        for spec in entry.sets:
            self._e(header, "setSpec", spec)
        return header

    def _record(self, entry: Entry, prefix: str, views: _Views, base_url: str) -> etree._Element:
        record = etree.Element(f"{{{OAI}}}record")
        record.append(self._header(entry))
        if entry.deleted:
            return record
        view = views.item(entry.aip_uuid, entry.item_key)
        if view is None:   # hidden since the list was made: no metadata rather than too much
            return record
        metadata = self._e(record, "metadata")
        if prefix == "oai_dc":
            metadata.append(oai_dc(view, self.identifier(entry)))
        else:
            metadata.append(dangan_record(view, self.identifier(entry), base_url))
        return record


class _Views:
    """The anonymous views of the AIPs one answer shows (each AIP read once)."""

    def __init__(self, service: AccessService, reader: r.Reader) -> None:
        self.service = service
        self.reader = reader
        self._aips: dict[str, dict[str, Any] | None] = {}

    def item(self, aip: str, key: str) -> dict[str, Any] | None:
        if aip not in self._aips:
            try:
                self._aips[aip] = self.service.aip(self.reader, aip, via="oai")
            except NotFoundError:
                self._aips[aip] = None
        view = self._aips[aip]
        if view is None:
            return None
        for item in view["items"]:
            if item["key"] == key:
                return {**item, "aip": view}
        return None


def _sets(facets: Mapping[str, Any], fields: Mapping[str, Any]) -> tuple[str, ...]:
    out = []
    for kind, value in (
        ("fonds", fields.get("fonds_code")),
        ("category", facets.get("category")),
        ("year", facets.get("year")),
    ):
        if value not in (None, "") and _SET_VALUE.match(str(value)):
            out.append(f"{kind}:{value}")
    return tuple(out)


def _valid_spec(spec: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9\-_.!~*'()]+(:[A-Za-z0-9\-_.!~*'()]+)*", spec))


@lru_cache(maxsize=64)
def _category_label(code: Any) -> str | None:
    """The Chinese name of a 精准扶贫类别 code (from the jzfp profile's vocabulary)."""
    from metadata_profiles import ProfileError, load_profile

    try:
        vocab = load_profile("jzfp").vocabularies.get("jzfp_category")
    except ProfileError:   # a label is a nicety; the code stands alone
        return None
    term = vocab.lookup(str(code)) if vocab else None
    return term.zh if term and term.zh else None


def _set_name(spec: str) -> str:
    kind, _, value = spec.partition(":")
    label = SET_KINDS.get(kind, kind)
    if not value:
        return label
    if kind == "category":
        name = _category_label(value)
        return f"{label} {value} {name}" if name else f"{label} {value}"
    return f"{label} {value}"


def _texts(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _texts(v)]
    if isinstance(value, Mapping):
        return [json.dumps(value, ensure_ascii=False, sort_keys=True)]
    return [str(value)]


def _w3cdtf(text: str) -> str:
    """A 日期 as Dublin Core recommends (W3CDTF): 20150412 -> 2015-04-12, 201504 -> 2015-04."""
    if re.fullmatch(r"\d{8}", text):
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    if re.fullmatch(r"\d{6}", text):
        return f"{text[:4]}-{text[4:]}"
    return text


def oai_dc(view: Mapping[str, Any], identifier: str) -> etree._Element:
    """Simple Dublin Core of a record's anonymous view."""
    dc = etree.Element(f"{{{OAI_DC}}}dc", nsmap={"oai_dc": OAI_DC, "dc": DC, "xsi": XSI})
    dc.set(f"{{{XSI}}}schemaLocation", f"{OAI_DC} {OAI_DC_SCHEMA}")
    fields = view.get("fields") or {}

    def add(name: str, values: Iterable[str]) -> None:
        for text in values:
            etree.SubElement(dc, f"{{{DC}}}{name}").text = text

    add("title", _texts(view.get("title") or fields.get("title")))
    add("creator", _texts(fields.get("creator")))
    add("date", [_w3cdtf(t) for t in _texts(fields.get("date") or view.get("date"))])
    add("identifier", _texts(view.get("archival_code") or fields.get("archival_code")))
    add("identifier", [identifier])
    category = fields.get("jzfp_category")
    add("subject", [t for c in _texts(category) for t in [_category_label(c) or c]])
    add("type", _texts(view.get("level")))
    add("language", ["zh"])
    return dc


def dangan_record(view: Mapping[str, Any], identifier: str, base_url: str) -> etree._Element:
    """The whole de-identified record (every field the anonymous view shows)."""
    rec = etree.Element(f"{{{DANGAN}}}record", nsmap={"dangan": DANGAN, "xsi": XSI})
    rec.set(f"{{{XSI}}}schemaLocation", f"{DANGAN} {base_url.rstrip('/')}/dangan.xsd")
    aip = view.get("aip") or {}
    rec.set("identifier", identifier)
    rec.set("aip", str(aip.get("uuid", "")))
    rec.set("item", str(view.get("key", "")))
    rec.set("level", str(view.get("level") or ""))
    rec.set("view", str(view.get("view") or ""))
    for name, text in (("archivalCode", view.get("archival_code")), ("title", view.get("title")),
                       ("date", view.get("date")), ("openDate", view.get("open_date")),
                       ("control", view.get("control")), ("profile", aip.get("profile"))):
        for t in _texts(text):
            etree.SubElement(rec, f"{{{DANGAN}}}{name}").text = t
    for name, value in sorted((view.get("fields") or {}).items()):
        for t in _texts(value):
            etree.SubElement(rec, f"{{{DANGAN}}}field", name=str(name)).text = t
    return rec


def schema_text(name: str) -> bytes:
    """One of the schemas kept in ``access/schemas`` (served at ``/oai/<name>``)."""
    return (SCHEMAS / name).read_bytes()


def validator() -> etree.XMLSchema:
    """The OAI-PMH 2.0 schema with oai_dc, Simple DC and the dangan format, for checking
    answers (the ``metadata`` wildcard is strict: every format needs its schema)."""
    wrapper = f"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
      <xs:import namespace="{OAI}" schemaLocation="{(SCHEMAS / 'OAI-PMH.xsd').as_uri()}"/>
      <xs:import namespace="{OAI_DC}" schemaLocation="{(SCHEMAS / 'oai_dc.xsd').as_uri()}"/>
      <xs:import namespace="{DANGAN}" schemaLocation="{(SCHEMAS / 'dangan.xsd').as_uri()}"/>
    </xs:schema>"""
    return etree.XMLSchema(etree.fromstring(wrapper.encode()))
