"""A run computes in the configured precision on every device, and its outputs say which:
TF32 off (training.precision is 32-true or bf16-mixed, never TF32), pretraining included."""
from __future__ import annotations

import pytest
import torch

from stellarspec import fit
from stellarspec.io import read_json
from stellarspec.runtime import configured_precision

from test_fit import HOLDOUT, PRETRAIN, SMALL_BERT, TRAINING, data  # noqa: F401


@pytest.fixture
def tf32_on():
    """TF32 allowed everywhere, as a GPU process may start; the flags restored afterwards."""
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
              torch.get_float32_matmul_precision())
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before[:2]
    torch.set_float32_matmul_precision(before[2])


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_configured_precision_turns_tf32_off(tf32_on, precision):
    assert configured_precision(precision) == {"precision": precision, "tf32": False}
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert torch.get_float32_matmul_precision() == "highest"
    with pytest.raises(ValueError, match="precision"):
        configured_precision("16-mixed")


def test_final_fit_records_precision_and_tf32(data, tf32_on, tmp_path):  # noqa: F811
    dataset, split = data
    for precision in ("32-true", "bf16-mixed"):
        out = tmp_path / precision
        fit.final_fit(dataset, split, "cnn", {**TRAINING, "max_epochs": 1}, out, threads=1,
                      seed=0, training={**HOLDOUT, "precision": precision})
        info = read_json(out / "fit.json")
        assert info["precision"] == precision and info["tf32"] is False
    assert not torch.backends.cudnn.allow_tf32  # the training path turned it off


def test_pretraining_honours_precision(data, tf32_on, tmp_path):  # noqa: F811
    dataset, split = data
    losses = {}
    for precision in ("32-true", "bf16-mixed"):
        path = tmp_path / f"{precision}.pt"
        fit.pretrain(dataset, split, {**SMALL_BERT, "input": "standardized"},
                     {**PRETRAIN, "max_epochs": 1}, path, threads=1, seed=0,
                     training={"precision": precision})
        history = read_json(path.with_suffix(".json"))
        assert history["precision"] == precision and history["tf32"] is False
        assert torch.load(path, weights_only=True)["precision"] == precision
        losses[precision] = history["heldout_loss_initial"]
    # Same seed, same untrained encoder: only bf16 arithmetic changes the held-out loss.
    assert losses["bf16-mixed"] != losses["32-true"]
    assert losses["bf16-mixed"] == pytest.approx(losses["32-true"], rel=0.05)
