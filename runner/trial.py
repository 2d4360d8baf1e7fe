"""One trial: launch Detectron2 training and evaluation (mocobench.detection.engine) for a planned trial,
resume an interrupted one, and write its result record. A trial with a record is never re-run."""
from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

import torch

import mocobench.segmentation  # noqa: F401  (registers the dilated ResNet and FCNHead in this process)
from mocobench.common import provenance
from mocobench.common.atomic import append_line, write_text
from mocobench.common.hashing import canonical_hash
from mocobench.detection.engine import METRICS_FILE, train_and_evaluate
from mocobench.records import SCHEMA_VERSION, Record, result_line, settle_metrics, write_record
from mocobench.runner import RunnerError
from mocobench.runner.plan import TrialPlan
from mocobench.runner.request import RunRequest

log = logging.getLogger(__name__)


def run_in_process(cfg_yaml: str, data: dict, threads: int | None = None, verbose: bool = False) -> None:
    """What every process of a trial runs. Spawned processes import this module to find it, and with it
    both rooms' Detectron2 registrations (our ROI head, the dilated ResNet, FCNHead). threads: torch threads
    of each CPU process of a multi-process trial (None: unchanged). verbose: Detectron2's full log on the
    terminal instead of a progress bar (it is in the trial's log.txt either way)."""
    import torch.distributed as dist

    if threads is not None:
        torch.set_num_threads(threads)
    train_and_evaluate(cfg_yaml, data, verbose=verbose)
    if dist.is_initialized():  # a process of launch: every rank has passed the evaluation's last barrier
        dist.destroy_process_group()


@contextmanager
def cpu_only_children(enabled: bool):
    """While launching CPU processes (--num-gpus 0 --num-procs N): hide CUDA from them. Detectron2's launch
    picks NCCL and one GPU per process whenever CUDA is available in the child; a CPU trial needs gloo,
    which launch picks when no GPU is visible. The parent's own environment is restored afterwards."""
    if not enabled:
        yield
        return
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    try:
        yield
    finally:
        if before is None:
            del os.environ["CUDA_VISIBLE_DEVICES"]
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


@contextmanager
def out_of_memory_hint(plan: TrialPlan, num_devices: int):
    """A CUDA out-of-memory error of a trial (in this process, or in a process of launch, which re-raises it as
    ProcessRaisedException with the child's traceback) ends as one line naming --ims-per-gpu. Small cards run
    out of memory at the protocol's images per GPU (facebookresearch/moco issue 40)."""
    try:
        yield
    except Exception as e:
        text = str(e) if not isinstance(e, torch.OutOfMemoryError) else "torch.OutOfMemoryError"
        if not (isinstance(e, torch.OutOfMemoryError) or "OutOfMemoryError" in text or "CUDA out of memory" in text):
            raise
        batch = plan.cfg.SOLVER.IMS_PER_BATCH
        per = batch // max(num_devices, 1)
        fewer = f"--ims-per-gpu {per // 2}" if per > 1 else "--ims-per-gpu 1 with more GPUs"
        raise RunnerError(f"CUDA out of memory in {plan.benchmark} / {plan.init.label} trial {plan.trial} at {per} "
                          f"image(s) per GPU (IMS_PER_BATCH {batch} over {num_devices} GPU(s)): ask for fewer images "
                          f"per GPU, e.g. {fewer} (the linear scaling rule then divides batch and lr and multiplies "
                          f"the iterations, recorded; docs/benchmarks.md), or use GPUs with more memory") from e


