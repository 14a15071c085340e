"""A portal request that appends to the audit log anchors it in storage when it ends, so a
user added (or a role changed) in the portal cannot be deleted from the log unnoticed."""

from __future__ import annotations


def test_a_user_added_in_the_portal_is_anchored_at_once(client_for, holding):
    from storage.catalogue.auditlog import verify
    from storage.catalogue.database import Catalogue

    admin = client_for("admin")
    response = admin.post("/admin/users", data={
        "action": "add", "username": "anchored-newcomer", "password": "long enough pw",
        "role": "researcher"})
    assert response.status_code == 302
    catalogue = Catalogue.open(holding.settings)
    result = verify(catalogue, holding.settings)
    assert result.intact, result.problems
    assert result.anchors and {a.status for a in result.anchors} == {"ok"}
    assert {a.seq for a in result.anchors} == {result.head_seq}, \
        "the entry of the new user is covered by the anchor in every location"
    catalogue.engine.dispose()
