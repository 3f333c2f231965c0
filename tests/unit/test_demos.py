"""`neurofit demo NAME` finds demos through entry points, as it would a lab package's."""

import subprocess
import sys

import pytest

from neurofit.schemas import demos


def test_the_core_demos_are_entry_points_described_by_their_docstrings():
    assert {"images", "dlgn"} <= set(demos.demo_names())
    described = demos.describe_demos()
    assert described["images"].startswith("CNNs fitted to simulated responses")
    assert all(described.values()), described  # every installed demo says what it does


def test_an_unknown_demo_names_the_installed_ones():
    with pytest.raises(demos.DemoError, match=r"no demo named 'nope'\. Installed: .*images"):
        demos.load_demo("nope")
    cli = subprocess.run([sys.executable, "-m", "neurofit.schemas.cli", "demo", "nope"], capture_output=True, text=True)
    assert cli.returncode == 2 and "Traceback" not in cli.stderr
    assert "error: no demo named 'nope'" in cli.stderr


def test_demo_list_prints_each_demo_without_running_it():
    lines = []
    assert demos.run_named_demo("list", out=lines.append) is None
    assert any(line.startswith("dlgn") for line in lines) and any(line.startswith("images") for line in lines)
