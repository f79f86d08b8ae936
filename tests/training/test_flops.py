"""The floor's numerator: torch's flop counter over one training step, checked by hand."""

from __future__ import annotations

import torch

from inttower.training.flops import (
    linear_shapes,
    linear_step_seconds,
    model_gemm_gflops,
    step_flops,
)


def test_one_step_of_a_tiny_model_counts_the_flops_a_hand_computation_gives() -> None:
    """Two Linear layers, no bias work counted by torch: forward 2·B·(in·h + h·out); the
    backward computes the input and weight gradients of each (2× the forward), except the
    first layer's input gradient, which nothing needs."""
    torch.manual_seed(0)
    batch, d_in, hidden, d_out = 16, 8, 32, 4
    model = torch.nn.Sequential(
        torch.nn.Linear(d_in, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, d_out)
    )
    x = torch.randn(batch, d_in)

    total, forward = step_flops(lambda: model(x).square().mean())
    first, second = 2 * batch * d_in * hidden, 2 * batch * hidden * d_out
    assert sum(forward.values()) == first + second
    # backward: second layer input + weight grads (2·second), first layer weight grad (first)
    assert total == (first + second) + 2 * second + first
    assert linear_shapes(model, lambda: model(x)) == [(16, 8, 32), (16, 32, 4)]
    assert model_gemm_gflops([(64, 64, 64)]) > 0
    assert 0 < linear_step_seconds([(64, 64, 64)]) < 1
