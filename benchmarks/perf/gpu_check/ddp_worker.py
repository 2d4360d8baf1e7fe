"""One rank of the DDP check (`ddp.check` starts two): gloo process group, the trainer on the device, the same
global batches, then its losses and weights to a file. Not a user command."""
from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    import torch
    import torch.distributed as dist

    from mocobench.benchmarks.perf.gpu_check.ddp import global_batches, no_tf32, train_steps
    from mocobench.benchmarks.perf.gpu_check.shapes import SHAPES
    from mocobench.pretrain.config import load_config
    from mocobench.pretrain.trainer import Trainer

    args = json.loads(argv[0])
    shapes = SHAPES[args["shapes"]]
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo", rank=rank, world_size=world)  # before the trainer: it keeps this group
    try:
        no_tf32()
        trainer = Trainer(load_config("demo", args["overrides"]))
        losses = train_steps(trainer, global_batches(shapes), rank, world)
        state = {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}
        torch.save({"losses": losses, "state": state, "backend": dist.get_backend(),
                    "device": str(trainer.env.device)}, args["result"])
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
