"""Runs the C++ header unit tests (`make ctest`) and the CUDA compile check (`make cuda-check`)."""
from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_make(target: str) -> None:
    result = subprocess.run(["make", target], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, f"make {target} failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("cmake") is None,
                    reason="make and cmake are needed for the C++ unit tests")
def test_header_unit_tests():
    run_make("ctest")


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("nvcc") is None,
                    reason="nvcc is not on PATH: the CUDA kernels cannot be compiled here")
def test_cuda_kernels_compile_and_link():
    run_make("cuda-check")
