"""The training loop: resume equals an uninterrupted run, NaN stops, the teacher cache is exact."""

from __future__ import annotations

import copy

import pytest
import torch

from spectralkd_tutorial.data import embedded_intents
from dataclasses import asdict

from spectralkd_tutorial.config.sections import DistillationLossConfig, RuntimeConfig, TrainConfig
from spectralkd_tutorial.engine.batching import encode_split
from spectralkd_tutorial.engine.evaluation import evaluate
from spectralkd_tutorial.engine.run_store import RunStore
from spectralkd_tutorial.engine.teacher_cache import TeacherCache
from spectralkd_tutorial.engine.callbacks import Callback, StopAfterBatches
from spectralkd_tutorial.engine.dynamics_profile import DynamicsProfile
from spectralkd_tutorial.engine.training import Distillation, FitSettings
from spectralkd_tutorial.engine.training import fit as core_fit
from spectralkd_tutorial.pipelines.steps import train_model
from spectralkd_tutorial.models.loading import load_classifier, student_from_teacher
from spectralkd_tutorial.analysis.selection import select_layers


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import os

    os.environ["SPECTRALKD_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    dataset = embedded_intents().subset(train=64, validation=24, test=24)
    teacher, tokenizer = load_classifier("tiny-roberta", dataset.label_names,
                                         tiny_sizes=dict(num_layers=4, hidden_size=32, num_heads=4))
    teacher.eval()
    mapping = select_layers("last", 2, 4)
    student = student_from_teacher(teacher, [2, 4])
    return dataset, teacher, tokenizer, mapping, student


def _config(**kw):
    values = dict(epochs=2, learning_rate=1e-3, batch_size=16, max_length=24, seed=3, dynamics_samples=8)
    values.update(kw)
    return values


def fit(model, tokenizer, dataset, values, *, teacher=None, mapping=None, loss_config=None, output_dir=None,
        stop_after_steps=None, teacher_cache=None, save_model=True):
    """The loop through its public API: a TrainConfig, a Distillation, a RunStore, callbacks (the
    dynamics profile, a stop); with a store, the steps' ``train_model`` (it also writes the run's files).
    Returns the TrainResult and the dynamics records."""
    values = dict(values)
    seed, max_length, dynamics = values.pop("seed"), values.pop("max_length"), values.pop("dynamics_samples")
    train = TrainConfig(**values)
    distillation = (Distillation(teacher, mapping, loss_config or DistillationLossConfig(), cache=teacher_cache)
                    if teacher is not None else None)
    settings = FitSettings(seed, max_length, RuntimeConfig(progress=False))
    if output_dir is None:
        profile = DynamicsProfile(dynamics)
        return core_fit(model, tokenizer, dataset, train, settings, distillation=distillation,
                        callbacks=[profile]), profile.records
    with RunStore(output_dir, kind="test", settings={"train": asdict(train), "seed": seed, "max_length": max_length}) as store:
        if stop_after_steps:  # the interruption: the dynamics profile and the stop callback
            return core_fit(model, tokenizer, dataset, train, settings, distillation=distillation, store=store,
                            callbacks=[DynamicsProfile(dynamics), StopAfterBatches(stop_after_steps)]), []
        return train_model(model, tokenizer, dataset, train, settings, distillation=distillation, store=store,
                           dynamics_samples=dynamics, save_model=save_model)


def _state_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_after_interruption_reaches_the_same_result(setup, tmp_path):
    dataset, teacher, tokenizer, mapping, student = setup
    loss = DistillationLossConfig(feature_loss="spectral")
    full = copy.deepcopy(student)
    result_full, dynamics_full = fit(full, tokenizer, dataset, _config(), teacher=teacher, mapping=mapping,
                                     loss_config=loss, output_dir=tmp_path / "full")
    interrupted = copy.deepcopy(student)
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, tokenizer, dataset, _config(), teacher=teacher, mapping=mapping, loss_config=loss,
            output_dir=tmp_path / "resumed", stop_after_steps=3)  # mid-epoch (4 batches per epoch)
    torch.manual_seed(12345)  # a different global RNG state must not matter after resume
    resumed = copy.deepcopy(student)
    result_resumed, dynamics_resumed = fit(resumed, tokenizer, dataset, _config(), teacher=teacher, mapping=mapping,
                                           loss_config=loss, output_dir=tmp_path / "resumed")
    assert result_resumed.resumed_from_step == 3
    assert _state_equal(full, resumed)
    assert result_full.metrics == result_resumed.metrics
    assert [h["train_loss"] for h in result_full.history] == pytest.approx([h["train_loss"] for h in result_resumed.history])
    # what a run leaves: the final model, metrics.json; no temporary files
    assert (tmp_path / "resumed" / "metrics.json").exists()
    assert (tmp_path / "resumed" / "model" / "config.json").exists()
    assert not list((tmp_path / "resumed").glob("*.tmp"))
    # distillation dynamics: one profile before training and one per epoch, every student layer
    assert [d["epoch"] for d in dynamics_full] == [0.0, 1.0, 2.0]
    assert all(len(d["intensities"]) == 3 for d in dynamics_full)
    assert dynamics_resumed == dynamics_full  # the profile before training came back from the checkpoint


