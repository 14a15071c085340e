"""The tool registry at run time: is a tool there, which version is it, its PREMIS agent."""

from __future__ import annotations

import functools
import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from policies import Tool
from storage.aip import Agent


def missing(tool: Tool) -> str | None:
    """None when ``tool`` can run here, else why not (``"tool ghostscript absent: …"``)."""
    if tool.python:
        try:
            importlib.import_module(tool.python)
        except ImportError:
            return f"tool {tool.name} absent: Python module {tool.python} not installed ({tool.package})"
        return None
    program = tool.command[0] if tool.command else ""
    if not program or program_path(program) is None:
        return f"tool {tool.name} absent: {program or '(no command)'} not on PATH ({tool.package})"
    return None


def program_path(program: str) -> str | None:
    """Where ``program`` is: on PATH, else beside this Python (a tool installed from PyPI
    into the same virtual environment)."""
    return shutil.which(program) or shutil.which(program, path=str(Path(sys.executable).parent))


@functools.lru_cache(maxsize=32)
def _version(tool: Tool, path: str) -> str:
    if tool.python:
        module = importlib.import_module(tool.python)
        return str(getattr(module, "__version__", "unknown"))
    if not tool.version:
        return "unknown"
    try:
        done = subprocess.run([program_path(tool.version[0]) or tool.version[0],
                               *tool.version[1:]], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({type(exc).__name__})"
    lines = [line.strip() for line in (done.stdout or done.stderr).splitlines() if line.strip()]
    return lines[0] if lines else "unknown"


def version(tool: Tool) -> str:
    """The tool's version line (``"LibreOffice 7.4.7.2 40(Build:2)"``, ``"10.00.0"``),
    read once per PATH; ``"unknown"`` when it prints none."""
    return _version(tool, os.environ.get("PATH", ""))


def agent(tool: Tool) -> Agent:
    """The PREMIS agent of a tool, identified by its name and version."""
    found = version(tool)
    number = re.search(r"\d+(?:\.\d+)*", found)
    return Agent(f"{tool.name}-{number.group() if number else 'unknown'}", tool.name, "software",
                 found)
