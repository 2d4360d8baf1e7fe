"""The GPU check a person runs first: one command that proves the CUDA path of this suite on whatever
machine it finds, in at most about 6 minutes on one GPU, and the same command on a CPU with tiny shapes
(the test suite runs that). It prints one table, writes one JSON file and exits non-zero on any failed check.

    python -m mocobench.benchmarks.perf.gpu_check                       # a CUDA machine: full shapes
    python -m mocobench.benchmarks.perf.gpu_check --device cpu          # tiny shapes (automatic on CPU)

One file per check (environment, augmentation, sync_step, logits, resume, ddp, detectron2_speed, decode
(gpu_decode), pretrain_speed); `shapes` holds the full and tiny sizes, `harness` runs the checks and writes
the report.
Documented in docs/gpu-check.md.
"""
