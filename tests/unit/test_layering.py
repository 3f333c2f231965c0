import subprocess
import sys


def test_pipelines_models_datasets_never_import_datajoint():
    code = (
        "import sys\n"
        "import neurofit.pipelines, neurofit.models, neurofit.datasets\n"
        "import neurofit.pipelines.builtins, neurofit.pipelines.training, neurofit.pipelines.performance\n"
        "import neurofit.pipelines.registry, neurofit.pipelines.hashing\n"
        "bad = [m for m in sys.modules if m == 'datajoint' or m.startswith('datajoint.')]\n"
        "assert not bad, bad\n"
        "print('clean')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "clean" in result.stdout


def test_models_and_datasets_do_not_import_pipelines_or_schemas():
    code = (
        "import sys\n"
        "import neurofit.models.encoding, neurofit.datasets.synthetic_responses\n"
        "bad = [m for m in sys.modules if m.startswith(('neurofit.pipelines', 'neurofit.schemas'))]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_importing_schemas_does_not_connect():
    code = (
        "import datajoint as dj\n"
        "import neurofit.schemas as s\n"
        "from datajoint import instance\n"
        "assert not s.schema.is_activated()\n"
        "assert getattr(instance, '_singleton_connection', None) is None\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        env={"DJ_HOST": "203.0.113.1", "PATH": "", "HOME": "/tmp"},
    )
    assert result.returncode == 0, result.stderr


def test_table_comments_have_no_double_quotes():
    """MySQL/MariaDB reject column comments with double quotes (found the hard way)."""

    import neurofit.schemas as s

    tables = [getattr(s, name) for name in s.__all__ if isinstance(getattr(s, name), type)]
    assert len(tables) > 10
    for table in tables:
        definitions = [getattr(table, "definition", "")] + [
            getattr(part, "definition", "") for part in vars(table).values() if isinstance(part, type)
        ]
        for definition in filter(lambda d: isinstance(d, str), definitions):
            for line in definition.splitlines():
                comment = line.split("#", 1)[1] if "#" in line else ""
                assert '"' not in comment, f"{table.__name__}: {line.strip()}"


def test_datasets_correlation_mirrors_the_pipelines_one():
    """datasets/ may not import pipelines/, so it keeps its own Pearson r; the two must agree."""
    import numpy as np

    from neurofit.datasets._correlation import pearson_columns
    from neurofit.pipelines.analysis.prediction import correlation

    rng = np.random.default_rng(0)
    a = rng.poisson(2.0, (50, 6)).astype(float)
    b = a + rng.normal(size=(50, 6))
    a[:, 2] = 1.0  # a constant column counts as 0 in both
    np.testing.assert_allclose(pearson_columns(a, b), correlation(a, b), atol=1e-12)
    assert pearson_columns(a, b)[2] == 0
