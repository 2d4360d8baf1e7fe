"""Result records -> paper-style tables: one row per initialisation, mean +- sample std over trials.

A row averages trials of one initialisation under one protocol (same protocol_hash): trials whose
protocols differ in anything are never averaged together. A table holds the rows of one benchmark
whose protocols agree in everything but the per-initialisation fields (INIT_FIELDS: the weights'
hash, and the config hash, which carries the init's own config delta such as BGR input for MSRA
weights); rows whose config hashes differ get a note saying so. Protocols that differ in anything else
(schedule, batch, lr, scaling rule, AMP, datasets, synthetic flag) go into separate tables, each with a
note naming what differs. Every row gets its delta against the supervised row of the same table (several
supervised rows: the one declared supervised, choose_baseline; none or several declared: BaselineConflict; both in
reporting/baseline.py and re-exported here), and
the paper's reported numbers (benchmarks/reference.yaml) come as separate, labelled rows, never on
synthetic tables.

Statistics: mean and *sample* standard deviation (ddof=1) over the trials that have the metric; with
one trial there is no std. Delta = mean(row) - mean(supervised row); |delta| >= 0.5 is marked.
"""
from __future__ import annotations

import json
import math
import numbers
from typing import Any, Iterable

import pandas as pd

from mocobench.common.benchmark import Benchmark
from mocobench.records import NO_PREDICTIONS, SYNTHETIC_SUFFIX
from mocobench.reporting import deviations
from mocobench.reporting.baseline import (
    INIT_FIELDS,
    BaselineConflict,
    apply_deltas,
    check_baselines,
    choose_baseline,
    claim_fields,
    no_baseline_note,
    row_key,
    shared_hash,
)
from mocobench.reporting.inputs import (
    BENCHMARKS,
    REFERENCE_FILE,
    TableError,
    load_layout,
    load_reference,
    metric_level,
    metric_source,
)
from mocobench.reporting.model import KIND_ORDER, OURS, PAPER_SOURCE, Cell, Column, Row, Table

# The model and the inputs are reachable from here too (aggregate.Cell, aggregate.load_reference, ...).
__all__ = ["BENCHMARKS", "INIT_FIELDS", "BaselineConflict", "check_baselines", "choose_baseline", "KIND_ORDER", "OURS",
           "PAPER_SOURCE", "REFERENCE_FILE", "Cell", "Column", "Row", "Table", "TableError", "base_benchmark",
           "build_tables", "flatten_metrics", "is_synthetic", "load_layout", "load_reference", "records_frame"]


def base_benchmark(name: str) -> str:
    return name[: -len(SYNTHETIC_SUFFIX)] if name.endswith(SYNTHETIC_SUFFIX) else name


def is_synthetic(benchmark: str, protocol: dict[str, Any]) -> bool:
    return bool(protocol.get("builtin_synthetic")) or benchmark.endswith(SYNTHETIC_SUFFIX)


def _columns_for(benchmark: str, task: str, present: list[str], layout: dict[str, Any]) -> list[Column]:
    spec = layout["benchmarks"].get(base_benchmark(benchmark))
    if spec is not None:
        return [Column(k, str(h)) for k, h in spec["columns"].items()]
    # Unknown benchmark: the task's usual columns that the records have, then any other metric.
    task_cols = (layout.get("task_columns") or {}).get(task) or {}
    cols = [Column(k, str(h)) for k, h in task_cols.items() if k in present]
    return cols + [Column(k, k) for k in present if k not in task_cols]


def _unshown_metrics_notes(extra: list[str]) -> list[str]:
    """Metrics of the records that the table has no column for, summarised: Detectron2's per-category
    "AP-<class>" entries as a count, any others by name."""
    per_category = [k for k in extra if "/AP-" in k]
    others = [k for k in extra if k not in per_category]
    notes = []
    if per_category:
        classes = {k.split("/AP-", 1)[1] for k in per_category}
        tasks = sorted({k.split("/", 1)[0] for k in per_category})
        notes.append(f"per-category AP of {len(classes)} categories ({', '.join(tasks)}) is in the result "
                     f"records, not in this table")
    if others:
        notes.append(f"metrics not shown in this table: {', '.join(others)}")
    return notes


