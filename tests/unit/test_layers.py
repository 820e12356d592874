"""The dependency rule of the README's layout section, read from the imports of every
module (those inside functions too): infrastructure depends on the domain, the edges on
the core, and only the entry points wire everything together."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FunctionType

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("lifecycle", "projections", "consumers")
DOMAIN_MAY_IMPORT = ("pydantic", "eventsourcing.domain", "lifecycle.domain")


def modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def within(name: str, *prefixes: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def is_entry_point(name: str) -> bool:
    return within(name, "lifecycle.entrypoints", "lifecycle.__main__")


ALL_MODULES = list(modules())


def test_the_rule_sees_every_package() -> None:
    names = {name for name, _ in ALL_MODULES}
    assert {"lifecycle.domain.relationship", "projections.runner", "consumers.ingest"} <= names


@pytest.mark.parametrize(
    ("name", "path"), [m for m in ALL_MODULES if within(m[0], "lifecycle.domain")]
)
def test_the_domain_imports_only_the_standard_library_pydantic_and_the_library_domain(
    name: str, path: Path
) -> None:
    foreign = sorted(
        imported
        for imported in imports_of(path)
        if imported.split(".")[0] not in sys.stdlib_module_names
        and imported != "__future__"
        and not within(imported, *DOMAIN_MAY_IMPORT)
    )
    assert foreign == [], f"{name} imports {foreign}"


@pytest.mark.parametrize(("name", "path"), [m for m in ALL_MODULES if not is_entry_point(m[0])])
def test_only_the_entry_points_import_the_composition_root(name: str, path: Path) -> None:
    assert not any(within(i, "lifecycle.entrypoints") for i in imports_of(path)), name


@pytest.mark.parametrize(
    ("name", "path"),
    [m for m in ALL_MODULES if within(m[0], "lifecycle") and not is_entry_point(m[0])],
)
def test_the_core_below_the_entry_points_imports_no_edge(name: str, path: Path) -> None:
    edges = sorted(i for i in imports_of(path) if within(i, "consumers", "projections"))
    assert edges == [], f"{name} imports {edges}"


@pytest.mark.parametrize(("name", "path"), [m for m in ALL_MODULES if within(m[0], "projections")])
def test_the_read_side_does_not_import_the_kafka_edge(name: str, path: Path) -> None:
    assert not any(within(i, "consumers", "kafka") for i in imports_of(path)), name


@pytest.mark.parametrize(("name", "path"), [m for m in ALL_MODULES if within(m[0], "consumers")])
def test_the_kafka_edge_does_not_import_the_read_side(name: str, path: Path) -> None:
    assert not any(within(i, "projections", "fastapi") for i in imports_of(path)), name


# One door per library to its private API ----------------------------------------------

DOORS = {"eventsourcing": "lifecycle.persistence.library", "kafka": "consumers.kafka_internals"}
AGGREGATE_HOOKS = {("lifecycle.domain.streams", "ChainedAggregate", "_create")}
"""Private hooks the domain overrides on its own class, since it may not import the door
(named in the door's docstring, pinned by its contract tests)."""


def private_names_of(package: str) -> set[str]:
    """The names a library gives its private functions, methods and attributes."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None
    return {
        name
        for path in Path(spec.origin).parent.rglob("*.py")
        for name in re.findall(r"(?:\bdef |\bself\.)(_[a-z]\w*)", path.read_text("utf-8"))
    }


def names_defined_in(path: Path) -> set[str]:
    defined: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            defined.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
    return defined


PRIVATE_NAMES = {package: private_names_of(package) for package in DOORS}
OUR_NAMES = set().union(*(names_defined_in(path) for _, path in ALL_MODULES))


@pytest.mark.parametrize(("name", "path"), ALL_MODULES)
def test_only_the_doors_use_private_names_of_the_libraries(name: str, path: Path) -> None:
    used = {
        node.attr
        for node in ast.walk(ast.parse(path.read_text("utf-8")))
        if isinstance(node, ast.Attribute) and node.attr not in OUR_NAMES
    }
    foreign = {
        package: sorted(used & names)
        for package, names in PRIVATE_NAMES.items()
        if DOORS[package] != name and used & names
    }
    assert foreign == {}, f"{name} uses private names of {foreign}: go through the door"


@pytest.mark.parametrize(("name", "path"), ALL_MODULES)
def test_only_the_doors_make_objects_without_their_init(name: str, path: Path) -> None:
    calls = [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text("utf-8")))
        if isinstance(node, ast.Attribute) and node.attr == "__new__"
    ]
    assert name in DOORS.values() or calls == [], f"{name} calls __new__ at lines {calls}"


@pytest.mark.parametrize(
    ("name", "path"), [m for m in ALL_MODULES if not m[0].endswith("__main__")]
)
def test_only_the_doors_override_private_hooks_of_the_libraries(name: str, path: Path) -> None:
    module = importlib.import_module(name)
    overridden = sorted(
        (cls.__name__, attribute)
        for cls in vars(module).values()
        if isinstance(cls, type) and cls.__module__ == name
        for attribute, value in vars(cls).items()
        if re.fullmatch(r"_[a-z]\w*", attribute)
        and isinstance(value, FunctionType | classmethod | staticmethod | property)
        and (name, cls.__name__, attribute) not in AGGREGATE_HOOKS
        and any(
            attribute in vars(base)
            for base in cls.__mro__[1:]
            if base.__module__.split(".")[0] in DOORS
        )
    )
    assert name in DOORS.values() or overridden == [], (
        f"{name} overrides private hooks {overridden}: move them behind the door"
    )
