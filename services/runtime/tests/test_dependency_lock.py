"""The dependency declarations and the lock agree (offline: no index, no network).

- every distribution named in requirements.txt (the tooling) and in each package's
  `[project] dependencies` is pinned in requirements.lock, at a version its range accepts;
- the lock is closed: walking those requirements through the metadata of the installed
  distributions (where the installed version is the locked one) reaches only locked ones;
- every pin carries a hash (`make deps` installs with `--require-hashes`);
- every third-party top-level import in a package's src maps to a dependency that package
  declares, and every declared dependency is imported (so a new import without a
  declaration, or a left-over declaration, fails here).

After a change to requirements.txt or a pyproject's dependencies, `make lock` regenerates the lock.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[3]
LOCK = REPO / "requirements.lock"
REQUIREMENTS = REPO / "requirements.txt"
PACKAGE_DIRS = ["services/runtime", "services/schema", "services/form", "services/record", "gateway"]

# `crm.*` are the generated gRPC/protobuf stubs (gen/python, `make proto`), not a distribution:
# a package importing them needs the runtimes the generated code imports.
GENERATED = {"crm": {canonicalize_name("grpcio"), canonicalize_name("protobuf")}}

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)")


@dataclass(frozen=True)
class Package:
    """One of the project's own packages: where it is, its distribution name, its declared requirements."""

    path: Path
    name: NormalizedName
    modules: frozenset[str]
    requirements: tuple[Requirement, ...]


def _packages() -> list[Package]:
    """Read each package's pyproject and the top-level modules of its src folder."""
    found = []
    for rel in PACKAGE_DIRS:
        path = REPO / rel
        project = tomllib.loads((path / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        modules = frozenset(
            p.name if p.is_dir() else p.stem
            for p in (path / "src").iterdir()
            if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"
        )
        reqs = tuple(Requirement(r) for r in project.get("dependencies", []))
        found.append(Package(path, canonicalize_name(project["name"]), modules, reqs))
    return found


PACKAGES = _packages()
LOCAL_DISTS = {p.name for p in PACKAGES}
LOCAL_MODULES = {m: p.name for p in PACKAGES for m in p.modules}


def _lock() -> tuple[dict[NormalizedName, str], set[NormalizedName]]:
    """Pinned versions of requirements.lock by normalised name, and the names that carry a hash."""
    pins: dict[NormalizedName, str] = {}
    hashed: set[NormalizedName] = set()
    current: NormalizedName | None = None
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match:
            current = canonicalize_name(match["name"])
            assert current not in pins, f"{current} is pinned twice in requirements.lock"
            pins[current] = match["version"]
        elif current is not None and line.strip().startswith("--hash=sha256:"):
            hashed.add(current)
        elif line.strip() and not line.lstrip().startswith("#") and not line.startswith(" "):
            raise AssertionError(f"requirements.lock: not an exact pin: {line!r}")
    return pins, hashed


def _requirements_txt() -> list[Requirement]:
    """The top-level tooling of requirements.txt (comments, blank lines and pip options skipped)."""
    reqs = []
    for raw in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            reqs.append(Requirement(line))
    return reqs


def _applies(req: Requirement, extra: str = "") -> bool:
    """Whether the requirement's marker holds on this interpreter (for the given extra)."""
    if req.marker is None:
        return True
    env = {**default_environment(), "extra": extra}
    return req.marker.evaluate(env)  # type: ignore[arg-type]


def _roots() -> list[tuple[str, Requirement]]:
    """Every requirement `make lock` starts from, with where it is declared."""
    roots = [("requirements.txt", r) for r in _requirements_txt()]
    for pkg in PACKAGES:
        roots += [(f"{pkg.path.relative_to(REPO)}/pyproject.toml", r) for r in pkg.requirements]
    return roots


def test_lock_pins_every_declared_distribution_in_range() -> None:
    pins, hashed = _lock()
    assert pins, "requirements.lock pins nothing"
    problems = []
    for where, req in _roots():
        name = canonicalize_name(req.name)
        if name in LOCAL_DISTS or not _applies(req):
            continue
        if name not in pins:
            problems.append(f"{req.name} ({where}) is not pinned in requirements.lock")
        elif req.specifier and not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req.name}{req.specifier} ({where}) but requirements.lock pins {pins[name]}")
    problems += [f"{name}=={pins[name]} has no --hash in requirements.lock" for name in sorted(set(pins) - hashed)]
    assert not problems, "run `make lock`:\n" + "\n".join(problems)


def test_lock_does_not_pin_the_projects_own_packages() -> None:
    pins, _ = _lock()
    assert not LOCAL_DISTS & set(pins), "the project's packages are installed editable, not from the lock"


def test_lock_is_closed_under_the_installed_metadata() -> None:
    """Walk every requirement through the installed distributions' Requires-Dist: each one reached is locked.

    A distribution whose installed version differs from the lock (a stale .venv) is not walked
    into: its metadata says nothing about the locked version. In a fresh `make deps` all are.
    """
    pins, _ = _lock()
    missing: list[str] = []
    seen: set[tuple[NormalizedName, str]] = set()
    todo: list[tuple[str, Requirement, str]] = [(where, req, "") for where, req in _roots()]
    walked = 0
    while todo:
        via, req, extra = todo.pop()
        if not _applies(req, extra):
            continue
        name = canonicalize_name(req.name)
        requested = [""] + sorted(req.extras)
        if name in LOCAL_DISTS:
            if (name, "") not in seen:
                seen.add((name, ""))
                pkg = next(p for p in PACKAGES if p.name == name)
                todo += [(str(pkg.name), r, "") for r in pkg.requirements]
            continue
        if name not in pins:
            missing.append(f"{req.name} (required by {via}) is not in requirements.lock")
            continue
        for wanted in requested:
            if (name, wanted) in seen:
                continue
            seen.add((name, wanted))
            try:
                dist = importlib.metadata.distribution(name)
            except importlib.metadata.PackageNotFoundError:
                continue
            if Version(dist.version) != Version(pins[name]):
                continue
            walked += 1
            todo += [(f"{name}=={pins[name]}", Requirement(r), wanted) for r in dist.requires or []]
    assert not missing, "run `make lock`:\n" + "\n".join(sorted(set(missing)))
    assert walked, "no locked distribution is installed here at its locked version: nothing was checked"


def _top_level_imports(src: Path, root: Path = REPO) -> dict[str, set[str]]:
    """Absolute imports of every module under src: top-level name -> files (relative to root) that import it."""
    found: dict[str, set[str]] = {}
    for file in sorted(src.rglob("*.py")):
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(file.relative_to(root)))
    return found


