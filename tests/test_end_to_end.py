"""Chapter 5 end to end: tiny RoBERTa checkpoints loaded with from_pretrained, every loss, save/reload,
the resumable run on the shared steps, and ``spectralkd end-to-end`` through ``cli.main``.

References are independent of the code under test: the one-step feature losses are recomputed with
numpy (channel pooling by explicit windows, ``numpy.fft.rfft``), and saved students are re-scored
with a hand-written prediction loop.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from spectralkd_tutorial.cli import app as cli

from spectralkd_tutorial.pipelines import end_to_end
from spectralkd_tutorial.config.sections import RuntimeConfig, TrainConfig
from spectralkd_tutorial.engine.batching import collate, encode_split, epoch_order
from spectralkd_tutorial.engine.run_store import RunStore
from spectralkd_tutorial.engine.training import Distillation, FitSettings
from spectralkd_tutorial.pipelines.steps import train_model
from spectralkd_tutorial.data import embedded_intents
from spectralkd_tutorial.pipelines.end_to_end import (BLOG_LAYERS, PLANS, EndToEnd, EndToEndPlan, ModelSource, StudentRun,
                                            blog_comparison, format_layers, plan_for_preset, run_end_to_end)
from spectralkd_tutorial.losses import (FEATURE_LOSSES, DistillationLossConfig, LayerProjections,
                                        check_tokenizers_compatible)
from spectralkd_tutorial.common.metrics import headline
from spectralkd_tutorial.config.presets import get_preset
from spectralkd_tutorial.analysis.selection import select_layers
from spectralkd_tutorial.models.tiny import build_tiny_checkpoint

NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A 4 x 64 teacher and 2-block students 48 and 64 wide sharing its tokenizer, all on disk."""
    root = tmp_path_factory.mktemp("e2e-checkpoints")
    dataset = embedded_intents().subset(train=32, validation=18, test=18)
    teacher_dir = build_tiny_checkpoint(root / "teacher", "roberta", label_names=dataset.label_names, num_layers=4,
                                        hidden_size=64, num_heads=4, seed=1)
    students = {width: build_tiny_checkpoint(root / f"student{width}", "roberta", label_names=dataset.label_names,
                                             num_layers=2, hidden_size=width, num_heads=4, seed=2,
                                             tokenizer_from=teacher_dir)
                for width in (48, 64)}
    return dataset, teacher_dir, students


# --------------------------------------------------------------------------------------------
# Independent references (numpy)
# --------------------------------------------------------------------------------------------

