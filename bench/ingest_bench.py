"""Ingest throughput against its baselines, on the same bytes, in one run.

Data sets: (a) one 1 GiB file, (b) 20,000 files of 4 KiB: ``--small-kind bin`` (the
default, as before: pseudo-random bytes named ``.bin``) or ``mixed`` (real small PDF, JPEG,
PNG and plain-text files, see :func:`make_small_files`).
Compared:
  dangan   the whole ingest (stage with digests, identify formats, checks, METS, AIP bag,
           store and read back, catalogue, index) through the Python API
  bagit    bagit-python doing the minimum of the same: copy into a store folder,
           ``make_bag`` with sha256, ``validate``
  hashlib  one sha256 pass over the bytes (the floor)
Both "no flush" (page cache allowed; Dangan's fsync off) and "flush" (Dangan's default:
sync and read back from disk; bagit: sync and evict before make_bag and validate) are run.
bagit and Dangan runs alternate, so that other work on the machine weighs on both alike;
the 1-minute load average is recorded beside each row. The small files are seeded, the
same in every run.

Reproduce:  .venv/bin/python -m bench.ingest_bench [--big-mib 1024] [--small 20000] [--repeat 3]
            [--small-kind bin|mixed] [--skip-big] [--skip-small] [--existing-home]
            [--profile]   (cProfile top functions of one ingest of each set instead of timings)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import shutil
import statistics
import tempfile
from contextlib import contextmanager
from pathlib import Path

import bagit

from bench.common import drop_cache, machine, make_big_file, profiled, save, table, timed
from ingest.pipeline import Ingester
from policies import load_settings


def make_small_files(folder: Path, count: int, size: int = 4096, per_dir: int = 1000,
                     seed: int = 7, kind: str = "bin") -> None:
    """``count`` small files, ``per_dir`` per sub-folder.

    ``kind`` ``"bin"``: files of ``size`` pseudo-random bytes (``.bin``), which Siegfried
    names "Binary File" on the extension only, so libmagic is asked about every one.
    ``kind`` ``"mixed"``: real small documents of about ``size`` bytes, as a scanned
    transfer's folder holds them: scanned PDF 1.4 (30 %), JPEG (25 %), PNG (20 %) and UTF-8 plain
    text (25 %), each different; Siegfried identifies the first three by signature.

    Seeded, file by file (the first N files are the same whatever N): random bytes now and
    then look like an executable to Siegfried (x-fmt/409), which the format policy rejects;
    with fixed bytes every run ingests the same, accepted transfer.
    """
    for index in range(count):
        sub = folder / f"d{index // per_dir:03d}"
        if index % per_dir == 0:
            sub.mkdir(parents=True, exist_ok=True)
        rng = random.Random(seed * 1_000_003 + index)
        if kind == "bin":
            (sub / f"f{index:06d}.bin").write_bytes(rng.randbytes(size))
            continue
        if kind != "mixed":
            raise ValueError(f"unknown small-file kind {kind!r} (bin or mixed)")
        slot = index % 20
        if slot < 6:
            name, data = f"f{index:06d}.pdf", _small_pdf(rng, size)
        elif slot < 11:
            name, data = f"f{index:06d}.jpg", _small_image(rng, "JPEG")
        elif slot < 15:
            name, data = f"f{index:06d}.png", _small_image(rng, "PNG")
        else:
            name, data = f"f{index:06d}.txt", _small_text(rng, size)
        (sub / name).write_bytes(data)


_WORDS = ("贫困户", "建档立卡", "申请书", "村委会", "意见", "同意", "家庭", "收入", "帮扶",
          "计划", "2016年", "第", "号", "县", "乡", "镇", "。", "，")


def _small_text(rng: random.Random, size: int) -> bytes:
    words = []
    length = 0
    while length < size - 64:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word.encode("utf-8"))
        if rng.random() < 0.05:
            words.append("\n")
    return ("".join(words) + "\n").encode("utf-8")


def _small_pdf(rng: random.Random, size: int) -> bytes:
    """A one-page scanned PDF 1.4: the page is one JPEG image (DCTDecode) and no text, as
    a scanner writes it (hand-written, with a valid cross-reference table)."""
    scan = _small_image(rng, "JPEG", (64, 48))
    content = b"q 595 0 0 842 0 0 cm /Im0 Do Q\n"
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
               b"/Resources << /XObject << /Im0 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
               b"<< /Type /XObject /Subtype /Image /Width 64 /Height 48 /ColorSpace /DeviceRGB "
               b"/BitsPerComponent 8 /Filter /DCTDecode /Length %d >>\nstream\n" % len(scan)
               + scan + b"\nendstream"]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def _small_image(rng: random.Random, form: str, size: tuple[int, int] = (40, 30)) -> bytes:
    """A small image (a noisy gradient, 40 x 30 pixels) as JPEG or PNG."""
    import io

    from PIL import Image, ImageChops

    noise = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    image = ImageChops.blend(Image.linear_gradient("L").convert("RGB").resize(size), noise, 0.3)
    buffer = io.BytesIO()
    image.save(buffer, form, **({"quality": 85} if form == "JPEG" else {}))
    return buffer.getvalue()


def hash_all(folder: Path) -> None:
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            with open(os.path.join(dirpath, name), "rb", buffering=0) as handle:
                digest = hashlib.sha256()
                while block := handle.read(1 << 20):
                    digest.update(block)


def bagit_baseline(source: Path, store: Path, flush: bool) -> None:
    shutil.copytree(source, store)
    if flush:
        drop_cache(store)
    bag = bagit.make_bag(str(store), checksums=["sha256"])
    if flush:
        drop_cache(store)
    bag.validate()


def dangan_ingest(source: Path, home: Path, flush: bool) -> None:
    env = {"DANGAN_STORAGE_FSYNC": "true" if flush else "false"}
    settings = load_settings(home, environ=env)
    result = Ingester(settings).ingest(source)
    if result.status != "accepted":
        raise SystemExit(f"ingest {result.status}: " + "; ".join(
            f"{f['code']} {f['message']} {f['problems'][:3]}" for f in result.failures))


@contextmanager
def cpu_time(into: list[float]):
    """CPU seconds (user + system) of this process and its waited-for children (the
    Siegfried child) spent inside the block: less sensitive to other work on the machine
    than the wall time (the reset between runs is inside, and small)."""
    before = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    yield
    after = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    into.append(sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime
                    for a, b in zip(after, before)))


def prepare_home(home: Path, flush: bool) -> None:
    """Make a Dangan home with its catalogue (what an archive has before a transfer comes)."""
    env = {"DANGAN_STORAGE_FSYNC": "true" if flush else "false"}
    Ingester(load_settings(home, environ=env)).catalogue.engine.dispose()


def run_set(name: str, source: Path, work: Path, repeat: int,
            existing_home: bool = False) -> list[dict]:
    rows = []
    files = [p for p in source.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    hashed = timed(lambda: hash_all(source), repeat)
    for flush in (False, True):
        store, home = work / "store", work / "home"

        def reset() -> None:
            shutil.rmtree(store, ignore_errors=True)
            shutil.rmtree(home, ignore_errors=True)
            os.sync()

        load_start = os.getloadavg()[0]
        baseline: list[float] = []
        ours: list[float] = []
        cpu: dict[str, list[float]] = {"dangan": [], "bagit": []}
        for _ in range(repeat):
            with cpu_time(cpu["bagit"]):
                baseline += timed(lambda: bagit_baseline(source, store, flush), 1, reset)["runs_s"]
            with cpu_time(cpu["dangan"]):
                ours += timed(lambda: dangan_ingest(source, home, flush), 1,
                              (lambda: (reset(), prepare_home(home, flush))) if existing_home
                              else reset)["runs_s"]
        reset()
        baseline_s, ours_s = statistics.median(baseline), statistics.median(ours)
        rows.append({"set": name, "bytes": size, "files": len(files), "flush": flush,
                     "existing_home": existing_home,
                     "load_start": round(load_start, 2),
                     "load_avg_1min": round(os.getloadavg()[0], 2),
                     "dangan_s": ours_s, "bagit_s": baseline_s,
                     "dangan_cpu_s": round(statistics.median(cpu["dangan"]), 2),
                     "bagit_cpu_s": round(statistics.median(cpu["bagit"]), 2),
                     "hashlib_s": hashed["median_s"],
                     "speedup_vs_bagit": baseline_s / ours_s,
                     "dangan_vs_hashlib": ours_s / hashed["median_s"],
                     "runs": {"dangan": ours, "bagit": baseline, "hashlib": hashed["runs_s"]}})
    return rows


def _runs(values: list[float], unit: str = "") -> str:
    """Every run, in order (the spread of the median beside it)."""
    return " ".join(f"{v:.2f}{unit}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=20000)
    parser.add_argument("--small-kind", choices=("bin", "mixed"), default="bin",
                        help="the small set: pseudo-random .bin files (default) or real small "
                             "PDF/JPEG/PNG/TXT files")
    parser.add_argument("--skip-big", action="store_true", help="only the small set")
    parser.add_argument("--skip-small", action="store_true", help="only the large file")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--existing-home", action="store_true",
                        help="make the Dangan home and its catalogue before the timer starts "
                             "(as an archive's home exists before a transfer comes); by default "
                             "each timed ingest creates its home and catalogue too")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--profile", action="store_true",
                        help="Instead of timing, ingest each set once (no flush) under cProfile "
                             "and print where the time went.")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dangan-bench-", dir=args.workdir))
    big, small = work / "big", work / "small"
    sets = []
    if not args.skip_big:
        sets.append((f"a: 1 file of {args.big_mib} MiB", big))
    if not args.skip_small:
        sets.append((f"b: {args.small} files of 4 KiB ({args.small_kind})", small))
    try:
        if not args.skip_big:
            make_big_file(big, args.big_mib << 20)
        if not args.skip_small:
            make_small_files(small, args.small, kind=args.small_kind)
        if args.profile:
            for name, source in sets:
                print(f"== ingest of {name}, no flush; load {os.getloadavg()[0]:.2f}")
                profiled(True, lambda: dangan_ingest(source, work / f"home-{source.name}", False))
            return
        rows = []
        for name, source in sets:
            rows += run_set(name, source, work / source.name, args.repeat, args.existing_home)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = ("python -m bench.ingest_bench "
               f"--big-mib {args.big_mib} --small {args.small} --small-kind {args.small_kind} "
               f"--repeat {args.repeat}" + (" --skip-big" if args.skip_big else "")
               + (" --skip-small" if args.skip_small else "")
               + (" --existing-home" if args.existing_home else ""))
    path = save("ingest", {"machine": machine(), "rows": rows, "command": command})
    header = ["set", "flush", "dangan s", "bagit s", "hashlib s", "bagit/dangan",
              "dangan/hashlib", "files/s", "CPU s dangan/bagit", "runs dangan", "runs bagit",
              "ratio of each pair", "load"]
    print(table([header] + [[r["set"], "yes" if r["flush"] else "no", f"{r['dangan_s']:.2f}",
                             f"{r['bagit_s']:.2f}", f"{r['hashlib_s']:.2f}",
                             f"{r['speedup_vs_bagit']:.2f}x", f"{r['dangan_vs_hashlib']:.2f}x",
                             f"{r['files'] / r['dangan_s']:.0f}",
                             f"{r['dangan_cpu_s']:.1f}/{r['bagit_cpu_s']:.1f}",
                             _runs(r["runs"]["dangan"]), _runs(r["runs"]["bagit"]),
                             _runs([b / d for b, d in zip(r["runs"]["bagit"],
                                                          r["runs"]["dangan"])], "x"),
                             f"{r['load_start']:.2f}-{r['load_avg_1min']:.2f}"]
                            for r in rows]))
    print(f"\n{command}\nresults: {path}")


if __name__ == "__main__":
    main()