def _providers(module: str, installed: Mapping[str, list[str]]) -> set[NormalizedName]:
    """The distributions that can provide a top-level import name."""
    if module in LOCAL_MODULES:
        return {LOCAL_MODULES[module]}
    return {canonicalize_name(d) for d in installed.get(module, [])}


@pytest.mark.parametrize("pkg", PACKAGES, ids=[p.path.name for p in PACKAGES])
def test_package_declares_exactly_what_its_src_imports(pkg: Package) -> None:
    installed = importlib.metadata.packages_distributions()
    declared = {canonicalize_name(r.name) for r in pkg.requirements}
    needed: set[NormalizedName] = set()
    problems = []
    for module, files in sorted(_top_level_imports(pkg.path / "src").items()):
        if module in sys.stdlib_module_names or module == "__future__" or module in pkg.modules:
            continue
        if module in GENERATED:
            lacking = GENERATED[module] - declared
            needed |= GENERATED[module]
            if lacking:
                problems.append(f"`import {module}` (generated stubs) needs {sorted(lacking)} declared")
            continue
        providers = _providers(module, installed)
        where = ", ".join(sorted(files)[:3])
        if not providers:
            problems.append(f"`import {module}` ({where}): no installed distribution provides it")
        elif not providers & declared:
            problems.append(f"`import {module}` ({where}) but none of {sorted(providers)} is declared")
        needed |= providers & declared
    unused = declared - needed
    if unused:
        problems.append(f"declared but never imported by src: {sorted(unused)}")
    assert not problems, f"{pkg.path.relative_to(REPO)}/pyproject.toml [project] dependencies:\n" + "\n".join(problems)


def test_import_scan_sees_a_new_undeclared_import(tmp_path: Path) -> None:
    """The scanner the test above relies on finds imports inside functions and `from x.y import z` too."""
    src = tmp_path / "src" / "demo"
    src.mkdir(parents=True)
    (src / "__init__.py").write_text(
        "from yaml.loader import SafeLoader\n\ndef f():\n    import jwt\n    from . import x\n"
    )
    found = _top_level_imports(tmp_path / "src", tmp_path)
    assert found == {"yaml": {"src/demo/__init__.py"}, "jwt": {"src/demo/__init__.py"}}
