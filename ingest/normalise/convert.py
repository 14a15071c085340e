"""Running the tools: each derivative made from a copy of its source, in a work folder.

LibreOffice starts once for a batch: every file of the batch that goes to the same target is
converted by one ``soffice --headless --convert-to`` process (its own profile in the work
folder, so that concurrent runs never share one). Ghostscript, OCRmyPDF and ffmpeg run once
per file; Pillow runs in this process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ingest.normalise import tools as registry
from ingest.normalise.actions import Action, Derivative
from policies import PreservationPolicy, Tool

TARGET_EXTENSIONS = {"PDF/A-2b": "pdf", "XLSX": "xlsx", "JPEG": "jpg", "MP4/H.264": "mp4"}
_LIBREOFFICE_FILTERS = {
    "PDF/A-2b": 'pdf:writer_pdf_Export:{"SelectPdfVersion":{"type":"long","value":"2"}}',
    "XLSX": "xlsx:Calc MS Excel 2007 XML",
}
MESSAGE_CHARS = 2000


def _program(tool: Tool) -> list[str]:
    """The tool's command with its program resolved (a PyPI tool sits beside this Python)."""
    return [registry.program_path(tool.command[0]) or tool.command[0], *tool.command[1:]]


def _tail(text: str) -> str:
    text = (text or "").strip()
    return text[-MESSAGE_CHARS:]


def run_batch(policy: PreservationPolicy, jobs: Sequence[tuple[Action, Path]], workdir: Path,
              timeout: int = 600, reuse: bool = True,
              tool_for: dict[int, str] | None = None) -> list[Derivative]:
    """Make the derivatives of ``jobs`` ((action, source file) pairs) in ``workdir``.

    Arguments:
        policy: gives the tool registry.
        jobs: what to make; sources are only read (each is copied into ``workdir`` first).
        workdir: an empty or new folder for copies, outputs and the LibreOffice profile.
        timeout: seconds per tool process (a LibreOffice batch gets it per file).
        reuse: one LibreOffice process per batch and target (``False``: one per file, as the
            benchmark's baseline).
        tool_for: job index -> tool name used instead of the conversion's (OCRmyPDF for a
            PDF without a text layer).

    Returns:
        One :class:`Derivative` per job, in order, not yet validated (``outcome`` is
        ``"passed"`` when the tool made an output, ``"failed"`` with its message when it did
        not, ``"not-checked"`` when the tool is absent).
    """
    workdir = Path(workdir)
    (workdir / "in").mkdir(parents=True, exist_ok=True)
    (workdir / "out").mkdir(parents=True, exist_ok=True)
    results: list[Derivative | None] = [None] * len(jobs)
    office: dict[str, list[int]] = {}
    for index, (action, source) in enumerate(jobs):
        name = (tool_for or {}).get(index, action.conversion.tool)
        tool = policy.tools[name]
        derivative = Derivative(action.role, Path(source), None, action.conversion.target,
                                name, on_failure=action.on_failure)
        results[index] = derivative
        extension = TARGET_EXTENSIONS.get(action.conversion.target)
        absent = registry.missing(tool)
        if absent:
            derivative.message = f"not normalised: {absent}"
            continue
        derivative.tool_version = registry.version(tool)
        if extension is None:
            derivative.message = (f"not normalised: no converter to {action.conversion.target} "
                                  f"(known targets: {', '.join(TARGET_EXTENSIONS)})")
            continue
        copy = workdir / "in" / f"{index:05d}{''.join(Path(source).suffixes[-1:]).lower()}"
        shutil.copyfile(source, copy)
        output = workdir / "out" / f"{index:05d}.{extension}"
        if name == "libreoffice":
            office.setdefault(action.conversion.target, []).append(index)
            continue
        _run_one(derivative, tool, copy, output, action.conversion.target, timeout)
    for target, indexes in office.items():
        groups = [indexes] if reuse else [[i] for i in indexes]
        for group in groups:
            _libreoffice(policy.tools["libreoffice"], [results[i] for i in group], workdir,
                         target, group, timeout)
    return [r for r in results if r is not None]


