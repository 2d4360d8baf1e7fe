"""The suite: every transfer benchmark of the paper (the registry's, runner/benchmarks.py: new benchmarks
join by being registered), each for every initialisation, planned and estimated before any work.

    plan = plan_suite(RunRequest("suite", weights=[moco, supervised, "random"]), records=load_records("results"))
    print(render_plan(plan))
    result = run_suite(plan)        # result.failed: the benchmarks that failed, the others ran
    outcome = execute_suite(plan)   # or the whole flow of the command: plan printed, then --dry-run / --submit
                                    # (one job for the whole suite, --wait) / run here, as `execute` for one benchmark

This is the suite's one flow. The report card at its end is a view of the records, written by reporting
(reporting/suite_cli.py calls execute_suite, then builds the card from what `card_benchmarks` and
`planned_protocols` name): the runner never imports reporting (tests/test_architecture.py).

Order: cheap first, by the estimated seconds per trial; benchmarks without an estimate come after, by the
images a trial trains on (max_iter x IMS_PER_BATCH). Resumable as every run is: a trial with a record is
skipped (the plan says "done"), an interrupted one resumes from its checkpoint. A benchmark that fails
(bad data, a crashed trial) does not stop the others: it is reported at the end.
"""
from __future__ import annotations

import dataclasses
import logging
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from mocobench.common.errors import UsageError
from mocobench.common.hashing import canonical_hash
from mocobench.runner import RunnerError
from mocobench.runner.benchmarks import ALIASES, BENCHMARKS
from mocobench.runner.estimate import MODEL_ZOO, UNKNOWN, Estimate, estimate_trial, local_device_key
from mocobench.runner.parallel import auto_jobs
from mocobench.runner.run import BANNER, Prepared, RunRequest, available_weights, execute, prepare, print_node_commands
from mocobench.runner.submit import Job, submit_run

log = logging.getLogger(__name__)


def paper_benchmarks() -> list[str]:
    """Every registered benchmark of the paper, in the registry's order (the generic ones for a user's own
    data set, which need --dataset, are not part of the suite)."""
    return [name for name, bench in BENCHMARKS.items() if bench.epochs is None]


def _names(text: Iterable[str] | None, what: str) -> list[str]:
    names = [n.strip() for item in (text or []) for n in item.split(",") if n.strip()]
    known = paper_benchmarks()
    out = []
    for n in names:
        full = ALIASES.get(n, n)
        if full not in known:
            raise RunnerError(f"{what} {n!r}: not a benchmark of the suite; choose from {', '.join(known)} "
                              f"(aliases: {', '.join(f'{a}={b}' for a, b in ALIASES.items())})")
        out.append(full)
    return out


def select_benchmarks(only: Iterable[str] | None = None, skip: Iterable[str] | None = None) -> list[str]:
    """The suite's benchmarks, narrowed by --only and --skip (names or aliases, comma-separated or repeated)."""
    chosen, skipped = _names(only, "--only"), _names(skip, "--skip")
    names = [n for n in paper_benchmarks() if (not chosen or n in chosen) and n not in skipped]
    if not names:
        raise RunnerError("--only/--skip leave no benchmark to run")
    return names


