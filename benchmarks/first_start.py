"""First start on a new schema: N `neurofit` processes started at the same moment.

Each round uses a brand-new ``NEUROFIT_PREFIX`` (a schema nobody created yet) and starts N
processes at once (``neurofit status`` by default, or ``neurofit worker --max-jobs 0``), the way
a SLURM array or a lab's first morning starts them. A round counts the processes that exited
non-zero, then runs ``neurofit status`` once more: if that fails, the schema was left broken.
With ``--fresh-home`` (embedded database only) every round also uses a new ``NEUROFIT_HOME``, so
the processes race to initialise and start the embedded PostgreSQL as well.

Prints crashes/processes, broken rounds/rounds and the error kinds seen; the schemas are dropped.

Usage: python benchmarks/first_start.py [--backend embedded|postgres|mariadb] [--rounds 10]
       [--processes 8] [--command status|worker] [--fresh-home]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

SERVERS = {  # the local servers of the development/CI machines (as tests/conftest.py)
    "postgres": {"DJ_BACKEND": "postgresql", "DJ_HOST": "127.0.0.1", "DJ_PORT": "5432", "DJ_USER": "postgres", "DJ_PASS": ""},
    "mariadb": {"DJ_BACKEND": "mysql", "DJ_HOST": "127.0.0.1", "DJ_PORT": "3306", "DJ_USER": "root", "DJ_PASS": ""},
}
COMMANDS = {"status": ["status"], "worker": ["worker", "--max-jobs", "0", "--device", "cpu"]}


def backend_env(backend: str, home: Path) -> dict[str, str]:
    """Environment for the child processes: one backend, one home, one thread each."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJ_")}
    env.update(NEUROFIT_HOME=str(home), OMP_NUM_THREADS="1", NEUROFIT_WANDB="disabled", DJ_USE_TLS="false")
    if backend == "embedded":
        env["NEUROFIT_DATABASE"] = "embedded"
    else:
        env["NEUROFIT_DATABASE"] = "server"
        env.update({k: os.environ.get(k, v) for k, v in SERVERS[backend].items()})
    return env


def error_kind(stderr: str) -> str:
    """The exception line of a traceback (or the last line), shortened."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^[\w.]+(Error|Exception|Table|Schema|Object|Violation)\b.*:", line):
            return line[:120]
    return (lines[-1] if lines else "(no output)")[:120]


def start_all(n: int, command: list[str], env: dict[str, str]) -> list[subprocess.CompletedProcess]:
    """Start n processes together and collect them (each with a timeout)."""
    processes = [
        subprocess.Popen([sys.executable, "-m", "neurofit.schemas.cli", *command], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    results = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            err += "\nTimeoutExpired: no exit within 600 s"
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def drop_schema(env: dict[str, str], name: str) -> None:
    """Drop a schema in a separate process (this one never binds neurofit's tables)."""
    code = (
        "from neurofit.schemas import connection; import datajoint as dj; connection.configure(); "
        f"c = dj.conn(); c.query(c.adapter.drop_schema_sql({name!r}))"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, timeout=300)


def stop_embedded(home: Path) -> None:
    """Stop the embedded server of a benchmark home, if one runs."""
    code = "from neurofit.schemas.connection import stop_embedded; stop_embedded()"
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "NEUROFIT_HOME": str(home)},
                   capture_output=True, timeout=300, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["embedded", *SERVERS], default="embedded")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--command", choices=list(COMMANDS), default="status")
    parser.add_argument("--fresh-home", action="store_true", help="a new NEUROFIT_HOME every round (embedded only)")
    args = parser.parse_args()
    if args.fresh_home and args.backend != "embedded":
        parser.error("--fresh-home applies to the embedded database only")

    root = Path(tempfile.mkdtemp(prefix="neurofit_first_start_"))
    homes: list[Path] = [root / "home"]
    crashes, crashed_rounds, broken, kinds, seconds = 0, 0, 0, collections.Counter(), []
    try:
        for round_index in range(args.rounds):
            if args.fresh_home:
                homes.append(root / f"home_{round_index}")
            env = backend_env(args.backend, homes[-1])
            env["NEUROFIT_PREFIX"] = prefix = f"bench_{uuid.uuid4().hex[:8]}_"
            if args.backend == "embedded" and not args.fresh_home:
                # The server runs before the round starts: the processes race on the schema only.
                subprocess.run([sys.executable, "-c", "from neurofit.schemas import connection; connection.configure()"],
                               env=env, check=True, capture_output=True, timeout=300)
            started = time.perf_counter()
            results = start_all(args.processes, COMMANDS[args.command], env)
            seconds.append(time.perf_counter() - started)
            failed = [r for r in results if r.returncode != 0]
            crashes += len(failed)
            crashed_rounds += bool(failed)
            kinds.update(error_kind(r.stderr) for r in failed)
            for index, result in enumerate(failed):
                (root / f"round{round_index + 1}_crash{index + 1}.log").write_text(result.stderr)
            after = start_all(1, COMMANDS["status"], env)[0]
            if after.returncode != 0:
                broken += 1
                kinds.update([f"(status afterwards) {error_kind(after.stderr)}"])
                (root / f"round{round_index + 1}_status_afterwards.log").write_text(after.stderr)
            print(f"round {round_index + 1}: {len(failed)}/{args.processes} crashed, status afterwards "
                  f"{'ok' if after.returncode == 0 else 'FAILED'} ({seconds[-1]:.1f} s)", flush=True)
            drop_schema(env, f"{prefix}neurofit")
    finally:
        if args.backend == "embedded":
            for home in homes:
                stop_embedded(home)
    total = args.rounds * args.processes
    what = f"{args.processes} x `neurofit {' '.join(COMMANDS[args.command])}`"
    where = " on a fresh NEUROFIT_HOME" if args.fresh_home else ""
    print(f"\n{args.backend}, {what}{where}: crashes {crashes}/{total} processes in "
          f"{crashed_rounds}/{args.rounds} rounds; status broken afterwards {broken}/{args.rounds} rounds; "
          f"median round {sorted(seconds)[len(seconds) // 2]:.1f} s")
    for kind, count in kinds.most_common():
        print(f"  {count} x {kind}")
    if kinds:
        print(f"tracebacks: {root}/round*.log")


if __name__ == "__main__":
    main()
