"""`python -m mocobench tables`: paper-style tables and plots from every result record under results/.

Reads results/records/**.json (never writes there), writes results/tables/tables.{md,csv,tex,html}
and results/plots/*.png (derived files: replaced on every run), and prints the Markdown.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mocobench.common.logs import cli_logging
from mocobench.common.naming import safe_name
from mocobench.pretrain import log as pretrain_logs
from mocobench.records import RecordError, load_records
from mocobench.reporting import aggregate, plots
from mocobench.reporting import render as formats

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default="results", type=Path,
                        help="results folder whose records/ are read (default: results)")
    parser.add_argument("--tables-dir", type=Path, default=None,
                        help="where the tables go (default: <results>/tables)")
    parser.add_argument("--plots-dir", type=Path, default=None,
                        help="where the PNG plots go (default: <results>/plots)")
    parser.add_argument("--pretrain-runs", nargs="+", type=Path, default=[], metavar="DIR",
                        help="pretraining run folders (with log.jsonl) to plot loss / kNN curves for; runs named "
                             "by the records' init.pretrain.run are added automatically")
    parser.add_argument("--reference", type=Path, default=aggregate.REFERENCE_FILE,
                        help="YAML of the paper's reported numbers (default: the packaged reference.yaml)")
    parser.add_argument("--no-reference", action="store_true", help="leave the paper's reported rows out")
    parser.add_argument("--layout", type=Path, default=None,
                        help="YAML of table titles and columns (default: those of the benchmark registry, "
                             "mocobench.detection.benchmarks and mocobench.segmentation.benchmarks)")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    parser.add_argument("--label-format", action="store_true",
                        help="label each row with its checkpoint layout too, e.g. 'swav_800ep (swav)'")
    parser.add_argument("--quiet", action="store_true", help="do not print the Markdown tables")


def _slug(text: str) -> str:
    return safe_name(text, fallback="run", replacement="_")


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve() == folder.resolve() or folder.resolve() in path.resolve().parents


def main(args: argparse.Namespace) -> int:
    cli_logging(stream="stderr")  # stdout carries the Markdown tables
    tables_dir = args.tables_dir or args.results / "tables"
    plots_dir = args.plots_dir or args.results / "plots"
    records_dir = args.results / "records"
    for name, folder in (("--tables-dir", tables_dir), ("--plots-dir", plots_dir)):
        if _inside(folder, records_dir):
            print(f"error: {name} {folder} is inside {records_dir}: tables are derived files and never go "
                  f"next to the records. Choose another folder.", file=sys.stderr)
            return 2
    missing_runs = [str(r) for r in args.pretrain_runs if not pretrain_logs.log_path(r).is_file()]
    if missing_runs:
        print(f"error: no {pretrain_logs.LOG_NAME} in {missing_runs}: --pretrain-runs takes pretraining run "
              f"folders (the --output-dir of the pretraining command)", file=sys.stderr)
        return 2
    try:
        records = load_records(args.results)
        layout = aggregate.load_layout(args.layout)
        reference = None if args.no_reference else aggregate.load_reference(args.reference)
    except (RecordError, aggregate.TableError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    if not records:
        print(f"No result records under {records_dir}: no tables written. Make some with `make voc-det` "
              f"(or `python -m mocobench run ...`), then run `make tables` again.")
    else:
        log.info(f"{len(records)} records from {records_dir}")
        tables = aggregate.build_tables(records, layout=layout, reference=reference,
                                        label_format=getattr(args, "label_format", False))
        paths = formats.write_tables(tables, tables_dir)
        if not args.quiet:
            print(formats.render_markdown(tables))
        log.info(f"{len(tables)} tables -> " + ", ".join(str(p) for p in paths.values()))
        if not args.no_plots:
            for t in tables:
                log.info(f"plot {plots.save_figure(plots.bar_figure(t), plots_dir / f'{_slug(t.table_id)}_bars.png')}")
                fig = plots.epoch_figure(t)
                if fig is not None:
                    log.info(f"plot {plots.save_figure(fig, plots_dir / f'{_slug(t.table_id)}_vs_epoch.png')}")

    if args.no_plots:
        return 0
    runs = list(dict.fromkeys([*map(str, args.pretrain_runs),
                               *((r["init"].get("pretrain") or {}).get("run") for r in records)]))
    for run in filter(None, runs):
        try:
            frame = pretrain_logs.read_log(run)
        except pretrain_logs.LogError as e:
            if run in map(str, args.pretrain_runs):
                print(f"error: {e}", file=sys.stderr)
                return 2
            log.info(f"no pretraining curves for {run} (named by a record): {e}")
            continue
        fig = plots.pretrain_figure(frame, Path(run).name)
        log.info(f"plot {plots.save_figure(fig, plots_dir / f'pretrain_{_slug(run)}.png')}")
    return 0
