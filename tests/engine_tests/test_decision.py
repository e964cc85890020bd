"""The gate decision rule (lcnas.engine._decision): its edge cases, and its batch-1 and tensor forms agree."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from lcnas.engine import (at_least_one, gate_scale, gate_scales, keep_groups, keep_groups_one, run_block, run_block_one,
                          threshold_logit)


def _keep_one(logits, t, forced):
    """keep_groups on one row through the tensor form, as a tuple (or None)."""
    lt = None if logits is None else torch.tensor([logits])
    ft = None if forced is None else torch.tensor([forced])
    out = keep_groups(lt, t, ft)
    return None if out is None else tuple(bool(v) for v in out[0])


def test_threshold_logit_is_the_probability_threshold_as_a_logit():
    assert threshold_logit(0.5) == 0.0
    for p in (0.1, 0.3, 0.7, 0.95):
        assert 1 / (1 + math.exp(-threshold_logit(p))) == pytest.approx(p, rel=1e-12)


def test_gate_scale_is_two_sigmoid_without_overflow():
    z = torch.tensor([-1000.0, -20.0, -1.5, 0.0, 0.3, 20.0, 1000.0], dtype=torch.float64)
    scalar = torch.tensor([gate_scale(float(v)) for v in z], dtype=torch.float64)
    assert torch.allclose(scalar, gate_scales(z), rtol=1e-12, atol=0)
    assert gate_scale(0.0) == 1.0 and gate_scale(1000.0) == 2.0 and gate_scale(-1000.0) == 0.0


def test_run_block_forced_overrides_and_nothing_deciding_runs():
    logits = torch.tensor([2.0, -2.0, 0.0])
    assert run_block(logits, 0.0, None).tolist() == [True, False, False]  # strictly above the threshold
    assert run_block(logits, 0.0, torch.tensor([0, 1, 1], dtype=torch.int8)).tolist() == [False, True, True]
    assert run_block(None, 0.0, torch.tensor([True, False])).tolist() == [True, False]  # forced, gate not evaluated
    assert run_block(None, 0.0, None) is None  # no gate evaluated, nothing forced: every sample runs
    assert run_block_one(None, 0.0, None) is True
    assert run_block_one(-5.0, 0.0, True) is True and run_block_one(5.0, 0.0, False) is False
    assert run_block_one(0.0, 0.0, None) is False


def test_logits_compare_against_the_threshold_in_double():
    # A float32 logit just above the threshold's logit in double, equal to it once narrowed to float32:
    # every path (Python floats, C++ doubles, tensors) must call it above.
    t = threshold_logit(0.8)
    x = torch.tensor([t], dtype=torch.float32)  # rounds up: above t in double, equal to float32(t)
    assert float(x[0]) > t and not bool(x[0] > t)
    assert bool(run_block(x, t, None)[0]) and run_block_one(float(x[0]), t, None)
    assert bool(keep_groups(x[None], t, None)[0, 0]) and keep_groups_one([float(x[0])], t, None) == (True,)
    x = torch.nextafter(x, torch.tensor([math.inf]))  # one float32 step up is above in any precision
    assert bool(run_block(x, t, None)[0]) and bool(keep_groups(x[None], t, None)[0, 0])


def test_keep_groups_edge_cases():
    t = 0.0
    # some groups above the threshold: exactly those
    assert keep_groups_one([1.0, -1.0, 2.0], t, None) == (True, False, True)
    # all below: the likeliest group only
    assert keep_groups_one([-3.0, -1.0, -2.0], t, None) == (False, True, False)
    # ties among the likeliest: the first of them
    assert keep_groups_one([-1.0, -2.0, -1.0, -1.0], t, None) == (True, False, False, False)
    assert keep_groups_one([0.0, 0.0], t, None) == (True, False)  # at the threshold is not above it
    # forced overrides the gate, even where the gate would keep other groups
    assert keep_groups_one([5.0, 5.0, -5.0], t, (False, False, True)) == (False, False, True)
    # forced to keep nothing: group 0, not the likeliest group
    assert keep_groups_one([-5.0, 5.0, -5.0], t, (False, False, False)) == (True, False, False)
    # forced with no gate evaluated
    assert keep_groups_one(None, t, (False, True, False)) == (False, True, False)
    assert keep_groups_one(None, t, (False, False)) == (True, False)
    # nothing decides: every group (None)
    assert keep_groups_one(None, t, None) is None and keep_groups(None, t, None) is None
    for logits, forced in [([1.0, -1.0, 2.0], None), ([-3.0, -1.0, -2.0], None), ([-1.0, -2.0, -1.0, -1.0], None),
                           ([5.0, 5.0, -5.0], (False, False, True)), ([-5.0, 5.0, -5.0], (False, False, False)),
                           (None, (False, True, False)), (None, (False, False))]:
        assert _keep_one(logits, t, forced) == keep_groups_one(logits, t, forced)


def test_at_least_one_adds_one_group_only_to_empty_rows():
    keep = torch.tensor([[False, False, False], [False, True, False]])
    logits = torch.tensor([[-2.0, -1.0, -1.0], [-1.0, 3.0, 4.0]])
    assert at_least_one(keep, logits).tolist() == [[False, True, False], [False, True, False]]
    assert at_least_one(keep, None).tolist() == [[True, False, False], [False, True, False]]


@pytest.mark.parametrize("p", [0.5, 0.3, 0.8])
def test_scalar_and_tensor_forms_agree_on_random_inputs(p):
    gen = torch.Generator().manual_seed(0)
    n, g = 64, 5
    t = threshold_logit(p)
    # small integer-valued logits: ties and all-below rows are common
    logits = torch.randint(-4, 3, (n, g), generator=gen).to(torch.float32) * 0.5
    run_logits = torch.randn(n, generator=gen)
    forced = torch.rand(n, g, generator=gen) < 0.3  # many rows force nothing
    forced_run = torch.rand(n, generator=gen) < 0.5
    for use_logits in (True, False):
        for use_forced in (True, False):
            lt = logits if use_logits else None
            ft = forced if use_forced else None
            tensor = keep_groups(lt, t, ft)
            rows = [keep_groups_one(None if lt is None else lt[i].tolist(), t,
                                    None if ft is None else tuple(ft[i].tolist())) for i in range(n)]
            if tensor is None:
                assert all(r is None for r in rows)
            else:
                assert tensor.any(1).all()  # at least one group per row
                assert [tuple(r) for r in tensor.tolist()] == rows
            rt = run_block(run_logits if use_logits else None, t, forced_run if use_forced else None)
            ro = [run_block_one(float(run_logits[i]) if use_logits else None, t,
                                bool(forced_run[i]) if use_forced else None) for i in range(n)]
            assert (rt.tolist() if rt is not None else [True] * n) == ro
    assert torch.equal(keep_groups(logits, t, None), at_least_one(logits > t, logits))


def test_tensor_forms_script():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is marked deprecated; the export uses it
        scripted_keep = torch.jit.script(keep_groups)
        scripted_run = torch.jit.script(run_block)
        scripted_one = torch.jit.script(run_block_one)
    logits = torch.tensor([[-1.0, -0.5, -3.0], [0.2, -0.1, 0.3]])
    forced = torch.tensor([[False, False, False], [True, False, True]])
    for f in (None, forced):
        assert torch.equal(scripted_keep(logits, 0.0, f), keep_groups(logits, 0.0, f))
    assert torch.equal(scripted_run(logits[:, 0], 0.0, None), run_block(logits[:, 0], 0.0, None))
    assert scripted_one(None, 0.0, None) and not scripted_one(-1.0, 0.0, None)
