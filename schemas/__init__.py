"""Everything that touches the database: tables, `activate`, populate helpers and the CLI.

Importing this package declares nothing and connects to nothing (names are loaded on first use,
so ``neurofit`` commands start fast); call `activate` first::

    from neurofit import schemas
    schemas.activate()                      # embedded PostgreSQL unless a server is configured
    key = schemas.Model.add("neurofit.gaussian_cnn", {"hidden_channels": 16})
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

# neurofit decides where the database is (schemas.connection); with no datajoint.json that is the
# embedded server, so DataJoint's "No datajoint.json found" warning is noise here.
warnings.filterwarnings("ignore", message="No datajoint.json found", category=UserWarning)

#: Public name -> the module of this package that defines it.
_EXPORTS = {
    "schema": "_schema",
    "activate": "activation", "repair": "activation", "schema_name": "activation",
    "ArtefactConflict": "artefacts", "DatasetArtefact": "artefacts",
    "Checkpoint": "checkpoints",
    "ConfigTable": "config", "Dataset": "config", "Model": "config", "Seed": "config", "Trainer": "config",
    "DerivedDataset": "derived",
    "computed_tables": "extensions",
    "Worker": "heartbeat",
    "Performance": "performance",
    "errors": "populating", "populate": "populating", "status": "populating",
    "Activations": "probing", "ProbeSelection": "probing", "StimulusSet": "probing",
    "RDM": "rsa", "ComparisonMethod": "rsa", "RDMComparison": "rsa", "RDMMethod": "rsa",
    "ReferenceNoiseCeiling": "rsa", "ReferenceRDM": "rsa", "layer_comparisons": "rsa",
    "Analysis": "scoring", "Score": "scoring", "ScoreSelection": "scoring", "ScoreTable": "scoring",
    "CKA": "similarity", "CKAMethod": "similarity", "CKASelection": "similarity",
    "collect_garbage": "storage",
    "TaskPerformance": "task_performance",
    "TrainedModel": "training", "TrainingSelection": "selection", "load_model": "training",
    "Tuning": "tuning",
    "JobAttempt": "worker", "run_worker": "worker",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
