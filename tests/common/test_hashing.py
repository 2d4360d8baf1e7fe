"""mocobench.common.hashing and naming."""
from mocobench.common.hashing import canonical_hash, sha256_file
from mocobench.common.naming import safe_name


def test_canonical_hash_ignores_key_order():
    assert canonical_hash({"a": 1, "b": [1, 2]}) == canonical_hash({"b": [1, 2], "a": 1})
    assert canonical_hash({"a": 1}) != canonical_hash({"a": 2})


def test_sha256_file(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_file(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_safe_name():
    assert safe_name("moco v2/ep 3", fallback="x") == "moco-v2-ep-3"
    assert safe_name("output/pretrain/run", fallback="x", replacement="_") == "output_pretrain_run"
    assert safe_name("..//", fallback="init") == "init"
