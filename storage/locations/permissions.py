"""Who may read what Dangan writes: its owner only.

The catalogue (with its ``-wal``/``-shm`` files) holds personal data and the search text; the
PII key decrypts ID numbers; staging, reports and stored AIPs hold the records themselves.
None of it is for other accounts of the machine: files are created ``0600`` and folders
``0700`` by the account Dangan runs as, whatever the umask of whoever started it. Readers,
auditors and archivists go through Dangan (the portal, the API, the ``dangan`` command),
never around it; a backup agent runs as that account or reads the storage locations with
its own credentials.

The roots — ``$DANGAN_HOME`` when Dangan creates it, staging, reports, logs and every
filesystem storage location — are private folders, so even a file created by a third-party
library with a wider mode inside them cannot be reached; files Dangan writes itself are
created private, and the ``dangan`` command runs with umask ``077``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700
UMASK = 0o077
OTHERS = 0o077          # the group and other bits


def private_dir(path: Path) -> Path:
    """Create ``path`` (and every missing parent) as a folder only its owner can enter.

    Folders that exist are left as they are: an administrator's own choice stands.
    """
    path = Path(path)
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(folder, DIR_MODE)    # mkdir's mode is narrowed by the umask, never widened
    return path


def restrict(path: Path) -> None:
    """Take the group and other bits off one file or folder (links are left alone)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode) or not st.st_mode & OTHERS:
        return
    os.chmod(path, stat.S_IMODE(st.st_mode) & ~OTHERS)


def restrict_tree(root: Path) -> None:
    """:func:`restrict` a folder and everything under it."""
    restrict(root)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            restrict(Path(folder, name))


def private_file(path: Path) -> Path:
    """Create ``path`` empty if it is missing, ``0600``; tighten it if it exists."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        restrict(path)
    return path