def _finish(derivative: Derivative, output: Path, done: subprocess.CompletedProcess | None,
            error: str = "") -> None:
    if error:
        derivative.outcome, derivative.message = "failed", error
    elif output.is_file() and output.stat().st_size > 0:
        derivative.outcome, derivative.output = "passed", output
        derivative.message = _tail(done.stderr) if done is not None else ""
    else:
        code = done.returncode if done is not None else "?"
        derivative.outcome = "failed"
        derivative.message = (f"{derivative.tool} made no output (exit {code}): "
                              f"{_tail((done.stderr or '') + (done.stdout or '')) if done else ''}")


def _run_one(derivative: Derivative, tool: Tool, copy: Path, output: Path, target: str,
             timeout: int) -> None:
    if tool.name == "pillow":
        derivative.command = ["PIL.Image.open", str(copy), "-> RGB -> JPEG quality=85", str(output)]
        try:
            _pillow_jpeg(copy, output)
        except Exception as exc:  # noqa: BLE001 - a broken image is a failed conversion
            _finish(derivative, output, None, f"Pillow: {type(exc).__name__}: {exc}"[:MESSAGE_CHARS])
            return
        _finish(derivative, output, None)
        return
    program = _program(tool)
    if tool.name == "ghostscript":
        command = [*program, "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-dPDFA=2",
                   "-dPDFACompatibilityPolicy=1", "-sColorConversionStrategy=RGB",
                   "-sDEVICE=pdfwrite", f"-sOutputFile={output}", str(copy)]
    elif tool.name == "ocrmypdf":
        command = [*program, "-l", "chi_sim", "--output-type", "pdfa-2", "--force-ocr",
                   "--jobs", "1", str(copy), str(output)]
    elif tool.name == "ffmpeg":
        command = [*program, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i",
                   str(copy), "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                   "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", "-c:a", "aac",
                   "-movflags", "+faststart", str(output)]
    else:
        _finish(derivative, output, None, f"not normalised: no command for tool {tool.name}")
        derivative.outcome = "not-checked"
        return
    derivative.command = command
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=env, errors="replace")
    except subprocess.TimeoutExpired:
        _finish(derivative, output, None, f"{tool.name} took longer than {timeout} s")
        return
    if done.returncode != 0:
        output.unlink(missing_ok=True)
        _finish(derivative, output, None, f"{tool.name} exit {done.returncode}: "
                f"{_tail(done.stderr + done.stdout)}")
        return
    _finish(derivative, output, done)


def _pillow_jpeg(source: Path, output: Path) -> None:
    from PIL import Image

    with Image.open(source) as image:
        image.seek(0)
        frame = image.convert("RGB")
        frame.save(output, "JPEG", quality=85)


def _libreoffice(tool: Tool, derivatives: list[Derivative], workdir: Path, target: str,
                 indexes: list[int], timeout: int) -> None:
    """Convert several copies to one target with one LibreOffice process."""
    copies = [next((workdir / "in").glob(f"{i:05d}*")) for i in indexes]
    profile = (workdir / "libreoffice-profile").absolute().as_uri()
    out = workdir / "out"
    command = [*_program(tool), f"-env:UserInstallation={profile}", "--headless", "--norestore",
               "--nolockcheck", "--convert-to", _LIBREOFFICE_FILTERS[target], "--outdir",
               str(out), *map(str, copies)]
    error, done = "", None
    try:
        done = subprocess.run(command, capture_output=True, text=True, errors="replace",
                              timeout=timeout * len(copies), stdin=subprocess.DEVNULL,
                              cwd=workdir)
    except subprocess.TimeoutExpired:
        error = f"libreoffice took longer than {timeout * len(copies)} s for {len(copies)} files"
    extension = TARGET_EXTENSIONS[target]
    for derivative, copy, index in zip(derivatives, copies, indexes):
        derivative.command = [*command[:-len(copies)], str(copy)]
        output = out / f"{index:05d}.{extension}"
        if error:
            _finish(derivative, output, None, error)
            continue
        _finish(derivative, output, done)
        if derivative.outcome == "passed":
            derivative.message = ""
        else:
            said = [line for line in (done.stdout + "\n" + done.stderr).splitlines()
                    if copy.name in line or line.startswith("Error")]
            derivative.message = (f"libreoffice made no {extension} (exit {done.returncode}): "
                                  + _tail("\n".join(said) or done.stderr or done.stdout))
