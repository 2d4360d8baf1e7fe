"""One benchmark, N trials per initialisation, as a library call: `run_benchmark(RunRequest(...))`.

    from mocobench.runner.run import RunRequest, run_benchmark
    result = run_benchmark(RunRequest("voc-det", weights=["output/pretrain/moco_v2_demo", "random"]))
    result.written   # the records written (finished trials write none: they are never re-run)

`python -m mocobench run` (runner/cli.py) only parses its command line into a RunRequest; the suite
(runner/suite.py) and a user's notebook call the same two steps: `prepare` (check the input, resolve the
data, the initialisations and every trial's plan; trains nothing) and `execute` (run the planned trials,
or submit them). Bad input raises RunnerError (a UsageError), which the command line prints as one line.
"""
from __future__ import annotations

import dataclasses
import logging
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mocobench.common.benchmark import Benchmark
from mocobench.common.cluster import Rendezvous, job_port
from mocobench.common.config import split_overrides
from mocobench.data.custom import UserDataset
from mocobench.data.datasets import register_builtin
from mocobench.data.declarations import declare, resolve_dataset
from mocobench.pretrain.checkpoint import latest_checkpoint
from mocobench.runner import RunnerError
from mocobench.runner.benchmarks import resolve_benchmark
from mocobench.runner.parallel import auto_jobs, run_parallel
from mocobench.runner.plan import TrialPlan, data_mode, plan_trial
from mocobench.runner.request import RunRequest
from mocobench.runner.submit import Job, check_not_submitted, submit_run
from mocobench.runner.trial import run_trial
from mocobench.runner.weights import Init, check_supervised_claims, resolve_init

log = logging.getLogger(__name__)

# Trials per initialisation on the built-in data: at least 2, so that the demo tables show a trial std
# next to each mean and a difference between initialisations can be told from noise.
DEMO_TRIALS = 2
BANNER = """
################################################################################################
#  BUILT-IN SYNTHETIC DATA ({what})
#  No real dataset was found under DETECTRON2_DATASETS, so this run fine-tunes a small network (a
#  ResNet-18, or the ViT of the weights) on small synthetic scenes with a short schedule. The numbers
#  test the pipeline end to end and compare initialisations on toy data; they are NOT the paper's
#  benchmark and are recorded under "<benchmark>-synthetic". For the real protocol, set
#  DETECTRON2_DATASETS (docs/benchmarks.md).
################################################################################################"""


@dataclass
class Prepared:
    """A checked, planned run: the resolved request (num_gpus, trials and opts filled in), the benchmark
    actually run (a demo on the built-in data), and every trial's plan."""
    request: RunRequest
    bench: Benchmark
    synthetic: bool
    data: dict[str, Any]
    inits: list[Init]
    plans: list[TrialPlan]
    dataset: UserDataset | None = None
    job: Job | None = None       # --submit: the cluster spec, each node's command, --wait
    unchecked: list[str] = field(default_factory=list)  # --dry-run: what this machine could not check (GPUs, data)

    @property
    def num_devices(self) -> int:
        return (self.request.num_procs or 1) * self.request.num_machines  # one process per device


@dataclass
class RunResult:
    prepared: Prepared
    written: list[Path]
    submitted: bool = False

    @property
    def plans(self) -> list[TrialPlan]:
        return self.prepared.plans


def check_num_procs(num_procs: int | None, *, num_gpus: int) -> int:
    """--num-procs: one process per GPU with GPUs; any count >= 1 on a CPU (default 1)."""
    if num_procs is None:
        return max(num_gpus, 1)
    if num_procs < 1:
        raise RunnerError(f"--num-procs {num_procs}: give 1 or more processes")
    if num_gpus > 0 and num_procs != num_gpus:
        raise RunnerError(f"--num-procs {num_procs} with --num-gpus {num_gpus}: with GPUs a trial runs one process "
                          f"per GPU; drop --num-procs (or use --num-gpus 0 for CPU processes)")
    return num_procs


