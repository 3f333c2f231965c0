"""Optional Weights & Biases logging of training runs, next to the per-epoch rows in the database.

The database history (``TrainedModel.Epoch``) is the record; wandb is a convenience for watching
runs. The mode comes from ``$NEUROFIT_WANDB``:

* ``offline`` (the default): runs are written to ``wandb/offline-run-*`` under ``$WANDB_DIR``
  (default ``$NEUROFIT_HOME``) and uploaded later with ``wandb sync``. Nothing touches the network.
  When wandb is not installed, the default mode logs nothing.
* ``online``: runs are uploaded as they go (needs ``wandb login``; project from
  ``$WANDB_PROJECT``, default "neurofit").
* ``disabled``: no wandb at all (the tests use this).

Why not a trainer hyperparameter: logging does not change what is computed, so it must not change
the trainer's config hash.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)

MODE_ENV = "NEUROFIT_WANDB"
MODES = ("offline", "online", "disabled")

__all__ = ["MODE_ENV", "MODES", "wandb_mode", "wandb_run"]


def wandb_mode() -> str:
    """The configured mode; raises ValueError naming the valid ones for anything else."""
    mode = os.environ.get(MODE_ENV, "").strip().lower() or "offline"
    if mode not in MODES:
        raise ValueError(f"${MODE_ENV}={mode!r} is not a wandb mode; use one of {', '.join(MODES)}")
    return mode


@contextmanager
def wandb_run(name: str, config: dict[str, Any]) -> Iterator[Callable[[dict[str, Any]], None] | None]:
    """A wandb run for one training, as a per-epoch logging callback (None when logging is off).

    Args:
        name: run name, e.g. the trained model's key as text.
        config: JSON-able run configuration (builder names, configs, seed).

    Yields:
        ``log(row)`` for each epoch's history row, or None.

    Raises:
        ImportError: if ``$NEUROFIT_WANDB`` asks for wandb explicitly and it is not installed.
    """
    mode = wandb_mode()
    if mode == "disabled":
        yield None
        return
    try:
        import wandb
    except ImportError as error:
        if os.environ.get(MODE_ENV):
            raise ImportError(
                f"${MODE_ENV}={mode} but wandb is not installed; pip install 'neurofit[wandb]' or "
                f"set {MODE_ENV}=disabled"
            ) from error
        yield None
        return
    directory = Path(
        os.environ.get("WANDB_DIR") or os.environ.get("NEUROFIT_HOME") or Path.home() / ".neurofit"
    ).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    # wandb.init starts a wandb-core process that lives until this Python process exits; a
    # long-lived worker therefore keeps one, which is cheap, and finishes every run it starts.
    run = wandb.init(
        project=os.environ.get("WANDB_PROJECT", "neurofit"), name=name, config=config,
        mode=mode, dir=str(directory), reinit="finish_previous",
        settings=wandb.Settings(silent=True),  # a worker's log is about jobs, not wandb banners
    )
    failed = True
    try:
        yield lambda row: run.log({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
        failed = False
    finally:
        run.finish(exit_code=1 if failed else 0)
        log.info("wandb %s run %s written under %s", mode, name, directory)
