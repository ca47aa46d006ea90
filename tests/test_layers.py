"""The import rules of DESIGN.md ("Import rules"), kept by import-linter's contracts in
pyproject.toml (``[tool.importlinter]``): app may import dal, never the reverse; dal's layers
(use cases, the LangGraph package, gateways, records); a gateway imports no other gateway and
only the core; records import only records."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# What a gateway may import of dal (DESIGN.md): the rest of dal is forbidden to it.
CORE = {"cursors", "database", "errors", "ids", "queries", "records"}


def options() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        found: dict[str, Any] = tomllib.load(file)["tool"]["importlinter"]
    return found


def contract(contract_id: str) -> dict[str, Any]:
    [found] = [c for c in options()["contracts"] if c["id"] == contract_id]
    return found


def lint_imports(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(config), "--no-cache", "--no-logo"],
        cwd=ROOT,  # where the root packages are imported from
        capture_output=True,
        text=True,
        timeout=300,
    )


def write_config(path: Path, contracts: list[dict[str, Any]]) -> Path:
    """A TOML file of import-linter options: pyproject's, with these contracts. (Strings and
    lists of strings are written as JSON, which TOML reads the same.)"""
    lines = ["[tool.importlinter]"]
    lines += [
        f"{key} = {json.dumps(value)}" for key, value in options().items() if key != "contracts"
    ]
    for one in contracts:
        lines += ["", "[[tool.importlinter.contracts]]"]
        lines += [f"{key} = {json.dumps(value)}" for key, value in one.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_imports_keep_every_contract() -> None:
    result = lint_imports(ROOT / "pyproject.toml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_import_against_a_contract_is_reported_with_its_line(tmp_path: Path) -> None:
    # The gateways' contract as it is, with dal.database no longer allowed: every gateway
    # imports it, so the same source modules on the same graph must be reported.
    narrowed = contract("gateways-core-only")
    narrowed["forbidden_modules"] = [*narrowed["forbidden_modules"], "dal.database"]
    result = lint_imports(write_config(tmp_path / "contracts.toml", [narrowed]))

    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 broken" in result.stdout
    assert "dal.gateways.users -> dal.database (l." in result.stdout


def test_forbidden_lists_name_every_module_of_dal_outside_what_is_allowed() -> None:
    # A module added to dal is forbidden to gateways and records until it is named here or
    # there: a list in a contract must not silently stop covering new code.
    modules = {name for _, name, _ in pkgutil.iter_modules([str(ROOT / "dal")])}

    def forbidden(contract_id: str) -> set[str]:
        names = contract(contract_id)["forbidden_modules"]
        return {name.removeprefix("dal.") for name in names if name.startswith("dal.")}

    assert CORE <= modules
    assert forbidden("gateways-core-only") == modules - CORE - {"gateways"}
    assert forbidden("records-base-only") == modules - {"records"}
