"""Issue 28: the training loop's speed work and ``spectralkd bench trainer``.

* the fused AdamW that ``Optimization`` now uses still performs AdamW: three steps against a float64
  NumPy implementation of the update (decoupled decay on matrices only, bias correction, the
  linear schedule);
* ``bench trainer`` compares the same work: with dropout off, ``fit`` and ``transformers.Trainer``
  fed ``fit``'s batch order reach the same weights; another order gives other weights;
* the thread policy: every core but one, shared among the processes; ``--threads`` and
  ``$OMP_NUM_THREADS`` take precedence; the run record states the number.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from spectralkd_tutorial.cli import bench_trainer

from spectralkd_tutorial.cli import app as cli
from spectralkd_tutorial.config.sections import TrainConfig
from spectralkd_tutorial.engine.batching import epoch_order
from spectralkd_tutorial.common.device import default_threads, set_threads
from spectralkd_tutorial.engine.optimization import Optimization
from spectralkd_tutorial.data import embedded_intents
from spectralkd_tutorial.models.loading import load_classifier


def _adamw_reference(params, grads, lrs, weight_decays, betas=(0.9, 0.999), eps=1e-8):
    """AdamW (Loshchilov & Hutter) in float64: decay p <- p (1 - lr wd), then the bias-corrected step."""
    p = [x.astype(np.float64).copy() for x in params]
    m = [np.zeros_like(x) for x in p]
    v = [np.zeros_like(x) for x in p]
    for t, (step_grads, lr) in enumerate(zip(grads, lrs), start=1):
        for i, g in enumerate(step_grads):
            p[i] *= 1 - lr * weight_decays[i]
            m[i] = betas[0] * m[i] + (1 - betas[0]) * g
            v[i] = betas[1] * v[i] + (1 - betas[1]) * g * g
            m_hat, v_hat = m[i] / (1 - betas[0] ** t), v[i] / (1 - betas[1] ** t)
            p[i] -= lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def test_fused_adamw_performs_adamw_with_decay_on_matrices_and_the_linear_schedule():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(5, 4), nn.LayerNorm(4))
    start = [p.detach().numpy().copy() for p in module.parameters()]
    train = TrainConfig(learning_rate=0.05, weight_decay=0.1, warmup_ratio=0.0, max_grad_norm=1e6)
    optimization = Optimization.create(module.parameters(), train, total_steps=10, accelerator="cpu")
    assert optimization.optimizer.optimizer.defaults["fused"] is True  # the kernel Trainer uses
    rng = np.random.default_rng(0)
    grads = [[rng.standard_normal(p.shape) for p in start] for _ in range(3)]
    for step_grads in grads:  # loss = sum(p * G): its gradient is G
        loss = sum((p * torch.tensor(g, dtype=torch.float32)).sum() for p, g in zip(module.parameters(), step_grads))
        assert optimization.backward(loss, last_of_window=True)
    lrs = [0.05 * (10 - s) / 10 for s in range(3)]  # no warm-up: linear decay from the first step
    decays = [0.1 if p.ndim >= 2 else 0.0 for p in start]
    expected = _adamw_reference(start, grads, lrs, decays)
    for got, want in zip(module.parameters(), expected):
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def no_dropout_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench-trainer") / "tiny"
    data = embedded_intents()
    model, tokenizer = load_classifier("tiny-roberta", data.label_names)
    model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = 0.0
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    base, tokenizer = load_classifier(path, data.label_names)
    return base, tokenizer, data


def _train_both(no_dropout_model, steps: int = 6):
    base, tokenizer, data = no_dropout_model
    batches = -(-len(data.train) // 16)
    train = TrainConfig(epochs=steps / batches, learning_rate=5e-3, batch_size=16, warmup_ratio=0.1,
                        eval_each_epoch=False)  # 6 steps: int(0.6) = 0 warm-up steps in both schedules
    _, fit_test, ours = bench_trainer.run_fit(base, tokenizer, data, train, 0, 32)
    _, trainer_test, theirs = bench_trainer.run_trainer(base, tokenizer, data, train, 0, 32, steps)
    assert ours is not base and theirs is not base
    difference = max((a - b).abs().max().item() for a, b in zip(ours.state_dict().values(),
                                                                 theirs.state_dict().values()))
    moved = max((a - b).abs().max().item() for a, b in zip(ours.state_dict().values(), base.state_dict().values()))
    return difference, moved, fit_test, trainer_test


def test_bench_trainer_gives_both_loops_the_same_work(no_dropout_model):
    difference, moved, fit_test, trainer_test = _train_both(no_dropout_model)
    assert moved > 1e-3  # they trained
    assert difference < 1e-5  # the same batches, schedule, decay groups, clipping and optimizer
    assert fit_test["accuracy"] == trainer_test["accuracy"]


def test_bench_trainer_would_see_another_batch_order(no_dropout_model, monkeypatch):
    monkeypatch.setattr(bench_trainer, "epoch_order", lambda n, seed, epoch: epoch_order(n, seed + 1, epoch))
    difference, moved, _, _ = _train_both(no_dropout_model)
    assert difference > 100 * 1e-5


def test_the_trainer_sampler_follows_epoch_order():
    sampler = bench_trainer._EpochOrderSampler(50, seed=3)
    assert list(sampler) == epoch_order(50, 3, 0) and list(sampler) == epoch_order(50, 3, 1)
    sampler.set_epoch(0)
    assert list(sampler) == epoch_order(50, 3, 0)


def test_bench_trainer_command_prints_both_loops_and_the_ratio(capsys):
    assert cli.main(["bench", "trainer", "--model", "tiny-roberta", "--dataset", "embedded", "--max-steps", "2",
                     "--repeats", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "2 steps" in out and "threads 1" in out
    assert out.count("  fit ") == 1 and out.count("  Trainer ") == 1
    assert "ratio" in out and "target <= 1.00x" in out and "load average" in out


@pytest.mark.parametrize("cores, processes, threads", [(1, 1, 1), (2, 1, 1), (4, 1, 3), (8, 1, 7), (8, 2, 3),
                                                       (16, 4, 3), (2, 2, 1)])
def test_default_threads_leave_a_core_and_share_the_rest(cores, processes, threads):
    assert default_threads(cores, processes) == threads


def test_threads_flag_then_environment_then_default(monkeypatch):
    previous = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert set_threads(2) == 2  # an explicit number wins
        torch.set_num_threads(1)
        assert set_threads() == 1  # $OMP_NUM_THREADS: left as torch read it
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert set_threads() == default_threads()
        with pytest.raises(SystemExit):
            cli.main(["analyze", "--threads", "x", "--out", "unused"])
    finally:
        torch.set_num_threads(previous)


def test_the_run_record_states_the_threads(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "teacher"
    assert cli.main(["teacher", "--preset", "quick", "--epochs", "1", "--threads", "1", "--no-progress",
                     "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["threads"] == 1
