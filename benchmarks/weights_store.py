"""Store + fetch time of a 50 MB state dict in neurofit's object store vs a local torch.save.

neurofit's path is the real `TrainedModel` one: ``TrainedModel.make_insert`` of a
`TrainingOutcome` carrying the state dict (as `neurofit.pipelines.training.train` returns it;
streamed into the store by `neurofit.schemas.storage.insert_streamed` +
`neurofit.pipelines.weights.write_state_dict`, sha256 computed on the way, in a transaction as
populate runs it), then ``TrainedModel.fetch_state_dict`` (what `load_model` reads: the file
verified against its sha256 and loaded through a memory map). The same streamed write into a bare
table, and the old bytes path (serialise to bytes, insert, read, hash, load), are timed too. Rounds alternate the methods, so a busy machine
slows all of them alike. The store is the one configured (`DJ_STORES`): a local folder by
default, an S3 bucket when one is configured.

Usage: python benchmarks/weights_store.py [--megabytes 50] [--repeats 7]
"""

import argparse
import os
import statistics
import tempfile
import time

import datajoint as dj
import torch
from _common import isolated_prefix


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--megabytes", type=float, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from neurofit import schemas
    from neurofit.pipelines.weights import (
        checksum,
        state_dict_from_bytes,
        state_dict_to_bytes,
        write_state_dict,
    )
    from neurofit.schemas.storage import insert_streamed, load_stored_state_dict

    backend = schemas.activate(isolated_prefix())
    n = int(args.megabytes * 2**20 / 4)
    state = {"layer.weight": torch.randn(n // 2), "layer.bias": torch.randn(n - n // 2)}

    schema = dj.Schema(schemas.schema.database + "_weights_bench")

    @schema
    class Weights(dj.Manual):
        definition = """
        id: int32
        ---
        weights: <object@neurofit>
        weights_sha256: char(64)
        weights_bytes: int64
        """

    folder = tempfile.mkdtemp()
    keys = _trained_model_keys(schemas, args.repeats + 1)
    outcome = _outcome(state)

    def trained_model(i: int) -> dict:
        # As populate runs make_insert: in a transaction, with inserts allowed (as populate sets).
        schemas.TrainedModel._allow_insert = True
        try:
            with dj.conn().transaction:
                schemas.TrainedModel().make_insert(keys[i % 1000], outcome)
        finally:
            schemas.TrainedModel._allow_insert = False
        return schemas.TrainedModel().fetch_state_dict(keys[i % 1000])

    def local(i: int) -> dict:
        path = os.path.join(folder, f"{i}.pt")
        torch.save(state, path)
        return torch.load(path, weights_only=True)

    def streamed(i: int) -> dict:
        def write(file):
            digest, size = write_state_dict(state, file)
            return {"weights_sha256": digest, "weights_bytes": size}

        insert_streamed(Weights, {"id": i}, "weights", write, ext=".pt")
        ref, expected = (Weights & {"id": i}).fetch1("weights", "weights_sha256")
        return load_stored_state_dict(ref, expected)

    def as_bytes(i: int) -> dict:
        data = state_dict_to_bytes(state)
        Weights.insert1({"id": i, "weights": data, "weights_sha256": checksum(data), "weights_bytes": len(data)})
        ref, expected = (Weights & {"id": i}).fetch1("weights", "weights_sha256")
        back = ref.read()
        assert checksum(back) == expected
        return state_dict_from_bytes(back)

    methods = {"local": local, "trained_model": trained_model, "streamed": streamed, "bytes": as_bytes}
    times = {name: [] for name in methods}
    for i in range(args.repeats + 1):  # round 0 warms caches and connections; not counted
        for offset, (name, method) in enumerate(methods.items()):
            started = time.perf_counter()
            back = method(1000 * offset + i)
            elapsed = time.perf_counter() - started
            assert all(torch.equal(back[k], state[k]) for k in state)
            if i:
                times[name].append(elapsed)
    schema.drop(prompt=False)
    schemas.schema.drop(prompt=False)

    loc, real, sto, raw = (statistics.median(times[name]) for name in ("local", "trained_model", "streamed", "bytes"))
    print(f"{args.megabytes:.0f} MB state dict, median of {args.repeats}; store: {backend.store}")
    print(f"local torch.save + torch.load                   : {loc * 1000:.0f} ms")
    print(f"TrainedModel.make_insert + fetch_state_dict     : {real * 1000:.0f} ms")
    print(f"  streamed into a bare table (sha256 verified)  : {sto * 1000:.0f} ms ({sto / loc:.2f}x)")
    print(f"  bytes path (serialise, insert, read)          : {raw * 1000:.0f} ms ({raw / loc:.2f}x)")
    print(f"ratio neurofit/local = {real / loc:.2f}")


def _trained_model_keys(schemas, n: int) -> list[dict]:
    """``n`` TrainingSelection keys (one config triple, n seeds) for TrainedModel rows."""
    dataset = schemas.Dataset.add("neurofit.synthetic_responses", {})
    model = schemas.Model.add("neurofit.gaussian_cnn", {})
    trainer = schemas.Trainer.add("neurofit.poisson", {})
    return schemas.TrainingSelection.add_grid(dataset, model, trainer, list(range(n)))


def _outcome(state: dict):
    """A `TrainingOutcome` as `train` returns it (state dict, no bytes), without training."""
    from neurofit.pipelines.provenance import provenance
    from neurofit.pipelines.training import TrainingOutcome

    history = [{"epoch": 1, "train_loss": 1.0, "validation_score": 0.5, "seconds": 0.1}]
    return TrainingOutcome(
        score=0.5, history=history, weights=b"", weights_sha256="", data_info={"provides": ["responses"]},
        provenance=provenance("cpu"), duration=1.0, n_parameters=sum(t.numel() for t in state.values()),
        state_dict=state,
    )


if __name__ == "__main__":
    main()
