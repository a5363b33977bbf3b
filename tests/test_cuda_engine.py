"""The engine on CUDA equals the engine on CPU (skipped without a GPU)."""
from __future__ import annotations

import pytest
import torch

import vkdnw_fast as vf
from vkdnw_fast import ops
from vkdnw_fast.spaces import nb201

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

ARCHS = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
         "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|nor_conv_3x3~0|skip_connect~1|nor_conv_1x1~2|"]


@pytest.mark.parametrize("preset", ["paper", "exact"])
@pytest.mark.parametrize("dataset", ["cifar10", "ImageNet16-120"])
@pytest.mark.parametrize("arch", ARCHS)
def test_gpu_score_equals_cpu_score(arch, dataset, preset):
    """Float32 scores agree to float32's noise, measured on the case itself as the distance between the CPU's
    two memory formats (1e-8 to 1.5e-4 relative on these, docs/method.md "Precision"); with TF32 allowed, the
    GPU was 4.5e-4 to 3.6e-3 off. The float64 test below is the tight one."""
    shape, classes = nb201.dataset_info(dataset)
    model = nb201.build_model(arch, classes)
    cpu = vf.score(model, input_shape=shape, config=preset, seed=2, device="cpu")
    other_layout = vf.score(model, input_shape=shape, config=vf.FisherConfig.preset(preset, memory_format="contiguous"),
                            seed=2, device="cpu")
    gpu = vf.score(model, input_shape=shape, config=preset, seed=2, device="cuda")
    assert gpu.strategy == cpu.strategy and gpu.weights == cpu.weights
    assert abs(gpu.vkdnw - cpu.vkdnw) <= 10 * abs(other_layout.vkdnw - cpu.vkdnw) + 1e-4 * abs(cpu.vkdnw)
    top = float(cpu.eigenvalues[0])
    assert torch.allclose(gpu.eigenvalues.cpu(), cpu.eigenvalues, rtol=1e-3, atol=1e-5 * top)


def test_gpu_uses_the_cuda_kernels_when_built():
    if not vf.ops.extension_loaded():
        pytest.skip("extension not built")
    assert vf.backend("cuda") == "cuda"


def test_gpu_float64_score_matches_cpu_tightly():
    model = nb201.build_model(ARCHS[0], 10).double()
    x = torch.randn(16, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for preset in ("paper", "exact"):
        cpu = vf.score(model, x, config=preset, device="cpu")
        gpu = vf.score(model, x, config=preset, device="cuda")
        assert gpu.vkdnw == pytest.approx(cpu.vkdnw, abs=1e-10)


def test_twin_and_kernel_agree_on_gpu(monkeypatch):
    model = nb201.build_model(ARCHS[1], 10)
    kernel = vf.score(model, input_shape=(3, 32, 32), seed=1, device="cuda")
    monkeypatch.setattr(ops, "_has_kernel", lambda op, device: False)
    twin = vf.score(model, input_shape=(3, 32, 32), seed=1, device="cuda")
    assert twin.vkdnw == pytest.approx(kernel.vkdnw, rel=1e-6)
