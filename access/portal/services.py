"""Accessors for the services wired by :func:`access.portal.create_app`."""

from __future__ import annotations

from flask import current_app

from access.search import EmbeddedSearch
from storage.catalogue import Catalogue
from storage.retrieval import Retriever


def catalogue() -> Catalogue:
    return current_app.extensions["dangan"]["catalogue"]


def search_engine() -> EmbeddedSearch:
    return current_app.extensions["dangan"]["search"]


def retriever() -> Retriever:
    return current_app.extensions["dangan"]["retriever"]
