"""查档申请: a researcher applies, an archivist grants for a number of days, the researcher
then reads the record (every read audited) until the grant expires or is revoked."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import quote

from holdings import HOUSEHOLDS
from sqlalchemy import select, update

PDF = "data/objects/{}/001-贫困户申请书.pdf".format(HOUSEHOLDS[0].code)


def _text(html: str) -> str:
    import re

    return re.sub(r"<[^>]+>", " ", html)


def _get(client, url):
    response = client.get(url)
    response.get_data()
    response.close()
    return response


def test_request_grant_read_expire(portal, holding):
    from access.models import AccessRequest
    from storage.catalogue import Catalogue
    from storage.catalogue.models import AuditEntry

    researcher, archivist = portal.test_client(), portal.test_client()
    portal.test_login(researcher, "researcher", username="scholar")
    portal.test_login(archivist, "archivist", username="keeper")
    url = f"/aip/{holding.restricted}/file/{quote(PDF)}"
    assert _get(researcher, url).status_code == 403
    filed = researcher.post(
        f"/aip/{holding.restricted}/request", data={"purpose": "研究因病致贫户的帮扶措施"}
    )
    assert filed.status_code == 302
    mine = researcher.get("/api/v1/requests").get_json()["requests"]
    assert [r["status"] for r in mine] == ["pending"]
    assert (
        researcher.post(f"/requests/{mine[0]['id']}", data={"decision": "grant"}).status_code == 403
    )
    granted = archivist.post(f"/requests/{mine[0]['id']}", data={"decision": "grant", "days": "7"})
    assert granted.status_code == 302
    response = _get(researcher, url)
    assert response.status_code == 200 and response.data[:4] == b"%PDF"
    view = researcher.get(f"/api/v1/aips/{holding.restricted}").get_json()
    assert view["view"] == "content"
    found = researcher.get("/api/v1/search", query_string={"q": HOUSEHOLDS[0].head}).get_json()
    assert found["total"] >= 1  # granted records are found in full
    assert HOUSEHOLDS[0].id_number not in str(view)  # ID numbers stay masked even then
    catalogue = Catalogue.open(holding.settings)
    with catalogue.session() as s:
        actions = [
            e.action for e in s.scalars(select(AuditEntry).where(AuditEntry.actor == "scholar"))
        ]
    assert "access-request" in actions and "download-restricted" in actions
    with catalogue.session() as s:
        s.execute(
            update(AccessRequest)
            .where(AccessRequest.id == mine[0]["id"])
            .values(expires_at=datetime(2000, 1, 1, tzinfo=timezone.utc))
        )
    assert _get(researcher, url).status_code == 403
    assert researcher.get("/api/v1/requests").get_json()["requests"][0]["status"] == "expired"


def test_refuse_and_revoke(portal, holding):
    researcher, archivist = portal.test_client(), portal.test_client()
    portal.test_login(researcher, "researcher", username="scholar2")
    portal.test_login(archivist, "archivist", username="keeper2")
    for _ in range(2):
        researcher.post(f"/aip/{holding.restricted}/request", data={"purpose": "家谱研究"})
    first, second = sorted(
        r["id"] for r in researcher.get("/api/v1/requests").get_json()["requests"]
    )
    archivist.post(f"/requests/{first}", data={"decision": "refuse"})
    archivist.post(f"/requests/{second}", data={"decision": "grant", "days": "30"})
    url = f"/aip/{holding.restricted}/file/{quote(PDF)}"
    assert _get(researcher, url).status_code == 200
    archivist.post(f"/requests/{second}", data={"decision": "refuse"})  # revoke
    assert _get(researcher, url).status_code == 403
    statuses = {
        r["id"]: r["status"] for r in researcher.get("/api/v1/requests").get_json()["requests"]
    }
    assert statuses == {first: "refused", second: "revoked"}


def test_the_requester_withdraws_a_pending_request(portal, holding):
    """A button with a confirmation on the requests list; 已撤回 in Chinese; audited; only
    the requester's own pending request; the archivist can no longer decide it."""
    import re

    from storage.catalogue import Catalogue
    from storage.catalogue.models import AuditEntry

    researcher, other, archivist = (portal.test_client() for _ in range(3))
    portal.test_login(researcher, "researcher", username="scholar3")
    portal.test_login(other, "researcher", username="scholar4")
    portal.test_login(archivist, "archivist", username="keeper3")
    for _ in range(2):
        researcher.post(f"/aip/{holding.restricted}/request", data={"purpose": "撤回测试"})
    first, second = sorted(
        r["id"] for r in researcher.get("/api/v1/requests").get_json()["requests"])
    page = researcher.get("/requests").get_data(as_text=True)
    form = re.search(rf'<form[^>]*action="/requests/{first}/withdraw".*?</form>', page, re.S)
    assert form and "data-confirm" in form.group() and "撤回" in form.group()
    # others' requests: not theirs to withdraw, and no button on the archivist's list
    assert other.post(f"/requests/{first}/withdraw").status_code == 404
    assert f"/requests/{first}/withdraw" not in archivist.get("/requests").get_data(as_text=True)
    answer = researcher.post(f"/requests/{first}/withdraw", follow_redirects=True)
    body = answer.get_data(as_text=True)
    assert answer.status_code == 200 and f"#{first} 已撤回" in body
    statuses = {r["id"]: r["status"]
                for r in researcher.get("/api/v1/requests").get_json()["requests"]}
    assert statuses == {first: "withdrawn", second: "pending"}
    row = re.search(rf"<tr><td>#{first}</td>.*?</tr>", body, re.S).group()
    assert "已撤回" in _text(row) and "withdrawn" not in _text(row) and "/withdraw" not in row
    # a second withdrawal, or a decision on it, is refused with a message
    again = researcher.post(f"/requests/{first}/withdraw", follow_redirects=True)
    assert "只有待审批的申请可以撤回" in again.get_data(as_text=True)
    archivist.post(f"/requests/{first}", data={"decision": "grant", "days": "7"})
    assert {r["id"]: r["status"] for r in researcher.get("/api/v1/requests").get_json()[
        "requests"]}[first] == "withdrawn"
    assert "已撤回" in researcher.get("/requests?status=withdrawn").get_data(as_text=True)
    with Catalogue.open(holding.settings).session() as s:
        entries = [e for e in s.scalars(select(AuditEntry).where(
            AuditEntry.actor == "scholar3", AuditEntry.action == "access-withdrawn"))]
    assert len(entries) == 1 and entries[0].object == holding.restricted


