"""The access services the portal pages, the JSON API and the command line share: search,
record views, files, DIPs, 查档申请 and review decisions — each one through :mod:`access.rules`.

Every view of a restricted record (page, API answer, preview, download, DIP, a search hit
shown to staff) is appended to the hash-chained audit log.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from access import rules as r
from access.facts import load_aip_facts
from access.models import AccessRequest, OpenDecision, User
from access.search import SearchResult, parse_query
from access.search_access import AccessIndex
from policies import DanganError, NotFoundError, Settings, UsageError
from storage.catalogue import models as m
from storage.catalogue import Catalogue
from storage.catalogue import FOLLOWS, PiiVault, followers, named_record
from storage.copies import NoIntactCopy

if TYPE_CHECKING:
    from storage.copies import FileRef, Retriever

TEXT_PREFIX = "data/metadata/text/"
#: AIPs appraisal destroyed, or is destroying: no page, file, manifest or API answer shows them
DESTROYED = frozenset({"DESTROYING", "DESTROYED"})
OBJECTS = "data/objects/"
PREVIEW_MIMES = ("application/pdf", "image/jpeg", "image/png", "image/gif", "text/plain")
RANK = {r.Tier.HIDDEN: 0, r.Tier.LISTED: 1, r.Tier.MASKED: 2, r.Tier.CONTENT: 3}


class Forbidden(DanganError):
    """The reader may not do this (HTTP 403)."""

    exit_code = 1




class AccessService:
    """Access to one Dangan home's holdings, as a given reader is entitled to.

    Arguments:
        settings: the home's settings.
        catalogue: an open catalogue (opened from the settings when omitted).
    """

    def __init__(self, settings: Settings, catalogue: Catalogue | None = None, *,
                 columnar: bool = True) -> None:
        from access.search.base import open_engine

        self.settings = settings
        self.catalogue = catalogue or Catalogue.open(settings)
        self.rules = r.load_rules(settings)
        self.engine = open_engine(settings, self.catalogue, columnar=columnar)
        self.index = AccessIndex(self.catalogue, self.rules)
        # answers of recent searches, per reader scope; dropped whenever the index changes
        self._cache: OrderedDict[tuple, SearchResult] = OrderedDict()
        self._cache_size = settings.int("portal", "search_cache")
        self._cache_lock = threading.Lock()
        self._vault: PiiVault | None = None

    @cached_property
    def retriever(self) -> Retriever:
        """Reads files back from storage, verified (made at the first download)."""
        from storage.copies import Retriever

        return Retriever(self.settings, self.catalogue)

    # -- readers ---------------------------------------------------------------------------
    def reader(self, user: User | None, session: Any = None) -> r.Reader:
        """The reader an account (or None: an anonymous visitor) acts as."""
        from access.accounts import reader_for

        return reader_for(self.catalogue, user, session)

    def _audit(self, reader: r.Reader, action: str, obj: str, detail: dict[str, Any]) -> None:
        self.catalogue.audit(reader.actor, action, obj, {"role": reader.role, **detail})

    # -- search ----------------------------------------------------------------------------
    def search(
        self,
        reader: r.Reader,
        text: str,
        filters: dict[str, list[str]] | None = None,
        page: int = 1,
        per_page: int = 20,
        sort: str = "relevance",
    ) -> SearchResult | None:
        """Search as this reader: hits, totals and facet counts cover only what they may see.

        Returns None for an empty query.
        """
        self.index.sync()
        query = parse_query(text, filters)
        if query.empty:
            return None
        query.scope = r.scope_for(reader, self.rules)
        key = (
            text,
            tuple(sorted((k, tuple(v)) for k, v in (filters or {}).items())),
            page,
            per_page,
            sort,
            query.scope,
            self.index.generation,
        )
        result = self._cached(key)
        if result is None:
            result = self.engine.search(query, page=max(1, page), per_page=per_page, sort=sort)
            self._remember(key, result)
        if reader.staff or reader.grants:
            self._audit_hits(reader, text, result)
        return result

    def find_by_id_number(self, reader: r.Reader, text: str) -> list[dict[str, Any]] | None:
        """Staff looking a household up by a full ID number: the records holding it in a
        protected field, found by its keyed hash (the number is stored only encrypted).
        Every look-up is audited, the number masked. None when the reader is not staff or
        the text is not one valid ID number."""
        from metadata_profiles import mask_id_number, normalise_id_number
        from storage.catalogue import find_items

        if not reader.staff:
            return None
        number = normalise_id_number(text.strip())
        if number is None:
            return None
        with self.catalogue.session() as s:
            rows = find_items(s, self.vault, number)
            codes = {(i.aip_uuid, i.key): (i.archival_code, i.level) for i in s.scalars(
                select(m.Item).where(m.Item.aip_uuid.in_({a for a, _, _ in rows})))}
        self._audit(reader, "search-id-number", mask_id_number(number),
                    {"query_hmac": self.vault.text_hash(number), "found": len(rows)})
        return [{"aip": aip, "item": key, "field": field,
                 "archival_code": codes.get((aip, key), (None, None))[0],
                 "level": codes.get((aip, key), (None, None))[1]} for aip, key, field in rows]

    def restricted_matches(self, reader: r.Reader, text: str,
                           filters: dict[str, list[str]] | None, shown: int) -> int | None:
        """How many records match a search beyond the ``shown`` ones this reader finds:
        records they may not see (for the page to point to 查档申请). None when the reader
        sees everything, or the count is below ``[portal] restricted_count_min`` (a small
        count could tell that one person's file exists)."""
        least = self.settings.int("portal", "restricted_count_min")
        if reader.staff or least <= 0:
            return None
        query = parse_query(text, filters)
        if query.empty:
            return None
        query.scope = r.Scope(everything=True)
        key = ("restricted-count", text,
               tuple(sorted((k, tuple(v)) for k, v in (filters or {}).items())),
               self.index.generation)
        result = self._cached(key)
        if result is None:
            result = self.engine.search(query, page=1, per_page=1, facet_limit=1)
            self._remember(key, result)
        hidden = result.total - shown
        return hidden if hidden >= least else None

    def _cached(self, key: tuple) -> SearchResult | None:
        with self._cache_lock:
            result = self._cache.get(key)
            if result is not None:
                self._cache.move_to_end(key)
            return result

    def _remember(self, key: tuple, result: SearchResult) -> None:
        if self._cache_size <= 0 or getattr(self.engine, "external", False):
            return
        with self._cache_lock:
            self._cache[key] = result
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _audit_hits(self, reader: r.Reader, text: str, result: SearchResult) -> None:
        """Audit a search whose page shows restricted material in full (to staff, or to a
        researcher through a grant); open records and public views are not audited
        (:func:`access.plain.audit_entry`, which ``dangan search`` runs too)."""
        from access import plain
        from storage.catalogue import reading

        if not any(h.view == "content" for h in result.hits):
            return
        with self.catalogue.session() as s:
            entry = plain.audit_entry(reading.Rows.of_connection(s.connection()), self.rules,
                                      self.vault, reader, text, result)
        if entry is not None:
            self.catalogue.audit(*entry)

    def audited_text(self, text: str, aip_uuids: set[str]) -> tuple[str, str]:
        """How a staff search is written to the audit log (:func:`access.plain.audited_text`)."""
        from access import plain
        from storage.catalogue import reading

        with self.catalogue.session() as s:
            return plain.audited_text(reading.Rows.of_connection(s.connection()), self.rules,
                                      self.vault, text, aip_uuids)

    @property
    def vault(self) -> PiiVault:
        """The home's PII key holder (opened on first use)."""
        if self._vault is None:
            self._vault = PiiVault.from_settings(self.settings)
        return self._vault

    # -- records ---------------------------------------------------------------------------
    def _load(self, uuid: str, version: int | None = None
              ) -> tuple[dict[str, Any], dict[str | None, r.RecordFacts]]:
        """An AIP's catalogue details with the files of one version (default: the newest)
        under their logical paths, and the access facts of its records."""
        try:
            details = self.catalogue.aip_details(uuid)
        except NotFoundError:
            raise NotFoundError(f"no record {uuid}") from None
        if details["status"] in DESTROYED:     # what remains is its tombstone (/appraisal)
            raise NotFoundError(f"no record {uuid}")
        with self.catalogue.session() as s:
            _, _, facts = load_aip_facts(s, details["uuid"], self.rules)
            _at_version(s, details, version)
        return details, facts

    def aip(self, reader: r.Reader, uuid: str, via: str = "page",
            version: int | None = None) -> dict[str, Any]:
        """An AIP (household volume or a set of items) as this reader may see it; with
        ``version``, the files of that version (an earlier one: staff only).

        Raises:
            NotFoundError: no such AIP or version, or the reader may not know it exists.
            Forbidden: an earlier version asked for by a reader who is not staff.
        """
        details, facts = self._load(uuid, version)
        view = self._view(reader, details, facts)
        if view["view"] == r.Tier.HIDDEN.value:
            raise NotFoundError(f"no record {uuid}")
        _earlier_for_staff(reader, details)
        view["version"], view["current_version"] = details["version"], details["current_version"]
        view["follows"] = self._follows(reader, details)
        view["followed_by"] = self._followed_by(reader, details)
        if any(
            r.needs_audit(reader, facts[i["key"]], r.Tier(i["view"])) for i in view["items"]
        ) or r.needs_audit(reader, facts[None], r.Tier(view["view"])):
            detail = {"via": via, "view": view["view"]}
            if details["version"] != details["current_version"]:
                detail["version"] = details["version"]
            self._audit(reader, "view-restricted", details["uuid"], detail)
        return view

    # -- 防返贫监测 ↔ 建档立卡 (the profile's ``follows`` field, 关联档号) ----------------------
    def _sees(self, reader: r.Reader, s: Any, uuid: str) -> bool:
        """Whether the reader may know the AIP exists (any of its records not hidden)."""
        try:
            _, _, facts = load_aip_facts(s, uuid, self.rules)
        except KeyError:
            return False
        return any(r.tier(reader, f, self.rules) is not r.Tier.HIDDEN for f in facts.values())

    def _follows(self, reader: r.Reader, details: dict[str, Any]) -> list[dict[str, Any]]:
        """The 建档立卡 household files this AIP's monitoring records follow (by 档号 or AIP),
        those the reader may know of; a name no record holds is listed as not found."""
        out = []
        with self.catalogue.session() as s:
            for item in details["items"]:
                named = str((item.get("fields") or {}).get(FOLLOWS) or "").strip()
                if not named:
                    continue
                target = named_record(s, named)
                if any(o["named"] == named for o in out):
                    continue        # a volume and its documents name the same file
                if target is not None and target[0] != details["uuid"] \
                        and self._sees(reader, s, target[0]):
                    out.append({"item": item["key"], "named": named, "aip": target[0],
                                "archival_code": target[1], "found": True})
                elif target is None and reader.staff:
                    out.append({"item": item["key"], "named": named, "aip": None,
                                "archival_code": None, "found": False})
        return out

    def _followed_by(self, reader: r.Reader, details: dict[str, Any]) -> list[dict[str, Any]]:
        """The monitoring records (in other AIPs) that name this household file: by its AIP
        UUID, its 档号 or the 档号 of one of its records; those the reader may know of."""
        names = {details["uuid"]} | {details["archival_code"] or ""} | \
            {i["archival_code"] for i in details["items"] if i["archival_code"]}
        names.discard("")
        out = []
        with self.catalogue.session() as s:
            rows = followers(s, names, exclude=details["uuid"])
            seen: dict[str, bool] = {}
            for row in rows:
                if row.aip_uuid not in seen:
                    seen[row.aip_uuid] = self._sees(reader, s, row.aip_uuid)
                if seen[row.aip_uuid] and row.aip_uuid not in {o["aip"] for o in out}:
                    out.append({"aip": row.aip_uuid, "item": row.key,
                                "archival_code": row.archival_code,
                                "date": (row.fields or {}).get("monitoring_identified_date")})
        return out

    # -- versions (storage.aip: versions_of) ------------------------------------------------
    def versions(self, reader: r.Reader, uuid: str) -> dict[str, Any]:
        """An AIP's 版本历史 as this reader may see it: every version with its date, agent,
        reason and changes (added / replaced / withdrawn paths, changed record fields).

        Paths are shown masked (ID numbers) as pages show them; the old and new values of
        changed record fields only to staff (they may be personal), the field names to all.

        Raises:
            NotFoundError: no such AIP, or the reader may not know it exists.
        """
        view = self.aip(reader, uuid, via="versions")
        return {"aip": view["uuid"], "archival_code": view["archival_code"],
                "current_version": view["current_version"],
                "versions": self.history(reader, view["uuid"])}

    def _field_names(self, profile: str | None) -> dict[str, str]:
        """Field name -> its heading (题名, 关联档号 …) in the record's metadata profile."""
        from metadata_profiles import ProfileError, load_profile

        try:
            spec = load_profile(profile or self.settings.get("ingest", "profile"),
                                self.settings.home)
        except (ProfileError, OSError):
            return {}
        return {f.name: f.zh for f in spec.fields}

    def history(self, reader: r.Reader, uuid: str) -> list[dict[str, Any]]:
        """The versions of an AIP the reader was already shown (no visibility check, no
        audit: callers went through :meth:`aip`), newest first."""
        from storage.aip import versions_of

        with self.catalogue.session() as s:
            infos = versions_of(s, uuid)
            profile = s.get(m.Aip, uuid).profile
        names = self._field_names(profile)
        out = []
        for info in reversed(infos):
            changes = info.changes or {}
            records = []
            for change in changes.get("records") or []:
                fields = change.get("fields") or {}
                records.append({
                    "archival_code": change.get("archival_code"),
                    "new": bool(change.get("new")),
                    "names": {k: names.get(k, k) for k in fields},
                    "fields": ({k: v for k, v in fields.items()} if reader.staff
                               else {k: None for k in fields}),
                })
            out.append({
                "version": info.number,
                "created": info.created,
                "agent": info.agent,
                "reason": r.mask_numbers(info.reason or ""),
                "kind": info.kind,
                "supersedes": info.supersedes,
                "files": info.file_count,
                "added": [r.mask_numbers(p) for p in changes.get("added") or []],
                "replaced": [r.mask_numbers(p) for p in changes.get("replaced") or []],
                "withdrawn": [r.mask_numbers(p) for p in changes.get("withdrawn") or []],
                "records": records,
                "current": info.number == infos[-1].number,
            })
        return out

    def _view(
        self, reader: r.Reader, details: dict[str, Any], facts: dict[str | None, r.RecordFacts]
    ) -> dict[str, Any]:
        tiers = {key: r.tier(reader, f, self.rules) for key, f in facts.items()}
        items = []
        for item in details["items"]:
            shown = tiers[item["key"]]
            if shown is r.Tier.HIDDEN:
                continue
            f = facts[item["key"]]
            items.append(
                {
                    "key": item["key"],
                    "parent": item["parent"],
                    "level": item["level"],
                    "archival_code": item["archival_code"],
                    "date": item["date"],
                    "title": r.visible_title(item["title"], f, shown),
                    "fields": _decided(r.visible_fields(item["fields"], f, shown, self.rules), f),
                    "view": shown.value,
                    "open_date": _iso(f.open_date),
                    "control": f.control,
                    "pii_level": f.pii_level,
                    "household": f.household,
                }
            )
        best = max([tiers[None], *(r.Tier(i["view"]) for i in items)], key=RANK.__getitem__)
        worst = min([r.Tier(i["view"]) for i in items] or [tiers[None]], key=RANK.__getitem__)
        whole = facts[None]
        view: dict[str, Any] = {
            "uuid": details["uuid"],
            "archival_code": details["archival_code"],
            "label": r.visible_title(details["label"], whole, worst),
            "view": best.value,
            "status": details["status"],
            "profile": details["profile"],
            "retention_period": details["retention_period"],
            "created": details["created"],
            "open_date": _iso(whole.open_date),
            "control": whole.control,
            "pii_level": whole.pii_level,
            "household": whole.household,
            "items": items,
            "is_open": whole.is_open(date.today()),
        }
        if worst is r.Tier.CONTENT:
            view.update(size=details["size"], file_count=details["file_count"])
        view["files"] = self._files(reader, details, facts, tiers)
        if reader.can("view-fixity"):
            view["copies"] = [
                {k: c[k] for k in ("location", "status", "verified_at", "bytes")}
                for c in details["copies"]
            ]
        if reader.can("view-events"):
            view["events"] = [
                {
                    k: r.mask_numbers(e[k]) if k in ("detail", "outcome_detail") and e[k] else e[k]
                    for k in ("id", "type", "at", "outcome", "detail", "outcome_detail", "location")
                }
                for e in details["events"]
            ]
        view["can_request"] = reader.can("request-access") and worst is not r.Tier.CONTENT
        return view

    def _files(
        self,
        reader: r.Reader,
        details: dict[str, Any],
        facts: dict[str | None, r.RecordFacts],
        tiers: dict[str | None, r.Tier],
    ) -> list[dict[str, Any]]:
        item_of = {f["path"]: f["item"] for f in details["files"] if f["item"]}
        fixity = _last_fixity(details["events"])
        damage = self.retriever.known_damage(details["uuid"])
        damaged = self.retriever.damaged_everywhere(details["uuid"], damage)
        out = []
        for f in details["files"]:
            item = _item_of(f["path"], item_of)
            shown = (
                tiers.get(item, r.Tier.HIDDEN)
                if item
                else (r.Tier.CONTENT if reader.staff else r.Tier.HIDDEN)
            )
            allowed = r.file_allowed(shown)
            if not allowed and not reader.can("view-fixity"):
                continue
            values = facts[None].personal_values
            # a file name may hold an ID number: masked for every reader (links name the
            # file by its masked path, see file())
            path = r.mask_numbers(f["path"]) if allowed else r.deidentify(f["path"], values)
            out.append(
                {
                    "path": path,
                    "size": f["size"],
                    "sha256": f["digests"].get("sha256"),
                    "digests": f["digests"],
                    "mime": f["mime"],
                    "puid": f["puid"],
                    "format_name": f["format_name"],
                    "format_version": f["format_version"],
                    "use": f["use"],
                    "item": item,
                    "download": allowed,
                    "preview": allowed and (f["mime"] or "").split(";")[0] in PREVIEW_MIMES,
                    "last_fixity": _file_fixity(f.get("stored", f["path"]), fixity, damage),
                    "damaged": f.get("stored", f["path"]) in damaged,
                    "derived_from": (r.mask_numbers(f["derived_from"])
                                     if f.get("derived_from") else None),
                }
            )
        return _with_access_copies(out)

    def item(self, reader: r.Reader, uuid: str, key: str, via: str = "page") -> dict[str, Any]:
        """One item of an AIP, with the files that belong to it."""
        view = self.aip(reader, uuid, via)
        for item in view["items"]:
            if item["key"] == key:
                files = [f for f in view["files"] if f["item"] == key]
                return {
                    **item,
                    "aip": {k: view[k] for k in ("uuid", "archival_code", "label", "profile")},
                    "files": files,
                    "can_request": view["can_request"] and item["view"] != r.Tier.CONTENT.value,
                }
        raise NotFoundError(f"no record {uuid}/{key}")

    def file(self, reader: r.Reader, uuid: str, path: str, purpose: str = "download",
             version: int | None = None, audit: bool = True) -> FileRef:
        """A file the reader may download or preview: of the newest version, or with
        ``version`` of that one (an earlier version: staff only, the same rules besides);
        its bytes are read back verified, as every download is. ``audit``: False when the
        caller audits the view itself (once per image rather than per IIIF tile).

        Raises:
            NotFoundError: no such file or version, or the reader may not know it exists.
            Forbidden: the reader sees the record but not its content.
        """
        details, facts = self._load(uuid, version)
        known = {f["path"]: f for f in details["files"]}
        path = _stored_path(path, known)
        if path not in known:
            raise NotFoundError(f"no file {r.mask_numbers(path)}")
        item = _item_of(path, {p: f["item"] for p, f in known.items() if f["item"]})
        if item is None:
            shown = r.Tier.CONTENT if reader.staff else r.Tier.HIDDEN
            record = facts[None]
        else:
            record = facts.get(item, facts[None])
            shown = r.tier(reader, record, self.rules)
        if shown is r.Tier.HIDDEN and not reader.can("view-fixity"):
            raise NotFoundError(f"no file {r.mask_numbers(path)}")
        if not r.file_allowed(shown):
            raise Forbidden("this record's content is not open to you; apply for access (查档申请)")
        _earlier_for_staff(reader, details)
        earlier = details["version"] != details["current_version"]
        if (audit and r.needs_audit(reader, record, shown)) or earlier:
            self._audit(
                reader, f"{purpose}-restricted", f"{details['uuid']}/{r.mask_numbers(path)}",
                {"item": item, **({"version": details["version"]} if earlier else {})},
            )
        return self.retriever.file(details["uuid"], known[path].get("stored", path))

    def dip(self, reader: r.Reader, uuid: str) -> tuple[str, Iterator[bytes]]:
        """A DIP zip of everything in the AIP this reader may see (file name, byte stream).

        Staff get the whole AIP bag; other readers a bag of the files they may see, with a
        de-identified ``record.json`` describing them.

        Raises:
            Forbidden: the reader may see none of the AIP's files.
        """
        view = self.aip(reader, uuid, via="dip")
        uuid = view["uuid"]
        details, _ = self._load(uuid)
        # logical path (as pages show it, or as stored) -> stored path of the newest version
        stored = {f["path"]: f.get("stored", f["path"]) for f in details["files"]}
        logical = {v: k for k, v in stored.items()}

        def ref(path: str) -> FileRef:
            return self.retriever.file(uuid, stored.get(_stored_path(path, stored), path))

        if reader.staff:
            refs = [ref(f["path"]) for f in view["files"]]
            if view["current_version"] == 1:
                for tag in self.retriever.tag_files(uuid):
                    if tag not in {ref.path for ref in refs}:
                        refs.append(self.retriever.file(uuid, tag))
            refs = self._servable(uuid, refs)
            self._audit_dip(reader, view, len(refs))
            from access.dip import stream_zip

            return f"{uuid}.zip", stream_zip(self.retriever, refs, uuid,
                                             lambda path: logical.get(path, path))
        files = [f for f in view["files"] if f["download"]]
        if not files:
            raise Forbidden("none of this record's files is open to you")
        refs = self._servable(uuid, [ref(f["path"]) for f in files])
        record = {k: v for k, v in view.items() if k not in ("events", "copies")}
        record["files"] = files
        self._audit_dip(reader, view, len(refs))
        from access.dip import stream_view_dip

        return f"{uuid}-dip.zip", stream_view_dip(
            self.retriever, refs, record, f"{uuid}-dip",
            _unique_shown([ref.path for ref in refs], lambda path: logical.get(path, path)))

    def _servable(self, uuid: str, refs: list[FileRef]) -> list[FileRef]:
        """The files of a DIP: all of them (a damaged one is left out as it streams, and
        named in the zip), unless every one is known damaged in every copy.

        Raises:
            NoIntactCopy: no file of the DIP can be served.
        """
        damaged = self.retriever.damaged_everywhere(uuid)
        if refs and all(ref.path in damaged for ref in refs):
            raise NoIntactCopy(uuid, "、".join(ref.path for ref in refs),
                               ["every file is known damaged in every copy"], known=True)
        return refs

    def damage_state(self, uuid: str, path: str) -> dict[str, Any]:
        """What is on record about a file no copy serves: the locations where it is known
        damaged and the state of the AIP's latest repair (None: no repair asked yet)."""
        from storage.fixity import RepairRequest

        damage = self.retriever.known_damage(uuid) if uuid else {}
        with self.catalogue.session() as s:
            repair = s.scalars(
                select(RepairRequest.status)
                .where(RepairRequest.aip_uuid == uuid)
                .order_by(RepairRequest.created_at.desc())
            ).first()
        return {
            "aip": uuid,
            "locations": sorted(loc for loc, paths in damage.items() if path in paths),
            "repair": repair,
        }

    def _audit_dip(self, reader: r.Reader, view: dict[str, Any], count: int) -> None:
        if not view["is_open"]:
            self._audit(reader, "dip-restricted", view["uuid"], {"files": count})

    def household(self, reader: r.Reader, uuid: str) -> dict[str, Any]:
        """A household volume (户卷): the volume's fields and its documents in order.

        Raises:
            NotFoundError: not a household volume the reader may know of.
        """
        view = self.aip(reader, uuid, via="household")
        volume = next((i for i in view["items"] if i["level"] == "户卷"), None)
        if volume is None:
            raise NotFoundError(f"{uuid} is not a household volume")
        documents = [i for i in view["items"] if i["parent"] == volume["key"]]
        return {**view, "volume": volume, "documents": documents}

    # -- 查档申请 ---------------------------------------------------------------------------
    def request_access(
        self, reader: r.Reader, uuid: str, item_key: str | None, purpose: str
    ) -> AccessRequest:
        """File a 查档申请 for a record the reader sees only in part.

        Raises:
            Forbidden: the role cannot apply, or the reader already sees the content.
            UsageError: no purpose was given.
        """
        if not reader.can("request-access") or reader.username is None:
            raise Forbidden("only researchers with an account can apply for access")
        if not purpose.strip():
            raise UsageError("say what the records are needed for (查档目的)")
        view = self.aip(reader, uuid, via="request")
        if item_key is not None and item_key not in {i["key"] for i in view["items"]}:
            raise NotFoundError(f"no record {uuid}/{item_key}")
        with self.catalogue.session() as s:
            row = AccessRequest(
                username=reader.username,
                aip_uuid=view["uuid"],
                item_key=item_key,
                purpose=purpose.strip()[:2000],
                status="pending",
                requested_at=r.utcnow(),
                note="",
            )
            s.add(row)
            s.flush()
            self.catalogue.append_audit(
                s,
                reader.actor,
                "access-request",
                view["uuid"],
                {"request": row.id, "item": item_key},
            )
        return row

    def requests(self, reader: r.Reader, status: str | None = None) -> list[dict[str, Any]]:
        """Access requests: the reader's own, or all of them for those who decide."""
        with self.catalogue.session() as s:
            query = select(AccessRequest).order_by(
                AccessRequest.requested_at.desc(), AccessRequest.id.desc()
            )
            if not reader.can("decide-requests"):
                if reader.username is None:
                    return []
                query = query.where(AccessRequest.username == reader.username)
            if status:
                query = query.where(AccessRequest.status == status)
            rows = list(s.scalars(query.limit(500)))
            labels = {
                a.uuid: (a.archival_code, a.label)
                for a in s.scalars(select(m.Aip).where(m.Aip.uuid.in_({x.aip_uuid for x in rows})))
            }
            items = {
                (i.aip_uuid, i.key): (i.archival_code, i.title)
                for i in s.scalars(select(m.Item).where(
                    m.Item.aip_uuid.in_({x.aip_uuid for x in rows if x.item_key}),
                    m.Item.key.in_({x.item_key for x in rows if x.item_key})))
            }
        # the item's title names people: only those who decide requests see it (the others
        # read its 档号, which names no one)
        titled = reader.can("decide-requests")
        out = []
        for row in rows:
            code, label = labels.get(row.aip_uuid, (None, ""))
            item_code, item_title = items.get((row.aip_uuid, row.item_key), (None, None))
            out.append(
                {
                    "id": row.id,
                    "username": row.username,
                    "aip": row.aip_uuid,
                    "item": row.item_key,
                    "item_code": item_code,
                    "item_title": r.mask_numbers(item_title) if titled and item_title else None,
                    "archival_code": code,
                    "purpose": row.purpose,
                    "status": self._status(row),
                    "requested_at": _iso(row.requested_at),
                    "decided_by": row.decided_by,
                    "decided_at": _iso(row.decided_at),
                    "expires_at": _iso(row.expires_at),
                    "note": row.note,
                }
            )
        return out

    @staticmethod
    def _status(row: AccessRequest) -> str:
        if row.status == "granted" and row.expires_at is not None:
            expires = (
                row.expires_at
                if row.expires_at.tzinfo
                else row.expires_at.replace(tzinfo=r.utcnow().tzinfo)
            )
            if expires <= r.utcnow():
                return "expired"
        return row.status

    def decide_request(
        self, reader: r.Reader, request_id: int, grant: bool, days: int = 30, note: str = ""
    ) -> dict[str, Any]:
        """Grant (for ``days`` days) or refuse a pending request; or revoke a granted one by
        deciding ``grant=False`` on it.

        Raises:
            Forbidden: the reader may not decide requests.
            UsageError: bad number of days, or the request is already closed.
        """
        if not reader.can("decide-requests"):
            raise Forbidden("only archivists decide access requests")
        if grant and not 1 <= days <= self.rules.grant_max_days:
            raise UsageError(f"grant for 1 to {self.rules.grant_max_days} days")
        with self.catalogue.session() as s:
            row = s.get(AccessRequest, request_id)
            if row is None:
                raise NotFoundError(f"no access request {request_id}")
            if row.status not in ("pending", "granted") or (grant and row.status == "granted"):
                raise UsageError(f"access request {request_id} is {row.status}")
            now = r.utcnow()
            status = "granted" if grant else ("revoked" if row.status == "granted" else "refused")
            row.status, row.decided_by, row.decided_at, row.note = (
                status,
                reader.actor,
                now,
                note[:2000],
            )
            row.expires_at = now + timedelta(days=days) if grant else row.expires_at
            self.catalogue.append_audit(
                s,
                reader.actor,
                f"access-{status}",
                row.aip_uuid,
                {
                    "request": row.id,
                    "user": row.username,
                    "item": row.item_key,
                    "expires": _iso(row.expires_at),
                },
            )
        return next(x for x in self.requests(reader) if x["id"] == request_id)

    def withdraw_request(self, reader: r.Reader, request_id: int) -> dict[str, Any]:
        """The requester takes back a 查档申请 still pending (状态 已撤回); audited.

        Raises:
            NotFoundError: no such request, or not the reader's own (others' requests are
                not told apart from missing ones).
            UsageError: the request was already decided or withdrawn.
        """
        if reader.username is None:
            raise Forbidden("sign in to withdraw a request")
        with self.catalogue.session() as s:
            row = s.get(AccessRequest, request_id)
            if row is None or row.username != reader.username:
                raise NotFoundError(f"no access request {request_id} of {reader.username}")
            if row.status != "pending":
                raise UsageError(f"access request {request_id} is {row.status}: only a "
                                 "pending request can be withdrawn")
            row.status, row.decided_by, row.decided_at = "withdrawn", reader.actor, r.utcnow()
            self.catalogue.append_audit(s, reader.actor, "access-withdrawn", row.aip_uuid,
                                        {"request": row.id, "user": row.username,
                                         "item": row.item_key})
        return next(x for x in self.requests(reader) if x["id"] == request_id)

    # -- 开放审核 ---------------------------------------------------------------------------
    def record_decision(
        self,
        reader: r.Reader,
        uuid: str,
        item_key: str | None,
        *,
        open_date: date | None = None,
        control: str | None = None,
        basis: str,
    ) -> dict[str, Any]:
        """Record a review decision on a record's open date and/or control flag.

        Raises:
            Forbidden: the reader may not record decisions.
            UsageError: nothing decided, a bad flag, or no basis given.
        """
        if not reader.can("record-decisions"):
            raise Forbidden("only archivists record open-review decisions")
        if open_date is None and control is None:
            raise UsageError("a decision sets an open date, a control flag or both")
        if control not in (None, "开放", "控制"):
            raise UsageError("control flag is 开放 or 控制")
        if not basis.strip():
            raise UsageError("a decision needs its basis (审核依据)")
        aip = self.catalogue.get_aip(uuid)
        with self.catalogue.session() as s:
            if (
                item_key is not None
                and not s.scalars(
                    select(m.Item).where(m.Item.aip_uuid == aip.uuid, m.Item.key == item_key)
                ).first()
            ):
                raise NotFoundError(f"no record {aip.uuid}/{item_key}")
            s.add(
                OpenDecision(
                    aip_uuid=aip.uuid,
                    item_key=item_key,
                    open_date=open_date,
                    control=control,
                    basis=basis.strip()[:2000],
                    decided_by=reader.actor,
                    decided_at=r.utcnow(),
                )
            )
            self.catalogue.append_audit(
                s,
                reader.actor,
                "open-decision",
                aip.uuid,
                {
                    "item": item_key,
                    "open_date": _iso(open_date),
                    "control": control,
                    "basis": basis.strip()[:500],
                },
            )
        self.index.refresh([aip.uuid])
        return {
            "aip": aip.uuid,
            "item": item_key,
            "open_date": _iso(open_date),
            "control": control,
            "basis": basis,
        }


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value else None


def _stored_path(path: str, known: Any) -> str:
    """The stored bag path a reader named: as stored, or as pages show it (ID numbers
    masked) when that names exactly one file; unchanged otherwise."""
    if path in known:
        return path
    matches = [p for p in known if r.mask_numbers(p) == path]
    return matches[0] if len(matches) == 1 else path


def _unique_shown(paths: Iterator[str] | list[str], logical: Any = lambda p: p) -> Any:
    """stored path -> its masked (logical) form, numbered when two files would be shown
    under one name."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for path in paths:
        base = r.mask_numbers(logical(path))
        shown, n = base, 1
        while shown in taken:
            n += 1
            stem, dot, ext = base.rpartition(".")
            shown = f"{stem}-{n}.{ext}" if dot else f"{base}-{n}"
        taken.add(shown)
        names[path] = shown
    return lambda path: names.get(path, r.mask_numbers(logical(path)))


def _with_access_copies(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each original its ``access_copy``: the path readers preview and download by default;
    the list comes back with each derivative right after its source.

    That is its access derivative (``data/access/…``), else a preservation derivative the
    browser shows (a DOC's PDF/A); None (the original is served) when it has neither, or the
    reader may not download it. The original stays downloadable (``download``)."""
    by_source: dict[str, list[dict[str, Any]]] = {}
    for f in files:
        if f.get("derived_from") and f["download"]:
            by_source.setdefault(f["derived_from"], []).append(f)
    for f in files:
        f["access_copy"] = None
        if f.get("derived_from"):
            continue
        copies = by_source.get(f["path"], [])
        best = ([c for c in copies if c["use"] == "access"]
                or [c for c in copies if c["use"] == "preservation" and c["preview"]])
        if best:
            f["access_copy"] = best[0]["path"]
            f["access_preview"] = best[0]["preview"]
    # each derivative listed right after its source (by path it would sort elsewhere: data/
    # access/… before data/logs/…, data/preservation/… after every data/objects/…)
    children: dict[str, list[dict[str, Any]]] = {}
    paths = {f["path"] for f in files}
    for f in files:
        if f.get("derived_from") in paths:
            children.setdefault(f["derived_from"], []).append(f)
    ordered: list[dict[str, Any]] = []
    for f in files:
        if f.get("derived_from") in paths:
            continue
        ordered.append(f)
        ordered.extend(children.get(f["path"], []))
    return ordered


def _at_version(s: Any, details: dict[str, Any], number: int | None) -> None:
    """Put one version's files (default: the newest) into ``details["files"]`` under their
    logical paths, each with the stored path of the object holding its bytes, and set
    ``details["version"]`` and ``details["current_version"]``. An AIP never updated is its
    version 1: logical paths are its stored paths."""
    import mimetypes

    from storage.aip import current_version, is_version_object, version_files

    uuid = details["uuid"]
    current = current_version(s, uuid)
    number = current if number is None else number
    if not 1 <= number <= current:
        raise NotFoundError(f"record {uuid} has no version {number}")
    details["version"], details["current_version"] = number, current
    if current == 1:
        return
    by_stored = {f["path"]: f for f in details["files"]}
    first = {p: f for p, f in by_stored.items() if not is_version_object(p)}
    named = {OBJECTS + str(i["fields"]["computer_filename"]): i["key"] for i in details["items"]
             if (i.get("fields") or {}).get("computer_filename")}
    files = []
    for path, row in sorted(version_files(s, uuid, number).items()):
        entry = dict(by_stored.get(row.path) or {"path": row.path, "size": row.size,
                                                   "digests": {"sha256": row.sha256},
                                                   "mime": row.mime, "puid": row.puid,
                                                   "format_name": row.format_name,
                                                   "format_version": row.format_version,
                                                   "use": row.use, "item": row.item_key})
        entry["stored"], entry["path"] = row.path, path
        base = first.get(path)
        if entry["item"] is None and path.startswith(OBJECTS):
            entry["item"] = named.get(path) or (base["item"] if base else None)
        if entry["mime"] is None and path.startswith(OBJECTS):
            entry["mime"] = mimetypes.guess_type(path)[0]
        files.append(entry)
    details["files"] = files


def _earlier_for_staff(reader: r.Reader, details: dict[str, Any]) -> None:
    """An earlier version than the newest is shown to archive staff only."""
    if details["version"] != details["current_version"] and not reader.staff:
        raise Forbidden("earlier versions of a record are open to archive staff only")


def _item_of(path: str, item_of: dict[str, str]) -> str | None:
    """The item a bag file belongs to: its own, or for a derived text that of its source."""
    if path in item_of:
        return item_of[path]
    if path.startswith(TEXT_PREFIX) and path.endswith(".txt"):
        return item_of.get(OBJECTS + path[len(TEXT_PREFIX) : -len(".txt")])
    return None


def _last_fixity(events: list[dict[str, Any]]) -> dict[str | None, dict[str, Any]]:
    """The latest fixity check event per file path (None: checks of the whole AIP)."""
    out: dict[str | None, dict[str, Any]] = {}
    for event in events:
        if "fixity" not in event["type"]:
            continue
        summary = {"at": event["at"], "outcome": event["outcome"], "location": event["location"]}
        targets = event.get("files") or [None]
        for target in targets:
            if target not in out or out[target]["at"] <= event["at"]:
                out[target] = summary
    return out


def _decided(fields: dict[str, Any], facts: r.RecordFacts) -> dict[str, Any]:
    """Fields with the open date and control flag in force (a review decision replaces
    those described at ingest), so a page never shows two of each."""
    out = dict(fields)
    if "open_date" in out:
        out["open_date"] = _iso(facts.open_date)
    if "control_id" in out:
        out["control_id"] = facts.control
    return out


def _file_fixity(path: str, fixity: dict[str | None, dict[str, Any]],
                 damage: dict[str, set[str]]) -> dict[str, Any] | None:
    """A file's latest fixity outcome: ``fail`` only where a check found this file damaged
    (with the locations); a failed check of the whole AIP that found other files damaged
    read this one intact."""
    last = fixity.get(path) or fixity.get(None)
    where = sorted(loc for loc, paths in damage.items() if path in paths)
    if where:
        return {**(last or {"at": None, "location": None}), "outcome": "fail",
                "damaged_at": where}
    if last is not None and last["outcome"] == "fail" and path not in fixity:
        return {**last, "outcome": "pass"}
    return last


def to_json(value: Any) -> str:
    """JSON for API answers and DIP metadata (dataclasses and dates included)."""

    def default(obj: Any) -> Any:
        if isinstance(obj, (date, datetime)):
            return obj.isoformat()
        if hasattr(obj, "__dataclass_fields__"):
            return asdict(obj)
        raise TypeError(type(obj).__name__)

    return json.dumps(value, ensure_ascii=False, default=default)
