"""The ``neurofit`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

DESCRIPTION = """\
neurofit: track datasets, models, trainers and seeds as hashed database rows, train what you
select, and query the results.

The database is the embedded PostgreSQL under $NEUROFIT_HOME (default ~/.neurofit) unless
DataJoint is configured for a server (DJ_HOST, DJ_BACKEND, DJ_USER, DJ_PASS or datajoint.json).
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurofit", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--prefix", default=None,
        help="database schema prefix, so several projects share a server (default: $NEUROFIT_PREFIX or none)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="train a small grid on synthetic data and print the results (a few minutes)",
        description="Run one workflow's demo end to end on synthetic data with a known ground truth. "
        "Demos are entry points in group 'neurofit.demos', so a lab package can add its own.",
    )
    demo.add_argument(
        "workflow", nargs="?", default="images", metavar="WORKFLOW",
        help="which demo (default: images; `neurofit demo list` describes each): " + ", ".join(_demo_names()),
    )
    demo.set_defaults(run=_demo)

    convert = commands.add_parser(
        "convert", help="convert a pickled pandas DataFrame of trials into a trial dataset (memmap or Deep Lake)"
    )
    convert.add_argument("source", metavar="PICKLE", help="pickled DataFrame, one row per trial (see neurofit.datasets.trials); only pickles you trust: loading one can run code")
    convert.add_argument("destination", metavar="PATH", help="folder to create")
    convert.add_argument("--frame-rate", type=float, required=True, help="frames per second of videos and responses")
    convert.add_argument("--backend", choices=["memmap", "deeplake"], default="memmap")
    convert.add_argument("--neurons", metavar="PICKLE", help="pickled {session: {column: array}} neuron metadata (optional)")
    convert.add_argument("--behavior-names", nargs="+", metavar="NAME", help="names of the behaviour columns")
    convert.add_argument("--overwrite", action="store_true", help="replace an existing dataset at PATH")
    convert.set_defaults(run=_convert)

    add = commands.add_parser("add", help="insert a dataset, model, trainer or analysis config and print its key")
    add.add_argument("kind", choices=["dataset", "model", "trainer", "analysis"])
    add.add_argument("fn", metavar="FN", help="registered builder name, e.g. neurofit.gaussian_cnn")
    add.add_argument("--config", metavar="FILE", help="YAML or JSON file of hyperparameters (default: all defaults)")
    add.add_argument("--comment", default="", help="free-text comment stored with the config")
    add.set_defaults(run=_add)

    select = commands.add_parser(
        "select", help="select dataset x model x trainer x seed combinations to train"
    )
    select.add_argument("--dataset", nargs="+", required=True, metavar="HASH", help="dataset hash(es) (a unique prefix is enough)")
    select.add_argument("--model", nargs="+", required=True, metavar="HASH", help="model hash(es)")
    select.add_argument("--trainer", nargs="+", required=True, metavar="HASH", help="trainer hash(es)")
    select.add_argument("--seed", nargs="+", type=int, required=True, help="seed(s)")
    select.set_defaults(run=_select)

    populate = commands.add_parser(
        "populate", help="compute pending rows of computed tables once, with a progress bar (for many machines and preemptible jobs use `neurofit worker`)"
    )
    populate.add_argument("tables", nargs="*", metavar="TABLE", help="computed table name(s), e.g. TrainedModel Performance RDM (default: all, in dependency order)")
    populate.add_argument("--max-calls", type=int, default=None, help="at most this many keys per table")
    populate.set_defaults(run=_populate)

    worker = commands.add_parser(
        "worker",
        help="compute pending jobs of all computed tables until none is left; safe to kill, run one per GPU/machine",
    )
    worker.add_argument("tables", nargs="*", metavar="TABLE", help="computed tables to work on (default: all)")
    worker.add_argument("--where", default=None,
                        help="restriction on job keys: attribute conditions joined by AND/OR, e.g. "
                             "\"seed IN (1, 2) AND model_fn LIKE 'mylab.%%'\" (';', comments and function calls are refused)")
    worker.add_argument("--max-jobs", type=int, default=None, help="stop after this many jobs")
    worker.add_argument("--wait", action="store_true", help="keep polling for new work instead of exiting")
    worker.add_argument("--poll", type=float, default=10.0, help="seconds between polls (default 10)")
    worker.add_argument("--device", default="auto", help="cpu, cuda:N, or auto: the GPU with most free memory, else cpu")
    worker.add_argument("--skip-gpu-trainers", choices=["auto", "yes", "no"], default="auto",
                        help="leave jobs of trainers that need a GPU to other workers (auto: when on the CPU)")
    worker.add_argument("--heartbeat", type=float, default=5.0, help="seconds between heartbeats (default 5)")
    worker.add_argument("--dead-after", type=float, default=60.0,
                        help="a worker silent this many seconds is dead and its jobs are re-queued (default 60)")
    worker.add_argument("--max-attempts", type=int, default=3, help="failures of one job before its error is kept (default 3)")
    worker.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads per job (default: this machine's cores / the workers running on it)")
    worker.add_argument("--step-interval", type=int, default=0, metavar="STEPS",
                        help="for long epochs: on a stop request, checkpoint and stop within this many "
                             "training steps instead of at the epoch's end (default 0: at the end)")
    worker.set_defaults(run=_worker)

    submit = commands.add_parser(
        "submit", help="launch an array of workers on SLURM through submitit (pip install 'neurofit[slurm]')"
    )
    submit.add_argument("--workers", type=int, required=True, help="array size: number of workers")
    submit.add_argument("--executor", choices=["slurm", "local"], default="slurm",
                        help="slurm, or local subprocesses (to try it out)")
    submit.add_argument("--folder", default="neurofit_jobs", help="submitit logs; on a shared file system for SLURM")
    submit.add_argument("--partition", default=None, help="SLURM partition")
    submit.add_argument("--time", type=int, default=240, help="minutes per task (default 240)")
    submit.add_argument("--gpus", type=int, default=0, help="GPUs per worker")
    submit.add_argument("--cpus", type=int, default=4, help="CPUs per worker")
    submit.add_argument("--mem", type=int, default=16, help="memory per worker in GB")
    submit.add_argument("--max-jobs", type=int, default=None, help="jobs per worker before it exits")
    submit.add_argument("--where", default=None, help="restriction on job keys, as for `neurofit worker --where`")
    submit.add_argument("--wait-for-work", action="store_true", help="workers keep polling for new work")
    submit.add_argument("--follow", action="store_true", help="wait for the workers and print their summaries")
    submit.set_defaults(run=_submit)

    jobs = commands.add_parser("jobs", help="job queue maintenance")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    recover = jobs_commands.add_parser("recover", help="re-queue jobs held by workers that stopped beating")
    recover.add_argument("--dead-after", type=float, default=60.0, help="seconds of silence that mean dead (default 60)")
    recover.set_defaults(run=_jobs_recover)
    retry = jobs_commands.add_parser("retry", help="re-queue failed jobs (after fixing their cause)")
    retry.add_argument("tables", nargs="*", metavar="TABLE", help="computed tables (default: all)")
    retry.add_argument("--fresh", action="store_true",
                       help="also delete the checkpoints of the re-queued trainings: they restart from epoch 1")
    retry.set_defaults(run=_jobs_retry)

    status = commands.add_parser("status", help="done / pending / reserved / error per computed table")
    status.set_defaults(run=_status)

    gc = commands.add_parser(
        "gc", help="list stored files (weights, activations, RDMs) that no row references; --delete removes them"
    )
    gc.add_argument("--delete", action="store_true", help="delete them (default: only report)")
    gc.add_argument(
        "--grace", type=float, default=None, metavar="MINUTES",
        help="keep files younger than this, whose rows a running worker may be inserting right now "
        "(default: $NEUROFIT_GC_GRACE or 60; 0 only when no worker runs)",
    )
    gc.set_defaults(run=_gc)

    repair = commands.add_parser(
        "repair", help="check the schema and repair what a half-created one lacks (tables, lineage, column types); reports what it fixed"
    )
    repair.set_defaults(run=_repair)

    upgrade = commands.add_parser(
        "migrate", help="upgrade a database made by an earlier neurofit release in place (every start "
        "does this too; run it as the schema's owner when workers use a role that may not alter tables)"
    )
    upgrade.add_argument("--dry-run", action="store_true", help="list the changes without making them")
    upgrade.set_defaults(run=_migrate)

    _add_admin_and_server(commands)

    builders = commands.add_parser("builders", help="list the registered dataset, model, trainer and analysis builders")
    builders.set_defaults(run=_builders)

    board = commands.add_parser(
        "leaderboard", help="models of one dataset ranked by mean test CCnorm, with CCraw and parameter counts"
    )
    board.add_argument("dataset", metavar="DATASET", help="dataset builder name (e.g. neurofit.synthetic_strf) or hash prefix")
    board.add_argument("--score", choices=["cc_norm", "cc_raw"], default="cc_norm", help="column to rank by")
    board.set_defaults(run=_leaderboard)
    return parser


def _leaderboard(args) -> int:
    from . import activate
    from .leaderboard import leaderboard

    activate(args.prefix)
    table = leaderboard(args.dataset, score=args.score)
    if table.empty:
        print(f"no trained model of {args.dataset!r} has test scores yet; run `neurofit populate`")
        return 1
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def _add_admin_and_server(commands) -> None:
    """`neurofit admin init` (schemas and least-privilege roles) and `neurofit server status|stop`."""
    admin = commands.add_parser("admin", help="lab server set-up: schemas and least-privilege roles")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    init = admin_commands.add_parser(
        "init", help="create the prefix's schemas, a worker role (read/write rows) and a read-only analyst role",
        description="Run as the server's admin. Workers get SELECT, INSERT, UPDATE, DELETE on the prefix's "
        "schemas; analysts SELECT. Passwords: $NEUROFIT_WORKER_PASSWORD / $NEUROFIT_ANALYST_PASSWORD, "
        "else new random ones for new roles (existing roles keep theirs).",
    )
    init.add_argument("--worker-role", default=None, help="default: <prefix>neurofit_worker")
    init.add_argument("--analyst-role", default=None, help="default: <prefix>neurofit_analyst")
    init.add_argument("--host", default="%", help="MySQL/MariaDB: host pattern the roles may connect from (default %%)")
    init.add_argument("--backend", choices=["postgresql", "mysql"], default=None,
                      help="with --print: the SQL dialect (default: the configured backend)")
    init.add_argument("--print", dest="print_sql", action="store_true",
                      help="print the SQL instead of running it (nothing is connected to or changed)")
    init.add_argument("--env-file", default=None, metavar="PATH",
                      help="write the roles' user names and new passwords here (mode 0600) instead of printing them")
    init.set_defaults(run=_admin_init)

    server = commands.add_parser("server", help="the embedded PostgreSQL: status, stop (it keeps running between commands)")
    server_commands = server.add_subparsers(dest="server_command", required=True, metavar="ACTION")
    server_commands.add_parser("status", help="running or not, pid, port, connected clients").set_defaults(run=_server_status)
    stop = server_commands.add_parser("stop", help="stop the embedded server (refused while clients are connected)")
    stop.add_argument("--force", action="store_true", help="stop even while clients are connected")
    stop.set_defaults(run=_server_stop)


def _admin_init(args) -> int:
    from . import admin

    if args.print_sql:
        import datajoint as dj

        backend = args.backend or dj.config["database.backend"]
        plan = admin.plan(args.prefix, backend, worker=args.worker_role, analyst=args.analyst_role, host=args.host,
                          database=str(dj.config["database.name"] or "postgres"))
        print(admin.render(plan))
        return 0
    plan = admin.init(args.prefix, worker=args.worker_role, analyst=args.analyst_role, host=args.host)
    print(f"schemas {', '.join(plan.schemas)}: worker {plan.worker.name} ({plan.worker.privileges}), "
          f"analyst {plan.analyst.name} ({plan.analyst.privileges})")
    text = admin.credentials(plan)
    if args.env_file:
        admin.write_env_file(args.env_file, text)
        print(f"credentials written to {args.env_file} (mode 0600)")
    else:
        print("credentials (shown once; existing roles keep their passwords):\n" + text, end="")
    return 0


def _server_status(args) -> int:
    import datetime

    from .connection import server_status

    state = server_status()
    if not state["running"]:
        print(f"embedded server: not running ({state['folder']}); the next neurofit command starts it")
        return 0
    started = datetime.datetime.fromtimestamp(state["started"]).isoformat(timespec="seconds") if state["started"] else "?"
    clients = "unknown" if state["clients"] is None else state["clients"]
    idle = f"stops after {state['idle_minutes']:g} idle minutes" if state["idle_minutes"] else "never stops by itself"
    print(f"embedded server: running, pid {state['pid']}, port {state['port']}, socket {state['socket_dir']}, "
          f"since {started}; {clients} client(s) connected; {idle} ($NEUROFIT_SERVER_IDLE_MINUTES); "
          f"data {state['folder']}")
    return 0


def _server_stop(args) -> int:
    from .connection import stop_embedded

    stopped = stop_embedded(force=args.force)
    print("embedded server stopped" if stopped else "embedded server was not running")
    return 0


def _demo_names() -> list[str]:
    from .demos import demo_names  # reads entry-point metadata only: the help stays fast

    return demo_names()


def _demo(args) -> int:
    from .demos import run_named_demo

    run_named_demo(args.workflow, prefix=args.prefix)
    return 0


def _convert(args) -> int:
    # Pickles can run code when loaded: convert only files you made or trust.
    import pandas as pd

    from neurofit.datasets.trial_storage import write_trials
    from neurofit.datasets.trials import TrialSet

    neurons = pd.read_pickle(args.neurons) if args.neurons else None
    trials = TrialSet.from_dataframe(
        pd.read_pickle(args.source), neurons=neurons, frame_rate=args.frame_rate,
        behavior_names=args.behavior_names,
    )
    path = write_trials(trials, args.destination, backend=args.backend, overwrite=args.overwrite)
    meta = trials.meta
    print(f"wrote {meta.n_trials} trials of {len(meta.sessions)} session(s) to {path} ({args.backend}); "
          f"fingerprint {meta.fingerprint[:16]}")
    print(f"use it with: neurofit add dataset neurofit.video_trials --config <yaml with path: {path}>")
    return 0


def _add(args) -> int:
    # The file is read and bounded first (it needs only PyYAML and numpy): a bad file is refused
    # before any table module is needed or any connection is made.
    from neurofit.pipelines.config_files import read_config_file

    config = read_config_file(args.config) if args.config else {}

    from . import activate
    from .config import MAX_COMMENT, Dataset, Model, Trainer, check_text
    from .scoring import Analysis

    table = {"dataset": Dataset, "model": Model, "trainer": Trainer, "analysis": Analysis}[args.kind]
    check_text("--comment", args.comment, MAX_COMMENT)
    activate(args.prefix)
    key, _ = table.key_for(args.fn, config)
    existed = bool(table() & key)
    table.add(args.fn, config, comment=args.comment)
    print(f"{'exists ' if existed else 'added  '} {args.kind}_fn={key[f'{args.kind}_fn']} "
          f"{args.kind}_hash={key[f'{args.kind}_hash']}")
    return 0


def _by_hash(table, kind: str, hashes: list[str]) -> list[dict]:
    keys = []
    for prefix in hashes:
        matches = (table() & f"{kind}_hash LIKE '{_safe_hex(prefix)}%'").keys()
        if len(matches) != 1:
            raise ValueError(f"{kind} hash {prefix!r} matches {len(matches)} configs; give more characters")
        keys.append(matches[0])
    return keys


def _safe_hex(text: str) -> str:
    if not text or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"{text!r} is not a (prefix of a) hexadecimal config hash")
    return text


