"""The config dialect: strict typed merges through fvcore's CfgNode, _BASE_ files, override habits."""
import pytest

from mocobench.common.config import ConfigError, load_yaml, merge, overrides_delta, overrides_to_delta, split_overrides

BASE = {"optim": {"lr": 0.03, "epochs": 200, "steps": [120, 160]}, "data": {"path": None, "aug": "v2"}}


def test_merge_is_strict_and_typed():
    out = merge(BASE, {"optim": {"lr": 1, "steps": [1, 2, 3]}, "data": {"path": "/x"}})
    assert out["optim"] == {"lr": 1.0, "epochs": 200, "steps": [1, 2, 3]} and isinstance(out["optim"]["lr"], float)
    assert out["data"]["path"] == "/x" and BASE["data"]["path"] is None  # base untouched
    with pytest.raises(ConfigError, match="unknown key 'optim.lr_typo'"):
        merge(BASE, {"optim": {"lr_typo": 1}})
    with pytest.raises(ConfigError, match="unknown synthetic parameter 'dta'"):
        merge(BASE, {"dta": {}}, what="synthetic parameter")
    with pytest.raises(ConfigError, match="Type mismatch"):
        merge(BASE, {"optim": {"epochs": "ten"}})
    out["optim"]["steps"].append(4)
    assert BASE["optim"]["steps"] == [120, 160]  # nothing shared


def test_override_habits_key_value_and_pairs():
    assert split_overrides(["optim.lr=0.1", "SOLVER.STEPS", "(2, 3)", "a.b=c=d"]) == [
        ("optim.lr", "0.1"), ("SOLVER.STEPS", "(2, 3)"), ("a.b", "c=d")]
    with pytest.raises(ConfigError, match="has no value"):
        split_overrides(["optim.lr"])
    assert overrides_to_delta("data.path", "null") == {"data": {"path": None}}
    assert overrides_to_delta("optim.steps", "[1, 2]") == {"optim": {"steps": [1, 2]}}
    assert overrides_delta(["counts.coco.train=2", "counts.coco.val", "3"]) == \
        {"counts": {"coco": {"train": 2, "val": 3}}}


def test_base_chain(tmp_path):
    (tmp_path / "a.yaml").write_text("optim: {lr: 0.1}\n")
    (tmp_path / "b.yaml").write_text("_BASE_: a.yaml\noptim: {epochs: 3}\n")
    assert load_yaml(tmp_path / "b.yaml") == {"optim": {"lr": 0.1, "epochs": 3}}
    (tmp_path / "c.yaml").write_text("_BASE_: c.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_yaml(tmp_path / "c.yaml")


def test_a_key_and_value_quoted_as_one_word_is_named():
    """'INPUT.MIN_SIZE_TRAIN (320,)' as one word used to shift every later pair ("override '2' has no value")."""
    with pytest.raises(ConfigError, match=r"'INPUT.MIN_SIZE_TRAIN \(320,\)' holds a space"):
        split_overrides(["INPUT.MIN_SIZE_TRAIN (320,)", "SOLVER.MAX_ITER", "2"])
    # a value with spaces in the value's place is fine
    assert split_overrides(["SOLVER.STEPS", "(2, 3)"]) == [("SOLVER.STEPS", "(2, 3)")]


def test_one_flatten_for_configs_and_records():
    from mocobench.common.config import flatten

    assert flatten({"a": {"b": 1, "c": {"d": (1, 2)}}, "e": [3]}) == {"a.b": 1, "a.c.d": [1, 2], "e": [3]}