def run_trial(plan: TrialPlan, *, request: RunRequest, data: dict) -> Path | None:
    """Run (or resume) one trial and write its record; None when it was finished already."""
    if plan.record_path.exists():
        log.info(f"{plan.benchmark} / {plan.init.label} trial {plan.trial}: finished already ({plan.record_path}); "
                 f"not re-run. Use --first-trial to add trials.")
        return None
    plan.output_dir.mkdir(parents=True, exist_ok=True)
    resuming = (plan.output_dir / "last_checkpoint").exists()
    how = f"resuming from {(plan.output_dir / 'last_checkpoint').read_text().strip()}" if resuming else "starting"
    log.info(f"{plan.benchmark} / {plan.init.label} trial {plan.trial} (seed {plan.seed}): {how} in {plan.output_dir}")
    cfg_yaml = plan.cfg.dump()
    write_text(plan.output_dir / "config.yaml", cfg_yaml)
    metrics_file = plan.output_dir / METRICS_FILE
    if metrics_file.exists():
        metrics_file.unlink()  # left by an attempt whose record was not written: evaluate again
    req = request
    procs = req.num_procs or max(req.num_gpus, 1)  # per machine
    _run_attempt(plan, req, cfg_yaml, data, procs, resuming)
    if req.machine_rank != 0:
        return None  # the record is written on the first machine
    if not metrics_file.exists():
        raise RunnerError(f"training ended without metrics ({metrics_file}); see {plan.output_dir}/log.txt")
    record = _trial_record(plan, req, cfg_yaml, procs)
    path = write_record(record, req.results)
    if not req.keep_checkpoints:  # the intermediate resume checkpoints; model_final.pth stays
        for ckpt in plan.output_dir.glob("model_[0-9]*.pth"):
            ckpt.unlink()
    log.info(f"wrote {path}: {result_line(record.metrics, record.metric_notes)} "
             f"({record.provenance['wall_time_s']} s)")
    return path


def _run_attempt(plan: TrialPlan, req: RunRequest, cfg_yaml: str, data: dict, procs: int, resuming: bool) -> None:
    """One attempt: `procs` processes per machine through Detectron2's launch, logged to attempts.jsonl (by the
    first machine) as a start line and an end line with its seconds, interrupted or not."""
    from detectron2.engine import launch

    attempts_file = plan.output_dir / "attempts.jsonl"
    started = provenance.now_iso()
    t0 = time.perf_counter()
    ok = False
    cpu_procs = req.num_gpus == 0 and procs > 1  # gloo processes on this CPU, cores / procs threads each
    threads = max(1, torch.get_num_threads() // procs) if cpu_procs else None
    first = req.machine_rank == 0  # the machine that writes the record counts the attempts (once per attempt)
    # a "start" line first: an attempt killed outright (SIGKILL, power loss) still counts as one
    if first:
        append_line(attempts_file, json.dumps({"event": "start", "started": started, "resumed": resuming}))
    try:
        with cpu_only_children(cpu_procs), out_of_memory_hint(plan, procs * req.num_machines):
            launch(run_in_process, procs, num_machines=req.num_machines, machine_rank=req.machine_rank,
                   dist_url=req.dist_url, args=(cfg_yaml, data, threads, req.verbose))
        ok = True
    finally:  # interrupted attempts count too: wall time is the sum over the attempts that ended
        if first:
            append_line(attempts_file, json.dumps({"event": "end", "started": started, "resumed": resuming,
                                                   "seconds": time.perf_counter() - t0, "completed": ok}))


def _trial_record(plan: TrialPlan, req: RunRequest, cfg_yaml: str, procs: int) -> Record:
    """The finished trial's record: its metrics (settled), protocol, config and provenance, with the wall time
    summed over its attempts and the attempts killed outright counted."""
    lines = [json.loads(line) for line in (plan.output_dir / "attempts.jsonl").read_text().splitlines()
             if line.strip()]
    attempts = [a for a in lines if a.get("event") != "start"]  # ended ones (older files: every line)
    started_count = sum(a.get("event") == "start" for a in lines) + sum("event" not in a for a in lines)
    prov = provenance.collect()
    metrics, metric_notes = settle_metrics(json.loads((plan.output_dir / METRICS_FILE).read_text()))
    return Record(
        schema=SCHEMA_VERSION, benchmark=plan.benchmark, task=plan.bench.task, init=plan.init.record_field(),
        protocol=plan.protocol, protocol_hash=canonical_hash(plan.protocol), trial=plan.trial, seed=plan.seed,
        metrics=metrics, config=cfg_yaml, metric_notes=metric_notes,
        provenance={"git_sha": prov["git_sha"], "versions": prov["versions"], "device": prov["device"],
                    "num_gpus": req.num_gpus, "num_procs": procs, "num_machines": req.num_machines,
                    "wall_time_s": round(sum(a["seconds"] for a in attempts), 1),
                    "attempts": started_count, "killed_attempts": started_count - len(attempts),
                    "started": lines[0]["started"],
                    "finished": provenance.now_iso(), "output_dir": str(plan.output_dir)},
    )