def test_request_needs_a_purpose_and_an_account(client_for, holding):
    anonymous = client_for("public")
    assert (
        anonymous.post(f"/aip/{holding.restricted}/request", data={"purpose": "x"}).status_code
        == 302
    )  # to the login
    researcher = client_for("researcher")
    response = researcher.post(f"/aip/{holding.restricted}/request", data={"purpose": " "})
    assert response.status_code == 302
    assert (
        client_for("auditor")
        .post(f"/aip/{holding.restricted}/request", data={"purpose": "审计"})
        .status_code
        == 403
    )


def test_open_review_decision_opens_a_record(portal, holding, client_for):
    """An archivist's decision recorded in the portal changes what researchers find."""
    researcher = client_for("researcher")
    before = researcher.get("/api/v1/search", query_string={"q": "走访照片"}).get_json()
    archivist = client_for("archivist")
    response = archivist.post(
        f"/aip/{holding.restricted}/decision",
        data={
            "item": "item-002",
            "control": "控制",
            "open_date": "2099-12-31",
            "basis": "复核：继续控制",
        },
    )
    assert response.status_code == 302
    after = researcher.get("/api/v1/search", query_string={"q": "走访照片"}).get_json()
    assert after["total"] == before["total"]
    assert (
        researcher.post(
            f"/aip/{holding.restricted}/decision", data={"control": "开放", "basis": "x"}
        ).status_code
        == 403
    )