@dataclass
class SuiteEntry:
    name: str                                   # the registry's name (what --only takes)
    prepared: Prepared | None = None            # None when planning failed
    error: str | None = None                    # why planning failed
    estimates: list[Estimate] = field(default_factory=list)   # one per planned trial
    done: list[bool] = field(default_factory=list)            # per planned trial: its record exists
    jobs: int = 1                                             # trials run at once on the CPU (--jobs)

    @property
    def todo_seconds(self) -> float | None:
        """Estimated wall-clock seconds of the trials still to run (None: some have no estimate). With --jobs J
        trials side by side each record's time is that of a trial sharing the machine, so the sum is / J."""
        left = [e for e, d in zip(self.estimates, self.done) if not d]
        if any(e.seconds is None for e in left):
            return None
        return sum(e.seconds for e in left) / self.jobs

    @property
    def todo_device_hours(self) -> float | None:
        left = [e for e, d in zip(self.estimates, self.done) if not d]
        if any(e.device_hours is None for e in left):
            return None
        return sum(e.device_hours for e in left) / self.jobs

    def sort_key(self) -> tuple:
        if self.prepared is None or not self.prepared.plans:
            return (2, 0.0, self.name)
        per_trial = [e.seconds for e in self.estimates]
        if all(s is not None for s in per_trial):
            return (0, sum(per_trial) / len(per_trial), self.name)
        cfg = self.prepared.plans[0].cfg
        return (1, float(cfg.SOLVER.MAX_ITER * cfg.SOLVER.IMS_PER_BATCH), self.name)


@dataclass
class SuitePlan:
    request: RunRequest
    entries: list[SuiteEntry]

    @property
    def runnable(self) -> list[SuiteEntry]:
        return [e for e in self.entries if e.prepared is not None]

    @property
    def job(self) -> Job | None:
        """--submit: the one job the whole suite runs as (the same command on every node)."""
        return next((e.prepared.job for e in self.runnable if e.prepared.job is not None), None)


@dataclass
class SuiteResult:
    ran: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)   # benchmark -> what went wrong
    written: list[Any] = field(default_factory=list)


def plan_suite(request: RunRequest, names: list[str] | None = None, records: Iterable[dict[str, Any]] = (),
               ) -> SuitePlan:
    """Prepare every benchmark (trains nothing) and estimate every trial from `records` (the results folder's
    records: the suite's own history) or the model zoo. A benchmark that cannot be planned is kept with its
    error and reported; when none can be, the first error is raised."""
    records = list(records)
    if request.skip_missing:  # checked (and warned about) once for the whole suite, not once per benchmark
        kept = available_weights(request.weights)
        request = dataclasses.replace(request, weights=kept, skip_missing=False,
                                      supervised=[s for s in request.supervised if s in kept])
    entries, errors = [], []
    for name in names or paper_benchmarks():
        try:
            prep = prepare(dataclasses.replace(request, benchmark=name), banner=False, fitting_weights_only=True)
        except UsageError as e:
            entries.append(SuiteEntry(name, error=str(e)))
            errors.append(e)
            continue
        req = prep.request
        key = local_device_key(req.num_gpus, req.num_machines)
        estimates = [estimate_trial(p, records, num_gpus=req.num_gpus, num_machines=req.num_machines, key=key)
                     for p in prep.plans]
        jobs = auto_jobs(req.jobs, synthetic=prep.synthetic, num_gpus=req.num_gpus, trials=len(prep.plans),
                         num_procs=req.num_procs)
        entries.append(SuiteEntry(name, prep, None, estimates, [p.record_path.exists() for p in prep.plans], jobs))
    if errors and len(errors) == len(entries):
        raise errors[0]
    entries.sort(key=SuiteEntry.sort_key)
    return SuitePlan(request, entries)


def _hours(h: float | None) -> str:
    """3 significant digits, but whole hours from 1,000 on (1,029, not 1.03e+03)."""
    return "?" if h is None else f"{h:.3g}" if h < 1000 else f"{h:,.0f}"


