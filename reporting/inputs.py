"""What the tables read besides the records: the layout (titles and columns of each benchmark: the registry's, or
a YAML file) and the paper's reported numbers (reference.yaml, each with its evidence level and source)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mocobench.common.benchmark import TASK_COLUMNS, Benchmark
from mocobench.common.errors import UsageError
from mocobench.detection.benchmarks import BENCHMARKS as DETECTION
from mocobench.reporting.model import KIND_ORDER
from mocobench.segmentation.benchmarks import BENCHMARKS as SEGMENTATION

REFERENCE_FILE = Path(__file__).resolve().parent / "reference.yaml"
BENCHMARKS: dict[str, Benchmark] = {**DETECTION, **SEGMENTATION}  # in the tables' order


class TableError(UsageError):
    """The layout or reference data file is malformed."""


def _load_yaml(path: str | Path, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise TableError(f"cannot read the {what} file {path}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), dict):
        raise TableError(f"{path}: the {what} file needs a top-level 'benchmarks:' mapping")
    return data


def default_layout() -> dict[str, Any]:
    """Titles, columns and reference keys of every registered benchmark, in the tables' order."""
    return {"task_columns": TASK_COLUMNS,
            "benchmarks": {b.name: {"title": b.title, "columns": b.table_columns, "reference": b.reference_key}
                           for b in BENCHMARKS.values()}}


def load_layout(path: str | Path | None = None) -> dict[str, Any]:
    """The registry's layout (default), or one from a YAML file of the same shape (titles and columns)."""
    if path is None:
        return default_layout()
    data = _load_yaml(path, "table layout")
    for name, spec in data["benchmarks"].items():
        if not isinstance(spec, dict) or not isinstance(spec.get("columns"), dict) or not spec["columns"]:
            raise TableError(f"{path}: benchmark {name!r} needs a non-empty 'columns:' mapping")
    return data


LEVELS = ("A", "B", "U")  # evidence of a reported number (reference.yaml): A confirmed, B one source, U none


def metric_level(entry: dict[str, Any], key: str) -> str:
    """A reported number's evidence level: its own (`levels`), else its row's (`level`), else from the older
    row flag `unverified` (B when set, A when not)."""
    return (entry.get("levels") or {}).get(key) or entry.get("level") or ("B" if entry.get("unverified") else "A")


def metric_source(entry: dict[str, Any], key: str) -> str | None:
    return (entry.get("sources") or {}).get(key) or entry.get("source")


def load_reference(path: str | Path = REFERENCE_FILE) -> dict[str, Any]:
    """The paper's reported numbers, checked: every row has a label, a known kind, numeric metrics and
    known evidence levels."""
    data = _load_yaml(path, "reference")
    for name, spec in data["benchmarks"].items():
        for i, row in enumerate((spec or {}).get("rows") or []):
            where = f"{path}: {name} row {i}"
            if not isinstance(row, dict) or not row.get("label"):
                raise TableError(f"{where}: needs a 'label'")
            if row.get("kind") not in KIND_ORDER:
                raise TableError(f"{where}: kind must be one of {list(KIND_ORDER)}, got {row.get('kind')!r}")
            metrics = row.get("metrics")
            if not isinstance(metrics, dict) or not all(isinstance(v, (int, float)) for v in metrics.values()):
                raise TableError(f"{where}: 'metrics' must map metric keys (e.g. bbox/AP) to numbers")
            recipe, unknown = row.get("config"), row.get("config_unknown")
            if recipe is not None and not (isinstance(recipe, dict) and recipe
                                           and all(isinstance(k, str) and "." in k for k in recipe)):
                raise TableError(f"{where}: 'config' must map dotted config keys (e.g. MODEL.VIT.USE_REL_POS) to "
                                 f"the values of the paper's recipe for this row")
            if unknown is not None and not (isinstance(unknown, list) and all(isinstance(k, str) for k in unknown)):
                raise TableError(f"{where}: 'config_unknown' must list the config keys the paper does not give")
            levels = [row.get("level")] + list((row.get("levels") or {}).values())
            if any(lv is not None and lv not in LEVELS for lv in levels):
                raise TableError(f"{where}: evidence levels must be one of {LEVELS}, got {levels}")
    return data
