"""A model called on anything but a batch of float images of its channels: one clear InputError,
on the native engine, the per-block path and training alike."""

from __future__ import annotations

import pytest
import torch

import lcnas
import lcnas.engine
from lcnas.errors import InputError
from lcnas.models import ForcedDecisions


@pytest.mark.parametrize("gating", ["none", "lc", "layer"])
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize(("x", "says"), [
    (torch.rand(1, 1, 32, 32), "shape (1, 1, 32, 32)"),
    (torch.rand(2, 4, 32, 32), "shape (2, 4, 32, 32)"),
    (torch.rand(3, 32, 32), "one image: pass x.unsqueeze(0)"),
    (torch.randint(0, 255, (1, 3, 32, 32), dtype=torch.uint8), "uint8 images: pass x.float() / 255"),
])
def test_a_wrong_input_is_one_clear_error_on_every_path(gating, train, x, says):
    model = lcnas.create_model("resnet20", gating=gating).train(train)
    with pytest.raises(InputError, match="N×3×H×W") as err:
        model(x)
    assert says in str(err.value)


def test_the_per_block_path_checks_too():
    model = lcnas.create_model("resnet20", gating="lc").eval()
    with lcnas.engine.options(model, whole_network=False):
        with pytest.raises(InputError):
            model(torch.rand(1, 1, 32, 32))
        assert model(torch.rand(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize(("make", "says"), [
    (lambda: ForcedDecisions(block_run=torch.ones(1, 3, dtype=torch.bool)), "block_run has shape (1, 3); expected (9,) or (N, 9)"),
    (lambda: ForcedDecisions(channel_keep=(torch.ones(4, dtype=torch.bool),)), "channel_keep has 1 entries; the model has 9 blocks"),
    (lambda: ForcedDecisions(channel_keep=tuple(torch.ones(1, 3, dtype=torch.bool) for _ in range(9))),
     "channel_keep[0] has shape (1, 3); expected (4,) or (N, 4)"),
])
def test_a_forcing_that_does_not_fit_the_model_is_refused_before_any_path_reads_it(make, says):
    model = lcnas.create_model("resnet20", gating="lc").eval()
    with pytest.raises(InputError) as err:
        with model.forced(make()):
            model(torch.rand(1, 3, 32, 32))  # the native engine would read a short forcing past its end
    assert says in str(err.value)


def test_forcing_channels_of_a_block_without_a_channel_gate_is_refused():
    model = lcnas.create_model("resnet20", gating="layer").eval()
    with pytest.raises(InputError, match="block 0 has no channel gate"):
        model.forced(ForcedDecisions(channel_keep=tuple(torch.ones(4, dtype=torch.bool) for _ in range(9))))


def test_a_fitting_forcing_is_checked_once_and_a_failing_one_every_time(monkeypatch):
    model = lcnas.create_model("resnet20", gating="lc").eval()
    calls = []
    check = model._check_forcing
    monkeypatch.setattr(model, "_check_forcing", lambda f: (calls.append(f), check(f)))
    good = ForcedDecisions(block_run=torch.ones(9, dtype=torch.bool))
    for _ in range(3):
        with model.forced(good):
            model(torch.rand(1, 3, 32, 32))
    bad = ForcedDecisions(block_run=torch.ones(8, dtype=torch.bool))
    for _ in range(2):
        with pytest.raises(InputError):
            model.forced(bad)
    assert [c is good for c in calls] == [True, False, False]
