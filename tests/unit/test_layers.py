"""The dependency rule of the README's layout section, read from the imports of every
module (those inside functions too): infrastructure depends on the domain, the edges on
the core, and only the entry points wire everything together."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

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
