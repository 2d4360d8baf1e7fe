"""Runs the checks, each isolated: one check's exception is its failure, never the end of the run.

A check is a function (ctx) -> Outcome. Its status is one of
    pass  what it proves held;
    fail  it did not (or the check raised);
    skip  it cannot run here (a CPU, a missing library, the time budget): the reason is printed.
Figures without a pass/fail criterion (speeds) are "pass" when they were measured and are reported
next to their goals, never judged against them.
"""
from __future__ import annotations

import json
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

STATUSES = ("pass", "fail", "skip")
# a check that is known to fail on this branch, with why: reported as a failure (the exit status stays
# non-zero) and named in the report's "known_defects", so a reader tells it from a new regression
KNOWN_DEFECTS = {
    "logits_dtype": "issue 22 item 4: under autocast the InfoNCE einsums run as bf16/fp16 bmm; the fix to "
                    "pretrain/moco.py is made on another branch",
}


class InjectedFailure(RuntimeError):
    """Raised in place of a check named by --inject-failure (the test hook that proves the exit status)."""


@dataclass
class Outcome:
    status: str
    summary: str                      # one line for the table
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")


def passed(summary: str, **details: Any) -> Outcome:
    return Outcome("pass", summary, details)


def failed(summary: str, **details: Any) -> Outcome:
    return Outcome("fail", summary, details)


def skipped(summary: str, **details: Any) -> Outcome:
    return Outcome("skip", summary, details)


@dataclass
class Result:
    name: str
    status: str
    summary: str
    seconds: float
    details: dict[str, Any]


@contextmanager
def torch_state():
    """Process-wide torch settings a check may change (the trainer's deterministic mode, the DDP check's TF32
    switches, a check's threads), put back afterwards, so that no check runs under another's settings."""
    import torch

    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
             torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_tf32, torch.get_num_threads())
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32,
         torch.backends.cuda.matmul.allow_tf32) = saved[1:5]
        torch.set_num_threads(saved[5])
        if torch.cuda.is_available():
            torch.cuda.set_sync_debug_mode(0)
            torch.cuda.empty_cache()


def run_checks(checks: list[tuple[str, Callable[[Any], Outcome]]], ctx: Any, *, inject: set[str] = frozenset(),
               budget_s: float | None = None, echo: Callable[[str], None] = print) -> list[Result]:
    start = time.perf_counter()
    results: list[Result] = []
    for name, fn in checks:
        t0 = time.perf_counter()
        ctx.remaining_s = None if budget_s is None else budget_s - (t0 - start)
        echo(f"[gpu_check] {name} ...")
        try:
            if name in inject:
                raise InjectedFailure(f"--inject-failure {name}: failure injected in place of the check")
            with torch_state():
                outcome = fn(ctx)
        except Exception as e:  # noqa: BLE001 - a check's error is its failure, reported with its traceback
            outcome = failed(f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}",
                             traceback=traceback.format_exc(limit=8)[-4000:])
        results.append(Result(name, outcome.status, outcome.summary, round(time.perf_counter() - t0, 2),
                              outcome.details))
        echo(f"[gpu_check] {name}: {outcome.status} ({results[-1].seconds:.1f} s) {outcome.summary}")
    return results


def table(results: list[Result]) -> str:
    """The one table: check, status, seconds, summary."""
    width = max(len(r.name) for r in results)
    lines = [f"{'check':{width}s}  status  seconds  summary", f"{'-' * width}  ------  -------  -------"]
    for r in results:
        note = f"  [known defect: {KNOWN_DEFECTS[r.name]}]" if r.status == "fail" and r.name in KNOWN_DEFECTS else ""
        lines.append(f"{r.name:{width}s}  {r.status:6s}  {r.seconds:7.1f}  {r.summary}{note}")
    fails = [r.name for r in results if r.status == "fail"]
    count = {s: sum(r.status == s for r in results) for s in STATUSES}
    lines.append(f"{len(results)} checks: {count['pass']} pass, {count['fail']} fail, {count['skip']} skip"
                 + (f" (failed: {', '.join(fails)})" if fails else ""))
    return "\n".join(lines)


def report(results: list[Result], *, settings: dict[str, Any], environment: dict[str, Any],
           wall_s: float) -> dict[str, Any]:
    fails = [r.name for r in results if r.status == "fail"]
    return {"schema": "mocobench.gpu_check/1", "ok": not fails, "failed": fails,
            "known_defects": {n: KNOWN_DEFECTS[n] for n in fails if n in KNOWN_DEFECTS},
            "wall_s": round(wall_s, 1), "settings": settings, "environment": environment,
            "checks": [asdict(r) for r in results]}


def write_report(path: Path, data: dict[str, Any], *, overwrite: bool) -> None:
    """One JSON file; an existing one is kept unless --overwrite (nothing written silently over)."""
    from mocobench.common.atomic import write_text

    try:
        write_text(path, json.dumps(data, indent=2, default=str) + "\n", overwrite=overwrite)
    except FileExistsError:
        raise FileExistsError(f"{path} exists; not overwriting it (pass --overwrite, or another --out)") from None
