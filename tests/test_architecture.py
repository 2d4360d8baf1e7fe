"""Dependencies point along the data flow: built-in data -> pretrain -> convert/fine-tune -> run trials ->
records -> tables. Every import of every module (top-level or inside a function) is read with `ast`
and must name a room of the same or an earlier stage; sibling rooms of one stage do not import each other."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# room (folder at the repository root, installed as mocobench.<room>) -> stage
STAGES = {
    "common": 0,        # atomic writes, hashing, provenance, config dialect, logging: imports nothing of ours
    "data": 1,          # built-in synthetic data, Detectron2 dataset registration
    "pretrain": 2,      # MoCo / supervised pretraining; owns log.jsonl and checkpoints
    "detection": 3,     # converter + proof, configs, heads, benchmark registry, Detectron2 train/eval entry
    "segmentation": 3,  # sibling of detection
    "records": 4,       # the record schema: the boundary between runs and reporting
    "runner": 5,        # planning, scaling rule, weights, trial loop, CLI
    "reporting": 6,     # aggregation, rendering, plots, CLI
    "benchmarks": 7,    # speed and quality scripts (tools)
    "__main__": 8,      # `python -m mocobench`: the dispatcher over the CLIs
}


def _room_of_file(path: Path) -> str:
    rel = path.relative_to(ROOT)
    if rel.parts[0] == "mocobench":
        return {"records.py": "records", "__main__.py": "__main__"}.get(rel.name, "mocobench")
    return rel.parts[0]


def _room_of_module(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "mocobench":
        return None
    if len(parts) == 1:
        return "mocobench"
    return parts[1]


def _sources() -> list[Path]:
    files = [p for room in STAGES for p in (ROOT / room).rglob("*.py") if (ROOT / room).is_dir()]
    return sorted(files + list((ROOT / "mocobench").glob("*.py")))


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names
                                                   if node.module == "mocobench"]
    return out


def test_the_rooms_exist_and_old_top_level_names_are_gone():
    assert {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").is_file()} >= \
        {r for r in STAGES if r not in ("records", "__main__")} | {"mocobench"}
    for path in _sources():
        for _, name in _imports(path):
            top = name.split(".")[0]
            assert top not in STAGES or top == "__main__", f"{path}: imports {name}; use mocobench.{name}"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_a_later_stage(path):
    room = _room_of_file(path)
    if room == "mocobench":  # the namespace's __init__: imports nothing
        assert not [n for _, n in _imports(path) if n.startswith("mocobench")]
        return
    bad = []
    for line, name in _imports(path):
        target = _room_of_module(name)
        if target is None or target == room or name == "mocobench":
            continue
        if target not in STAGES:
            bad.append(f"line {line}: {name} (not a room)")
        elif STAGES[target] > STAGES[room] or (STAGES[target] == STAGES[room] and target != room):
            bad.append(f"line {line}: {name} ({target}, stage {STAGES[target]}) from {room} (stage {STAGES[room]})")
    assert not bad, f"{path.relative_to(ROOT)} imports later stages: {bad}"
