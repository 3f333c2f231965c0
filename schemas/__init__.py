"""Everything that touches the database: tables, `activate`, populate helpers and the CLI.

Importing this package declares the tables but connects to nothing; call `activate` first::

    from neurofit import schemas
    schemas.activate()                      # embedded PostgreSQL unless a server is configured
    key = schemas.Model.add("neurofit.gaussian_cnn", {"hidden_channels": 16})
"""

from ._schema import schema
from .activation import activate, schema_name
from .artefacts import ArtefactConflict, DatasetArtefact
from .checkpoints import Checkpoint
from .config import ConfigTable, Dataset, Model, Seed, Trainer
from .heartbeat import Worker
from .performance import Performance
from .populate import COMPUTED_TABLES, errors, populate, status
from .probing import Activations, ProbeSelection, StimulusSet
from .scoring import Analysis, Score, ScoreSelection, ScoreTable
from .task_performance import TaskPerformance
from .rsa import RDM, ComparisonMethod, RDMComparison, RDMMethod, ReferenceNoiseCeiling, ReferenceRDM, layer_comparisons
from .similarity import CKA, CKAMethod, CKASelection
from .storage import collect_garbage
from .training import TrainedModel, TrainingSelection, load_model
from .tuning import Tuning
from .worker import JobAttempt, run_worker

__all__ = [
    "ArtefactConflict",
    "DatasetArtefact",
    "Checkpoint",
    "JobAttempt",
    "Worker",
    "run_worker",
    "CKA",
    "CKAMethod",
    "CKASelection",
    "RDM",
    "Activations",
    "ComparisonMethod",
    "ProbeSelection",
    "RDMComparison",
    "RDMMethod",
    "ReferenceNoiseCeiling",
    "ReferenceRDM",
    "StimulusSet",
    "Tuning",
    "collect_garbage",
    "layer_comparisons",
    "COMPUTED_TABLES",
    "ConfigTable",
    "Dataset",
    "Model",
    "Performance",
    "TaskPerformance",
    "Analysis",
    "Score",
    "ScoreSelection",
    "ScoreTable",
    "Seed",
    "TrainedModel",
    "Trainer",
    "TrainingSelection",
    "activate",
    "errors",
    "load_model",
    "populate",
    "schema",
    "schema_name",
    "status",
]
