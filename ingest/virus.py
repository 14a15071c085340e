"""Virus scanning through ClamAV (GD-4-1, GD-4-2): ``clamscan`` or a running ``clamd``.

``[antivirus] scanner`` chooses: ``""`` (none configured: the checks are *not checked*, never
passed), ``clamscan`` (the command, with ``[antivirus] database`` as its ``--database`` when
set) or ``clamd`` (a daemon at ``[antivirus] clamd_socket``: a unix socket path or
``tcp://host:port``; files are streamed with INSTREAM so the daemon needs no access to
staging). The engine and signature versions are recorded with every scan, and a scanner that
cannot run is a failure of GD-4-1, not a clean result.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from policies import Settings

CHUNK = 1 << 20
FOUND = re.compile(r"^(?P<path>.*): (?P<name>\S+) FOUND$")


@dataclass
class ScanResult:
    """The outcome of scanning a transfer.

    Attributes:
        configured: whether a scanner is configured at all.
        ran: whether the scan completed.
        engine: e.g. ``clamscan``; version: engine and signature versions.
        infected: path (as given) -> signature name.
        error: why the scan could not run or complete.
        scanned: number of files scanned.
    """

    configured: bool
    ran: bool = False
    engine: str = ""
    version: str = ""
    infected: dict[str, str] = field(default_factory=dict)
    error: str = ""
    scanned: int = 0


def scanner_from_settings(settings: Settings) -> Scanner | None:
    """The scanner ``[antivirus]`` configures, or None."""
    kind = str(settings.get("antivirus", "scanner") or "").strip().lower()
    timeout = settings.int("antivirus", "timeout")
    if not kind:
        return None
    if kind == "clamscan":
        database = str(settings.get("antivirus", "database") or "")
        return ClamscanScanner(str(settings.get("antivirus", "clamscan") or "clamscan"),
                               database or None, timeout)
    if kind == "clamd":
        return ClamdScanner(str(settings.get("antivirus", "clamd_socket") or ""), timeout)
    return UnknownScanner(kind)


class Scanner:
    """A virus scanner: ``scan(paths)`` returns a :class:`ScanResult`."""

    name = "scanner"

    def scan(self, paths: list[Path]) -> ScanResult:  # pragma: no cover - interface
        raise NotImplementedError


class UnknownScanner(Scanner):
    """A misconfigured scanner name: every scan fails with the reason."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def scan(self, paths: list[Path]) -> ScanResult:
        return ScanResult(True, engine=self.kind,
                          error=f"未知的扫描程序 [antivirus] scanner = {self.kind!r}（应为 clamscan 或 clamd）")


class ClamscanScanner(Scanner):
    """ClamAV's command-line scanner.

    Arguments:
        command: the clamscan executable.
        database: a signature file or folder (``--database``), or None for ClamAV's own.
        timeout: seconds the whole scan may take.
    """

    name = "clamscan"

    def __init__(self, command: str = "clamscan", database: str | None = None,
                 timeout: int = 3600) -> None:
        self.command, self.database, self.timeout = command, database, timeout

    def _base(self) -> list[str]:
        executable = shutil.which(self.command)
        if executable is None:
            raise FileNotFoundError(f"找不到 {self.command}")
        base = [executable]
        if self.database:
            base.append(f"--database={self.database}")
        return base

    def version(self) -> str:
        """Engine version, plus the signature databases it loads."""
        out = subprocess.run([*self._base(), "--version"], capture_output=True, text=True,
                             timeout=60, check=False).stdout.strip()
        if self.database:
            out += f"; signatures: {describe_database(Path(self.database))}"
        return out

    def scan(self, paths: list[Path]) -> ScanResult:
        result = ScanResult(True, engine="clamscan")
        try:
            result.version = self.version()
            files = [str(p) for p in paths]
            run = subprocess.run([*self._base(), "--no-summary", "--infected", "--stdout",
                                  "--", *files], capture_output=True, text=True,
                                 timeout=self.timeout, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            result.error = f"clamscan 无法运行: {exc}"
            return result
        for line in run.stdout.splitlines():
            match = FOUND.match(line.strip())
            if match:
                result.infected[match.group("path")] = match.group("name")
        if run.returncode not in (0, 1) or (run.returncode == 1 and not result.infected):
            result.error = (f"clamscan 退出码 {run.returncode}: "
                            f"{(run.stderr or run.stdout).strip()[-500:]}")
            return result
        result.ran, result.scanned = True, len(files)
        return result


class ClamdScanner(Scanner):
    """A running clamd, reached over a unix socket or TCP; files streamed with INSTREAM.

    Arguments:
        address: a unix socket path, or ``tcp://host:port``.
        timeout: seconds one command may take.
    """

    name = "clamd"

    def __init__(self, address: str, timeout: int = 3600) -> None:
        self.address, self.timeout = address, timeout

    def _connect(self) -> socket.socket:
        if not self.address:
            raise OSError("[antivirus] clamd_socket 未配置")
        if self.address.startswith("tcp://"):
            host, _, port = self.address.removeprefix("tcp://").rpartition(":")
            sock = socket.create_connection((host, int(port)), timeout=self.timeout)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            sock.connect(self.address)
        return sock

    def _command(self, command: bytes, body: Path | None = None) -> str:
        with self._connect() as sock:
            sock.sendall(b"z" + command + b"\0")
            if body is not None:
                with open(body, "rb") as handle:
                    while chunk := handle.read(CHUNK):
                        sock.sendall(struct.pack("!L", len(chunk)) + chunk)
                sock.sendall(struct.pack("!L", 0))
            reply = b""
            while not reply.endswith(b"\0"):
                part = sock.recv(4096)
                if not part:
                    break
                reply += part
        return reply.rstrip(b"\0").decode("utf-8", "replace").strip()

    def scan(self, paths: list[Path]) -> ScanResult:
        result = ScanResult(True, engine="clamd")
        try:
            result.version = self._command(b"VERSION")
            for path in paths:
                reply = self._command(b"INSTREAM", path)
                if reply.endswith("FOUND"):
                    result.infected[str(path)] = reply.split(":", 1)[1].strip().removesuffix(" FOUND")
                elif not reply.endswith("OK"):
                    result.error = f"clamd 对 {path.name} 的回答: {reply}"
                    return result
                result.scanned += 1
        except OSError as exc:
            result.error = f"clamd（{self.address}）无法连接或中断: {exc}"
            return result
        result.ran = True
        return result


def describe_database(path: Path) -> str:
    """Name, size and SHA-256 of each signature file (the version of a custom database)."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    parts = []
    for item in files[:20]:
        try:
            digest = hashlib.sha256(item.read_bytes()).hexdigest()[:16]
            parts.append(f"{item.name} ({item.stat().st_size} B, sha256 {digest}…)")
        except OSError as exc:
            parts.append(f"{item.name} (unreadable: {exc.strerror})")
    return ", ".join(parts) or f"{path} (empty)"