def flatten_metrics(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """{"bbox": {"AP": 1}} -> {"bbox/AP": 1}."""
    return {f"{task}/{name}": value for task, values in metrics.items() for name, value in values.items()}


def records_frame(records: Iterable[dict[str, Any]]):
    """One row per trial: identity columns, protocol fields (prefixed "protocol."), flattened metrics."""
    rows = []
    for r in records:
        row = {"benchmark": r["benchmark"], "task": r["task"], "init": r["init"]["label"],
               "init_kind": r["init"]["kind"], "pretrain_epoch": (r["init"].get("pretrain") or {}).get("epoch"),
               "init_format": r["init"].get("format"),
               "protocol_hash": r["protocol_hash"], "trial": r["trial"], "seed": r["seed"],
               "path": r.get("_path")}
        row.update({f"protocol.{k}": json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
                    for k, v in r["protocol"].items()})
        row.update(flatten_metrics(r["metrics"]))
        rows.append(row)
    return pd.DataFrame(rows)


def _stats(values: list[float]) -> Cell:
    # pandas would do this too; written out so the definition (ddof=1) is visible.
    n = len(values)
    if n == 0:
        return Cell()
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n >= 2 else None
    return Cell(mean=mean, std=std, n=n)


def _finite(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _order(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (KIND_ORDER.get(r.kind, 9), r.pretrain_epoch if r.pretrain_epoch is not None
                                       else -1, r.label))


def _fmt_value(v: Any) -> str:
    return "<absent>" if v is _ABSENT else str(v)


_ABSENT = object()


def _protocol_differences(protocols: dict[str, dict[str, Any]]) -> list[str]:
    keys = sorted({k for p in protocols.values() for k in p})
    return [k for k in keys if len({repr(p.get(k, _ABSENT)) for p in protocols.values()}) > 1]


def _our_rows(frame, records: list[dict[str, Any]], columns: list[Column], label_format: bool = False
              ) -> tuple[list[Row], list[str]]:
    notes: list[str] = []
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault(row_key(r), []).append(i)
    labels = [k[0] for k in groups]
    rows = []
    for key, idx in groups.items():
        label, kind, run, epoch, sha, phash = key
        shown = label
        same = [k for k in groups if k[0] == label]
        if len(same) > 1:  # one label, several checkpoints or protocols: never averaged together
            parts = [text for pos, text in ((3, f"@ep{epoch}"), (4, f"weights {(sha or 'none')[:8]}"),
                                            (5, f"protocol {phash[:8]}"), (1, kind))
                     if len({k[pos] for k in same}) > 1]
            shown = f"{label} {parts[0]}" if len(parts) == 1 and parts[0].startswith("@") else \
                f"{label} [{', '.join(parts)}]"
        sub = frame.iloc[idx]
        formats = sorted({str(records[i]["init"].get("format")) for i in idx if records[i]["init"].get("format")})
        if label_format and formats:  # the checkpoint layout the converter detected, e.g. "swav_800ep (swav)"
            shown = f"{shown} ({', '.join(formats)})"
        row = Row(label=shown, kind=kind, trials=sorted(int(t) for t in sub["trial"]), pretrain_run=run,
                  pretrain_epoch=None if epoch is None else int(epoch), protocol_hash=phash,
                  **claim_fields([records[i] for i in idx]))
        for col in columns:
            values = [float(v) for v in sub[col.key] if _finite(v)] if col.key in sub else []
            row.cells[col.id] = _stats(values)
            if 0 < len(values) < row.n:
                notes.append(f"{shown}: {col.header} is missing or not finite in {row.n - len(values)} "
                             f"of {row.n} trials; its mean uses the other {len(values)}")
        notes += no_prediction_notes(shown, [records[i] for i in idx])
        rows.append(row)
    if len(set(labels)) < len(labels):
        dup = sorted({lab for lab in labels if labels.count(lab) > 1})
        notes.append(f"label(s) {dup} name several checkpoints or protocols; they are separate rows, never "
                     f"averaged together")
    all_trials = sorted({t for r in rows for t in r.trials})
    for row in rows:
        row.missing_trials = [t for t in all_trials if t not in row.trials]
        if row.missing_trials:
            notes.append(f"{row.label}: trial(s) {row.missing_trials} missing ({row.n} of {len(all_trials)})")
    return rows, notes


def _recipe_matches(entry: dict[str, Any], devs: dict[str, Any] | None) -> bool:
    """Whether a reference row's recipe is the one the table's records ran. A row without `config` is the
    benchmark's own recipe: it goes with tables that deviate in nothing (devs == {}). A row with `config` (the
    keys in which the paper's recipe for that row differs from the benchmark's config, e.g. ViTDet's Table 4
    ablations without relative positions) goes only with tables whose deviations are exactly those keys and
    values. A row whose recipe the paper does not fully give (`config_unknown`) goes with no table."""
    if devs is None or entry.get("config_unknown"):
        return False
    return devs == dict(entry.get("config") or {})


def _reference_rows(spec: dict[str, Any], columns: list[Column], norm: str | None,
                    devs: dict[str, Any] | None) -> tuple[list[Row], list[str]]:
    """The paper's rows for a table of records run with `norm` and deviating from the benchmark's config in
    `devs` ({key: value}; see _recipe_matches): a row that names a norm (reference.yaml `norm`, e.g. LVIS's
    supervised baseline fine-tuned with frozen BN) goes with tables of that norm only, and a table of such a
    norm shows only those rows (the paper's other rows tuned BN)."""
    rows = []
    entries = spec.get("rows") or []
    frozen_variant = norm in deviations.PAPER_NORM_VARIANTS
    kept = [e for e in entries if (e.get("norm") == norm if frozen_variant else e.get("norm") is None)]
    notes = ([f"the paper's rows run with another norm than this table's {norm} are not shown"]
             if len(kept) < len(entries) and frozen_variant else [])
    other_recipe = [e["label"] for e in kept if e.get("config") is not None and not _recipe_matches(e, devs)]
    kept = [e for e in kept if _recipe_matches(e, devs)]
    if other_recipe:
        notes.append(f"the paper's rows run with another recipe than this table's are not shown: "
                     f"{'; '.join(other_recipe)} (reference.yaml `config`)")
    for entry in kept:
        row = Row(label=entry["label"], kind=entry["kind"], source=PAPER_SOURCE)
        for col in columns:
            v = entry["metrics"].get(col.key)
            row.cells[col.id] = Cell(mean=float(v), n=1, level=metric_level(entry, col.key),
                                      source=metric_source(entry, col.key)) if v is not None else Cell()
        row.unverified = any(c.unverified for c in row.cells.values())
        rows.append(row)
    rows.sort(key=lambda r: KIND_ORDER[r.kind])  # stable: the paper's order within a kind
    base = next((r for r in rows if r.kind == "supervised"), None)  # the paper's own: one per table and norm
    apply_deltas(rows, base)
    notes += [] if base is not None else [no_baseline_note("the reported rows")]
    if any(r.unverified for r in rows):
        notes.append("† reported number not verified against the paper: not confirmed by two independent "
                     "sources (evidence level B or U in reference.yaml; the paper's own text could not be checked)")
    missing = [c.header for c in columns if all(r.cells[c.id].mean is None for r in rows)]
    if missing:
        notes.append(f"the paper's {', '.join(missing)} are not in reference.yaml: shown as missing")
    return rows, notes


def _table_deviations(recs: list[dict[str, Any]], bench: Benchmark | None
                      ) -> tuple[list[deviations.Deviation], int]:
    """The union of the records' deviations from the paper's config, and how many records have unknown ones."""
    if bench is None:
        return [], 0
    found: dict[tuple[str, str], deviations.Deviation] = {}
    unknown = 0
    for r in recs:
        devs = deviations.deviations(r, bench)
        if devs is None:
            unknown += 1
            continue
        for d in devs:
            found.setdefault((d.key, repr(d.ours)), d)
    return sorted(found.values(), key=lambda d: d.key), unknown


def _user_title(title: str, protocol: dict[str, Any]) -> str:
    ds = protocol["dataset"]
    sched = f"{protocol['epochs']:g} epochs = " if protocol.get("epochs") else ""
    return (f"{title.replace('Your data set', str(ds.get('name')))} ({ds.get('format')}, "
            f"{len(ds.get('classes') or [])} classes, {ds.get('train_images')} train / {ds.get('test_images')} test "
            f"images, annotations {str(ds.get('annotations_sha256'))[:8]}; {sched}{protocol.get('max_iter')} "
            f"iterations of {protocol.get('ims_per_batch')} images)"
            + (f" [ran R{depth}]" if (depth := protocol.get("depth")) not in (None, 50) else ""))


def no_prediction_notes(shown: str, recs: list[dict[str, Any]]) -> list[str]:
    """Trials whose model predicted nothing (records' metric_notes, mocobench/records.py): their AP is 0."""
    by_task: dict[str, list[int]] = {}
    for r in recs:
        for task, why in (r.get("metric_notes") or {}).items():
            if why == NO_PREDICTIONS:
                by_task.setdefault(task, []).append(int(r["trial"]))
    return [f"{shown}: {task}: no predictions in trial(s) {sorted(trials)} ({len(trials)} of {len(recs)}); "
            f"its AP is recorded as 0 (COCO AP with ground truth and no detection)"
            for task, trials in sorted(by_task.items())]


# ----------------------------------------------------------------------------------------------- build_tables
def _group_by_protocol(records: list[dict[str, Any]], layout: dict[str, Any]
                       ) -> list[tuple[str, dict[str, dict[str, Any]], dict[str, list[int]]]]:
    """[(benchmark, {protocol hash: shared protocol}, {protocol hash: record indices})] in the layout's
    benchmark order, real data first. The shared protocol: the records' protocol without INIT_FIELDS."""
    shared = [{k: v for k, v in r["protocol"].items() if k not in INIT_FIELDS} for r in records]
    by_bench: dict[str, dict[str, list[int]]] = {}
    for i, r in enumerate(records):
        by_bench.setdefault(r["benchmark"], {}).setdefault(shared_hash(r), []).append(i)
    order = list(layout["benchmarks"])
    benches = sorted(by_bench, key=lambda b: (is_synthetic(b, {}), order.index(base_benchmark(b))
                                              if base_benchmark(b) in order else len(order), b))
    return [(b, {h: shared[idx[0]] for h, idx in by_bench[b].items()}, by_bench[b]) for b in benches]


def _table_layout(bench: str, protocol: dict[str, Any], task: str, present: list[str], layout: dict[str, Any]
                  ) -> tuple[list[Column], dict[str, Any], str]:
    """The table's columns, its layout entry and its title (a user's data set: named with its version)."""
    generic = protocol.get("generic_benchmark")  # a user's data set: its generic benchmark's layout
    columns = _columns_for(generic if generic in layout["benchmarks"] else bench, task, present, layout)
    spec = layout["benchmarks"].get(base_benchmark(bench)) or layout["benchmarks"].get(generic) or {}
    title = str(spec.get("title") or bench)
    if isinstance(protocol.get("dataset"), dict):
        title = _user_title(title, protocol)
    return columns, spec, title


def _protocol_split(bench: str, h: str, protocols: dict[str, dict[str, Any]]) -> tuple[str, str, list[str]]:
    """(table id, title suffix, notes) of one protocol's table when the benchmark's trials ran under several."""
    if len(protocols) == 1:
        return bench, "", []
    protocol, differing = protocols[h], _protocol_differences(protocols)
    mine = ", ".join(f"{k}={_fmt_value(protocol.get(k, _ABSENT))}" for k in differing)
    short = ", ".join(f"{k}={_fmt_value(protocol.get(k, _ABSENT))[:40]}" for k in differing)
    return (f"{bench}-{h[:8]}", f" [protocol {h[:8]}: {short}]",
            [f"{bench} has trials under {len(protocols)} different protocols; they are not averaged together. "
             f"This table: {mine}. Differing fields: {', '.join(differing)}"])


def _synthetic_suffix(protocol: dict[str, Any]) -> str:
    # the demo shrinks the protocol (backbone, schedule): say what actually ran
    ran = ", ".join(f"{k} {protocol[k]}" for k in ("depth", "max_iter") if k in protocol)
    return f" - synthetic built-in data{f' ({ran})' if ran else ''}, not comparable to the paper"


def _config_hash_notes(recs: list[dict[str, Any]]) -> list[str]:
    config_hashes: dict[str, set[str]] = {}
    for r in recs:
        config_hashes.setdefault(str(r["protocol"].get("config_hash"))[:12], set()).add(r["init"]["label"])
    if len(config_hashes) < 2:
        return []
    return ["the rows' resolved configs differ (config_hash " + "; ".join(
        f"{ch}: {', '.join(sorted(labels))}" for ch, labels in sorted(config_hashes.items()))
        + "), as the init's own config delta does (MSRA BGR input, random-init norm); every other "
          "protocol field is the same"]


def _deviation_notes(recs: list[dict[str, Any]], bench: str, synthetic: bool
                     ) -> tuple[list[str], str, dict[str, Any] | None]:
    """(notes, title suffix, the records' deviations {key: value} from the paper's config, None when unknown
    or when records disagree on a key's value) from the records' resolved configs."""
    devs, unknown = _table_deviations(recs, BENCHMARKS.get(base_benchmark(bench)))
    notes, suffix = [], ""
    if devs:
        notes.append(f"differs from the paper's config in {len(devs)} key(s): {deviations.summary(devs)}")
        ran = deviations.what_ran(devs)
        if ran and not synthetic:
            suffix = f" [{ran}]"
    if unknown:
        notes.append(f"{unknown} record(s) hold no readable resolved config: their deviations from the "
                     f"paper's config are unknown")
    by_key: dict[str, list[Any]] = {}
    for d in devs:
        by_key.setdefault(d.key, []).append(d.ours)
    agreed = None if unknown or any(len(v) > 1 for v in by_key.values()) else {k: v[0] for k, v in by_key.items()}
    return notes, suffix, agreed


def _paper_block(ref_spec: dict[str, Any] | None, columns: list[Column], protocol: dict[str, Any], synthetic: bool,
                 devs: dict[str, Any] | None) -> tuple[list[Row], list[str]]:
    """The paper's reported rows, only where comparable: never on the built-in data, never where the config
    differs from the paper's beyond the fewer-GPU scaling rule, except for a row whose recorded recipe
    (reference.yaml `config`) is exactly the table's deviations."""
    if not ref_spec:
        return [], []
    if synthetic:
        return [], ["synthetic built-in data: the paper's reported numbers are not shown, they are not comparable"]
    rows, notes = _reference_rows(ref_spec, columns, protocol.get("norm"), devs)
    if devs != {} and not rows:
        return [], ["the paper's reported numbers are not shown: this protocol differs from the paper's in more "
                    "than the documented fewer-GPU scaling, so they are not comparable"]
    scaling = protocol.get("scaling")
    if isinstance(scaling, dict) and scaling.get("applied"):
        notes.append(f"fewer-GPU scaling rule applied (the only difference from the paper's config): "
                     f"{scaling.get('reference')} -> {scaling.get('result')}; BN batches differ, "
                     f"compare with the reported rows accordingly")
    return rows, notes


def _build_table(bench: str, h: str, protocols: dict[str, dict[str, Any]], recs: list[dict[str, Any]], sub,
                 layout: dict[str, Any], reference: dict[str, Any], label_format: bool) -> Table:
    """One table: the records of one benchmark under one shared protocol."""
    protocol = protocols[h]
    synthetic = is_synthetic(bench, protocol)
    present = sorted(c for c in sub.columns if "/" in c and sub[c].notna().any())
    columns, spec, title = _table_layout(bench, protocol, recs[0]["task"], present, layout)
    table_id, split_title, notes = _protocol_split(bench, h, protocols)
    title += split_title + (_synthetic_suffix(protocol) if synthetic else "")
    notes += _config_hash_notes(recs)
    rows, row_notes = _our_rows(sub, recs, columns, label_format)
    base, delta_notes = choose_baseline(rows, table_id)
    apply_deltas(rows, base)
    rows = _order(rows)  # after the choice: a supervised row that is not the baseline is ordered as `other`
    notes += row_notes + (delta_notes if base is not None else [no_baseline_note("these records")])
    notes += _unshown_metrics_notes([k for k in present if k not in {c.key for c in columns}])
    dev_notes, dev_title, devs = _deviation_notes(recs, bench, synthetic)
    notes += dev_notes
    title += dev_title
    ref_spec = reference["benchmarks"].get(spec.get("reference") or base_benchmark(bench))
    ref_rows, ref_notes = _paper_block(ref_spec, columns, protocol, synthetic, devs)
    return Table(table_id=table_id, benchmark=bench, title=title, protocol_hash=h, protocol=protocol,
                 synthetic=synthetic, columns=columns, rows=rows, reference=ref_rows,
                 baseline=base.label if base is not None else None,
                 notes=notes + ref_notes)


def build_tables(records: Iterable[dict[str, Any]], layout: dict[str, Any] | None = None,
                 reference: dict[str, Any] | None = None, label_format: bool = False) -> list[Table]:
    """All tables for these records (as from records.load_records), in the layout's benchmark order.
    label_format: each of our rows' label carries its checkpoint layout, e.g. "swav_800ep (swav)"."""
    records = list(records)
    if not records:
        return []
    layout = load_layout() if layout is None else layout
    reference = {"benchmarks": {}} if reference is None else reference
    frame = records_frame(records)
    tables = []
    for bench, protocols, groups in _group_by_protocol(records, layout):
        for h, idx in sorted(groups.items()):
            sub = frame.iloc[idx].reset_index(drop=True)
            tables.append(_build_table(bench, h, protocols, [records[i] for i in idx], sub, layout, reference,
                                       label_format))
    return tables
