"""What defines a transfer benchmark: one `Benchmark` per benchmark, kept in the registry of its task
family (mocobench.detection.benchmarks, mocobench.segmentation.benchmarks), read by the runner (configs,
datasets) and by the reporting (titles, columns, the paper's numbers)."""
from __future__ import annotations

from dataclasses import dataclass, field

from mocobench.common.errors import UsageError

# Columns of a task's tables (flattened metric key -> header), in the paper's order.
TASK_COLUMNS: dict[str, dict[str, str]] = {
    "detection": {"bbox/AP50": "AP50", "bbox/AP": "AP", "bbox/AP75": "AP75"},
    "instance_seg": {"bbox/AP": "APbb", "bbox/AP50": "AP50bb", "bbox/AP75": "AP75bb", "segm/AP": "APmk",
                     "segm/AP50": "AP50mk", "segm/AP75": "AP75mk"},
    "sem_seg": {"sem_seg/mIoU": "mIoU"},
    "keypoints": {"keypoints/AP": "APkp", "keypoints/AP50": "AP50kp", "keypoints/AP75": "AP75kp"},
}


class BenchmarkError(UsageError):
    """An unknown benchmark name."""


@dataclass(frozen=True, kw_only=True)
class Benchmark:
    name: str
    task: str                      # detection | instance_seg | sem_seg | keypoints (records' "task")
    title: str                     # the table's title
    config: str | None = None      # config file of the protocol, relative to detection/configs or absolute
    demo_delta: str | None = None  # config delta used on the built-in synthetic data (same rule)
    reference_gpus: int = 8        # the protocol's GPU count (its batch is for that many)
    columns: dict[str, str] = field(default_factory=dict)  # metric key -> header; default: TASK_COLUMNS[task]
    reference: str | None = None   # key of the paper's numbers in reporting/reference.yaml; default: name
    epochs: float | None = None    # generic benchmark for a user's data set (--dataset): default schedule in
                                   # epochs, converted to iterations from its size; None: the config's iterations

    @property
    def table_columns(self) -> dict[str, str]:
        return dict(self.columns or TASK_COLUMNS[self.task])

    @property
    def reference_key(self) -> str:
        return self.reference or self.name


def lookup(registry: dict[str, Benchmark], aliases: dict[str, str], name: str) -> Benchmark:
    name = aliases.get(name, name)
    if name not in registry:
        raise BenchmarkError(f"unknown benchmark {name!r}; choose one of {sorted(registry)} "
                             f"(aliases: {', '.join(f'{a} = {b}' for a, b in aliases.items())})")
    return registry[name]