def prepare(request: RunRequest, *, banner: bool = True, fitting_weights_only: bool = False) -> Prepared:
    """Check the request and plan every trial (configs, scaling rule, record paths); trains nothing.
    Converts (and caches) checkpoints given as --weights, and registers the data sets. The request is
    not changed: the returned Prepared holds a resolved copy. fitting_weights_only (the suite): weights of
    another backbone family than the benchmark's (a ViT for a ResNet benchmark, or the reverse) are skipped."""
    req = dataclasses.replace(request, weights=list(request.weights))
    job = _submission(req)
    if not req.weights:
        raise RunnerError("no --weights given: name at least one initialisation (a pretraining folder, a "
                          "checkpoint, a Detectron2 .pkl, or 'random')")
    req.opts = [text for pair in split_overrides(req.opts or []) for text in pair]  # KEY VALUE ...
    unchecked: list[str] = []  # a dry run plans on a login node or a laptop: no GPU, no data sets needed
    _check_devices(req, job, unchecked)
    _check_init_and_trial_options(req)
    bench, dataset, synthetic = _resolve_benchmark_and_data(req, unchecked)
    if req.trials is None:
        req.trials = DEMO_TRIALS if synthetic else 1
    data = {"synthetic": synthetic, "root": req.synthetic_root, "preset": req.synthetic_preset,
            "user": dataset.to_dict() if dataset else None}
    if synthetic and banner:
        print(BANNER.format(what=f"preset {req.synthetic_preset!r} in {req.synthetic_root}"), flush=True)
    register_builtin(data)
    num_devices = req.num_procs * req.num_machines  # one process per device (a GPU, or a CPU process)
    cache = Path(req.output_dir) / "converted"
    inits = resolve_inits(req, cache, bench.name, banner=banner, fitting_only=fitting_weights_only)
    plans = [plan_trial(bench, init, trial, request=req, synthetic=synthetic, num_devices=num_devices, dataset=dataset)
             for init in inits for trial in range(req.first_trial, req.first_trial + req.trials)]
    return Prepared(req, bench, synthetic, data, inits, plans, dataset, job, unchecked)


def _submission(req: RunRequest) -> Job | None:
    """--submit: the job of the command line, with `req` set to plan on the job's devices (every trial is planned
    here, as a dry run: bad input fails now, not in the queue). Otherwise None, refusing a command that a
    submitted job runs (check_not_submitted)."""
    if not req.submit:
        if req.argv is not None:
            check_not_submitted(req.argv)
        return None
    if req.argv is None:
        raise RunnerError("--submit needs the command line: run it as `python -m mocobench run ... --submit`")
    job = Job.from_argv(req.argv)
    cluster = job.cluster
    req.num_gpus, req.num_machines = cluster.gpus_per_node, cluster.nodes
    log.info(f"--submit: planning the job's trials here ({cluster.nodes} node(s) x {cluster.gpus_per_node} GPU(s)) "
             f"before submitting it")
    return job


def _check_devices(req: RunRequest, job: Job | None, unchecked: list[str]) -> None:
    """Resolve --num-gpus (default: the visible ones) and --num-procs and check them; a dry run may plan for GPUs
    it does not see (noted in `unchecked`)."""
    import torch

    visible = torch.cuda.device_count()
    if req.num_gpus is None:
        req.num_gpus = visible
    if job is None and req.num_gpus > visible:  # a job's GPUs are on its nodes
        if not req.dry_run:
            raise RunnerError(f"--num-gpus {req.num_gpus} but {visible} CUDA devices are visible "
                              f"(use --num-gpus 0 for CPU, or --dry-run to plan for GPUs elsewhere)")
        unchecked.append(f"GPUs (--num-gpus {req.num_gpus}; {visible} visible here)")
    if req.amp and req.num_gpus == 0:
        raise RunnerError("--amp needs CUDA (Detectron2's AMPTrainer); drop --amp on CPU")
    if req.num_gpus == 0 and req.num_machines > 1:
        raise RunnerError("multi-machine runs need GPUs")
    req.num_procs = check_num_procs(req.num_procs, num_gpus=req.num_gpus)


