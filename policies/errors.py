"""Dangan's exceptions: one base class, one family per area.

Every error the command line can meet derives from :class:`DanganError`; each carries the
exit code the CLI uses (1: a check failed or a transfer was rejected, 2: bad usage or
configuration, 3: internal error). Third-party errors are translated at the edge of the
package that calls the library, with the original attached as ``__cause__``.
"""

from __future__ import annotations


class DanganError(Exception):
    """Base of every error Dangan raises on purpose."""

    exit_code = 3


class ConfigError(DanganError):
    """The configuration, a policy or a profile is invalid (file and line in the message)."""

    exit_code = 2


class UsageError(DanganError):
    """The command was called wrongly (unknown AIP, missing argument, ...)."""

    exit_code = 2


class RejectedError(DanganError):
    """Input was refused: a transfer that fails its checks, an unsafe archive."""

    exit_code = 1


class NotFoundError(UsageError):
    """An AIP, file or object that does not exist."""


class StorageError(DanganError):
    """A storage location failed (I/O, network, server refusal)."""


class ObjectNotFound(StorageError, NotFoundError):
    """The object is absent from the location."""

    exit_code = 1


class ObjectLocked(StorageError):
    """Deletion or overwrite refused because a retention period or legal hold applies."""

    exit_code = 1


class FixityError(StorageError):
    """Bytes read back do not match their recorded digest."""

    exit_code = 1

    def __init__(self, message: str, *, path: str = "", algorithm: str = "", expected: str = "",
                 actual: str = "") -> None:
        super().__init__(message)
        self.path, self.algorithm, self.expected, self.actual = path, algorithm, expected, actual


class CatalogueError(DanganError):
    """The catalogue database failed or holds inconsistent data."""