class HookLog(Callback):
    """Writes down every hook the loop calls, with where the loop stands."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_train_begin(self, loop) -> None:
        self.calls.append(("begin", loop.batch_index))

    def on_step(self, loop) -> None:
        self.calls.append(("step", loop.batch_index, loop.stepped, sorted(loop.batch_values)))

    def on_epoch_end(self, loop) -> None:
        self.calls.append(("epoch", loop.history[-1]["epoch"], "validation" in loop.history[-1]))

    def on_train_end(self, loop) -> None:
        self.calls.append(("end", loop.batch_index))


def test_callbacks_are_called_at_the_four_points(setup):
    """64 rows, batches of 16, 2 epochs, 2 batches per optimizer step: 8 batches, a step after every
    second, an epoch end after batches 4 and 8; ``on_train_end`` also after an error."""
    dataset, teacher, tokenizer, mapping, student = setup
    train = TrainConfig(epochs=2, learning_rate=1e-3, batch_size=16, gradient_accumulation=2)
    log = HookLog()
    core_fit(copy.deepcopy(student), tokenizer, dataset, train, FitSettings(3, 24, RuntimeConfig(progress=False)),
             distillation=Distillation(teacher, mapping), callbacks=[log])
    parts = sorted(["loss", "ce", "kd", "feature"])
    expected = [("begin", 0)]
    for batch in range(1, 9):
        expected.append(("step", batch, batch % 2 == 0, parts))
        if batch % 4 == 0:
            expected.append(("epoch", batch / 4, True))
    assert log.calls == [*expected, ("end", 8)]
    broken, failed = copy.deepcopy(student), HookLog()
    with torch.no_grad():
        broken.classifier.out_proj.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError):
        core_fit(broken, tokenizer, dataset, train, callbacks=[failed])
    assert failed.calls == [("begin", 0), ("end", 0)]


def test_resume_with_other_settings_is_refused(setup, tmp_path):
    dataset, teacher, tokenizer, mapping, student = setup
    model = copy.deepcopy(student)
    with pytest.raises(KeyboardInterrupt):
        fit(model, tokenizer, dataset, _config(), output_dir=tmp_path, stop_after_steps=2)
    with pytest.raises(ValueError, match="other settings"):
        fit(copy.deepcopy(student), tokenizer, dataset, _config(batch_size=8), output_dir=tmp_path)


def test_teacher_cache_gives_the_same_training(setup):
    dataset, teacher, tokenizer, mapping, student = setup
    config = _config(epochs=1, dynamics_samples=0)
    loss = DistillationLossConfig(feature_loss="spectral", beta=5.0)
    a, b = copy.deepcopy(student), copy.deepcopy(student)
    fit(a, tokenizer, dataset, config, teacher=teacher, mapping=mapping, loss_config=loss, save_model=False)
    cache = TeacherCache.build(teacher, encode_split(tokenizer, dataset.train, config["max_length"]), [0, 1, 2, 3, 4],
                               tokenizer.pad_token_id, progress=False)
    fit(b, tokenizer, dataset, config, teacher=teacher, mapping=mapping, loss_config=loss, save_model=False,
        teacher_cache=cache)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, atol=2e-5, rtol=1e-4, msg=name)
    with pytest.raises(ValueError, match="lacks teacher layers"):
        small = TeacherCache.build(teacher, encode_split(tokenizer, dataset.train, 24), [1], tokenizer.pad_token_id,
                                   progress=False)
        fit(copy.deepcopy(student), tokenizer, dataset, config, teacher=teacher, mapping=mapping, loss_config=loss,
            teacher_cache=small)


def test_feature_losses_change_training(setup):
    """With beta > 0 the feature loss must influence the weights (else the ablation measures nothing)."""
    dataset, teacher, tokenizer, mapping, student = setup
    config = _config(epochs=1, dynamics_samples=0)
    logits_only, spectral = copy.deepcopy(student), copy.deepcopy(student)
    fit(logits_only, tokenizer, dataset, config, teacher=teacher, mapping=mapping,
        loss_config=DistillationLossConfig(feature_loss="none"), save_model=False)
    fit(spectral, tokenizer, dataset, config, teacher=teacher, mapping=mapping,
        loss_config=DistillationLossConfig(feature_loss="spectral", beta=10.0), save_model=False)
    assert not _state_equal(logits_only, spectral)


def test_non_finite_loss_stops_with_a_clear_error(setup):
    dataset, teacher, tokenizer, mapping, student = setup
    broken = copy.deepcopy(student)
    with torch.no_grad():
        broken.classifier.out_proj.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite"):
        fit(broken, tokenizer, dataset, _config(epochs=1), save_model=False)
    with pytest.raises(FloatingPointError, match="non-finite"):
        fit(copy.deepcopy(broken), tokenizer, dataset, _config(epochs=1), teacher=teacher, mapping=mapping,
            loss_config=DistillationLossConfig(), save_model=False)


def test_fine_tuning_learns_the_embedded_intents(setup):
    dataset, _, tokenizer, _, _ = setup
    full = embedded_intents()
    model, tokenizer = load_classifier("tiny-roberta", full.label_names,
                                       tiny_sizes=dict(num_layers=2, hidden_size=32, num_heads=4))
    before = evaluate(model, tokenizer, full, "validation")
    fit(model, tokenizer, full, _config(epochs=6, learning_rate=3e-3, batch_size=32, dynamics_samples=0), save_model=False)
    after = evaluate(model, tokenizer, full, "validation")
    chance = 1 / full.num_labels
    assert after["accuracy"] > max(before["accuracy"] + 0.2, 3 * chance)


def test_bad_config_values():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig(learning_rate=-1)