def _np_pool(x: np.ndarray, width: int) -> np.ndarray:
    """Adaptive average pooling of the last axis by explicit windows [floor(j H/W), ceil((j+1) H/W))."""
    h = x.shape[-1]
    if h == width:
        return x
    cols = [x[..., (j * h) // width: -(-((j + 1) * h) // width)].mean(-1) for j in range(width)]
    return np.stack(cols, -1)


def _np_feature(kind: str, s_hidden, t_hidden, mask: np.ndarray, weights) -> float:
    losses = []
    m = mask[:, :, None].astype(np.float64)
    for p, (s, t) in enumerate(zip(s_hidden, t_hidden)):
        if kind in ("projection", "spectral-projection"):
            w, b = weights[p]
            s = s @ w.T + b
        else:
            t = _np_pool(t, s.shape[-1])
        if kind == "pooled-spectral":  # per sentence: mean over real tokens, rfft over channels
            xs = (s * m).sum(1) / m.sum(1)
            xt = (t * m).sum(1) / m.sum(1)  # t is already channel-pooled (pooling and the mean commute)
            fs, ft = np.fft.rfft(xs, axis=-1, norm="ortho"), np.fft.rfft(xt, axis=-1, norm="ortho")
            d = np.stack([fs.real - ft.real, fs.imag - ft.imag], -1)
            losses.append(float((d ** 2).mean()))
        elif kind in ("spectral", "spectral-projection"):
            fs = np.fft.rfft(s * m, axis=1, norm="ortho")
            ft = np.fft.rfft(t * m, axis=1, norm="ortho")
            d = np.stack([fs.real - ft.real, fs.imag - ft.imag], -1)
            losses.append(float((d ** 2).mean()))
        else:  # masked MSE over real tokens
            losses.append(float((((s - t) * m) ** 2).sum() / (mask.sum() * s.shape[-1])))
    return float(np.mean(losses))


# --------------------------------------------------------------------------------------------
# One step with every loss, width mismatch, save and reload
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("width", [48, 64], ids=["width-64-to-48", "same-width"])
@pytest.mark.parametrize("feature_loss", FEATURE_LOSSES)
def test_one_distillation_step_each_loss_then_save_and_reload(checkpoints, tmp_path, feature_loss, width):
    dataset, teacher_dir, students = checkpoints
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir, **NO_DROPOUT).eval()
    student = AutoModelForSequenceClassification.from_pretrained(students[width], **NO_DROPOUT)
    tokenizer = AutoTokenizer.from_pretrained(students[width])
    check_tokenizers_compatible(AutoTokenizer.from_pretrained(teacher_dir), tokenizer, dataset.train.texts)
    mapping = select_layers("none" if feature_loss == "none" else "uniform", 2, 4)
    loss = DistillationLossConfig(alpha=0.5, temperature=2.0, beta=1.0, feature_loss=feature_loss)
    torch.manual_seed(0)
    projections = LayerProjections(2, width, 64) if loss.needs_projections else None
    initial_student = copy.deepcopy(student)
    initial_projections = copy.deepcopy(projections)
    config = TrainConfig(epochs=1, batch_size=32, learning_rate=1e-3, eval_each_epoch=False, warmup_ratio=0.0)
    max_length, seed = 24, 5
    with RunStore(tmp_path / "run", kind="student", settings={"feature_loss": feature_loss, "width": width}) as store:
        result, _ = train_model(student, tokenizer, dataset, config,
                                FitSettings(seed, max_length, RuntimeConfig(device="cpu", progress=False)),
                                distillation=Distillation(teacher, mapping, loss, projections=projections), store=store)
    assert result.steps == 1

    # the loss of that one step, recomputed independently from the initial weights
    train = encode_split(tokenizer, dataset.train, max_length)
    batch = collate(train, epoch_order(len(train), seed, 0), tokenizer.pad_token_id)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        s_out = initial_student.train()(**inputs, output_hidden_states=True)
        t_out = teacher(**inputs, output_hidden_states=True)
    zs, zt = s_out.logits.double().numpy(), t_out.logits.double().numpy()
    labels = batch["labels"].numpy()

    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    ce = -log_softmax(zs)[np.arange(len(labels)), labels].mean()
    lp_s, lp_t = log_softmax(zs / 2.0), log_softmax(zt / 2.0)
    kd = 4.0 * (np.exp(lp_t) * (lp_t - lp_s)).sum(-1).mean()
    if feature_loss == "none":
        feature = 0.0
    else:
        weights = ([(m.weight.detach().double().numpy(), m.bias.detach().double().numpy())
                    for m in initial_projections.maps] if projections is not None else None)
        feature = _np_feature(feature_loss, [s_out.hidden_states[s].double().numpy() for s, _ in mapping.pairs],
                              [t_out.hidden_states[t].double().numpy() for _, t in mapping.pairs],
                              batch["attention_mask"].numpy(), weights)
        assert feature > 0
    history = result.history[-1]
    assert history["train_ce"] == pytest.approx(ce, rel=1e-4)
    assert history["train_kd"] == pytest.approx(kd, rel=1e-3, abs=1e-6)
    assert history["train_feature"] == pytest.approx(feature, rel=1e-3, abs=1e-7)
    assert history["train_loss"] == pytest.approx(0.5 * ce + 0.5 * kd + feature, rel=1e-3)

    # the step changed the student (and the projection), and the teacher not at all
    changed = [n for n, p in student.named_parameters() if not torch.equal(p, initial_student.state_dict()[n])]
    assert changed
    if projections is not None:
        assert not torch.equal(projections.maps[0].weight, initial_projections.maps[0].weight)
    fresh_teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
    assert all(torch.equal(a, b) for a, b in zip(teacher.state_dict().values(), fresh_teacher.state_dict().values()))

    # the step saved the student with save_pretrained_atomic: the reloaded model gives the same logits
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "model").eval()
    reloaded_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "run" / "model")
    texts = dataset.test.texts[:8]
    encoded = reloaded_tokenizer(texts, padding=True, return_tensors="pt")
    assert torch.equal(encoded["input_ids"], tokenizer(texts, padding=True, return_tensors="pt")["input_ids"])
    with torch.no_grad():
        assert torch.equal(student.eval()(**encoded).logits, reloaded(**encoded).logits)
    assert reloaded.config.hidden_size == width and reloaded.config.num_hidden_layers == 2


