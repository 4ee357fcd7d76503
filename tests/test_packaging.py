"""What ships: pyproject lists every package of the source tree, and the built-in spaces travel with them.

The wheel itself is built, installed away from the checkout and run by the smoke check in .ci/run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_package_and_maps_the_spaces():
    tomllib = pytest.importorskip("tomllib")
    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setup["packages"])
    # every folder of the package that holds code or data must be listed, or the wheel leaves it out
    in_tree = {".".join(d.relative_to(REPO).parts) for d in (REPO / "autolor2c").rglob("*")
               if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py")) | any(d.glob("*.yaml"))}
    in_tree.add("autolor2c")
    assert in_tree | {"autolor2c.builtin_spaces"} == listed
    assert setup["package-dir"] == {"autolor2c.builtin_spaces": "search_spaces"}
    assert setup["package-data"]["autolor2c.builtin_spaces"] == ["*.yaml"]
    assert (REPO / "search_spaces" / "__init__.py").is_file()  # a regular package: its files are a real folder
    assert sorted(p.stem for p in (REPO / "search_spaces").glob("*.yaml")) == ["lor2c_full", "lor2c_only", "lora"]