def _check_init_and_trial_options(req: RunRequest) -> None:
    """Options about one initialisation go with one --weights; trial counts and indices are sane."""
    if (req.label or req.kind or req.format != "auto" or req.msra) and len(req.weights) > 1:
        raise RunnerError("--label/--kind/--format/--msra apply to a single --weights; run once per initialisation "
                          "(the supervised baseline among several: --supervised SPEC; MSRA pickles need no --msra)")
    if (req.trials is not None and req.trials < 1) or req.first_trial < 0:
        raise RunnerError("--trials must be >= 1 and --first-trial >= 0")


def _resolve_benchmark_and_data(req: RunRequest,
                                unchecked: list[str]) -> tuple[Benchmark, UserDataset | None, bool]:
    """The benchmark and its data: (benchmark, the user's data set or None, whether on the built-in data). A
    generic benchmark takes the user's data set (checked, and declared, here); a paper benchmark its real data
    sets or the built-in ones (--data), and on the built-in data it may run its demo benchmark."""
    bench = resolve_benchmark(req.benchmark)
    if bench.epochs is not None:  # a generic benchmark: the user's data set, checked (and declared) first
        if not req.dataset:
            raise RunnerError(f"{bench.name} runs on your own data set: give --dataset NAME --train SPEC --test "
                              f"SPEC (SPEC: coco:ANNOTATIONS.json:IMAGE_DIR or voc:VOC_ROOT:SPLIT; --test "
                              f"holdout:0.2 holds the test split out of --train), or "
                              f"--dataset NAME once declared")
        if req.data == "synthetic":
            raise RunnerError(f"{bench.name} runs on --dataset; --data synthetic is for the paper's benchmarks")
        return bench, resolve_dataset(req.dataset, req.train, req.test, req.results), False
    if req.dataset or req.train or req.test or req.epochs is not None:
        raise RunnerError(f"--dataset/--train/--test/--epochs are for the generic benchmarks (det-fpn, det-c4, "
                          f"mask-fpn, mask-c4, kp-fpn); {bench.name} has its own data sets")
    try:
        synthetic = data_mode(bench, req.data)
    except RunnerError as e:
        if not (req.dry_run and req.data == "real"):
            raise
        synthetic = False
        unchecked.append(f"datasets ({str(e).split('; missing:')[0].removeprefix('--data real: ')})")
    demo = resolve_benchmark(req.benchmark, builtin_data=synthetic)
    if demo is not bench:
        bench = demo
        log.info(f"built-in data: {req.benchmark} runs its demo benchmark {bench.name} ({bench.title}); "
                 f"see detection/benchmarks.py DEMO_ALIASES")
    return bench, None, synthetic


def resolve_inits(req: RunRequest, cache: Path, benchmark: str, *, banner: bool = True,
                  fitting_only: bool = False) -> list[Init]:
    """The request's initialisations (--weights, --supervised declared supervised), each classified from a
    declaration or the evidence in its file; at most one supervised baseline (check_supervised_claims)."""
    unknown = [s for s in req.supervised if s not in req.weights]
    if unknown:
        raise RunnerError(f"--supervised {unknown[0]} is not among the --weights (RunRequest.supervised names specs "
                          f"of RunRequest.weights)")
    if req.kind and req.supervised:
        raise RunnerError("--kind with --supervised: --supervised SPEC already declares SPEC supervised; drop --kind")
    inits = [resolve_init(spec, cache_dir=cache, label=req.label, msra=req.msra, fmt=req.format,
                          kind="supervised" if spec in req.supervised else req.kind, vit_heads=req.vit_heads)
             for spec in (available_weights(req.weights) if req.skip_missing else req.weights)]
    if fitting_only:  # the suite: each benchmark takes the weights of its backbone family (fitting_inits)
        inits = fitting_inits(resolve_benchmark(benchmark), inits)
    labels = [i.label for i in inits]
    if len(set(labels)) != len(labels):
        raise RunnerError(f"two initialisations share a label: {labels}; pass them in separate runs with --label")
    check_supervised_claims(inits, benchmark)
    if banner:
        for init in inits:
            log.info(f"initialisation {init.describe()}")
    return inits


