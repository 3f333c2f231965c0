"""Configs are bounded before anything expands them; config files are read safely (no database).

Backend-specific refusals (NUL, surrogates, NaN in arrays, nesting) are tested on every backend in
tests/integration/test_config_errors.py.
"""

import os
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

from neurofit.pipelines import config_files, hashing
from neurofit.pipelines.config_files import ConfigFileError, parse_config_text, read_config_file
from neurofit.pipelines.hashing import MAX_DEPTH, MAX_NODES, MAX_TEXT_BYTES, ConfigError

LOADERS = pytest.mark.parametrize(
    "loader", [config_files.ConfigLoader, config_files.PythonConfigLoader], ids=["default", "pure-python"]
)


def alias_bomb(levels: int = 10) -> str:
    """A billion-laughs YAML under a real hyperparameter name: ~530 bytes, 9**10 values expanded."""
    anchors = ["&a0 [" + ", ".join(["lol"] * 9) + "]"]
    anchors += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "hidden_channels: [" + ", ".join(anchors) + "]\n"


def nested_lists(depth: int) -> str:
    return "x: " + "[" * depth + "]" * depth + "\n"


def nested_maps(depth: int) -> str:
    return "x: " + "{a: " * depth + "1" + "}" * depth + "\n"


def bounded(function, *args, seconds=2.0, megabytes=50.0):
    """Call ``function`` twice: timed (< ``seconds``), then traced (peak < ``megabytes`` allocated).

    Returns what the call raised (tracemalloc slows Python down, so it is not on while timing).
    """
    outcomes = []
    for traced in (False, True):
        if traced:
            tracemalloc.start()
        started = time.monotonic()
        try:
            function(*args)
            outcomes.append(None)
        except Exception as error:
            outcomes.append(error)
        elapsed = time.monotonic() - started
        if traced:
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            assert peak < megabytes, f"peak {peak:.0f} MiB allocated"
        else:
            assert elapsed < seconds, f"{elapsed:.2f} s"
    if outcomes[-1] is not None:
        raise outcomes[-1]


@LOADERS
def test_an_alias_bomb_is_refused_before_it_expands(loader):
    assert len(alias_bomb()) < 600
    with pytest.raises(ConfigFileError, match="more than 10,000 values .* each alias counted as what it expands to"):
        bounded(parse_config_text, alias_bomb(), "bomb.yaml", loader)


@LOADERS
@pytest.mark.parametrize("text", [nested_lists(100_000), nested_maps(100_000)], ids=["lists", "mappings"])
def test_100000_levels_of_nesting_are_refused_without_recursion(loader, text):
    with pytest.raises(ConfigFileError, match=r"'deep.yaml' is nested more than 20 levels deep"):
        bounded(parse_config_text, text, "deep.yaml", loader)


@LOADERS
def test_the_bounds_of_a_file_are_those_of_a_config(loader):
    # The top mapping is level 1, so "x" holds MAX_DEPTH - 1 lists.
    at_limit = parse_config_text(nested_lists(MAX_DEPTH - 1), "ok.yaml", loader)
    hashing.config_hash(at_limit)
    with pytest.raises(ConfigFileError, match="nested more than 20"):
        parse_config_text(nested_lists(MAX_DEPTH), "deep.yaml", loader)
    with pytest.raises(ConfigError, match="nested more than 20"):
        hashing.config_hash({"x": _python_nesting(MAX_DEPTH)})
    # Values: the mapping, the key "x", its list and the items.
    items = MAX_NODES - 3
    hashing.config_hash(parse_config_text(f"x: [{', '.join(['0'] * items)}]", "ok.yaml", loader))
    with pytest.raises(ConfigFileError, match="more than 10,000 values"):
        parse_config_text(f"x: [{', '.join(['0'] * (items + 1))}]", "big.yaml", loader)
    with pytest.raises(ConfigError, match="more than 10,000 values"):
        hashing.config_hash({"x": [0] * (items + 1)})


def _python_nesting(depth: int) -> list:
    root = node = []
    for _ in range(depth - 1):
        node.append([])
        node = node[0]
    return root


