"""The supervised baseline of a table, and the deltas against it.

Every row of a table gets its delta (and Welch's test) against the supervised row of the same table: one
benchmark, one protocol up to the per-initialisation fields (INIT_FIELDS). Several supervised rows: the one
declared supervised in its run is the baseline (choose_baseline); none or several declared is a
BaselineConflict. check_baselines applies the same rule to records before a table is built (the suite checks its
planned trials with it before anything trains). reporting/aggregate.py builds the tables and re-exports these.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from mocobench.common.errors import UsageError
from mocobench.common.hashing import canonical_hash
from mocobench.reporting.model import Row
from mocobench.reporting.significance import welch

# Protocol fields that differ between initialisations by nature; rows differing only here share a table.
INIT_FIELDS = ("weights_sha256", "config_hash")


class BaselineConflict(UsageError):
    """Two or more rows of one table are supervised and the records do not say which is the baseline."""


def _record_folder(row: Row) -> str:
    return f"its records in {row.records_dir}" if row.records_dir else "records without a path"


def _claims(rows: list[Row], folders: bool = True) -> str:
    return ", ".join(f"{r.label!r} ({r.kind_reason or 'no kind_reason recorded'}"
                     f"{f'; {_record_folder(r)}' if folders else ''})" for r in rows)


def choose_baseline(rows: list[Row], where: str) -> tuple[Row | None, list[str]]:
    """The supervised row the deltas of one table (one benchmark, one protocol) are taken against.

    One supervised row: it. Several: the one whose records were declared supervised (init.kind_declared; records
    written before that key are undeclared); the others stay in the table as ordinary rows (kind `other`, as the
    runner records an undeclared claim beside a declared one) with Δ against it, and a note names both. None or
    more than one declared: BaselineConflict naming every claim, with its kind reason and records' folder."""
    supervised = [r for r in rows if r.kind == "supervised"]
    if len(supervised) < 2:
        return (supervised[0] if supervised else None), []
    declared = [r for r in supervised if r.declared]
    if len(declared) == 1:
        base = declared[0]
        others = [r for r in supervised if r is not base]
        for r in others:
            r.kind = "other"
        return base, [f"{len(supervised)} rows' records say supervised: the baseline is {base.label!r}, declared "
                      f"supervised in its run; not the baseline, shown as other rows with Δ against it as the runner "
                      f"records an undeclared claim beside a declared one: {_claims(others, folders=False)}"]
    why = "none was declared" if not declared else f"{len(declared)} were declared"
    raise BaselineConflict(
        f"{where}: {len(supervised)} rows claim to be the supervised baseline and {why}: {_claims(supervised)}. "
        f"Keep one baseline per benchmark and protocol: move the other's records out of the results folder (rerun "
        f"it with --kind other to keep it as an ordinary row), or move the baseline's records aside and rerun it "
        f"declared (--supervised SPEC, or --weights SPEC --kind supervised); then run the command again")


def apply_deltas(rows: list[Row], base: Row | None) -> None:
    """Δ and Welch's test of every row's cells against the baseline row's."""
    if base is None:
        return
    for row in rows:
        if row is base:
            continue
        for key, cell in row.cells.items():
            ref = base.cells.get(key)
            if cell.mean is not None and ref is not None and ref.mean is not None:
                cell.delta = cell.mean - ref.mean
                cell.test = welch(cell.mean, cell.std, cell.n, ref.mean, ref.std, ref.n)  # None: n < 2 a side


def no_baseline_note(what: str) -> str:
    return (f"no supervised row among {what}: no deltas shown (fine-tune a supervised initialisation under the same "
            f"protocol to get them)")


def row_key(record: dict[str, Any]) -> tuple:
    """What makes one row of a table: label, kind, pretraining run and epoch, weights, full protocol."""
    init = record["init"]
    pre = init.get("pretrain") or {}
    return (init["label"], init["kind"], pre.get("run"), pre.get("epoch"), init.get("weights_sha256"),
            record["protocol_hash"])


def claim_fields(recs: list[dict[str, Any]]) -> dict[str, Any]:
    """A row's declared / kind_reason / records_dir from its records (declared: any record says kind_declared)."""
    inits = [r["init"] for r in recs]
    reasons = list(dict.fromkeys(str(i["kind_reason"]) for i in inits if i.get("kind_reason")))
    paths = sorted({str(Path(r["_path"]).parent) for r in recs if r.get("_path")})
    return {"declared": any(i.get("kind_declared") is True for i in inits), "kind_reason": "; ".join(reasons) or None,
            "records_dir": ", ".join(paths) or None}


def shared_hash(record: dict[str, Any]) -> str:
    """The hash of a record's protocol without INIT_FIELDS: records with the same one share a table."""
    return canonical_hash({k: v for k, v in record["protocol"].items() if k not in INIT_FIELDS})


def check_baselines(records: Iterable[dict[str, Any]]) -> None:
    """BaselineConflict where a table of these records would hold several supervised rows without exactly one
    declared (choose_baseline). Reads only benchmark, protocol, protocol_hash, init and _path, so the suite
    checks its planned trials together with the results folder's records before anything trains."""
    tables: dict[tuple[str, str], dict[tuple, list[dict[str, Any]]]] = {}
    for r in records:
        if r["init"]["kind"] == "supervised":
            tables.setdefault((r["benchmark"], shared_hash(r)), {}).setdefault(row_key(r), []).append(r)
    for (bench, shared), rows in sorted(tables.items()):
        if len(rows) > 1:
            choose_baseline([Row(label=key[0], kind=key[1], **claim_fields(recs)) for key, recs in rows.items()],
                            f"{bench} (protocol {shared[:8]})")
