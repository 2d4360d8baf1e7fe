"""`run` as a library call (run_benchmark(RunRequest)) gives the command line's plan; every usage error of
every command, through the one wrapper, is one line and exit status 2; one help page lists every command."""
from __future__ import annotations

import pytest

from mocobench.__main__ import COMMANDS, FORWARDED
from mocobench.__main__ import main as cli
from mocobench.runner.cli import request_from_args
from mocobench.runner.run import RunRequest, prepare, run_benchmark


def _base(layout, tmp_path):
    return dict(data="synthetic", synthetic_root=str(layout.root.parent), synthetic_preset="tiny", num_gpus=0,
                results=str(tmp_path / "results"), output_dir=str(tmp_path / "out"))


def test_library_call_plans_what_the_command_line_plans(synthetic_layout, tmp_path, capsys):
    result = run_benchmark(RunRequest("voc-det", weights=["random"], dry_run=True, **_base(synthetic_layout, tmp_path)))
    assert [(p.benchmark, p.init.label, p.trial, p.seed) for p in result.plans] == [
        ("voc0712-det-c4-synthetic", "random", 0, 1000), ("voc0712-det-c4-synthetic", "random", 1, 1001)]
    assert result.written == [] and not result.submitted
    capsys.readouterr()
    argv = ["run", "voc-det", "--weights", "random", "--dry-run", "--data", "synthetic", "--synthetic-root",
            str(synthetic_layout.root.parent), "--synthetic-preset", "tiny", "--num-gpus", "0", "--results",
            str(tmp_path / "results"), "--output-dir", str(tmp_path / "out")]
    assert cli(argv) == 0
    dry = [line for line in capsys.readouterr().out.splitlines() if "dry run:" in line]
    assert [str(p.record_path) in line for p, line in zip(result.plans, dry)] == [True, True]


def test_request_from_the_parsed_command_line_keeps_every_option():
    import argparse

    from mocobench.runner.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["coco-mask", "--weights", "a.pkl", "--weights", "random", "--trials", "3", "--seed",
                              "7", "--ims-per-gpu", "8", "--opts", "SOLVER.MAX_ITER", "5"])
    req = request_from_args(args)
    assert (req.benchmark, req.weights, req.trials, req.seed, req.ims_per_gpu, req.opts) == \
        ("coco-mask", ["a.pkl", "random"], 3, 7, 8, ["SOLVER.MAX_ITER", "5"])
    assert req.results == "results" and req.data == "auto" and req.num_gpus is None  # the CLI's defaults


def test_prepare_does_not_change_the_request(synthetic_layout, tmp_path):
    req = RunRequest("voc-seg", weights=["random"], opts=["SOLVER.MAX_ITER=3"], **_base(synthetic_layout, tmp_path))
    prep = prepare(req)
    assert req.trials is None and req.opts == ["SOLVER.MAX_ITER=3"]
    assert prep.request.trials == 2 and prep.request.opts == ["SOLVER.MAX_ITER", "3"]
    assert prep.plans[0].cfg.SOLVER.MAX_ITER == 3


@pytest.mark.parametrize("argv,expected", [
    (["run", "voc-det", "--weights", "random", "--label", "../../etc"], "cannot be used as a folder name"),
    (["run", "no-such", "--weights", "random", "--data", "synthetic"], "unknown benchmark"),
    (["run", "suite", "--only", "nope", "--weights", "random"], "not a benchmark of the suite"),
    (["run", "suite", "--skip", "voc-det", "--only", "voc-det", "--weights", "random"], "leave no benchmark"),
    (["convert", "missing.pth", "out.pkl"], "no such file"),
])
def test_usage_errors_are_one_line_and_status_2(argv, expected, synthetic_layout, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    extra = ["--data", "synthetic", "--synthetic-root", str(synthetic_layout.root.parent), "--synthetic-preset",
             "tiny", "--dry-run"] if argv[0] == "run" and "--data" not in argv else []
    assert cli(argv + extra) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and expected in err, err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1


def test_one_help_page_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        cli(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in [*COMMANDS, *FORWARDED]:
        assert f"    {name}" in out, name
    with pytest.raises(SystemExit) as e:  # a forwarded command answers with its own help page
        cli(["convert", "--help"])
    assert e.value.code == 0 and "usage: python -m mocobench.detection.convert" in capsys.readouterr().out


def test_every_run_option_is_a_request_field_with_its_default():
    """One option, declared once: each `run` option (but the cluster's) is a RunRequest field, and the command
    line's defaults are RunRequest's."""
    import argparse
    import dataclasses

    from mocobench.common.cluster import add_cluster_arguments
    from mocobench.runner.cli import add_arguments
    from mocobench.runner.request import RunRequest, request_defaults

    parser, cluster = argparse.ArgumentParser(), argparse.ArgumentParser()
    add_arguments(parser)
    add_cluster_arguments(cluster)
    cluster_dests = {a.dest for a in cluster._actions} | {"wait", "help"}
    dests = {a.dest for a in parser._actions} - cluster_dests
    fields = {f.name for f in dataclasses.fields(RunRequest)}
    assert dests <= fields, dests - fields
    assert fields - dests == {"argv"}  # set by `python -m mocobench` (the command line after `run`)
    ns = parser.parse_args(["voc-det", "--weights", "random"])
    assert {k: v for k, v in vars(ns).items() if k in fields and k not in ("benchmark", "weights")} == \
        {k: v for k, v in request_defaults().items() if k != "weights"}
    assert RunRequest.from_namespace(ns) == RunRequest("voc-det", weights=["random"])