def _select(args) -> int:
    from . import activate
    from .config import Dataset, Model, Trainer
    from .selection import TrainingSelection

    activate(args.prefix)
    keys = TrainingSelection.add_grid(
        _by_hash(Dataset, "dataset", args.dataset),
        _by_hash(Model, "model", args.model),
        _by_hash(Trainer, "trainer", args.trainer),
        args.seed,
    )
    print(f"selected {len(keys)} combination(s); run `neurofit populate` to train them")
    return 0


def _populate(args) -> int:
    from . import activate
    from .populating import populate, status

    activate(args.prefix)
    results = populate(args.tables or None, max_calls=args.max_calls)
    failed = 0
    for name, result in results.items():
        failed += len(result["error_list"])
        print(f"{name}: {result['success_count']} computed, {len(result['error_list'])} failed")
    print(status(args.tables or None).to_string())
    if failed:
        print("see `neurofit status` for the error messages", file=sys.stderr)
    return 1 if failed else 0


def _worker(args) -> int:
    from . import activate
    from .worker import run_worker

    activate(args.prefix)
    summary = run_worker(
        args.tables or None, args.where, max_jobs=args.max_jobs, wait=args.wait, poll=args.poll,
        device=args.device, skip_gpu_trainers={"auto": None, "yes": True, "no": False}[args.skip_gpu_trainers],
        heartbeat_interval=args.heartbeat, dead_after=args.dead_after, max_attempts=args.max_attempts,
        threads=args.threads, step_interval=args.step_interval,
    )
    print(summary)
    return 0


