"""Trials side by side on a CPU: `--jobs N` runs N trials at once, each in its own process with
cores / N torch threads. On 2 cores two one-thread trials give 1.24x the throughput of one two-thread
trial after the other (the demo's small convolutions do not keep two threads busy; benchmarks/perf/RESULTS.md).

Each trial is the same `run_trial` as in sequence, in a spawned process (never forked: the parent's OpenMP
pool is not fork-safe), so records, resumption and kill-safety are those of a sequential run. The workers
are not daemonic (a `concurrent.futures` pool, not `multiprocessing.Pool`): a trial may start processes of its
own, as Detectron2's Cityscapes loader does (`load_cityscapes_instances` opens a `multiprocessing.Pool`). A
failed trial does not stop the others; the first error is raised once all have ended.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from mocobench.runner import RunnerError
from mocobench.runner.plan import TrialPlan
from mocobench.runner.request import RunRequest
from mocobench.runner.trial import run_trial

log = logging.getLogger(__name__)


def auto_jobs(requested: int | None, *, synthetic: bool, num_gpus: int, trials: int, num_procs: int = 1) -> int:
    """--jobs: as given; by default 2 for built-in-data trials on a CPU with >= 2 cores, else 1. A trial of
    several processes (--num-procs) runs alone: its processes are the parallelism."""
    if requested is not None:
        if requested < 1:
            raise RunnerError(f"--jobs {requested}: give 1 or more trials to run at once")
        if requested > 1 and num_gpus > 0:
            raise RunnerError("--jobs > 1 is for CPU runs (--num-gpus 0); on GPUs a trial uses them all")
        if requested > 1 and num_procs > 1:
            raise RunnerError(f"--jobs {requested} with --num-procs {num_procs}: a trial of several processes runs "
                              f"alone; give one of the two")
        return min(requested, max(trials, 1))
    if num_procs > 1:
        return 1
    return 2 if synthetic and num_gpus == 0 and (os.cpu_count() or 1) >= 2 and trials > 1 else 1


def _init_worker(threads: int) -> None:
    import torch

    from mocobench.common.logs import cli_logging

    torch.set_num_threads(threads)
    cli_logging()


def run_parallel(plans: list[TrialPlan], *, request: RunRequest, data: dict, jobs: int) -> list[Path]:
    """Run the plans, `jobs` at a time; the records written (trials finished already write none). Each trial gets
    a fresh process where Python has `max_tasks_per_child` (3.11+); on 3.10 a worker runs its trials in turn."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    log.info(f"{len(plans)} trial(s), {jobs} at a time, {threads} torch thread(s) each")
    fresh = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}
    written, errors = [], []
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                             initargs=(threads,), **fresh) as pool:
        pending = [(plan, pool.submit(run_trial, plan, request=request, data=data)) for plan in plans]
        for plan, result in pending:
            try:
                path = result.result()
            except Exception as e:  # noqa: BLE001  (reported below, after the other trials)
                log.error(f"{plan.benchmark} / {plan.init.label} trial {plan.trial} failed: {e}")
                errors.append(e)
                continue
            if path:
                written.append(path)
    if errors:
        raise errors[0]
    return written
