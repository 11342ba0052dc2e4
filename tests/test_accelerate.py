"""Distillation under accelerate: 2 CPU processes (gloo) against 1, a crash resumed with another
process count, bf16 autocast on the CPU, the bounded teacher cache, tensorboard logging.

The multi-process runs are the quick preset's grid cut to one run (``spectral-ends``, seed 0) on 41
training utterances (global batch 16: batches of 16, 16 and 9 rows, so the last one splits 5/4)
and 25 test utterances (13/12 per process), 2 epochs, a checkpoint after every step. The teacher is
a tiny RoBERTa with dropout off, so that one and two processes compute the same function and only
floating-point summation order separates them. Every subprocess has a timeout.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from spectralkd_tutorial.cli import app as cli
from spectralkd_tutorial.config.sections import DistillationLossConfig, RuntimeConfig, TrainConfig
from spectralkd_tutorial.engine.batching import encode_split, shard
from spectralkd_tutorial.engine.run_store import RunStore
from spectralkd_tutorial.engine.teacher_cache import TeacherCache, cache_bytes, prepare_cache
from spectralkd_tutorial.engine.training import Distillation, FitSettings
from spectralkd_tutorial.pipelines.steps import train_model
from spectralkd_tutorial.data import embedded_intents
from spectralkd_tutorial.common.errors import UsageError
from spectralkd_tutorial.models.loading import load_classifier, student_from_teacher
from spectralkd_tutorial.analysis.selection import select_layers

RUN = "runs/spectral-ends-seed0"
TOTAL_BATCHES = 6  # 3 per epoch x 2 epochs, one optimizer step each
CONFIG = """preset = "quick"
[data]
train_limit = 41
eval_limit = 25
max_length = 24
[student.train]
epochs = 2
batch_size = 16
checkpoint_every = 1
[grid]
strategies = ["spectral-ends"]
seeds = [0]
dynamics_samples = 8
[analysis]
samples = 16
[runtime]
progress = false
"""
# Tolerances, 2 processes vs 1: weights differ only by summation order (measured ~5e-7);
# the train losses agree to 1e-5 relative; metrics may differ by at most one test example.
WEIGHT_ATOL, LOSS_RTOL = 1e-5, 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp: Path) -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else ""), "OMP_NUM_THREADS": "1",
            "SPECTRALKD_CACHE_DIR": str(tmp / "cache"), "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}


def _run(command: list[str], tmp: Path, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=_env(tmp), capture_output=True, text=True, timeout=timeout, cwd=tmp)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A teacher without dropout, the run config, and the 1-process reference run (in process)."""
    tmp = tmp_path_factory.mktemp("accelerate")
    dataset = embedded_intents()
    teacher, tokenizer = load_classifier("tiny-roberta", dataset.label_names,
                                         tiny_sizes=dict(num_layers=4, hidden_size=32, num_heads=4))
    teacher.config.hidden_dropout_prob = teacher.config.attention_probs_dropout_prob = 0.0
    teacher.save_pretrained(tmp / "teacher")
    tokenizer.save_pretrained(tmp / "teacher")
    (tmp / "run.toml").write_text(CONFIG)
    args = ["experiment", "--config", str(tmp / "run.toml"), "--teacher", str(tmp / "teacher"), "--keep-checkpoints"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        assert cli.main([*args, "--out", str(tmp / "one")]) == 0
    return tmp, args


def _result(out: Path) -> tuple[dict, dict]:
    metrics = json.loads((out / RUN / "metrics.json").read_text())
    checkpoint = torch.load(out / RUN / "checkpoint.pt", map_location="cpu", weights_only=False)
    return metrics, checkpoint


def _assert_same_training(one: Path, other: Path, *, resumed_from: int = 0) -> None:
    (m1, c1), (m2, c2) = _result(one), _result(other)
    assert m1["optimizer_steps"] == m2["optimizer_steps"] == TOTAL_BATCHES
    assert c1["next_batch"] == c2["next_batch"] == TOTAL_BATCHES
    assert m2["resumed_from_batch"] == resumed_from
    for key, tensor in c1["model"].items():
        torch.testing.assert_close(c2["model"][key], tensor, atol=WEIGHT_ATOL, rtol=0, msg=key)
    assert [h["train_loss"] for h in m2["history"]] == pytest.approx([h["train_loss"] for h in m1["history"]],
                                                                     rel=LOSS_RTOL)
    for split in ("validation", "test"):
        assert m2["metrics"][split]["n"] == m1["metrics"][split]["n"] == 25
        assert abs(m2["metrics"][split]["accuracy"] - m1["metrics"][split]["accuracy"]) <= 1 / 25 + 1e-9


@pytest.mark.slow
def test_two_processes_train_like_one(grid):
    """``accelerate launch -m spectralkd_tutorial.cli experiment`` with 2 CPU processes (gloo)."""
    tmp, args = grid
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(_free_port()), "-m", "spectralkd_tutorial.cli"]
    done = _run([*launch, *args, "--out", str(tmp / "two")], tmp)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("wrote ") == 1  # only the main process prints
    metrics, checkpoint = _result(tmp / "two")
    assert metrics["processes"] == checkpoint["processes"] == 2
    assert metrics["evaluated_per_process"]["test"] == [13, 12]  # every test example once, uneven split
    _assert_same_training(tmp / "one", tmp / "two")
    assert (tmp / "two" / "teacher_cache" / "hidden.bin").exists()  # built once, read by both processes