def fitting_inits(bench: Benchmark, inits: list[Init]) -> list[Init]:
    """The initialisations a benchmark's backbone can take (the suite: ViT weights go to ViTDet, ResNet weights
    to the ResNet benchmarks, random to both); the others are skipped with one line each."""
    from mocobench.detection import CONFIG_DIR
    from mocobench.detection.config import uses_vit

    vit_bench = uses_vit(CONFIG_DIR / bench.config)
    kept = [i for i in inits if i.kind == "random" or (i.vit is not None) == vit_bench]
    for i in inits:
        if i not in kept:
            log.info(f"{bench.name}: {i.label} skipped ({'a ResNet' if vit_bench else 'a Vision Transformer'}; "
                     f"{bench.name} builds {'a ViT' if vit_bench else 'a ResNet'})")
    if not kept:
        raise RunnerError(f"{bench.name}: none of the weights fits its backbone "
                          f"({'a Vision Transformer' if vit_bench else 'a ResNet'})")
    return kept


def available_weights(specs: list[str]) -> list[str]:
    """--skip-missing: the specs that exist ('random', a file, a folder with a checkpoint), with one warning for
    each one that does not (a baseline not trained yet)."""
    kept = []
    for spec in specs:
        p = Path(spec)
        if spec != "random" and (not p.exists() or (p.is_dir() and latest_checkpoint(p) is None)):
            log.warning(f"\n!!! --weights {spec}: no such file or no checkpoint in it: SKIPPED (baseline not "
                        f"available) !!!\n")
            continue
        kept.append(spec)
    return kept


def execute(prep: Prepared, *, banner: bool = True) -> RunResult:
    """Run a prepared request's trials here (in sequence, or --jobs at once on a CPU), or submit them
    (--submit). A trial with a record is skipped; an interrupted one resumes from its last checkpoint."""
    req, plans = prep.request, prep.plans
    dry_run = req.dry_run or prep.job is not None  # a job's trials are planned here, run on its nodes
    if prep.dataset is not None and not dry_run:
        declare(prep.dataset, req.results)  # every check passed and every trial is planned
    jobs = auto_jobs(req.jobs, synthetic=prep.synthetic, num_gpus=req.num_gpus, trials=len(plans),
                     num_procs=req.num_procs)
    for plan in plans:
        sc = plan.protocol["scaling"]
        if sc["applied"]:
            log.info(f"scaling rule applied ({prep.num_devices} devices < {sc['reference']['gpus']}): "
                     f"{sc['reference']} -> {sc['result']}")
        if dry_run:
            log.info(f"dry run: {plan.benchmark} / {plan.init.label} trial {plan.trial} seed {plan.seed} -> "
                     f"{plan.record_path} (max_iter {plan.cfg.SOLVER.MAX_ITER}, "
                     f"batch {plan.cfg.SOLVER.IMS_PER_BATCH})")
    if req.dry_run and prep.unchecked:
        log.info(f"dry run: planned only; not checked here: {'; '.join(prep.unchecked)}. A real run requires them")
    if dry_run:
        written = []
    elif jobs > 1:
        written = run_parallel(plans, request=req, data=prep.data, jobs=jobs)
    else:
        written = [path for plan in plans if (path := run_trial(plan, request=req, data=prep.data))]
    if prep.job is not None:
        if req.dry_run:  # --submit --dry-run: what each node would run; nothing submitted
            print_node_commands(prep.job)
            return RunResult(prep, [])
        submit_run(prep.job.cluster, prep.job.build, prep.job.wait)
        return RunResult(prep, [], submitted=True)
    if prep.synthetic and banner:
        print(BANNER.format(what="the numbers above come from it"), flush=True)
    log.info(f"{len(written)} record(s) written under {req.results}")
    return RunResult(prep, written)


def print_node_commands(job: Job) -> None:
    cluster, build = job.cluster, job.build
    for node in range(cluster.nodes):
        rendezvous = Rendezvous(node, cluster.nodes, "FIRST_NODE", job_port("JOB_ID"), "JOB_ID")
        print(shlex.join(build(rendezvous)), flush=True)


def run_benchmark(request: RunRequest) -> RunResult:
    """Check, plan and run (or submit) one benchmark's trials: `prepare` then `execute`."""
    return execute(prepare(request))
