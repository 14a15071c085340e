"""The shape of the code: the dependency rule between packages, storage's sub-packages and
their APIs, one place for commands, and a command line that starts without the heavy
libraries."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ingest", "storage", "access", "metadata_profiles", "policies")
ALLOWED = {
    "metadata_profiles": set(),
    "policies": set(),
    "storage": {"policies", "metadata_profiles"},
    "ingest": {"storage", "policies", "metadata_profiles"},
    "access": {"storage", "policies", "metadata_profiles"},
}
STORAGE_ROOMS = sorted(p.parent.name for p in (ROOT / "storage").glob("*/__init__.py"))
HEAVY = ("boto3", "botocore", "flask", "numpy", "elasticsearch", "sqlalchemy", "lxml",
         "alembic", "rjieba", "jsonschema")


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """Every absolute import of a file, at any depth: (line, module, names imported)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, [a.name for a in node.names]))
    return found


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def test_packages_import_only_what_the_dependency_rule_allows():
    broken = []
    for package in PACKAGES:
        for path in _modules(package):
            for line, module, _ in _imports(path):
                top = module.split(".")[0]
                if top in PACKAGES and top != package and top not in ALLOWED[package]:
                    broken.append(f"{_where(path, line)}: {package} imports {module}")
    assert not broken, "\n".join(broken)


def _api(room: str) -> set[str]:
    return set(importlib.import_module(f"storage.{room}").__all__)


def _submodules(room: str) -> set[str]:
    folder = ROOT / "storage" / room
    return {p.stem for p in folder.glob("*.py")} | {p.parent.name for p in folder.glob("*/__init__.py")}


def test_other_packages_use_storage_rooms_through_their_api():
    """Outside ``storage/<room>/``, code imports ``storage.<room>`` and the names its
    ``__init__`` lists (or one of its modules as a whole), never a name from a deep module."""
    broken = []
    sources = [ROOT / "dangan.py"] + [p for pkg in ("ingest", "access", "storage", "bench")
                                      for p in _modules(pkg)]
    for path in sources:
        for line, module, names in _imports(path):
            parts = module.split(".")
            if parts[0] != "storage" or len(parts) < 2 or parts[1] not in STORAGE_ROOMS:
                continue
            room = parts[1]
            if (ROOT / "storage" / room) in path.parents:
                continue
            if len(parts) > 2:
                broken.append(f"{_where(path, line)}: from {module} (use storage.{room})")
                continue
            for name in names:
                if name not in _api(room) and name not in _submodules(room):
                    broken.append(f"{_where(path, line)}: storage.{room} does not export {name}")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("room", STORAGE_ROOMS)
def test_each_storage_room_says_what_it_is_and_its_api_resolves(room):
    package = importlib.import_module(f"storage.{room}")
    assert package.__doc__ and len(package.__doc__.strip()) > 40, f"storage/{room}: no docstring"
    table = getattr(package, "_API", {})
    for name in getattr(package, "__all__", []):
        value = getattr(package, name)
        assert value is not None, f"storage.{room}.{name}"
        if name in table:  # a name equal to its module's exports the module itself
            assert inspect.ismodule(value) == (table[name] == name), f"storage.{room}.{name}"


def test_commands_live_only_in_the_commands_packages():
    stray = []
    for package in ("ingest", "storage", "access"):
        for path in _modules(package):
            if "commands" in path.relative_to(ROOT).parts:
                continue
            source = path.read_text(encoding="utf-8")
            if "@click.command" in source or "@click.group" in source:
                stray.append(str(path.relative_to(ROOT)))
    assert not stray, f"click commands outside */commands/: {stray}"


def test_every_command_in_the_tables_exists_under_its_name():
    import dangan

    table = dangan.command_table()
    assert set(table) == set(dangan.cli.list_commands(click.Context(dangan.cli)))
    for name in table:
        command = dangan.cli.get_command(click.Context(dangan.cli), name)
        assert isinstance(command, click.Command) and command.name == name, name