def test_tokenizer_mismatch_is_detected_with_a_clear_error(checkpoints, tmp_path):
    dataset, teacher_dir, _ = checkpoints
    alien_dir = build_tiny_checkpoint(tmp_path / "alien", "roberta", label_names=dataset.label_names, num_layers=2,
                                      hidden_size=48, num_heads=4, texts=dataset.train.texts[:40], vocab_size=300)
    teacher_tokenizer, alien_tokenizer = AutoTokenizer.from_pretrained(teacher_dir), AutoTokenizer.from_pretrained(alien_dir)
    with pytest.raises(ValueError, match="split the text differently") as info:
        check_tokenizers_compatible(teacher_tokenizer, alien_tokenizer, dataset.train.texts)
    assert "teacher:" in str(info.value) and "student:" in str(info.value)

    plan = EndToEndPlan(
        preset="quick",
        teacher=ModelSource("teacher", "hub", str(teacher_dir)),
        students=(ModelSource("alien", "hub", str(alien_dir)),),
        runs=(StudentRun("alien-logits", "alien", "none", "none"),),
    )
    config = get_preset("quick", teacher__train__epochs=1, runtime__progress=False)
    runner = EndToEnd(config, tmp_path / "out", plan=plan, dataset=dataset, log=None)
    teacher = runner.train_teacher()
    choice = runner.choose_layers(teacher, runner.profile(teacher))
    with pytest.raises(ValueError, match="tokenizers split the text differently"):
        runner.train_student("alien-logits", teacher, choice)
    assert not (tmp_path / "out" / "students" / "alien-logits" / "result.json").exists()


# --------------------------------------------------------------------------------------------
# Plans, layer choice vs the blog
# --------------------------------------------------------------------------------------------

def test_plans_are_data_and_validate():
    full = plan_for_preset("full")
    assert full.teacher.ref == "roberta-large" and (full.teacher.num_layers, full.teacher.hidden_size) == (24, 1024)
    refs = {s.ref: (s.num_layers, s.hidden_size) for s in full.students if s.kind == "hub"}
    assert refs == {"roberta-base": (12, 768), "distilroberta-base": (6, 768)}
    assert any(s.kind == "from-teacher" for s in full.students)
    for plan in PLANS.values():
        losses = {r.feature_loss for r in plan.runs}
        assert {"none", "spectral", "spectral-projection"} <= losses
        assert any(r.strategy == "uniform" for r in plan.runs)
    quick = plan_for_preset(get_preset("quick"))
    assert [s.name for s in quick.students] != [s.name for s in full.students]
    assert [r.strategy for r in quick.runs] == [r.strategy for r in full.runs]  # same comparison, tiny models
    with pytest.raises(ValueError, match="logits-only"):
        StudentRun("bad", "x", "spectral-ends", "none")
    with pytest.raises(ValueError, match="not one of"):
        EndToEndPlan("quick", quick.teacher, quick.students, (StudentRun("r", "nobody", "none", "none"),))
    with pytest.raises(ValueError, match="no end-to-end plan"):
        plan_for_preset("huge")


def test_blog_comparison_and_layer_formatting():
    assert format_layers(BLOG_LAYERS) == "1-9, 21-23"
    assert format_layers([4, 2, 3, 8]) == "2-4, 8"
    u_shape = [0.5] + [1.0 - 0.02 * l for l in range(1, 13)] + [0.5 + 0.04 * l for l in range(1, 13)]
    chosen = select_layers("spectral-ends", 12, 24, u_shape).teacher_layers
    comparison = blog_comparison(chosen, 24)
    assert comparison["comparable"] and comparison["overlap_count"] == len(set(chosen) & set(BLOG_LAYERS))
    assert sorted(comparison["overlap"] + comparison["only_blog"]) == list(BLOG_LAYERS)
    assert not blog_comparison([1, 8], 8)["comparable"]


# --------------------------------------------------------------------------------------------
# The pipeline: `spectralkd end-to-end --preset quick` through cli.main, then resume
# --------------------------------------------------------------------------------------------

REDUCED_RUNS = ("tiny-4x48-spectral", "tiny-4x48-spectral-proj", "tiny-2x48-logits", "from-teacher-2-spectral")


def _predict(model, tokenizer, texts, max_length):
    predictions = []
    model.eval()
    with torch.no_grad():
        for text in texts:
            encoded = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
            predictions.append(int(model(**encoded).logits.argmax(-1)))
    return np.array(predictions)


