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
from storage.catalogue.database import Catalogue
from storage.fixity.models import CopyCheck
from storage.fixity.records import as_utc
from storage.aip.mets import (
    NSMAP,
    PREMIS_NS,
    XSI_NS,
    Agent,
    Event,
    FileEntry,
    _identifier,
    _premis_agent,
    _premis_event,
    _premis_file,
    _sub,
)

PREMIS_SCHEMA_LOCATION = f"{PREMIS_NS} http://www.loc.gov/standards/premis/v3/premis.xsd"


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
    root = etree.Element(f"{{{PREMIS_NS}}}premis", nsmap={k: NSMAP[k] for k in ("premis", "xsi")})
    root.set("version", "3.0")
    root.set(f"{{{XSI_NS}}}schemaLocation", PREMIS_SCHEMA_LOCATION)
    entity = _sub(root, f"{{{PREMIS_NS}}}object", version="3.0")
    entity.set(f"{{{XSI_NS}}}type", "premis:intellectualEntity")
    _identifier(entity, "objectIdentifier", "UUID", aip.uuid, "aip.uuid")
    if aip.archival_code:
        _identifier(entity, "objectIdentifier", "档号", aip.archival_code, "aip.archival_code")
    known_files = {f.key for f in files}
    for row in files:
        _premis_file(root, FileEntry(row.key, row.path, row.original_name, row.size,
                                     dict(row.digests or {}), row.mime, row.puid,
                                     row.format_name, row.format_version, row.use,
                                     row.item_key), f"file {row.path}")
    for row in events:
        when = as_utc(row.at).isoformat()
        if row.id in spans:
            when = f"{as_utc(spans[row.id]).isoformat()}/{when}"
        detail = row.detail or ""
        if row.location and row.location not in detail:
            detail = f"{detail}; copy at {row.location}".lstrip("; ")
        _premis_event(root, Event(row.id, row.type, when, row.outcome, detail,
                                  row.outcome_detail or "", tuple(row.agents or ()),
                                  tuple(k for k in row.files or () if k in known_files)),
                      aip.uuid, f"event {row.id}")
    for agent in agents:
        _premis_agent(root, Agent(agent.id, agent.name, agent.type, agent.version),
                      f"agent {agent.id}")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