def _submit(args) -> int:
    from . import activate
    from .restriction import parse_where
    from .slurm import submit

    if args.where is not None:
        parse_where(args.where)  # refuse a bad restriction before any worker starts
    activate(args.prefix)  # creates tables and job tables before the workers compete
    jobs = submit(
        args.workers, executor=args.executor, folder=args.folder, prefix=args.prefix, time_minutes=args.time,
        partition=args.partition, gpus_per_worker=args.gpus, cpus_per_worker=args.cpus, memory_gb=args.mem,
        worker_options={"max_jobs": args.max_jobs, "wait": args.wait_for_work, "restriction": args.where},
    )
    print(f"submitted {len(jobs)} worker(s): {', '.join(str(j.job_id) for j in jobs)}; logs in {args.folder}")
    if args.follow:
        for job in jobs:
            print(f"worker {job.job_id}: {job.result()}")
    return 0


def _jobs_recover(args) -> int:
    from . import activate
    from .heartbeat import recover_orphans
    from .populating import _tables

    activate(args.prefix)
    print(f"re-queued {recover_orphans(_tables(None), args.dead_after)} job(s) of dead workers")
    return 0


def _jobs_retry(args) -> int:
    from . import activate
    from .checkpoints import Checkpoint
    from .heartbeat import requeue
    from .populating import _tables
    from .selection import TrainingSelection
    from .worker import JobAttempt

    activate(args.prefix)
    count = dropped = 0
    for name, table in _tables(args.tables or None).items():
        for job in table.jobs.errors.keys():
            # Only jobs keyed by a whole selection own a checkpoint (a partial key would match many).
            if args.fresh and set(TrainingSelection.primary_key) <= set(job):
                checkpoint = Checkpoint & {k: job[k] for k in TrainingSelection.primary_key}
                dropped += len(checkpoint)
                checkpoint.delete_quick()
            requeue(table, job)
            count += 1
        (JobAttempt & {"table_name": name}).delete_quick()
    print(f"re-queued {count} failed job(s)" + (f"; deleted {dropped} checkpoint(s)" if args.fresh else ""))
    return 0


