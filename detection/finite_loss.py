"""A non-finite loss stops every rank of a trial at the same iteration.

Detectron2's SimpleTrainer checks the loss in `write_metrics` on the main process only, after gathering the
ranks' losses: rank 0 raises FloatingPointError and leaves, and the other ranks go on into the next
iteration's gradient all-reduce, where they wait for it (until the backend's timeout, or an error that
does not say why). Here every rank tells the others whether its own losses are finite, before the metrics
are written and before the optimizer steps (SimpleTrainer.run_step calls `_write_metrics` between
`backward` and `optimizer.step`), and all ranks raise the same FloatingPointError at the same iteration."""
from __future__ import annotations

import torch
from detectron2.engine import AMPTrainer, SimpleTrainer

from mocobench.common.agreement import ranks_with


class AgreedFiniteLoss:
    """Mixin for Detectron2's SimpleTrainer and AMPTrainer (extended by subclassing, not patched)."""

    def _write_metrics(self, loss_dict, data_time, prefix="", iter=None):
        it = self.iter if iter is None else iter
        values = list(loss_dict.values())
        bad_here = not all(bool(torch.isfinite(v.detach()).all()) for v in values)
        device = values[0].device if values else None
        ranks = ranks_with(bad_here, device=device)
        if ranks:
            here = {k: float(v.detach().float().mean()) for k, v in loss_dict.items()}
            raise FloatingPointError(f"non-finite loss at iteration {it} on rank(s) {ranks} (this rank's losses: "
                                     f"{here}); every rank stops here. Lower SOLVER.BASE_LR or check the weights "
                                     f"and data (docs/multi-gpu-trials.md)")
        super()._write_metrics(loss_dict, data_time, prefix=prefix, iter=iter)


class AgreedSimpleTrainer(AgreedFiniteLoss, SimpleTrainer):
    pass


class AgreedAMPTrainer(AgreedFiniteLoss, AMPTrainer):
    pass
