"""Tiny builders for worker chaos tests: trainings that take seconds and log every epoch.

Workers (subprocesses) load them as dotted paths, allowed by NEUROFIT_ALLOWED_MODULES=chaos_builders.
"""

import os
import time

import torch
from torch import nn

from neurofit.datasets.info import DataBundle, DataInfo
from neurofit.pipelines.training import TrainResult


def build_tiny_data(seed, *, n_inputs=4):
    return DataBundle(loaders={}, info=DataInfo(input_shape=(n_inputs,), n_neurons={"s": 2}))


def build_tiny_model(data_info, seed, *, bias=True):
    torch.manual_seed(seed)
    return nn.Linear(data_info.input_shape[0], 2, bias=bias)


def _log(log_dir, seed, event, epoch):
    if log_dir:
        with open(os.path.join(log_dir, f"{seed}.log"), "a") as f:
            f.write(f"{os.getpid()} {event} {epoch}\n")


def train_sleepy(model, data, seed, context, *, epochs=3, seconds=0.2, log_dir="", fail=False):
    """Each epoch sleeps, then changes the weights deterministically and saves a checkpoint."""
    state = context.load_checkpoint()
    history = list(state["history"]) if state else []
    if state:
        model.load_state_dict(state["model"])
    for epoch in range(state["epoch"] + 1 if state else 1, epochs + 1):
        _log(log_dir, seed, "start", epoch)
        if fail:
            raise RuntimeError("planted failure")
        time.sleep(seconds)
        with torch.no_grad():
            model.weight.add_(1.0)
        row = {"epoch": epoch, "train_loss": 1.0 / epoch, "validation_score": float(epoch), "seconds": seconds}
        history.append(row)
        context.report_epoch(row)
        context.save_checkpoint({"epoch": epoch, "model": model.state_dict(), "history": history})
        context.check_stop(epoch)
    _log(log_dir, seed, "finished", epochs)
    return TrainResult(score=float(epochs), history=history, model=model)
