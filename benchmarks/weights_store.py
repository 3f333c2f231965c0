"""Store + fetch time of a 50 MB state dict in TrainedModel's object store vs a local torch.save.

Usage: python benchmarks/weights_store.py [--megabytes 50] [--repeats 5]
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
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from neurofit import schemas
    from neurofit.pipelines.weights import checksum, state_dict_from_bytes, state_dict_to_bytes

    schemas.activate(isolated_prefix())
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
        """

    local, stored = [], []
    folder = tempfile.mkdtemp()
    for i in range(args.repeats):
        path = os.path.join(folder, f"{i}.pt")
        started = time.perf_counter()
        torch.save(state, path)
        torch.load(path, weights_only=True)
        local.append(time.perf_counter() - started)

        started = time.perf_counter()
        data = state_dict_to_bytes(state)
        Weights.insert1({"id": i, "weights": data, "weights_sha256": checksum(data)})
        ref, expected = (Weights & {"id": i}).fetch1("weights", "weights_sha256")
        back = ref.read()
        assert checksum(back) == expected
        state_dict_from_bytes(back)
        stored.append(time.perf_counter() - started)
    schema.drop(prompt=False)
    schemas.schema.drop(prompt=False)

    loc, sto = statistics.median(local), statistics.median(stored)
    print(f"{args.megabytes:.0f} MB state dict, median of {args.repeats}")
    print(f"local torch.save + torch.load      : {loc * 1000:.0f} ms")
    print(f"neurofit store + fetch (+ checksum): {sto * 1000:.0f} ms")
    print(f"ratio neurofit/local = {sto / loc:.2f}")


if __name__ == "__main__":
    main()
