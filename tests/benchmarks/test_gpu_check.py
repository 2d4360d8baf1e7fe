"""The GPU check on a CPU (tiny shapes): one table, one JSON report, every check's status honest, a non-zero exit
on any failure; it runs from a source tree without any install; the wheel carrier's pieces."""
from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import torch

from mocobench.benchmarks.perf.gpu_check import __main__ as gpu_check
from mocobench.benchmarks.perf.gpu_check import wheelhouse
from mocobench.benchmarks.perf.gpu_check.harness import KNOWN_DEFECTS, STATUSES, failed, run_checks

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow  # trains Detectron2's three model families for 2 iterations each, among the rest
def test_the_whole_check_on_cpu_reports_each_check_honestly(tmp_path, capsys, restore_threads):
    out = tmp_path / "report.json"
    rc = gpu_check.main(["--device", "cpu", "--threads", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    checks = {c["name"]: c for c in report["checks"]}
    # structure: every check once, in order, with a status, a summary and its time; one table printed
    assert report["schema"] == "mocobench.gpu_check/1" and report["settings"]["size"] == "tiny"
    assert [c["name"] for c in report["checks"]] == gpu_check.NAMES
    for c in report["checks"]:
        assert c["status"] in STATUSES and c["summary"] and c["seconds"] >= 0, c
        assert f"\n{c['name']} " in printed  # a row of the table
    failures = [n for n, c in checks.items() if c["status"] == "fail"]
    assert report["failed"] == failures and report["ok"] == (not failures)
    assert rc == (1 if failures else 0)
    # the versions it ran with are the ones imported here
    env = checks["environment"]["details"]
    assert env["torch"] == torch.__version__ and env["python"] == sys.version.split()[0]
    assert env["detectron2"] and env["fvcore"] and env["cuda_available"] == torch.cuda.is_available()
    # the one honest skip on a CPU: the sync debug mode is CUDA-only (the step itself still ran)
    assert checks["sync_step"]["status"] == "skip" and "CUDA-only" in checks["sync_step"]["summary"]
    assert checks["sync_step"]["details"]["loss"] > 0
    # what each passing check proved, from its details
    aug = checks["augmentation"]["details"]
    assert aug["same_seed_equal"] and aug["other_seed_differs"] and aug["output_shape"][1] == 2
    resume = checks["resume_knn_lincls"]["details"]
    assert resume["differing"] == [] and resume["queue_equal"] and resume["steps"] == 2 * resume["resumed_at_step"]
    assert 0 <= resume["knn_top1"] <= 100 and resume["lincls_backbone_unchanged"]
    ddp = checks["ddp_gloo"]["details"]
    assert ddp["backend"] == "gloo" and ddp["max_loss_diff"] < 1e-3 and ddp["ranks_identical"]
    speed = checks["pretrain_speed"]["details"]
    assert [s["stage"] for s in speed["stages"]] == ["fp32, CPU aug", "+ bf16, channels_last", "+ GPU aug",
                                                    "+ compile"]
    assert all(s["pairs_per_s"] > 0 for s in speed["stages"][:3]) and "skipped" in speed["stages"][3]
    assert speed["goal_pairs_per_s"] == 3000 and "3000" in checks["pretrain_speed"]["summary"]
    decode = checks["gpu_decode"]["details"]  # data.decode=gpu next to CPU decoding, the same files
    assert [r["decode"] for r in decode["stages"]] == ["torchvision", "gpu"]
    assert all(r["pairs_per_s"] > 0 for r in decode["stages"])
    assert decode["nvjpeg_vs_cpu_pixels"]["max_abs_diff"] == 0  # on a CPU both are libjpeg-turbo
    rows = checks["detectron2_speed"]["details"]["rows"]
    assert [(r["model"], r["amp"]) for r in rows] == [(m, a) for m, _ in
                                                      gpu_check.detectron2_speed.MODELS for a in (False, True)]
    assert all(r["s_per_iter"] > 0 for r in rows if not r["amp"])
    assert all("CUDA" in r["skipped"] for r in rows if r["amp"])  # AMPTrainer needs CUDA: said, not hidden
    for name in set(checks) - {"sync_step", "logits_dtype"}:
        assert checks[name]["status"] == "pass", checks[name]
    logits = checks["logits_dtype"]
    if logits["status"] == "fail":
        # allowed for one reason only: issue 22 item 4 (bf16 logits under autocast), fixed on another branch
        assert logits["details"]["autocast_logits_dtype"] == {"bfloat16": "bfloat16"}
        assert report["known_defects"] == {"logits_dtype": KNOWN_DEFECTS["logits_dtype"]}
        assert "known defect" in printed
        pytest.xfail("logits_dtype fails until issue 22 item 4 (fp32 InfoNCE logits under autocast) is merged")
    assert logits["details"]["autocast_logits_dtype"] == {"bfloat16": "float32"}


def test_a_failed_check_gives_a_nonzero_exit_and_the_report_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "report.json"
    assert gpu_check.main(["--device", "cpu", "--only", "environment", "--out", str(out)]) == 0
    again = gpu_check.main(["--device", "cpu", "--only", "environment", "--out", str(out)])
    assert again == 2 and "not overwriting" in capsys.readouterr().err
    out.unlink()
    rc = gpu_check.main(["--device", "cpu", "--only", "environment,augmentation", "--inject-failure", "augmentation",
                         "--out", str(out)])
    report = json.loads(out.read_text())
    assert rc == 1 and not report["ok"] and report["failed"] == ["augmentation"]
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses == {"environment": "pass", "augmentation": "fail"}
    assert "injected" in report["checks"][1]["summary"]
    assert gpu_check.main(["--device", "cpu", "--only", "nope"]) == 2


def test_a_check_that_raises_is_a_failure_with_its_traceback_and_leaves_no_torch_setting_behind():
    def broken(ctx):
        torch.use_deterministic_algorithms(True)  # as the trainer's deterministic mode does, process-wide
        raise ValueError("boom")

    class Ctx:
        pass

    results = run_checks([("broken", broken), ("fine", lambda ctx: failed("said so"))], Ctx(), echo=lambda _: None)
    assert [r.status for r in results] == ["fail", "fail"]
    assert "ValueError: boom" in results[0].summary and "boom" in results[0].details["traceback"]
    assert not torch.are_deterministic_algorithms_enabled()


def test_runs_from_the_source_tree_without_an_install(tmp_path):
    """python -S: no site-packages processing, so no editable install; torch & co. appended after the standard
    library, as a node's own packages; the repository root on PYTHONPATH; run from another folder."""
    site_packages = sysconfig.get_paths()["purelib"]
    out = tmp_path / "env.json"
    code = ("import sys, runpy; sys.path.append(sys.argv[1]); sys.argv = ['gpu_check'] + sys.argv[2:]; "
            "runpy.run_module('mocobench.benchmarks.perf.gpu_check', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-S", "-c", code, site_packages, "--device", "cpu", "--only", "environment",
                           "--out", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    env = json.loads(out.read_text())["checks"][0]["details"]
    # the package and its rooms come from this tree: through mocobench/'s links to the rooms, or (where a copy
    # of the tree lost its links) through the bootstrap in mocobench/__init__.py that adds the root
    assert env["mocobench_from"] == str(ROOT / "mocobench")
    assert any(p in (str(ROOT), str(ROOT / "mocobench")) for p in env["mocobench_path"]), env["mocobench_path"]
    assert "torch" in proc.stdout and env["torch"] == torch.__version__


def test_the_carried_requirements_leave_out_the_nodes_own_packages():
    reqs = wheelhouse.requirements()
    names = {wheelhouse.canonical(r.split("=")[0].split(">")[0]) for r in reqs}
    assert {"fvcore", "iopath", "pycocotools", "yacs", "omegaconf", "setuptools"} <= names
    assert not names & {"torch", "torchvision", "numpy", "pillow"}
    tags = wheelhouse.platforms("manylinux_2_28_x86_64")
    assert tags[0] == "manylinux_2_28_x86_64" and "manylinux2014_x86_64" in tags and "manylinux_2_17_x86_64" in tags
    assert "manylinux_2_29_x86_64" not in tags
    assert wheelhouse.platforms("macosx_11_0_arm64") == ["macosx_11_0_arm64"]


def test_unpack_lays_wheels_out_as_a_target_install(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "demo-1.0-py3-none-any.whl", "w") as z:
        z.writestr("demo/__init__.py", "VALUE = 1\n")
        z.writestr("demo-1.0.dist-info/METADATA", "Name: demo\n")
        z.writestr("demo-1.0.data/purelib/demo_extra.py", "X = 2\n")
        z.writestr("demo-1.0.data/scripts/demo-cli", "#!python\n")
        z.writestr("tools/train_net.py", "")  # as detectron2's wheel: a top-level `tools` that would shadow others
    site = tmp_path / "site"
    summary = wheelhouse.unpack(tmp_path, site)
    assert summary["wheels"] == 1
    assert sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()) == [
        "demo-1.0.dist-info/METADATA", "demo/__init__.py", "demo_extra.py"]
    proc = subprocess.run([sys.executable, "-c", "import demo, demo_extra; print(demo.VALUE + demo_extra.X)"],
                          env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert proc.stdout.strip() == "3", proc.stderr
    with pytest.raises(SystemExit, match="not empty"):
        wheelhouse.unpack(tmp_path, site)