@LOADERS
def test_small_aliases_still_work(loader):
    text = "base: &b {hidden: 8, sizes: [1, 2]}\nother:\n  <<: *b\n  hidden: 16\ncopy: *b\n"
    config = parse_config_text(text, "ok.yaml", loader)
    assert config == {"base": {"hidden": 8, "sizes": [1, 2]}, "other": {"hidden": 16, "sizes": [1, 2]},
                      "copy": {"hidden": 8, "sizes": [1, 2]}}


@LOADERS
def test_an_alias_cannot_smuggle_depth(loader):
    inner = "[" * 15 + "]" * 15
    text = f"a: &deep {inner}\nb: [[[[[[*deep]]]]]]\n"
    with pytest.raises(ConfigFileError, match=r"alias \*deep at line 2.*more than 20 levels"):
        parse_config_text(text, "deep.yaml", loader)


@LOADERS
@pytest.mark.parametrize(
    "text, where",
    [
        ("lr: 0.1\nmax_epochs: 3\nlr: 0.01\n", "(line 1, column 1 and line 3, column 1)"),
        ('{"lr": 0.1, "lr": 0.2}', "(line 1, column 2 and line 1, column 13)"),
        ("outer:\n  a: 1\n  a: 1\n", "(line 2, column 3 and line 3, column 3)"),
    ],
)
def test_duplicate_keys_are_refused_naming_both(loader, text, where):
    with pytest.raises(ConfigFileError) as error:
        parse_config_text(text, "dup.yaml", loader)
    assert "config file 'dup.yaml': the key" in str(error.value) and where in str(error.value)


@LOADERS
@pytest.mark.parametrize(
    "written, value",
    [("1e-3", 0.001), ("1E5", 1e5), ("2.5e3", 2500.0), ("-1e+2", -100.0), (".5e-2", 0.005), ("1.0e3", 1000.0),
     ("1.0e-3", 0.001), ("0.001", 0.001), ("1.5", 1.5), ("12", 12), ("-3", -3), ("yes", True), ("1e3x", "1e3x"),
     ("'1e-3'", "1e-3"), ("null", None)],
)
def test_numbers_are_read_the_way_scientists_write_them(loader, written, value):
    config = parse_config_text(f"lr: {written}\n", "n.yaml", loader)
    assert config["lr"] == value and type(config["lr"]) is type(value)