def _status(args) -> int:
    from . import activate
    from .populating import errors, status

    backend = activate(args.prefix)
    print(f"database: {backend.kind} {backend.backend} at {backend.host}; object store {backend.store}")
    print(status().to_string())
    failed = errors()
    if len(failed):
        print("\nerrors:")
        for row in failed.to_dict("records"):
            short = " ".join(f"{k}={str(row[k])[:8]}" for k in ("model_hash", "seed") if k in row)
            print(f"  {row['table']} {short}: {row['error_message']}")
        print("fix the cause, then re-queue them with: neurofit jobs retry")
    return 0


def _gc(args) -> int:
    from . import activate
    from .storage import collect_garbage, grace_minutes

    grace = grace_minutes(args.grace)  # a bad value is an error before any connection
    activate(args.prefix)
    report = collect_garbage(dry_run=not args.delete, grace=grace)
    size = report["orphaned_bytes"] / 2**20
    verb = "deleted" if args.delete else "would delete"
    print(f"{verb} {report['orphaned_files']} unreferenced file(s), {size:.1f} MiB")
    if report["kept_young"]:
        print(f"kept {report['kept_young']} unreferenced file(s) younger than {report['grace_minutes']:g} min "
              "(their rows may still be committing; --grace changes the period)")
    if report["orphaned_files"] and not args.delete:
        print("run `neurofit gc --delete` to remove them")
    return 0


