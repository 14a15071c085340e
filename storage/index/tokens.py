"""The embedded search engine's token tables, on SQLite and on PostgreSQL.

Both hold the same two views of a document's text (see :mod:`storage.index.textseg`): ``grams``
(CJK bigrams and lower-cased words, in order) and ``words`` (dictionary words, for ranking).

* SQLite: the FTS5 tables ``search_fts`` (a document's content) and ``search_fts_public`` (its
  de-identified public text), rowid = ``search_docs.id``.
* PostgreSQL: ``search_tokens`` rows of ``tsvector`` built with the ``simple`` configuration,
  which keeps each space-separated token as it is, positions included, so that a word is the
  phrase query ``'因病' <-> '病致' <-> '致贫'``. A tsvector holds at most 16,383 positions, so
  long texts are cut into chunks that overlap by :data:`OVERLAP` tokens: a phrase of up to
  that many characters is always inside one chunk.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from storage.index.textseg import index_tokens

PARTS = {"content": "search_fts", "public": "search_fts_public"}
CHUNK = 16_000
OVERLAP = 64


def chunks(tokens: list[str], size: int = CHUNK, overlap: int = OVERLAP) -> list[list[str]]:
    """Windows of at most ``size`` tokens, consecutive windows sharing ``overlap`` tokens.

    >>> [len(c) for c in chunks(list("abcdefghij"), size=4, overlap=1)]
    [4, 4, 3]
    """
    if len(tokens) <= size:
        return [tokens]
    step = size - overlap
    return [tokens[start:start + size] for start in range(0, len(tokens) - overlap, step)]


def write_tokens_many(s: Session, documents: list[tuple[int, str]],
                      part: str = "content") -> None:
    """Index several documents at once: ``(search_docs.id, text)`` pairs (see
    :func:`write_tokens`); one executemany instead of a statement per document."""
    from storage.index import postings as search_postings  # numpy: only when writing

    if not documents:
        return
    if s.get_bind().dialect.name != "sqlite":
        for doc_id, content in documents:
            write_tokens(s, doc_id, content, part)
        return
    rows = []
    for doc_id, content in documents:
        grams, words = index_tokens(content)
        rows.append({"id": doc_id, "g": grams, "w": words})
    s.execute(text(f"INSERT INTO {PARTS[part]}(rowid, grams, words) VALUES (:id, :g, :w)"), rows)
    search_postings.write_segment(s, part, ((r["id"], r["g"], r["w"]) for r in rows))


def write_tokens(s: Session, doc_id: int, content: str, part: str = "content") -> None:
    """Index the text of one search document for the embedded engine.

    Arguments:
        s: a session in the caller's transaction.
        doc_id: the ``search_docs.id`` of the document.
        content: the text to index (code, title and body).
        part: ``content`` (what readers entitled to it find) or ``public`` (the de-identified
            view every reader may match).
    """
    if s.get_bind().dialect.name == "sqlite":
        write_tokens_many(s, [(doc_id, content)], part)
        return
    grams, words = index_tokens(content)
    gram_chunks = chunks(grams.split())
    word_list = words.split()
    per = -(-len(word_list) // len(gram_chunks)) if word_list else 0
    rows = [{"id": doc_id, "part": part, "n": n, "g": " ".join(g),
             "w": " ".join(word_list[n * per:(n + 1) * per])}
            for n, g in enumerate(gram_chunks)]
    s.execute(text("INSERT INTO search_tokens (doc_id, part, chunk, grams, words) VALUES "
                   "(:id, :part, :n, to_tsvector('simple', :g), to_tsvector('simple', :w))"),
              rows)


def delete_tokens(s: Session, doc_ids: list[int], part: str | None = None) -> None:
    """Remove the tokens of these documents (one part, or both)."""
    from storage.index import postings as search_postings  # numpy: only when writing

    if not doc_ids:
        return
    parts = [part] if part else list(PARTS)
    if s.get_bind().dialect.name == "sqlite":
        for name in parts:
            for doc_id in doc_ids:
                s.execute(text(f"DELETE FROM {PARTS[name]} WHERE rowid = :id"), {"id": doc_id})
            search_postings.delete_documents(s, name, doc_ids)
        return
    s.execute(text("DELETE FROM search_tokens WHERE doc_id = ANY(:ids) AND part = ANY(:parts)"),
              {"ids": doc_ids, "parts": parts})


def rebuild_tokens(s: Session, batch: int = 2000) -> int:
    """Rewrite the content tokens of every search document (after a segmentation change).

    Runs in the caller's transaction: readers keep the old tokens until it commits.

    Returns:
        The number of documents indexed.
    """
    from storage.index import postings as search_postings  # numpy: only when writing

    if s.get_bind().dialect.name == "sqlite":
        s.execute(text("DELETE FROM search_fts"))
        search_postings.clear_part(s, "content")
    else:
        s.execute(text("DELETE FROM search_tokens WHERE part = 'content'"))
    count, last = 0, 0
    while True:
        rows = s.execute(text("SELECT id, archival_code, title, text FROM search_docs "
                              "WHERE id > :last ORDER BY id LIMIT :n"),
                         {"last": last, "n": batch}).all()
        if not rows:
            return count
        write_tokens_many(s, [(doc_id, f"{code or ''} {title}\n{body}")
                              for doc_id, code, title, body in rows])
        count, last = count + len(rows), rows[-1][0]


def unindex_aip(s: Session, uuid: str, *, outbox_enabled: bool) -> None:
    """An AIP leaves search (deleted, or destroyed by appraisal): its documents and tokens
    go in this transaction, and an external engine is told through the outbox."""
    from sqlalchemy import delete as sql_delete, select

    from storage.catalogue import models
    from storage.index import outbox

    docs = list(s.scalars(select(models.SearchDoc.id).where(models.SearchDoc.aip_uuid == uuid)))
    delete_tokens(s, docs)
    s.execute(sql_delete(models.SearchDoc).where(models.SearchDoc.aip_uuid == uuid))
    if outbox_enabled:
        outbox.enqueue(s, uuid, "delete")
