"""The Debian packages the tests use are listed in one place, .ci/debian-packages.txt: every
package a test's skip reason tells the reader to install is there, so that CI installs it and
the fresh-machine run (.ci/without-debian-packages) hides it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIST = ROOT / ".ci" / "debian-packages.txt"
INSTALL = re.compile(r"apt-get install((?: +[a-z0-9][a-z0-9.+-]+)+)")


def listed() -> dict[str, str]:
    """{package: need} from the list, every line checked for its form."""
    packages = {}
    for number, line in enumerate(LIST.read_text(encoding="utf-8").splitlines(), 1):
        entry, _, comment = line.partition("#")
        words = entry.split()
        if not words:
            continue
        assert len(words) == 2 and words[1] in ("required", "optional"), (number, line)
        assert comment.strip(), f"line {number}: say which tests need {words[0]}"
        assert words[0] not in packages, f"line {number}: {words[0]} listed twice"
        packages[words[0]] = words[1]
    return packages


def named_in_skip_reasons() -> dict[str, set[str]]:
    """{package: test files whose text tells the reader to ``apt-get install`` it}."""
    named: dict[str, set[str]] = {}
    for source in ROOT.joinpath("tests").rglob("*.py"):
        for match in INSTALL.finditer(source.read_text(encoding="utf-8")):
            for package in match.group(1).split():
                named.setdefault(package, set()).add(source.relative_to(ROOT).as_posix())
    return named


def test_every_package_a_skip_reason_names_is_listed():
    packages = listed()
    named = named_in_skip_reasons()
    assert named, "no skip reason names a package to install"
    unlisted = {p: where for p, where in named.items() if p not in packages}
    assert not unlisted, f"named in a skip reason but not in {LIST.name}: {unlisted}"


def test_ci_installs_the_list_and_runs_the_suite_without_it():
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ".ci/debian-packages.txt" in run
    assert ".ci/without-debian-packages make test" in run
    assert "libmagic1" not in run and "fonts-wqy-microhei" not in run  # no second list
    assert listed().get("libmagic1") == "required"  # the README's prerequisite is never hidden


def test_the_fresh_machine_run_covers_every_test_that_names_a_package():
    """CI's run without the packages takes a selection of the suite: every test module whose
    skip reasons name a package must be in it (else its skip path is never seen to work).
    Skips in shared fixtures (pg_cluster.py, storage/conftest.py) are seen through the modules
    the selection names for them (test_postgres.py, test_worm_ceph.py)."""
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    selection = re.search(r"fresh_machine_tests=\(([^)]*)\)", run).group(1).split()
    assert all((ROOT / path).exists() for path in selection), selection
    files = {f for where in named_in_skip_reasons().values() for f in where
             if Path(f).name.startswith("test_")}
    outside = sorted(f for f in files if not any(f == s or f.startswith(s.rstrip("/") + "/")
                                                  for s in selection))
    assert not outside, f"not in fresh_machine_tests of .ci/run: {outside}"
