"""Run ``eark-validator`` (installed from PyPI in a venv of its own) with no network.

At import, eark-validator 1.1.3 reads four CSIP vocabularies from
``https://earkcsip.dilcis.eu/schema/<name>.xml`` with ``urllib.request.urlopen`` (its
``ipxml/schematron.py``); the package ships the same vocabulary files in
``eark_validator/ipxml/resources/vocabs``. Before the validator is imported, a urllib opener is
installed that answers those addresses from the shipped copies and refuses every other one, so
nothing is fetched and nothing of the validator is changed. Arguments are the validator's own
(``eark-validator [options] FILE...``).
"""

from __future__ import annotations

import importlib.util
import io
import sys
import urllib.error
import urllib.request
import urllib.response
from email.message import Message
from pathlib import Path

VOCABULARY_HOST = "https://earkcsip.dilcis.eu/schema/"


def _vocabularies() -> Path:
    spec = importlib.util.find_spec("eark_validator")   # found, not imported
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("eark_validator is not installed in this Python")
    return Path(list(spec.submodule_search_locations)[0]) / "ipxml" / "resources" / "vocabs"


class ShippedVocabularies(urllib.request.BaseHandler):
    """Answers the CSIP vocabulary addresses from the files shipped with the validator."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def https_open(self, request: urllib.request.Request):
        url = request.full_url
        name = url[len(VOCABULARY_HOST):] if url.startswith(VOCABULARY_HOST) else ""
        local = self.folder / name
        if not name or "/" in name or not local.is_file():
            raise urllib.error.URLError(f"offline: {url} is not a shipped vocabulary")
        headers = Message()
        headers["Content-Type"] = "application/xml"
        return urllib.response.addinfourl(io.BytesIO(local.read_bytes()), headers, url, 200)

    def http_open(self, request: urllib.request.Request):
        raise urllib.error.URLError(f"offline: {request.full_url} refused")


def main() -> None:
    opener = urllib.request.OpenerDirector()
    opener.add_handler(ShippedVocabularies(_vocabularies()))
    urllib.request.install_opener(opener)
    from eark_validator.cli.app import main as validator_main

    sys.argv = ["eark-validator", *sys.argv[1:]]
    validator_main()


if __name__ == "__main__":
    main()