def render_plan(plan: SuitePlan) -> str:
    """The plan as text: benchmarks x initialisations x trials, iterations, images per GPU, estimate and
    where it comes from, then the totals."""
    lines = ["Suite plan (cheap first; 'done' trials have a record and are skipped)", ""]
    head = f"{'#':>2}  {'benchmark':<34} {'initialisation':<26} {'trials':>9} {'iters':>7} {'batch':>5} " \
           f"{'ims/GPU':>7} {'s/iter':>8} {'dev-h':>7}  estimate from"
    lines += [head, "-" * len(head)]
    total, unknown, kinds, devices = 0.0, [], set(), set()
    for i, entry in enumerate(plan.entries, 1):
        if entry.prepared is None:
            lines.append(f"{i:>2}  {entry.name:<34} CANNOT RUN: {entry.error}")
            continue
        prep = entry.prepared
        by_init: dict[str, list[int]] = {}
        for j, p in enumerate(prep.plans):
            by_init.setdefault(p.init.label, []).append(j)
        for label, idx in by_init.items():
            p = prep.plans[idx[0]]
            est = entry.estimates[idx[0]]
            done = sum(entry.done[j] for j in idx)
            left = [entry.estimates[j] for j in idx if not entry.done[j]]
            hours = None if any(e.device_hours is None for e in left) else sum(
                e.device_hours for e in left) / entry.jobs
            per_gpu = p.cfg.SOLVER.IMS_PER_BATCH // prep.num_devices
            s_iter = "?" if est.seconds_per_iter is None else f"{est.seconds_per_iter:.3g}"
            lines.append(f"{i:>2}  {p.benchmark:<34} {label:<26} {f'{len(idx)} ({done} done)':>9} "
                         f"{p.cfg.SOLVER.MAX_ITER:>7} {p.cfg.SOLVER.IMS_PER_BATCH:>5} {per_gpu:>7} {s_iter:>8} "
                         f"{_hours(hours):>7}  {est.kind}: {est.source}")
            kinds.add(est.kind)
            devices.add(prep.num_devices)
            if hours is None:
                unknown.append(f"{p.benchmark} / {label}")
            else:
                total += hours
    req = plan.runnable[0].prepared.request if plan.runnable else plan.request
    unit = "GPU-hours" if (req.num_gpus or 0) > 0 else "CPU machine-hours"
    trials = sum(len(e.done) for e in plan.runnable)
    todo = sum(len(e.done) - sum(e.done) for e in plan.runnable)
    lines += ["", f"{len(plan.runnable)} benchmark(s), {trials} trial(s), {todo} to run. Estimate of what is left: "
                  f"{_hours(total)} {unit}" + (f" + unknown for {len(unknown)} (benchmark, initialisation) pair(s) "
                                           f"without records on this device or a model-zoo figure"
                                           if unknown else "") + "."]
    unchecked = sorted({u.split(" (")[0] for e in plan.runnable for u in e.prepared.unchecked})
    if unchecked:
        lines.append(f"planned only: the {' and '.join(unchecked)} were not checked on this machine (a dry run plans "
                     f"without them); a real run requires them.")
    zoo_sources = {e.source for entry in plan.runnable for e in entry.estimates if e.kind == MODEL_ZOO}
    if any("ViTDet" not in src for src in zoo_sources):
        lines.append("model-zoo figures: Detectron2's 8 V100 training speed of the same model (FrozenBN): a lower "
                     "bound; the suite's own records replace them once it has run here.")
    if any("ViTDet" in src for src in zoo_sources):
        lines.append("ViTDet figures: ViTDet's published training speed (its README: 64 A100, batch 64, AMP); the "
                     "suite's own records replace them once it has run here.")
    if UNKNOWN in kinds:
        lines.append("unknown: the first run of a benchmark on this device records its speed; the next plan uses it.")
    if plan.runnable:  # how each row was classified (kind, input settings) and why: the same for every benchmark
        lines += ["", "Initialisations:"] + [f"  {init.describe()}" for init in plan.runnable[0].prepared.inits]
    return "\n".join(lines)