@pytest.mark.slow
def test_two_process_run_killed_after_a_checkpoint_resumes_with_one(grid):
    tmp, args = grid
    out = tmp / "crashed"
    env_args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                str(Path(__file__).with_name("accelerate_crash.py"))]
    os.environ["SPECTRALKD_TEST_CRASH_AFTER"] = "4"  # mid-epoch 2 (3 batches per epoch)
    try:
        done = _run([*env_args, *args, "--out", str(out)], tmp)
    finally:
        del os.environ["SPECTRALKD_TEST_CRASH_AFTER"]
    assert done.returncode != 0
    state = torch.load(out / RUN / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert (state["next_batch"], state["processes"]) == (4, 2)
    assert not (out / RUN / "metrics.json").exists()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        assert cli.main([*args, "--out", str(out)]) == 0  # one process takes over the dead one's lock
    _assert_same_training(tmp / "one", out, resumed_from=4)


# ---------------------------------------------------------------------------------------------
# In process: bf16 autocast, sharding, the teacher cache, tensorboard
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small(tmp_path_factory):
    os.environ.setdefault("SPECTRALKD_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    dataset = embedded_intents().subset(train=64, validation=24, test=24)
    teacher, tokenizer = load_classifier("tiny-roberta", dataset.label_names,
                                         tiny_sizes=dict(num_layers=4, hidden_size=32, num_heads=4))
    teacher.eval()
    return dataset, teacher, tokenizer, select_layers("last", 2, 4), student_from_teacher(teacher, [2, 4])


def _fit(small, runtime=None, cache=None, store=None, epochs=1.0, **loss):
    dataset, teacher, tokenizer, mapping, student = small
    model = copy.deepcopy(student)
    distillation = Distillation(teacher, mapping, DistillationLossConfig(**{"feature_loss": "spectral", **loss}),
                                cache=cache)
    result, _ = train_model(model, tokenizer, dataset, TrainConfig(epochs=epochs, learning_rate=1e-3, batch_size=16),
                            FitSettings(3, 24, runtime or RuntimeConfig(progress=False)), distillation=distillation,
                            store=store, dynamics_samples=8 if store else 0, save_model=False)
    return model, result


def test_bf16_autocast_on_cpu_trains_with_float32_ffts(small, monkeypatch):
    fft_inputs, linear_outputs = [], []
    rfft = torch.fft.rfft

    def spy(x, *args, **kwargs):
        fft_inputs.append((x.dtype, torch.is_autocast_enabled("cpu")))
        return rfft(x, *args, **kwargs)

    monkeypatch.setattr(torch.fft, "rfft", spy)
    student = small[4]
    hook = student.roberta.encoder.layer[0].attention.self.query.register_forward_hook(
        lambda module, inputs, output: linear_outputs.append(output.dtype))
    try:
        model, result = _fit(small, RuntimeConfig(device="cpu", mixed_precision="bf16", progress=False), beta=2.0)
    finally:
        hook.remove()
    assert torch.bfloat16 in linear_outputs  # the student ran under bf16 autocast
    assert fft_inputs and all(dtype == torch.float32 and not autocast for dtype, autocast in fft_inputs)
    assert all(torch.isfinite(torch.tensor(v)) for h in result.history for k, v in h.items() if k.startswith("train_"))
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay float32
    assert model.forward.__func__ is type(model).forward  # the autocast wrapper is removed after training
    with pytest.raises(UsageError, match="fp16"):
        _fit(small, RuntimeConfig(device="cpu", mixed_precision="fp16", progress=False))


def test_shards_cover_each_global_batch_once_with_weights_that_average_to_the_mean():
    batch = list(range(100, 109))  # 9 rows over 2 and over 4 processes
    for processes in (1, 2, 4):
        parts = [shard(batch, processes, p) for p in range(processes)]
        assert sorted(i for rows, _ in parts for i in rows) == batch
        # DDP averages the processes' weighted mean losses: that is the mean over the global batch
        assert sum(w * sum(rows) / len(rows) for rows, w in parts) / processes == pytest.approx(sum(batch) / len(batch))
    rows, weight = shard([7], 2, 1)  # a process without a row still runs, with weight 0
    assert rows == [7] and weight == 0.0


def test_half_precision_cache_gives_nearly_the_same_training(small):
    """float32 cache = online teacher (test_distill). Half precision rounds the teacher's hidden
    states (relative 5e-4 for float16, 4e-3 for bfloat16); Adam magnifies the resulting tiny
    gradient differences on parameters whose gradient is near 0, so single weights are no measure.
    Stated tolerances: the whole update (final - initial weights) within 5% (float16, measured
    1.8%) / 10% (bfloat16, 5.3%) relative, and the training losses within 1e-3 relative."""
    dataset, teacher, tokenizer, mapping, student = small
    encoded = encode_split(tokenizer, dataset.train, 24)
    reference, ref_result = _fit(small, beta=5.0)
    start = torch.cat([p.detach().flatten() for p in student.parameters()])
    update = torch.cat([p.detach().flatten() for p in reference.parameters()]) - start
    for dtype, tolerance in (("float16", 0.05), ("bfloat16", 0.10)):
        cache = TeacherCache.build(teacher, encoded, [0, 1, 2, 3, 4], tokenizer.pad_token_id, progress=False, dtype=dtype)
        assert cache.hidden.dtype == getattr(torch, dtype)
        assert cache.hidden.numel() * 2 == cache_bytes(sum(map(len, encoded.input_ids)), 5, 32, dtype)
        model, result = _fit(small, cache=cache, beta=5.0)
        other = torch.cat([p.detach().flatten() for p in model.parameters()]) - start
        assert float((other - update).norm() / update.norm()) < tolerance, dtype
        assert [h["train_loss"] for h in result.history] == pytest.approx(
            [h["train_loss"] for h in ref_result.history], rel=1e-3)


def test_disk_cache_is_memory_mapped_reused_and_budgeted(small, tmp_path, capsys):
    dataset, teacher, tokenizer, mapping, _ = small
    encoded = encode_split(tokenizer, dataset.train, 24)
    layers, pad = [2, 4], tokenizer.pad_token_id
    memory = TeacherCache.build(teacher, encoded, layers, pad, progress=False, dtype="float16")
    disk = prepare_cache(teacher, encoded, layers, pad, storage="auto", directory=tmp_path, source="t", progress=False)
    assert disk.path == tmp_path / "teacher_cache" and (disk.path / "hidden.bin").exists()
    printed = capsys.readouterr().out
    tokens = sum(map(len, encoded.input_ids))
    assert f"{tokens:,} tokens x 2 layers x 32 x 2 B (float16)" in printed
    indices = [5, 0, 63, 17]
    width = max(len(encoded.input_ids[i]) for i in indices) + 3
    (logits_a, hidden_a), (logits_b, hidden_b) = memory.batch(indices, width), disk.batch(indices, width)
    assert torch.equal(logits_a, logits_b) and all(torch.equal(hidden_a[k], hidden_b[k]) for k in (2, 4))
    assert float(disk.batch([0], width)[1][2][0, len(encoded.input_ids[0]):].abs().sum()) == 0  # padding is zero
    again = prepare_cache(teacher, encoded, layers, pad, directory=tmp_path, source="t", progress=False)
    assert "reusing" in capsys.readouterr().out and again.starts.tolist() == disk.starts.tolist()
    online = prepare_cache(teacher, encoded, layers, pad, storage="memory", budget_gb=1e-6, progress=False)
    assert online is None and "running the teacher online instead" in capsys.readouterr().out
    assert prepare_cache(teacher, encoded, layers, pad, storage="off") is None


def test_report_to_tensorboard_logs_losses_metrics_and_intensities(small, tmp_path):
    EventAccumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator").EventAccumulator

    settings = {"test": "tensorboard"}
    with RunStore(tmp_path, kind="test", settings=settings) as store:
        _fit(small, RuntimeConfig(progress=False, report_to="tensorboard"), store=store)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in ("train/loss", "train/ce", "train/kd", "train/feature", "train/learning_rate",
                "validation/accuracy", "intensity/layer_0", "intensity/layer_2"):
        assert tag in tags, (tag, sorted(tags))
    assert len(events.Scalars("train/loss")) == 4  # one per optimizer step
    assert json.loads((tmp_path / "metrics.json").read_text())["history"]  # the JSON history stays
    assert asdict(RuntimeConfig())["report_to"] == "none"
    with pytest.raises(ValueError, match="report_to"):
        RuntimeConfig(report_to="wandb")
