"""The catalogue on PostgreSQL: the same models and migrations, the embedded engine's tokens
as tsvector phrases, and the database-wide transfer lock. (The whole suite also runs on
PostgreSQL with DANGAN_TEST_CATALOGUE=postgresql; these tests run on it in any case.)"""

from __future__ import annotations

import threading
import time

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import inspect, text

from access.search import EmbeddedSearch, parse_query
from storage.catalogue import MIGRATIONS, Catalogue, SearchDocument
from storage.index.tokens import CHUNK, chunks


def _alembic(catalogue: Catalogue, revision: str, down: bool = False) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with catalogue.engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def test_migrations_go_down_and_up_again(pg_cluster) -> None:
    catalogue = Catalogue(pg_cluster.create_database("migrations_round_trip"))
    try:
        catalogue.upgrade()
        tables = set(inspect(catalogue.engine).get_table_names())
        assert {"aips", "index_outbox", "jobs", "index_state", "search_tokens",
                "search_generation"} <= tables
        _alembic(catalogue, "0005", down=True)
        assert "jobs" not in set(inspect(catalogue.engine).get_table_names())
        _alembic(catalogue, "base", down=True)
        assert set(inspect(catalogue.engine).get_table_names()) <= {"alembic_version"}
        catalogue.upgrade()
        assert tables == set(inspect(catalogue.engine).get_table_names())
    finally:
        catalogue.engine.dispose()
        pg_cluster.drop_database("migrations_round_trip")


def test_long_texts_are_found_anywhere(pg_catalogue_url) -> None:
    """A document longer than a tsvector's 16,383 positions is kept in overlapping chunks:
    phrases at the start, across a chunk boundary and at the end are all found."""
    catalogue = Catalogue(pg_catalogue_url)
    filler = "档案" * 5000                                   # 5,000 bigrams per run
    body = "\n".join(["因病致贫开头", filler, filler, filler, "边界附近的易地扶贫搬迁", filler,
                      filler, "末尾的光伏扶贫"])
    with catalogue.session() as s:
        catalogue.index_documents(s, "a" * 36, [SearchDocument("item-001", None, "长文", body)])
        parts = s.execute(text("SELECT count(*) FROM search_tokens")).scalar()
    assert parts > 1
    engine = EmbeddedSearch(catalogue)
    for phrase in ("因病致贫", "易地扶贫搬迁", "光伏扶贫", "开头 末尾"):
        assert engine.search(parse_query(phrase)).total == 1, phrase
    assert engine.search(parse_query("光伏 -易地扶贫搬迁")).total == 0
    assert engine.search(parse_query("开头末尾")).total == 0   # not one phrase


def test_chunks_overlap_so_no_short_phrase_is_cut() -> None:
    tokens = [str(n) for n in range(CHUNK * 2 + 500)]
    windows = chunks(tokens)
    assert all(len(w) <= CHUNK for w in windows)
    starts = [w[0] for w in windows]
    for start in range(0, len(tokens) - 64, 7):               # every 64-token phrase …
        first = int(tokens[start])
        assert any(int(s) <= first and first + 64 <= int(s) + CHUNK
                   for s in starts), start                    # … lies whole in some chunk


def test_the_transfer_lock_holds_across_connections(pg_catalogue_url) -> None:
    first, second = Catalogue(pg_catalogue_url), Catalogue(pg_catalogue_url)
    order: list[str] = []
    inside = threading.Event()

    def other() -> None:
        inside.wait(10)
        with second.transfer_lock("f" * 64):
            order.append("second")

    thread = threading.Thread(target=other)
    thread.start()
    with first.transfer_lock("f" * 64):
        inside.set()
        time.sleep(0.5)
        order.append("first")
    thread.join(10)
    assert order == ["first", "second"]
    with first.transfer_lock("a" * 64), second.transfer_lock("b" * 64):
        pass                                                  # other transfers are not held up
