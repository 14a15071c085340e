"""Fuzzing the portal's query parameters and path segments (Hypothesis): whatever a browser,
a scanner or a mistyped link sends, the portal answers — a page, a refusal, a redirect —
never a server error. Bounded by ``DANGAN_FUZZ_EXAMPLES`` (60 here; ``make fuzz``: more)."""

from __future__ import annotations

import os
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("DANGAN_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
VALUE = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["", "abc", "-1", "0", "99999999999999999999", "1e9", "因病", "王",
                     "档号:", "\"", "(", "OR", "*", "%", "\x00", "\u202e", "630121********4291"]),
)
PARAMS = ("q", "page", "sort", "per_page", "category", "year", "retention", "county",
          "village", "level", "formats", "lang", "aip", "box")


def _ok(response) -> None:
    assert response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:300])


@FUZZ
@given(params=st.lists(st.tuples(st.sampled_from(PARAMS), VALUE), max_size=6),
       role=st.sampled_from(["public", "researcher", "archivist"]),
       route=st.sampled_from(["/search", "/", "/api/v1/search", "/labels", "/requests",
                              "/dashboard", "/labels/sheet"]))
def test_query_parameters_never_a_server_error(client_for, params, role, route):
    client = client_for(role)
    _ok(client.get(route, query_string=[(k, v) for k, v in params]))


@FUZZ
@given(segment=VALUE, role=st.sampled_from(["public", "archivist"]),
       route=st.sampled_from(["/aip/{}", "/aip/{}/item/x", "/household/{}", "/aip/{}.zip",
                              "/q/{}", "/api/v1/aips/{}", "/aip/{}/file/data/objects/{}"]))
def test_path_segments_never_a_server_error(client_for, holding, segment, role, route):
    client = client_for(role)
    value = quote(segment, safe="") or "x"
    _ok(client.get(route.format(value, value)))
    if "{}" in route and route.count("{}") == 2:  # a real AIP with a made-up file path
        _ok(client.get(route.format(holding.restricted, value)))