def test_1e_minus_3_hashes_like_0_001(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("lr: 1e-3\n")
    assert hashing.config_hash(read_config_file(path)) == hashing.config_hash({"lr": 0.001})


def test_a_non_utf8_file_is_named(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("comment: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigFileError) as error:
        read_config_file(path)
    assert str(path) in str(error.value) and "is not UTF-8 text: byte 0xe9 on line 1" in str(error.value)
    assert isinstance(error.value, ValueError)  # printed as `error: ...` by the CLI


def test_file_edge_cases(tmp_path):
    bom = tmp_path / "bom.yaml"
    bom.write_bytes("\ufeffname: caf\u00e9\n".encode("utf-8"))
    assert read_config_file(bom) == {"name": "caf\u00e9"}
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    assert read_config_file(empty) == {}
    huge = tmp_path / "huge.yaml"
    huge.write_text("# " + "x" * config_files.MAX_FILE_BYTES + "\n")
    with pytest.raises(ConfigFileError, match="huge.yaml' is larger than 1024 KiB"):
        read_config_file(huge)
    with pytest.raises(ConfigFileError, match="is a folder"):
        read_config_file(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        read_config_file(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    with pytest.raises(ConfigFileError, match=r"(?s)broken.yaml' is not valid YAML.*line 2"):
        read_config_file(broken)


def test_shared_references_in_python_are_bounded_before_hashing():
    bomb = ["lol"] * 9
    for _ in range(9):
        bomb = [bomb] * 9  # 9**10 values, a few hundred objects
    with pytest.raises(ConfigError, match="more than 10,000 values"):
        bounded(hashing.config_hash, {"x": bomb})


def test_deep_and_cyclic_python_configs_are_refused_without_recursion_error():
    with pytest.raises(ConfigError, match=r"config\['x'\](\[0\]){19} is nested more than 20 levels"):
        bounded(hashing.config_hash, {"x": _python_nesting(100_000)})
    cycle = []
    cycle.append(cycle)
    with pytest.raises(ConfigError, match="nested more than 20 levels"):
        hashing.config_hash({"x": cycle})


def test_arrays_count_their_dimensions_and_elements():
    hashing.config_hash({"w": np.zeros((1,) * (MAX_DEPTH - 1))})
    with pytest.raises(ConfigError, match=r"config\['w'\] is nested more than 20"):
        hashing.config_hash({"w": np.zeros((1,) * MAX_DEPTH)})
    with pytest.raises(ConfigError, match="more than 10,000 values"):
        hashing.config_hash({"w": np.zeros(MAX_NODES, dtype=np.int8)})


def test_text_is_bounded_exactly():
    frame = len(hashing.encode_config({"x": ""}))
    hashing.encode_config({"x": "a" * (MAX_TEXT_BYTES - frame)})
    with pytest.raises(ConfigError, match=r"config holds more than 64 KiB of canonical text \(past config\['x'\]\)"):
        hashing.encode_config({"x": "a" * (MAX_TEXT_BYTES - frame + 1)})
    # Non-ASCII text is escaped (\u00e9: 6 bytes a character); the exact length is checked too.
    with pytest.raises(ConfigError, match="config holds 66,008 bytes of canonical text, more than 64 KiB"):
        hashing.encode_config({"x": "\u00e9" * 11_000})
    with pytest.raises(ConfigError, match="more than 64 KiB"):
        bounded(hashing.encode_config, {"x": "a" * 10_000_000}, megabytes=60)


def _run_cli(config_path, timeout: float) -> tuple[int, str, float, float]:
    """`neurofit add` in a fresh interpreter: (exit code, stderr, seconds in main(), peak RSS MiB).

    The time excludes the interpreter's start and the import of neurofit.schemas (torch,
    DataJoint): that import is the same for every command. The child's own peak RSS comes from
    wait4, so other children of the test process do not count.
    """
    code = (
        "import sys, time\n"
        "from neurofit.schemas import cli\n"
        "t = time.monotonic()\n"
        "rc = cli.main(['add', 'model', 'neurofit.gaussian_cnn', '--config', sys.argv[1]])\n"
        "print(f'MAIN_SECONDS {time.monotonic() - t:.3f}', file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    # A database nobody listens on: a file that got past the checks fails at once, never starts a server.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NEUROFIT_DATABASE": "server", "DJ_BACKEND": "postgresql",
           "DJ_HOST": "127.0.0.1", "DJ_PORT": "9", "NEUROFIT_HOME": str(config_path.parent / "home")}
    err = config_path.with_suffix(".err")
    with open(err, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-c", code, str(config_path)], stdout=subprocess.DEVNULL,
                                   stderr=stderr, env=env)
    timer = threading.Timer(timeout, process.kill)  # today's main grows without bound: stop it
    timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        timer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    text = err.read_text()
    seconds = float(text.split("MAIN_SECONDS ")[1].split()[0]) if "MAIN_SECONDS" in text else float("inf")
    return process.returncode, text, seconds, usage.ru_maxrss / 1024


@pytest.mark.slow
def test_neurofit_add_refuses_the_bomb_and_deep_nesting_in_under_2_s_and_200_mb(tmp_path):
    baseline = tmp_path / "list.yaml"
    baseline.write_text("- not a mapping\n")  # refused at once: the cost of starting the command
    rc, text, _, base_rss = _run_cli(baseline, timeout=120)
    assert rc == 2 and "must hold a mapping" in text, text
    for name, content in [("bomb.yaml", alias_bomb()), ("deep.yaml", nested_lists(100_000)),
                          ("deepmap.yaml", nested_maps(100_000))]:
        path = tmp_path / name
        path.write_text(content)
        rc, text, seconds, rss = _run_cli(path, timeout=60)
        assert rc == 2, text[-2000:]
        assert text.startswith(f"error: config file '{path}'") and "Traceback" not in text, text[-2000:]
        assert seconds < 2.0, f"{name}: refused after {seconds:.2f} s"
        assert rss - base_rss < 200, f"{name}: peak {rss:.0f} MiB, {rss - base_rss:.0f} MiB over starting the command"
        print(f"{name}: refused in {seconds * 1000:.0f} ms; peak RSS {rss:.0f} MiB (command start {base_rss:.0f} MiB)")
