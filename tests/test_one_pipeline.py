"""One pipeline: the grid, ``distill``, the study and chapter 5 train through ``steps`` and build
their students with the one ``build_student``; one model-card module; one result type per role."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import spectralkd_tutorial
from spectralkd_tutorial.analysis.capture import encoder_blocks
from spectralkd_tutorial.analysis.selection import select_layers
from spectralkd_tutorial.config.sections import StudentConfig
from spectralkd_tutorial.data import embedded_intents
from spectralkd_tutorial.models.loading import load_model_dir, num_blocks
from spectralkd_tutorial.models.students import build_student
from spectralkd_tutorial.models.tiny import build_tiny_checkpoint
from spectralkd_tutorial.pipelines.end_to_end import ModelSource
from spectralkd_tutorial.pipelines.model_card import format_count, format_layers, format_percent

PIPELINES = Path(spectralkd_tutorial.__file__).parent / "pipelines"
#: what only the steps do (train, set up a distillation) and only the one builder does (make a student)
STEP_ONLY = {"fit", "Distillation"}
BUILDER_ONLY = {"student_from_teacher", "student_from_config"}


def calls_outside(root: Path, names: set[str], allowed: set[str]) -> list[str]:
    """``file:line name`` of every call of ``names`` (by name or attribute) in ``root``'s modules other
    than ``allowed`` (paths relative to ``root``)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in names:
                    found.append(f"{relative}:{node.lineno} {name}")
    return found


def test_only_the_steps_train_and_only_the_builder_builds_students():
    assert calls_outside(PIPELINES, STEP_ONLY, {"steps.py"}) == []
    assert calls_outside(PIPELINES, BUILDER_ONLY, set()) == []


def test_the_check_finds_a_pipeline_that_trains_by_itself(tmp_path):
    (tmp_path / "end_to_end").mkdir()
    (tmp_path / "steps.py").write_text("def distil():\n    return fit(1)\n")
    (tmp_path / "end_to_end" / "runner.py").write_text(
        "from x import training\n\ndef run(d):\n    d = Distillation(1)\n    return training.fit(d)\n")
    assert calls_outside(tmp_path, STEP_ONLY, {"steps.py"}) == ["end_to_end/runner.py:4 Distillation",
                                                                "end_to_end/runner.py:5 fit"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    dataset = embedded_intents()
    folder = build_tiny_checkpoint(tmp_path_factory.mktemp("teacher"), "roberta", label_names=dataset.label_names,
                                   num_layers=4, hidden_size=32, num_heads=4, seed=1)
    model, tokenizer = load_model_dir(folder)
    return model, tokenizer, folder, dataset


def test_build_student_copies_the_blocks_its_init_strategy_chooses(teacher):
    model, _, _, _ = teacher
    intensities = [1.0, 0.2, 0.9, 0.1, 0.8]
    student, tokenizer, init = build_student(StudentConfig(model="layers:2", init="spectral-topk"), model, intensities)
    assert tokenizer is None  # it reads the teacher's tokens
    expected = select_layers("spectral-topk", 2, 4, intensities).teacher_layers
    assert init.teacher_layers == expected == [2, 4] and num_blocks(student) == 2
    for i, layer in enumerate(expected):
        for a, b in zip(encoder_blocks(student)[i].state_dict().values(),
                        encoder_blocks(model)[layer - 1].state_dict().values()):
            assert torch.equal(a, b)


def test_build_student_random_and_pretrained(teacher):
    model, _, folder, dataset = teacher
    random_a, tokenizer, init = build_student(StudentConfig(model="random:3x16"), model, seed=5)
    random_b = build_student(StudentConfig(model="random:3x16"), model, seed=5).model
    assert tokenizer is None and init is None
    assert (num_blocks(random_a), random_a.config.hidden_size, random_a.config.num_attention_heads) == (3, 16, 1)
    assert all(torch.equal(a, b) for a, b in zip(random_a.state_dict().values(), random_b.state_dict().values()))
    pretrained, own_tokenizer, init = build_student(StudentConfig(model=str(folder)), model,
                                                    label_names=dataset.label_names)
    assert own_tokenizer is not None and init is None and num_blocks(pretrained) == 4
    assert pretrained.config.num_labels == len(dataset.label_names)
    with pytest.raises(ValueError, match="label_names"):
        build_student(StudentConfig(model=str(folder)), model)


def test_a_config_student_source_states_its_heads():
    ModelSource("s", "config", num_layers=3, hidden_size=192, num_heads=3)
    ModelSource("s", "config", num_layers=3, hidden_size=192)
    with pytest.raises(ValueError, match="3 attention heads"):
        ModelSource("s", "config", num_layers=3, hidden_size=192, num_heads=4)


def test_the_card_formatters():
    assert (format_count(125_000_000), format_count(41_000), format_count(999)) == ("125.0M", "41.0k", "1.0k")
    assert (format_percent(0.9734), format_percent(None), format_percent(float("nan"))) == ("97.34", "n/a", "n/a")
    assert format_layers([4, 2, 3, 8, 21, 22]) == "2-4, 8, 21-22" and format_layers([]) == "none"
