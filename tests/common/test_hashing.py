"""mocobench.common.hashing and naming (and the two small atomic helpers the held-out split uses)."""
import pytest

from mocobench.common.atomic import link_dir, write_text
from mocobench.common.hashing import canonical_hash, sha256_file, sha256_text
from mocobench.common.naming import safe_name


def test_canonical_hash_ignores_key_order():
    assert canonical_hash({"a": 1, "b": [1, 2]}) == canonical_hash({"b": [1, 2], "a": 1})
    assert canonical_hash({"a": 1}) != canonical_hash({"a": 2})


def test_sha256_file(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_file(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_sha256_text_is_the_hash_of_the_written_file(tmp_path):
    text = "étoile,\nheart\n"  # non-ASCII: hashed as the UTF-8 bytes write_text stores
    assert sha256_text(text) == sha256_file(write_text(tmp_path / "t.json", text)) != sha256_text(text[:-1])


def test_link_dir_never_replaces(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert link_dir(tmp_path / "l", tmp_path / "a") and (tmp_path / "l").resolve() == tmp_path / "a"
    assert link_dir(tmp_path / "l", tmp_path / "a") is False  # that link already
    with pytest.raises(FileExistsError):  # a link to another folder never replaces it
        link_dir(tmp_path / "l", tmp_path / "b")
    assert (tmp_path / "l").resolve() == tmp_path / "a" and not list(tmp_path.glob(".tmp-*"))


def test_safe_name():
    assert safe_name("moco v2/ep 3", fallback="x") == "moco-v2-ep-3"
    assert safe_name("output/pretrain/run", fallback="x", replacement="_") == "output_pretrain_run"
    assert safe_name("..//", fallback="init") == "init"
