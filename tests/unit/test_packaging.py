import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = None

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("schemas", "pipelines", "models", "datasets")


def test_every_code_folder_is_a_listed_package():
    """A subpackage missing from pyproject.toml works in a checkout but not when installed."""
    if tomllib is None:
        import pytest

        pytest.skip("tomllib needs Python 3.11")
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        "neurofit." + ".".join(init.parent.relative_to(ROOT).parts)
        for folder in FOLDERS
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert found == listed
