"""The losses subpackage: feature-loss registry, validated config, module layout."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import spectralkd_tutorial.losses as losses
from spectralkd_tutorial.analysis import spectral
from spectralkd_tutorial.course import text_analysis
from spectralkd_tutorial.losses import (
    FEATURE_LOSS_REGISTRY,
    FEATURE_LOSSES,
    DistillationLossConfig,
    LayerProjections,
    distillation_loss,
    get_feature_loss,
    register_feature_loss,
)

BUILT_IN = ("spectral", "mse", "projection", "spectral-projection", "pooled-spectral", "none")


def test_built_in_feature_losses_are_registered_in_order():
    assert tuple(FEATURE_LOSSES) == BUILT_IN
    assert FEATURE_LOSSES == BUILT_IN and repr(FEATURE_LOSSES) == repr(BUILT_IN)
    assert set(FEATURE_LOSS_REGISTRY) == set(BUILT_IN)
    assert "spectral" in FEATURE_LOSSES and "fft" not in FEATURE_LOSSES and ["x"] not in FEATURE_LOSSES
    assert FEATURE_LOSSES[0] == "spectral" and FEATURE_LOSSES[-1] == "none"
    needs = {name: entry.needs_projections for name, entry in FEATURE_LOSS_REGISTRY.items()}
    assert needs == {"spectral": False, "mse": False, "projection": True, "spectral-projection": True,
                     "pooled-spectral": False, "none": False}
    token_level = {name for name, entry in FEATURE_LOSS_REGISTRY.items() if entry.token_level}
    assert token_level == {"spectral", "mse", "projection", "spectral-projection"}
    for name in BUILT_IN:
        assert DistillationLossConfig(feature_loss=name).needs_projections == needs[name]


def test_public_names_are_re_exported():
    for name in losses.__all__:
        assert hasattr(losses, name), name
    assert {"logit_kd_loss", "spectral_alignment_loss", "hidden_mse_loss", "LayerProjections",
            "projected_spectral_alignment_loss", "spectral_as_weighted_spatial_mse", "pool_teacher_channels",
            "check_tokenizers_compatible", "DistillationLossConfig", "distillation_loss", "FEATURE_LOSSES",
            "FEATURE_LOSS_REGISTRY", "register_feature_loss"} <= set(losses.__all__)


def test_unknown_feature_loss_lists_the_registered_names():
    with pytest.raises(ValueError, match="unknown feature_loss 'fft'.*'spectral', 'mse'"):
        get_feature_loss("fft")
    with pytest.raises(ValueError, match="feature_loss must be one of .*'spectral-projection'"):
        DistillationLossConfig(feature_loss="fft")
    with pytest.raises(ValueError, match="feature_loss"):
        DistillationLossConfig(feature_loss=None)  # type: ignore[arg-type]


@pytest.fixture
def cleanup_registry():
    before = dict(FEATURE_LOSS_REGISTRY)
    yield
    FEATURE_LOSS_REGISTRY.clear()
    FEATURE_LOSS_REGISTRY.update(before)


def test_a_new_feature_loss_is_one_function_plus_one_line(cleanup_registry):
    @register_feature_loss("mean-gap")
    def mean_gap(student_hidden, teacher_hidden, attention_mask, *, projections=None, grid=None):
        return torch.stack([(s.float().mean() - t.float().mean()).abs() for s, t in zip(student_hidden, teacher_hidden)]).mean()

    assert "mean-gap" in FEATURE_LOSSES and FEATURE_LOSSES[-1] == "mean-gap"  # the view is live
    gen = torch.Generator().manual_seed(0)
    zs, zt, y = torch.randn(3, 4, generator=gen), torch.randn(3, 4, generator=gen), torch.tensor([0, 1, 2])
    s, t = [torch.randn(3, 5, 6, generator=gen)], [torch.randn(3, 5, 6, generator=gen) + 1.0]
    out = distillation_loss(zs, zt, y, s, t, None, DistillationLossConfig(feature_loss="mean-gap", beta=2.0))
    expected = (s[0].mean() - t[0].mean()).abs()
    assert out["feature"].item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="needs student_hidden and teacher_hidden"):
        distillation_loss(zs, zt, y, None, None, None, DistillationLossConfig(feature_loss="mean-gap"))
    with pytest.raises(ValueError, match="already registered"):
        register_feature_loss("mean-gap")(mean_gap)
    register_feature_loss("mean-gap", replace=True)(mean_gap)
    with pytest.raises(ValueError, match="non-empty string"):
        register_feature_loss("")


def test_registered_projection_loss_needs_projections(cleanup_registry):
    @register_feature_loss("projected-mean", needs_projections=True)
    def projected_mean(student_hidden, teacher_hidden, attention_mask, *, projections=None, grid=None):
        return projections(student_hidden)[0].mean() * 0

    config = DistillationLossConfig(feature_loss="projected-mean")
    assert config.needs_projections
    zs, zt, y = torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([0, 1])
    s, t = [torch.zeros(2, 4, 2)], [torch.zeros(2, 4, 3)]
    with pytest.raises(ValueError, match="LayerProjections"):
        distillation_loss(zs, zt, y, s, t, None, config)
    out = distillation_loss(zs, zt, y, s, t, None, config, LayerProjections(1, 2, 3))
    assert out["feature"].item() == 0.0


def test_the_engine_asks_the_loss_whether_it_needs_hidden_states(cleanup_registry):
    from spectralkd_tutorial.analysis.selection import select_layers
    from spectralkd_tutorial.engine.training import Distillation

    @register_feature_loss("logits-only-too", needs_hidden=False, takes=())
    def nothing(student_hidden, teacher_hidden, attention_mask):
        return torch.zeros(())

    pairs, teacher = select_layers("uniform", 2, 4), torch.nn.Linear(1, 1)
    expected = {("logits-only-too", 1.0): False, ("none", 1.0): False, ("mse", 1.0): True, ("mse", 0.0): False,
                ("spectral", 0.5): True}
    for (name, beta), needs in expected.items():
        config = DistillationLossConfig(feature_loss=name, beta=beta)
        assert Distillation(teacher, pairs, config).needs_hidden == needs, (name, beta)
        assert config.needs_hidden == needs == (FEATURE_LOSS_REGISTRY[name].needs_hidden and beta > 0), (name, beta)
        assert not Distillation(teacher, select_layers("none", 2, 4), config).needs_hidden  # no pairs: nothing to read


def test_combined_loss_has_no_if_chain_over_names():
    source = Path(losses.combined.__file__).read_text()
    for name in BUILT_IN:
        assert f'== "{name}"' not in source and f"== '{name}'" not in source


@pytest.mark.parametrize(
    "field, bad",
    [
        ("alpha", -0.1), ("alpha", 1.5), ("alpha", float("nan")), ("alpha", "0.5"),
        ("temperature", 0.0), ("temperature", -1.0), ("temperature", float("inf")), ("temperature", float("nan")),
        ("beta", -1.0), ("beta", float("inf")), ("feature_loss", "fft"),
        ("label_smoothing", 1.0), ("label_smoothing", -0.1),
    ],
)
def test_config_is_validated_on_construction_and_on_assignment(field, bad):
    with pytest.raises(ValueError, match=field):
        DistillationLossConfig(**{field: bad})
    config = DistillationLossConfig()
    good = getattr(config, field)
    with pytest.raises(ValueError, match=field):
        setattr(config, field, bad)
    assert getattr(config, field) == good  # the old value is kept
    config.validate()


def test_config_accepts_valid_assignments():
    config = DistillationLossConfig()
    config.alpha, config.temperature, config.beta, config.feature_loss = 1, 4.0, 0, "mse"
    assert (config.alpha, config.temperature, config.beta, config.feature_loss) == (1, 4.0, 0, "mse")


def test_layout_rules():
    """No loss module over 500 lines, no function over 80 lines, every function annotated."""
    for path in Path(losses.__file__).parent.glob("*.py"):
        source = path.read_text()
        assert len(source.splitlines()) <= 500, path.name
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno - node.lineno + 1 <= 80, f"{path.name}:{node.name}"
                assert node.returns is not None or node.name == "__init__", f"{path.name}:{node.name} return type"


def test_one_bins_check_shared_by_spectral_and_text_analysis():
    assert text_analysis.check_bins is spectral.check_bins
    assert not hasattr(text_analysis, "_check_bins") and not hasattr(spectral, "_check_bins")
    with pytest.raises(ValueError, match="bins=9 is out of range"):
        spectral.check_bins(9, 8)
    assert spectral.check_bins(None, 8) == 8 and spectral.check_bins(3, 8) == 3


def test_label_smoothing_has_one_place_per_trained_model(tmp_path, capsys):
    """A teacher's CE is smoothed by teacher.train.label_smoothing, a student's (a term of the distillation
    loss) by loss.label_smoothing; student.train.label_smoothing, which nothing reads, is refused."""
    from spectralkd_tutorial.cli.app import main
    from spectralkd_tutorial.config.presets import get_preset

    config = get_preset("quick", **{"teacher.train.label_smoothing": 0.1, "loss.label_smoothing": 0.2})
    assert (config.teacher.train.label_smoothing, config.loss.label_smoothing) == (0.1, 0.2)
    with pytest.raises(ValueError, match="student.train.label_smoothing=0.1 is not used.*smoothed by loss.label_smoothing; set that"):
        get_preset("quick", **{"student.train.label_smoothing": 0.1})
    path = tmp_path / "config.toml"
    path.write_text("[student.train]\nlabel_smoothing = 0.1\n")
    capsys.readouterr()
    code = main(["distill", "--preset", "quick", "--no-progress", "--config", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "student.train.label_smoothing=0.1 is not used" in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()