def run_suite(plan: SuitePlan, *, run: Callable[[Prepared], Any] | None = None) -> SuiteResult:
    """Run the planned benchmarks in order; a failing one is logged with its traceback and the others go on.
    `run`: how one benchmark runs (default: execute, without the per-benchmark banners)."""
    run = run or (lambda prep: execute(prep, banner=False))
    result = SuiteResult()
    for i, entry in enumerate(plan.entries, 1):
        if entry.prepared is None:
            result.failed[entry.name] = f"not planned: {entry.error}"
            continue
        left = len(entry.done) - sum(entry.done)
        log.info(f"suite {i}/{len(plan.entries)}: {entry.prepared.bench.name} ({left} of {len(entry.done)} "
                 f"trial(s) to run)")
        try:
            out = run(entry.prepared)
        except Exception as e:  # noqa: BLE001  (one failing benchmark does not stop the others)
            log.error(f"suite: {entry.name} FAILED: {type(e).__name__}: {e}\n{traceback.format_exc()}")
            result.failed[entry.name] = f"{type(e).__name__}: {e}"
            continue
        result.ran.append(entry.name)
        result.written += list(getattr(out, "written", []) or [])
    return result


def summary(result: SuiteResult, plan: SuitePlan) -> str:
    lines = [f"suite: {len(result.ran)} of {len(plan.entries)} benchmark(s) ran to the end, "
             f"{len(result.written)} record(s) written"]
    for name, why in result.failed.items():
        lines.append(f"  FAILED {name}: {why}")
    if result.failed:
        lines.append("  (the others ran; fix the cause and run the same command again: finished trials are "
                     "skipped, interrupted ones resume)")
    return "\n".join(lines)


@dataclass
class SuiteOutcome:
    plan: SuitePlan
    result: SuiteResult | None  # None: nothing ran here (a dry run, or the suite went to the cluster as one job)
    card_due: bool              # the records are final for the card: the suite ran here, or its job was waited for

    @property
    def failed(self) -> dict[str, str]:
        """benchmark -> what went wrong (a job that was waited for: the benchmarks that could not be planned)."""
        if self.result is not None:
            return dict(self.result.failed)
        return {e.name: f"not planned: {e.error}" for e in self.plan.entries if e.prepared is None}


def execute_suite(plan: SuitePlan, *, run: Callable[[Prepared], Any] | None = None) -> SuiteOutcome:
    """The suite's flow after planning, as `execute` is one benchmark's: print the plan; then --dry-run: nothing
    more; --submit: the whole suite as one job whose every node runs this same `run suite` command (with --wait,
    the card is due when it has finished); else run every benchmark here (run_suite)."""
    request = plan.request
    if any(e.prepared.synthetic for e in plan.runnable):
        print(BANNER.format(what=f"preset {request.synthetic_preset!r} in {request.synthetic_root}"), flush=True)
    print(render_plan(plan), flush=True)
    if plan.job is not None:
        if request.dry_run:
            print_node_commands(plan.job)
            return SuiteOutcome(plan, None, card_due=False)
        submit_run(plan.job.cluster, plan.job.build, plan.job.wait)
        if not plan.job.wait:  # not --wait: the card comes from a later run (finished trials are skipped)
            print("submitted; when the job has finished, run the same command without --submit for the card")
            return SuiteOutcome(plan, None, card_due=False)
        return SuiteOutcome(plan, None, card_due=True)
    if request.dry_run:
        return SuiteOutcome(plan, None, card_due=False)
    return SuiteOutcome(plan, run_suite(plan, run=run), card_due=True)


def card_benchmarks(plan: SuitePlan, names: list[str]) -> list[str]:
    """The records' benchmark names of the planned benchmarks (e.g. voc-seg-fcn-synthetic), in `names`' order."""
    planned = {e.name: e.prepared.plans for e in plan.runnable if e.prepared.plans}
    return [planned[n][0].benchmark for n in names if n in planned]


def planned_protocols(plan: SuitePlan) -> set[str]:
    """The full protocol hashes of every planned trial: the card shows rows of these protocols only."""
    return {canonical_hash(p.protocol) for e in plan.runnable for p in e.prepared.plans}


def on_builtin_data(plan: SuitePlan) -> bool:
    return any(e.prepared.synthetic for e in plan.runnable)