def test_cli_distill_quick_writes_summary_and_model_card_then_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # keep cli._setup_threads from raising the thread count
    monkeypatch.setitem(end_to_end.PLANS, "quick", PLANS["quick"].with_runs(REDUCED_RUNS))
    out = tmp_path / "run"
    assert cli.main(["end-to-end", "--preset", "quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "# Model card" in printed

    summary = json.loads((out / "summary.json").read_text())
    card = (out / "model_card.md").read_text()
    assert summary["model_card_markdown"].strip() == card.strip()
    preset = get_preset("quick", runtime__progress=False)
    dataset = embedded_intents()
    teacher = summary["teacher"]
    assert (teacher["blocks"], teacher["width"]) == (8, 64)
    assert [s["name"] for s in summary["students"]] == list(REDUCED_RUNS) and not summary["missing_runs"]
    for name in ("intensity.json", "intensity.png", "layers.json", "layers.png", "model/config.json"):
        assert (out / "teacher" / name).exists(), name
    assert "parameters" in card and "latency" in card and teacher["device"] in card
    for row in summary["students"]:
        assert row["name"] in card and row["name"] in printed
        test = row["metrics"]["test"]
        assert test["n"] == len(dataset.test)
        assert row["retained"] == pytest.approx(headline(test) / headline(teacher["metrics"]["test"]))
        assert row["parameters"] > 0 and row["latency_ms"] > 0 and math.isfinite(row["speedup"])
        assert (out / "students" / row["name"] / "result.json").exists()
        assert not (out / "students" / row["name"] / "checkpoint.pt").exists()
    by_name = {row["name"]: row for row in summary["students"]}
    # width mismatch 64 -> 48 handled both ways
    assert by_name["tiny-4x48-spectral"]["width_mismatch"] and "pooled 64->48" in by_name["tiny-4x48-spectral"]["width_handling"]
    assert "projection 48->64" in by_name["tiny-4x48-spectral-proj"]["width_handling"]
    assert by_name["tiny-4x48-spectral-proj"]["projection_parameters"] == 4 * (48 * 64 + 64)
    assert by_name["tiny-4x48-spectral"]["parameters"] < teacher["parameters"]
    # the chosen layers are the layer-choice file's, and the from-teacher student copies them
    layers = json.loads((out / "teacher" / "layers.json").read_text())
    chosen_4 = layers["by_depth"]["4"]["layers"]["spectral-ends"]
    assert by_name["tiny-4x48-spectral"]["teacher_layers"] == chosen_4
    expected = select_layers("spectral-ends", 4, 8, layers["intensities"]).teacher_layers
    assert chosen_4 == expected
    assert by_name["from-teacher-2-spectral"]["init_layers"] == layers["by_depth"]["2"]["layers"]["spectral-ends"]
    assert not layers["by_depth"]["4"]["blog"]["comparable"]

    # the saved student is the evaluated one: re-score it with a hand-written loop
    model_dir = out / "students" / "tiny-4x48-spectral" / "model"
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    predictions = _predict(model, tokenizer, dataset.test.texts, preset.data.max_length)
    accuracy = float((predictions == np.array(dataset.test.labels)).mean())
    assert accuracy == pytest.approx(by_name["tiny-4x48-spectral"]["metrics"]["test"]["overall_accuracy"])

    # run again: every finished step is reused (nothing retrained), same numbers
    stamps = {p: p.stat().st_mtime_ns for p in (out / "students").glob("*/result.json")}
    again = run_end_to_end(preset, out, plan=PLANS["quick"].with_runs(REDUCED_RUNS), log=None)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert [r["metrics"] for r in again["students"]] == [r["metrics"] for r in summary["students"]]

    # a changed run definition under the same name is refused, not silently reused
    changed = dataclasses.replace(PLANS["quick"], runs=(StudentRun("tiny-4x48-spectral", "tiny-4x48", "uniform", "spectral"),))
    runner = EndToEnd(preset, out, plan=changed, log=None)
    teacher = runner.train_teacher()
    choice = runner.choose_layers(teacher, runner.profile(teacher))
    with pytest.raises(ValueError, match="another run definition"):
        runner.train_student("tiny-4x48-spectral", teacher, choice)
    # and another preset's settings in the same directory are refused
    with pytest.raises(ValueError, match="other settings"):
        EndToEnd(get_preset("quick", student__train__epochs=1), out, log=None)
