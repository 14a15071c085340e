"""The 档号 register: duplicates found, numbers generated safely when ingests run at once."""

from __future__ import annotations

import multiprocessing

from metadata_profiles import load_profile, parse_code, render_template
from policies import load_settings
from storage.catalogue import CodeClaim, CodeRegistry, NumberRequest
from storage.catalogue import Catalogue

RULES = load_profile("jzfp").codes
TEMPLATE = "Q001-WS·2016-Y-FPB-{item_no}"
BUCKET = "Q001-WS·2016-Y-FPB"


def claim_of(text: str) -> CodeClaim:
    code = parse_code(text, RULES)
    return CodeClaim(code.text, code.bucket, code.number, code.width, code.level)


def request(key: str) -> NumberRequest:
    return NumberRequest(key, BUCKET, lambda n: render_template(TEMPLATE, {}, n, 4), 4)


def test_claims_conflict_across_transfers_but_not_with_themselves(home):
    registry = CodeRegistry(Catalogue.open(home))
    first = registry.claim("transfer-a", [claim_of("Q001-WS·2016-Y-FPB-0001")])
    assert first.conflicts == {}
    again = registry.claim("transfer-a", [claim_of("Q001-WS·2016-Y-FPB-0001")])
    assert again.conflicts == {}, "the same transfer submitted again keeps its claim"
    other = registry.claim("transfer-b", [claim_of("Q001-WS·2016-Y-FPB-0001"),
                                          claim_of("Q001-WS·2016-Y-FPB-0002")])
    assert list(other.conflicts) == ["Q001-WS·2016-Y-FPB-0001"]
    assert registry.release("transfer-a") == 1
    assert registry.claim("transfer-c", [claim_of("Q001-WS·2016-Y-FPB-0001")]).conflicts == {}


def test_generation_takes_the_next_free_number_and_is_stable_for_a_rerun(home):
    registry = CodeRegistry(Catalogue.open(home))
    registry.claim("t1", [claim_of("Q001-WS·2016-Y-FPB-0001"), claim_of("Q001-WS·2016-Y-FPB-0004")])
    result = registry.claim("t2", [], [request("sheet:7"), request("sheet:8")])
    assert sorted(result.generated.values()) == ["Q001-WS·2016-Y-FPB-0005",
                                                 "Q001-WS·2016-Y-FPB-0006"]
    rerun = registry.claim("t2", [], [request("sheet:7"), request("sheet:8")])
    assert rerun.generated == result.generated
    assert registry.numbers([BUCKET])[BUCKET] == {1, 4, 5, 6}


def test_gap_report_counts_only_assigned_codes(home):
    catalogue = Catalogue.open(home)
    registry = CodeRegistry(catalogue)
    registry.claim("t1", [claim_of(f"Q001-WS·2016-Y-FPB-{n:04d}") for n in (1, 2, 5)])
    with catalogue.session() as s:
        registry.assign(s, "t1", {f"Q001-WS·2016-Y-FPB-{n:04d}": "aip-1" for n in (1, 2, 5)})
    assert registry.gaps() == {BUCKET: [3, 4]}
    assert registry.gaps("Q002") == {}


def _generate_many(home: str, worker: int, count: int, queue) -> None:
    registry = CodeRegistry(Catalogue.open(load_settings(home)))
    codes = []
    for index in range(count):  # one transaction per code, as separate ingests would do
        result = registry.claim(f"transfer-{worker}-{index}", [], [request(f"row:{index}")])
        codes.extend(result.generated.values())
    queue.put(codes)


def test_two_ingests_at_once_never_get_the_same_number(home):
    Catalogue.open(home)  # migrate once before the workers start
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_generate_many, args=(str(home.home), w, 15, queue))
               for w in range(4)]
    for process in workers:
        process.start()
    codes = [code for _ in workers for code in queue.get(timeout=120)]
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert len(codes) == 60 and len(set(codes)) == 60
    assert sorted(int(c[-4:]) for c in codes) == list(range(1, 61))
