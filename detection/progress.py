"""The console of a trial: one progress bar (iteration, ETA, loss) instead of Detectron2's printout.

Detectron2's full log (the model's structure, every 20-iteration line, the evaluator's tables) always goes
to the trial's log.txt; `--verbose` also prints it to the terminal, without the bar.
"""
from __future__ import annotations

from detectron2.engine import HookBase
from tqdm import tqdm


class TrialProgress(HookBase):
    """A tqdm bar over the trial's iterations on the main process; the loss is Detectron2's total_loss,
    read from its event storage (the value the trainer logged for the step, not a new host read)."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.bar = None

    def before_train(self) -> None:
        t = self.trainer
        self.bar = tqdm(total=t.max_iter, initial=t.start_iter, desc=self.desc, unit="it", dynamic_ncols=True)

    def after_step(self) -> None:
        self.bar.update(1)
        history = self.trainer.storage.histories().get("total_loss")
        if history is not None and len(history.values()):
            self.bar.set_postfix(loss=f"{history.latest():.3f}", refresh=False)

    def after_train(self) -> None:
        if self.bar is not None:
            self.bar.close()
