"""`python -m mocobench run suite` (= `python -m mocobench suite`): every transfer benchmark of the paper for
each initialisation, a plan with its estimate first, then the report card.

    python -m mocobench run suite --weights output/pretrain/moco_v2_demo --weights SUP --weights random
    python -m mocobench run suite --weights RUN --weights SUP --dry-run            # the plan and estimate only
    python -m mocobench run suite --weights RUN --only voc-det,voc-seg --trials 5
    python -m mocobench run suite --weights RUN --submit --nodes 1 --gpus-per-node 8 --partition P --wait

Every option of `run` applies to every benchmark. A thin command: the suite's flow is the runner's
(runner/suite.py: plan, then dry run, one job for the whole suite, or every benchmark here, cheap first,
finished trials skipped, a failing benchmark reported at the end); the card is the reporting's
(reporting/card.py: RESULTS/card/card.{md,csv,html,png}), built from the records once the flow says they are
final. Exit status: 0 when every benchmark ran, 1 when one or more failed (the card shows what the others
gave), 2 for bad input. This command lives in reporting/ because it ends with the card: it may use the
runner, not the reverse.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mocobench.common.logs import cli_logging
from mocobench.records import load_records
from mocobench.reporting import aggregate
from mocobench.reporting.card import build_card, render_markdown, write_card
from mocobench.runner.cli import add_run_options, request_from_args
from mocobench.runner.suite import (
    SuitePlan,
    card_benchmarks,
    execute_suite,
    on_builtin_data,
    paper_benchmarks,
    plan_suite,
    planned_protocols,
    select_benchmarks,
    summary,
)

log = logging.getLogger(__name__)
FAILED_EXIT_STATUS = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("suite")
    g.add_argument("--only", action="append", metavar="NAMES",
                   help=f"comma-separated benchmarks (or aliases) to run, repeatable; default: all of "
                        f"{', '.join(paper_benchmarks())}")
    g.add_argument("--skip", action="append", metavar="NAMES", help="comma-separated benchmarks to leave out")
    g.add_argument("--card-dir", type=Path, default=None, help="where the report card goes (default: RESULTS/card)")
    g.add_argument("--no-reference", action="store_true", help="leave the paper's rows out of the card")
    add_run_options(parser)


def write_suite_card(plan: SuitePlan, names: list[str], card_dir: Path | None, no_reference: bool) -> None:
    """The card of the planned benchmarks and protocols, from every record of the results folder."""
    results = Path(plan.request.results)
    reference = None if no_reference else aggregate.load_reference()
    card = build_card(load_records(results), card_benchmarks(plan, names), reference=reference,
                      protocol_hashes=planned_protocols(plan))
    title = "Report card" + (" - built-in synthetic data, not the paper's benchmark" if on_builtin_data(plan) else "")
    paths = write_card(card, card_dir or results / "card", title)
    print(render_markdown(card, title), flush=True)
    log.info("report card -> " + ", ".join(str(p) for p in paths.values()))


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # third-party loggers
    cli_logging()
    names = select_benchmarks(args.only, args.skip)
    request = request_from_args(args, benchmark="suite")
    plan = plan_suite(request, names, records=load_records(request.results))
    outcome = execute_suite(plan)
    if not outcome.card_due:
        return 0
    write_suite_card(plan, names, args.card_dir, args.no_reference)
    if outcome.result is not None:
        print(summary(outcome.result, plan), flush=True)
    return FAILED_EXIT_STATUS if outcome.failed else 0
