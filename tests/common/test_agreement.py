"""Decisions all ranks take together, in 2 gloo processes (Detectron2's launch, CPU): a non-finite loss on one
rank stops both ranks at the same iteration (trials: detection/finite_loss.py; pretraining: pretrain/hooks.py),
and ranks that do not share the output folder refuse, every one of them (common/shared_folder.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from detectron2.engine import launch
from detectron2.utils import comm

NAN_RANK, NAN_ITER = 1, 2


class _TinyModel(torch.nn.Module):
    """A loss dict as a Detectron2 model returns one; rank NAN_RANK's loss is NaN from iteration NAN_ITER on."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))
        self.calls = 0

    def forward(self, batch):
        loss = (self.w * batch).sum() ** 2 / 100
        if comm.get_rank() == NAN_RANK and self.calls >= NAN_ITER:
            loss = loss * float("nan")
        self.calls += 1
        return {"loss_a": loss, "loss_b": loss.detach() * 0 + 1}


def _outcome(fn) -> dict:
    try:
        fn()
        return {"raised": None}
    except Exception as e:  # recorded, not raised: launch would stop at the first rank that raises
        return {"raised": type(e).__name__, "message": str(e)}


def _trainer(out: str) -> dict:
    from torch.nn.parallel import DistributedDataParallel

    from mocobench.detection.finite_loss import AgreedSimpleTrainer

    torch.manual_seed(0)
    model = _TinyModel()
    ddp = DistributedDataParallel(model, device_ids=None, broadcast_buffers=False)
    loader = iter(lambda: torch.randn(3), None)  # endless
    trainer = AgreedSimpleTrainer(ddp, loader, torch.optim.SGD(ddp.parameters(), lr=0.01))
    result = _outcome(lambda: trainer.train(0, 6))
    result["iter"], result["weights"] = trainer.iter, model.w.detach().tolist()
    return result


def _pretrain_finite() -> dict:
    from mocobench.pretrain.hooks import finite
    from mocobench.pretrain.metrics import Reading

    seen = []

    def steps():
        for step in (10, 20, 30):
            value = float("nan") if (comm.get_rank() == NAN_RANK and step == 20) else 1.5
            seen.append(finite(Reading(torch.tensor(value), first=step - 9, step=step, lr=0.03)))

    return _outcome(steps) | {"seen": seen}


def _folder(out: str, same: bool) -> dict:
    from mocobench.common.shared_folder import check_shared_folder

    rank = comm.get_rank()
    folder = Path(out, "shared" if same else f"node{rank}")
    if rank:
        folder.mkdir(parents=True, exist_ok=True)  # the other node's runner made its own (local) folder
    return _outcome(lambda: check_shared_folder(folder, wait_s=0.2))


def _worker(out: str) -> None:
    """One launch of 2 gloo processes for every check (each launch costs seconds of imports)."""
    result = {"trainer": _trainer(out), "pretrain": _pretrain_finite(), "apart": _folder(out, False),
              "shared": _folder(out, True)}
    Path(out, f"rank{comm.get_rank()}.json").write_text(json.dumps(result))


@pytest.mark.slow
def test_two_ranks_stop_together(tmp_path):
    """Rank 1 alone sees a NaN loss / does not see rank 0's folder: both ranks stop, at the same point, with the
    same one-line reason; with one folder the check passes and leaves nothing behind."""
    from mocobench.common.shared_folder import TOKEN_PREFIX

    launch(_worker, 2, dist_url="auto", args=(str(tmp_path),))
    res = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for r in res:
        t = r["trainer"]  # detection: Detectron2's check would raise on rank 0 alone, rank 1 would go on
        assert t["raised"] == "FloatingPointError", t
        assert f"iteration {NAN_ITER} on rank(s) [{NAN_RANK}]" in t["message"] and "every rank stops" in t["message"]
        assert t["iter"] == NAN_ITER
        p = r["pretrain"]  # pretraining: rank 0's own loss is finite, it stops at the same reading
        assert p["raised"] == "FloatingPointError" and "steps 11..20 on rank(s) [1]" in p["message"], p
        assert p["seen"] == [1.5]
        a = r["apart"]
        assert a["raised"] == "SharedFolderError", a
        assert "rank 1 on" in a["message"] and "shared by every node" in a["message"] and "\n" not in a["message"]
        assert r["shared"] == {"raised": None}
    # stopped before the optimizer's step: both ranks hold the same, finite weights
    w = res[0]["trainer"]["weights"]
    assert w == res[1]["trainer"]["weights"] and all(v == v for v in w)
    assert not [p for p in tmp_path.rglob(TOKEN_PREFIX + "*")]  # the tokens are removed
