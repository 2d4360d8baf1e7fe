"""`python -m mocobench run suite` (= `python -m mocobench suite`): every transfer benchmark of the paper for
each initialisation, a plan with its estimate first, then the report card.

    python -m mocobench run suite --weights output/pretrain/moco_v2_demo --weights SUP --weights random
    python -m mocobench run suite --weights RUN --weights SUP --dry-run            # the plan and estimate only
    python -m mocobench run suite --weights RUN --only voc-det,voc-seg --trials 5
    python -m mocobench run suite --weights RUN --submit --nodes 1 --gpus-per-node 8 --partition P --wait

Every option of `run` applies to every benchmark. The work is the library's: runner/suite.py plans and
runs (cheap first, finished trials skipped, a failing benchmark reported at the end), reporting/card.py
writes the card (RESULTS/card/card.{md,csv,html,png}). Exit status: 0 when every benchmark ran, 1 when one
or more failed (the card shows what the others gave), 2 for bad input.
This command lives in reporting/ because it ends with the card: it may use the runner, not the reverse.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mocobench.common.hashing import canonical_hash
from mocobench.common.logs import cli_logging
from mocobench.records import load_records
from mocobench.reporting import aggregate
from mocobench.reporting.card import build_card, render_markdown, write_card
from mocobench.runner.cli import add_run_options, request_from_args
from mocobench.runner.run import BANNER, print_node_commands
from mocobench.runner.submit import submit_run
from mocobench.runner.suite import paper_benchmarks, plan_suite, render_plan, run_suite, select_benchmarks, summary

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


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # third-party loggers
    cli_logging()
    names = select_benchmarks(args.only, args.skip)
    request = request_from_args(args, benchmark="suite")
    plan = plan_suite(request, names, records=load_records(request.results))
    if any(e.prepared.synthetic for e in plan.runnable):
        print(BANNER.format(what=f"preset {request.synthetic_preset!r} in {request.synthetic_root}"), flush=True)
    print(render_plan(plan), flush=True)
    if plan.job is not None:  # the whole suite as one job: each node runs this same command
        if request.dry_run:
            print_node_commands(plan.job)
            return 0
        submit_run(plan.job.cluster, plan.job.build, plan.job.wait)
        if not plan.job.wait:  # not --wait: the card comes from a later run (finished trials are skipped)
            print("submitted; when the job has finished, run the same command without --submit for the card")
            return 0
        result = None
    elif request.dry_run:
        return 0
    else:
        result = run_suite(plan)
    planned = {e.name: e.prepared.plans for e in plan.runnable if e.prepared.plans}
    benchmarks = [planned[n][0].benchmark for n in names if n in planned]  # the registry's (paper's) order
    hashes = {canonical_hash(p.protocol) for plans in planned.values() for p in plans}
    reference = None if args.no_reference else aggregate.load_reference()
    card = build_card(load_records(request.results), benchmarks, reference=reference, protocol_hashes=hashes)
    title = "Report card" + (" - built-in synthetic data, not the paper's benchmark"
                             if any(e.prepared.synthetic for e in plan.runnable) else "")
    paths = write_card(card, args.card_dir or Path(request.results) / "card", title)
    print(render_markdown(card, title), flush=True)
    log.info("report card -> " + ", ".join(str(p) for p in paths.values()))
    if result is not None:
        print(summary(result, plan), flush=True)
        failed = dict(result.failed)
    else:
        failed = {e.name: f"not planned: {e.error}" for e in plan.entries if e.prepared is None}
    return FAILED_EXIT_STATUS if failed else 0

