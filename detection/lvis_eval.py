"""LVIS evaluation under numpy 2: Detectron2's LVISEvaluator, run with the one alias the `lvis` package needs.

`lvis` 0.5.3 (the only release on the package index, 2020) casts with `np.float` in LVISEval.accumulate;
numpy removed that alias in 1.24 and this suite pins numpy 2.2.6 (cityscapesscripts, pandas 3). The
smallest workaround, instead of patching or copying the package: set `numpy.float = float` (what the
alias always was) only while an LVIS evaluation runs, and remove it again afterwards.

    with numpy_float_alias():
        LVISEval(gt, results, "segm").run()
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import numpy as np
from detectron2.evaluation import DatasetEvaluator, LVISEvaluator

_LOCK = threading.Lock()


@contextlib.contextmanager
def numpy_float_alias() -> Iterator[None]:
    """numpy.float = float for the duration of the block (a no-op where numpy still has the alias)."""
    with _LOCK:
        had = "float" in np.__dict__
        if not had:
            np.float = float  # type: ignore[attr-defined]
        try:
            yield
        finally:
            if not had:
                del np.float  # type: ignore[attr-defined]


class NumpyTwoLVISEvaluator(DatasetEvaluator):
    """Detectron2's LVISEvaluator (box and mask AP, APr/APc/APf, up to max_dets_per_image detections per
    image), its evaluate() run inside numpy_float_alias()."""

    def __init__(self, dataset_name: str, tasks=None, output_dir: str | None = None, max_dets_per_image: int = 300):
        self.evaluator = LVISEvaluator(dataset_name, tasks=tasks, distributed=True, output_dir=output_dir,
                                       max_dets_per_image=max_dets_per_image)

    def reset(self):
        self.evaluator.reset()

    def process(self, inputs, outputs):
        self.evaluator.process(inputs, outputs)

    def evaluate(self):
        with numpy_float_alias():
            return self.evaluator.evaluate()
