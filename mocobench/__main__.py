"""`python -m mocobench <command>`: a thin dispatcher; each command lives in its own module.

Each command module exposes `add_arguments(parser)` and `main(args) -> int`.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "run": ("mocobench.runner.cli", "fine-tune and evaluate one benchmark for N trials, writing result records"),
    "tables": ("mocobench.reporting.cli", "paper-style tables and plots from the result records"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mocobench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
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
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv[1:]  # the command's own arguments, for a command that re-runs itself (run --submit)
    return modules[args.command].main(args)


if __name__ == "__main__":
    sys.exit(main())
