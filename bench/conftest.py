"""Settings and JSON metadata of the micro-benchmarks (pytest-benchmark) in this folder.

Run them with ``pytest bench --benchmark-only`` from the repository root (the project's own
``python -m pytest`` collects only ``tests/``). Defaults here keep the whole run to a few minutes
on a 2-core machine; any ``--benchmark-min-rounds`` / ``--benchmark-max-time`` given on the command
line wins. The saved JSON gets the command that made it, the torch version, the torch thread count
and the ops backend, and loses the per-round times unless ``--benchmark-save-data`` is given.
"""
from __future__ import annotations

import os
import shlex
import sys

import pytest
import torch

import vkdnw_fast as vf

# Fast ops: as many rounds as fit in MAX_TIME seconds. Slow ones (the pass plans, seconds a call):
# MIN_ROUNDS rounds after the calibration call.
DEFAULTS = {"benchmark_min_rounds": ("--benchmark-min-rounds", 3), "benchmark_max_time": ("--benchmark-max-time", 0.5)}


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads the options (its configure runs last)
def pytest_configure(config):
    given = config.invocation_params.args
    for dest, (flag, value) in DEFAULTS.items():
        if not any(arg == flag or arg.startswith(flag + "=") for arg in given) and hasattr(config.option, dest):
            setattr(config.option, dest, value)


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["torch"] = torch.__version__
    machine_info["torch_threads"] = torch.get_num_threads()
    machine_info["vkdnw_fast_backend_cpu"] = vf.backend("cpu")
    machine_info["cpu_count"] = os.cpu_count()
    machine_info["load_average"] = os.getloadavg()


def pytest_benchmark_update_json(config, benchmarks, output_json):
    # --benchmark-json always writes every round's time (about 1 MB for this folder); the statistics
    # are enough to compare runs, so the raw times are kept only with --benchmark-save-data.
    if not config.getoption("benchmark_save_data"):
        for bench in output_json["benchmarks"]:
            bench["stats"].pop("data", None)
    threads = os.environ.get("OMP_NUM_THREADS")
    prefix = f"OMP_NUM_THREADS={threads} " if threads else ""
    output_json["command"] = prefix + shlex.join([os.path.basename(sys.executable), "-m", "pytest",
                                                  *config.invocation_params.args])
