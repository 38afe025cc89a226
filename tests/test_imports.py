"""Every module imports (STYLE §11): a module that fails on import is caught here,
including optional backends that must import their heavy dependency lazily."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

PACKAGES = ("taskvec", "export", "runtime", "benchmarks")


def all_modules() -> list[str]:
    names = []
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        names.append(pkg_name)
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg_name}.")]
    return sorted(names)


@pytest.mark.parametrize("name", all_modules())
def test_module_imports(name):
    importlib.import_module(name)


@pytest.mark.parametrize("command", ["taskvec", "tvexport", "tvrun", "tvbench"])
def test_console_scripts_have_help(command):
    from importlib.metadata import entry_points

    eps = {ep.name: ep for ep in entry_points(group="console_scripts")}
    if command not in eps:
        pytest.skip("package not installed (pip install -e .)")
    from click.testing import CliRunner

    result = CliRunner().invoke(eps[command].load(), ["--help"])
    assert result.exit_code == 0 and "Usage" in result.output and len(result.output.splitlines()) > 5