_PROBE = """
import json, sys
import dangan
for argv in {argvs!r}:
    try:
        dangan.main(argv)
    except SystemExit:
        pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def _heavy_after(argvs: list[list[str]], tmp_path: Path) -> list[str]:
    code = _PROBE.format(argvs=argvs, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, env={"DANGAN_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_dangan_and_its_help_pull_in_no_heavy_library(tmp_path):
    assert _heavy_after([], tmp_path) == []
    assert _heavy_after([["--help"]], tmp_path) == []


def test_every_commands_help_pulls_in_no_heavy_library(tmp_path):
    import dangan

    argvs = []
    for name in dangan.command_table():
        argvs.append([name, "--help"])
        command = dangan.cli.get_command(click.Context(dangan.cli), name)
        if isinstance(command, click.Group):
            argvs += [[name, sub, "--help"] for sub in command.list_commands(click.Context(command))]
    assert _heavy_after(argvs, tmp_path) == []


def test_the_lazy_import_check_can_fail(tmp_path):
    """The probe sees a heavy import when one happens."""
    assert "sqlalchemy" in _heavy_after([["show", "no-such-aip"]], tmp_path)


#: what a search or a record view never needs: XML (METS is read only for files and DIPs), the
#: cipher (searching masks with keyed hashes), the fixity scanner and its process pool, the
#: profile validator and the ID-number checksum library
NOT_FOR_READING = ("lxml", "cryptography", "multiprocessing", "storage.fixity.scan",
                   "storage.aip.mets", "metadata_profiles.validate", "stdnum", "jsonschema",
                   "access.search.pg_embedded")


def test_the_search_and_record_services_load_only_what_reading_needs():
    """``dangan search`` and ``dangan show`` import the access services and the audit log;
    what they do not need stays unloaded (each of these cost 10–50 ms at every call)."""
    code = ("import json, sys; import access.services, storage.catalogue.auditlog; "
            "from storage.copies import NoIntactCopy; from storage.catalogue import PiiVault; "
            f"print(json.dumps(sorted(m for m in {NOT_FOR_READING!r} if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    # what `dangan show` and `dangan search` load to answer from a SQLite catalogue: no ORM,
    # no SQLAlchemy at all (test_show_and_search_on_a_sqlite_holding_import_no_orm runs them)
    plain = ("sqlalchemy", "sqlalchemy.orm", *NOT_FOR_READING)
    code = ("import json, sys; import access.plain, access.commands.search, storage.commands.aip; "
            "from storage.catalogue import reading, journal, mask_text, PiiVault; "
            "from storage.copies import human_size; from access.search import EmbeddedSearch; "
            f"print(json.dumps(sorted(m for m in {plain!r} if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


SCHEMA_FILES = sorted([*(ROOT / "policies" / "schemas").glob("*.json"),
                       *(ROOT / "metadata_profiles" / "schema").glob("*.json")])


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_shipped_json_schemas_are_valid_draft_2020_12(path):
    """Commands trust the shipped schemas (no meta-schema check at start-up): this is that check."""
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text(encoding="utf-8")))


def test_shipped_profiles_and_policies_pass_their_schemas():
    """Commands skip the schema check of the shipped files (a bureau's own are always
    checked): this is that check, for every shipped profile and policy."""
    from metadata_profiles import loader as profiles
    from metadata_profiles.yamldoc import load_marked as load_profile_doc
    from metadata_profiles.yamldoc import schema_errors as profile_errors
    from policies import yamldoc as policy_docs
    from policies.loader import DATA

    problems = []
    for path in sorted(profiles.SHIPPED.glob("*.yaml")):
        problems += profile_errors(load_profile_doc(path), profiles.SCHEMA)
    for schema in sorted(policy_docs.SCHEMAS.glob("*.schema.json")):
        name = schema.name.removesuffix(".schema.json")
        problems += policy_docs.schema_errors(policy_docs.load_marked(DATA / f"{name}.yaml"),
                                              schema)
    assert problems == []


def test_every_regular_expression_of_the_shipped_profiles_compiles():
    """Shipped profiles compile their field patterns at first use; this compiles them all."""
    import re

    from metadata_profiles import loader

    for path in sorted(loader.SHIPPED.glob("*.yaml")):
        for spec in loader.parse_profile(path).fields:
            if spec.regex is not None:
                re.compile(spec.regex.pattern)
                assert spec.regex.fullmatch is not None


def test_show_and_search_on_a_sqlite_holding_import_no_orm(home, sample, cli, tmp_path):
    """``dangan show`` and ``dangan search`` read a SQLite catalogue in plain SQL: neither
    the ORM nor SQLAlchemy itself is imported (a third of a second of each call)."""
    if not home.get("catalogue", "url").startswith("sqlite:"):
        pytest.skip("the plain read path is the SQLite catalogue's (PostgreSQL reads through "
                    "SQLAlchemy)")
    assert cli("ingest", sample).code == 0
    found = cli("search", "户主", "--json")     # the first search brings the access view up
    assert found.code == 0, found.err
    aip = json.loads(found.out)["hits"][0]["aip"]
    argvs = [["show", aip], ["show", aip, "--json"], ["search", "因病"],
             ["search", "因病", "--json", "--as", "researcher"]]
    code = _PROBE.format(argvs=argvs, heavy=("sqlalchemy", "sqlalchemy.orm", *HEAVY))
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, env={"DANGAN_HOME": str(home.home), "PATH": "/usr/bin:/bin"},
                          check=True)
    assert "因病" in done.stdout and aip in done.stdout
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