def _repair(args) -> int:
    from .activation import repair, schema_name

    fixes = repair(args.prefix)
    for fix in fixes:
        print(f"fixed: {fix}")
    print(f"schema {schema_name(args.prefix)}: " + (f"{len(fixes)} repair(s)" if fixes else "complete, nothing to repair"))
    return 0


def _migrate(args) -> int:
    from . import activate, extensions, migrate

    activate(args.prefix, upgrade=False)
    changes = migrate.migrate(extensions.active_schemas(), dry_run=args.dry_run)
    for change in changes:
        print(("would change " if args.dry_run else "changed ") + str(change))
    print("nothing to upgrade" if not changes else f"{len(changes)} table(s)")
    return 0


def _builders(args) -> int:
    from neurofit.pipelines import registry

    for kind in registry.KINDS:
        print(f"{kind}:")
        for name in registry.available(kind):
            builder = registry.resolve(kind, name)
            params = ", ".join(
                f"{k}={v!r}" if v is not registry.inspect.Parameter.empty else k
                for k, v in builder.defaults.items()
            )
            print(f"  {name}({params})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``neurofit`` console script."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if not args.verbose:
        warnings.filterwarnings("ignore", module="datajoint")
        warnings.filterwarnings("ignore", category=UserWarning)
        # DataJoint sets its logger's level when it is imported, which is later (on first use).
        os.environ.setdefault("DJ_LOG_LEVEL", "ERROR")
        logging.getLogger("datajoint").setLevel(logging.ERROR)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a clear message, not a traceback, for expected user errors
        from neurofit.pipelines.hashing import ConfigError
        from neurofit.pipelines.registry import RegistryError

        from .admin import PRIVILEGE_HINT, is_privilege_error

        if is_privilege_error(error) and not args.verbose:  # e.g. the analyst role writing
            print(f"error: {error}\n  hint: {PRIVILEGE_HINT}", file=sys.stderr)
            return 2
        if isinstance(error, (ConfigError, RegistryError, ValueError, FileNotFoundError)) and not args.verbose:
            print(f"error: {error}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
