"""Fine-tuning trials: plan (config, scaling rule), resolve weights, run, write records. CLI: `python -m
mocobench run`."""
from mocobench.common.errors import UsageError


class RunnerError(UsageError):
    """Bad input to the runner: a missing checkpoint, an unknown benchmark, an impossible GPU setup."""
