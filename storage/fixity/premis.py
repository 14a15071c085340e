"""PREMIS 3 XML of one AIP as the catalogue knows it now: its files with their digests, every
event (ingest, and every fixity check and repair of every copy since), and the agents.

The ``mets.xml`` inside the AIP is frozen at ingest; this export is the living record an
auditor asks for. Fixity-check events carry their time span as an ISO 8601 interval
(``start/end``) in ``eventDateTime`` and their depth, copy, algorithms and tool in
``eventDetail``. Elements are written by the same code that writes PREMIS into METS.
"""

from __future__ import annotations

from lxml import etree
from sqlalchemy import select

from storage.catalogue import models as m
from storage.catalogue import Catalogue
from storage.fixity.models import CopyCheck
from storage.fixity.records import as_utc
from storage.aip import Agent, Event, FileEntry, build_premis

def premis_xml(catalogue: Catalogue, uuid: str) -> bytes:
    """The PREMIS document of an AIP (UTF-8 XML).

    Raises:
        NotFoundError: no such AIP.
    """
    aip = catalogue.get_aip(uuid)
    with catalogue.session() as s:
        files = s.scalars(select(m.File).where(m.File.aip_uuid == aip.uuid)
                          .order_by(m.File.path)).all()
        events = s.scalars(select(m.Event).where(m.Event.aip_uuid == aip.uuid)
                           .order_by(m.Event.at, m.Event.id)).all()
        spans = dict(s.execute(select(CopyCheck.event_id, CopyCheck.started_at)
                               .where(CopyCheck.aip_uuid == aip.uuid)).all())
        agent_ids = sorted({a for e in events for a in (e.agents or [])})
        agents = s.scalars(select(m.Agent).where(m.Agent.id.in_(agent_ids))).all()
    known_files = {f.key for f in files}
    identifiers = [("档号", aip.archival_code)] if aip.archival_code else []
    entries = [FileEntry(row.key, row.path, row.original_name, row.size, dict(row.digests or {}),
                         row.mime, row.puid, row.format_name, row.format_version, row.use,
                         row.item_key) for row in files]
    premis_events = []
    for row in events:
        when = as_utc(row.at).isoformat()
        if row.id in spans:
            when = f"{as_utc(spans[row.id]).isoformat()}/{when}"
        detail = row.detail or ""
        if row.location and row.location not in detail:
            detail = f"{detail}; copy at {row.location}".lstrip("; ")
        premis_events.append(Event(row.id, row.type, when, row.outcome, detail,
                                   row.outcome_detail or "", tuple(row.agents or ()),
                                   tuple(k for k in row.files or () if k in known_files)))
    root = build_premis(aip.uuid, identifiers, entries, premis_events,
                        [Agent(a.id, a.name, a.type, a.version) for a in agents])
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
