"""`python -m mocobench <command>`: a thin dispatcher; each command lives in its own module.

Each command module exposes `add_arguments(parser)` and `main(args) -> int`. The stage commands that keep
their own command line (pretrain, convert, data) are handed their arguments as they are. Every command
runs inside one error wrapper: bad input (a UsageError) prints one line and exits with status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from mocobench.common.errors import exit_status_on_usage_error
from mocobench.common.warnings_policy import apply_command_policy

COMMANDS = {
    "run": ("mocobench.runner.cli", "fine-tune and evaluate one benchmark for N trials, writing result records "
                                    "(`run suite`: every benchmark, see `suite`)"),
    "suite": ("mocobench.reporting.suite_cli", "every transfer benchmark of the paper for each initialisation "
                                               "(plan + estimate first), then the report card; same as `run suite`"),
    "tables": ("mocobench.reporting.cli", "paper-style tables and plots from the result records"),
}
# Commands with a command line of their own: `python -m mocobench pretrain ...` = `python -m mocobench.pretrain ...`
FORWARDED = {
    "data": ("mocobench.data.synthetic.__main__", "write the built-in synthetic data set (python -m "
                                                  "mocobench.data.synthetic)"),
    "pretrain": ("mocobench.pretrain.__main__", "MoCo / supervised pretraining, kNN and linear evaluation, cluster "
                                                "jobs (train | knn | lincls | submit | upgrade; python -m "
                                                "mocobench.pretrain)"),
    "convert": ("mocobench.detection.convert", "checkpoint -> Detectron2 pickle, with the forward-pass proof "
                                               "(python -m mocobench.detection.convert)"),
}


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    """The dispatcher's parser (its help page lists every command) and the imported command modules."""
    parser = argparse.ArgumentParser(prog="python -m mocobench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            continue
        modules[name] = module
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    for name, (_, help_text) in FORWARDED.items():
        sub.add_parser(name, help=help_text, add_help=False)  # listed here; parsed by its own module
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    apply_command_policy()  # before any command imports Detectron2, and for every child it spawns
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in FORWARDED:
        forwarded = importlib.import_module(FORWARDED[argv[0]][0])
        return exit_status_on_usage_error(lambda: forwarded.main(argv[1:]) or 0)
    own = argv[1:]  # the command's own arguments, for a command that re-runs itself (run --submit)
    if argv[:2] == ["run", "suite"]:  # `run suite ...` is the suite command; its jobs re-run `run suite ...`
        argv, own = ["suite", *argv[2:]], argv[1:]
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    args.argv = own
    return exit_status_on_usage_error(lambda: modules[args.command].main(args))


if __name__ == "__main__":
    sys.exit(main())
