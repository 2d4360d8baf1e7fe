"""DDP with 2 ranks on one device over gloo (two processes sharing GPU 0: NCCL refuses two ranks on one GPU)
against one process on the same global batches: the ranks' mean loss, the weights and the queue after the
steps must agree up to float rounding (TF32 off on both sides). The one process emulates Shuffle BN with BN
over 2 sub-batches; the ranks use DistributedExchange and per-rank BN, as a multi-GPU run does."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import torch

from mocobench.benchmarks.perf.gpu_check.context import small_overrides, write_imagefolder
from mocobench.benchmarks.perf.gpu_check.harness import Outcome, failed, passed
from mocobench.benchmarks.perf.gpu_check.shapes import SHAPES

STEPS = 2
WORLD = 2
RTOL, ATOL = 1e-3, 1e-4


def global_batches(shapes, steps: int = STEPS) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The same pairs for every process (rank r takes the r-th slice), from a fixed CPU generator."""
    g = torch.Generator().manual_seed(0)
    n, size = shapes.small_batch, shapes.small_size
    return [(torch.randn(n, 2, 3, size, size, generator=g), torch.zeros(n, dtype=torch.long)) for _ in range(steps)]


def no_tf32() -> None:
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def train_steps(trainer, batches, rank: int = 0, world: int = 1) -> list[float]:
    trainer.model.train()
    losses = []
    for images, targets in batches:
        b = images.shape[0] // world
        losses.append(float(trainer.run_step((images[rank * b:(rank + 1) * b], targets[rank * b:(rank + 1) * b]))))
    return losses


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parent_pythonpath() -> str:
    """PYTHONPATH for the worker processes: this process's whole sys.path, so that they import the same copies
    however it was started (an install, a source tree without one, a node's torch plus carried wheels)."""
    return os.pathsep.join(p or os.getcwd() for p in sys.path)


def worst_excess(state: dict, reference: dict) -> tuple[float, str | None]:
    """The largest |state - reference| beyond RTOL x |reference| over the weights, and its tensor's name."""
    worst, worst_key = 0.0, None
    for k, v in reference.items():
        if "running_" in k or "num_batches" in k:
            continue  # BN statistics: rank 0 keeps its own half's, the one process the mean of both halves
        err = float(((state[k].float() - v.float()).abs() - RTOL * v.float().abs()).max()) if v.numel() else 0.0
        if err > worst:
            worst, worst_key = err, k
    return worst, worst_key


def check(ctx) -> Outcome:
    from mocobench.pretrain.config import load_config
    from mocobench.pretrain.trainer import Trainer

    s = ctx.shapes
    data = write_imagefolder(ctx.folder("ddp_data"), per_class=s.small_batch, size=s.small_size + 8)
    work = ctx.folder("ddp_work")
    overrides = small_overrides(ctx, data, work / "single")
    no_tf32()
    single = Trainer(load_config("demo", overrides))
    single_losses = train_steps(single, global_batches(s))
    single_state = {k: v.detach().cpu() for k, v in single.model.state_dict().items()}
    port = free_port()
    procs = []
    for rank in range(WORLD):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(WORLD), "LOCAL_RANK": "0",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "PYTHONPATH": parent_pythonpath(),
               "OMP_NUM_THREADS": "1"}
        # one output folder for both ranks, as a real job has (the trainer checks that every rank sees it)
        args = json.dumps({"overrides": small_overrides(ctx, data, work / "ddp", "train.threads=1"),
                           "shapes": next(k for k, v in SHAPES.items() if v == s),
                           "result": str(work / f"rank{rank}.pt")})
        procs.append(subprocess.Popen([sys.executable, "-m", "mocobench.benchmarks.perf.gpu_check.ddp_worker", args],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    for p in procs:
        try:
            outputs.append(p.communicate(timeout=300)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            return failed("the 2 DDP ranks did not finish in 300 s (a collective hangs?)")
    if any(p.returncode for p in procs):
        rc = [p.returncode for p in procs]
        return failed(f"DDP ranks exited {rc}: {outputs[0].strip().splitlines()[-1:] if outputs[0] else ''}",
                      output=[o[-3000:] for o in outputs])
    ranks = [torch.load(work / f"rank{r}.pt", map_location="cpu", weights_only=True) for r in range(WORLD)]
    ddp_losses = [sum(r["losses"][i] for r in ranks) / WORLD for i in range(STEPS)]
    state = ranks[0]["state"]
    worst, worst_key = worst_excess(state, single_state)
    loss_diff = max(abs(a - b) for a, b in zip(single_losses, ddp_losses))
    ranks_agree = all(torch.equal(ranks[0]["state"][k], ranks[1]["state"][k]) for k in state
                      if "running_" not in k and "num_batches" not in k)
    details = {"steps": STEPS, "single_losses": single_losses, "ddp_mean_losses": ddp_losses,
               "max_loss_diff": loss_diff, "max_weight_excess": worst, "worst_tensor": worst_key,
               "ranks_identical": ranks_agree, "rtol": RTOL, "atol": ATOL, "backend": ranks[0]["backend"],
               "device": ranks[0]["device"]}
    line = (f"2 gloo ranks on {ranks[0]['device']} vs 1 process, {STEPS} steps: max |loss diff| {loss_diff:.2g}, "
            f"weights within rtol {RTOL} + {worst:.2g}")
    problems = []
    if loss_diff > 1e-3:
        problems.append("losses differ")
    if worst > ATOL:
        problems.append(f"weights differ ({worst_key})")
    if not ranks_agree:
        problems.append("the two ranks' weights differ")
    return failed(f"{line}; " + "; ".join(problems), **details) if problems else passed(line, **details)
