"""Chapter 2: ViT/DeiT capture, prefix tokens, the patch grid, the explorer widget and the CLI.

References are independent of the package's spectral code: numpy.fft over the (B, C, h, w) grid,
forward hooks on the encoder blocks, and the known layout of a ViT's patch embedding.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spectralkd_tutorial.cli.app import main as cli_main
from spectralkd_tutorial.models.loading import encoder_blocks
from spectralkd_tutorial.analysis.spectral import spectral_intensity
from spectralkd_tutorial.course.vision import (
    bin_magnitude_map,
    digits_data,
    digits_pixels_for,
    is_vision_checkpoint,
    layer_grids,
    patch_grid,
    prefix_token_count,
    profile_shape,
    profile_vision_model,
    tiny_vit,
    tiny_vit_config,
    tokens_to_grid,
    train_vit,
    vision_hidden_states,
)
from spectralkd_tutorial.course.widgets import ViTSpectrumExplorer

SIZES = dict(num_layers=3, hidden_size=32, num_heads=4)


def _random_vit(distilled: bool = False, seed: int = 0, **overrides):
    """A freshly initialised tiny ViT/DeiT whose embeddings are not tiny (std 1 instead of 0.02)."""
    from transformers import DeiTForImageClassificationWithTeacher, ViTForImageClassification

    torch.manual_seed(seed)
    config = tiny_vit_config(distilled=distilled, **{**SIZES, **overrides})
    model = (DeiTForImageClassificationWithTeacher if distilled else ViTForImageClassification)(config).eval()
    with torch.no_grad():
        for name in ("cls_token", "distillation_token", "position_embeddings"):
            parameter = getattr(model.base_model.embeddings, name, None)
            if parameter is not None:
                parameter.normal_()
    return model


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    return torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def numpy_grid_signature(grid: np.ndarray) -> np.ndarray:
    """S[k] = mean over (b, i, j) of |FFT_c(grid)[k]| / C, in float64 with numpy."""
    x = np.asarray(grid, dtype=np.float64)
    return (np.abs(np.fft.fft(x, axis=1)) / x.shape[1]).mean(axis=(0, 2, 3))


# --------------------------------------------------------------------------------------------
# Architecture
# --------------------------------------------------------------------------------------------

def test_prefix_tokens_and_grid():
    from transformers import DeiTForImageClassification, DeiTModel, ViTModel

    vit, deit = _random_vit(), _random_vit(distilled=True)
    assert prefix_token_count(vit) == 1 and prefix_token_count(vit.vit) == 1
    assert prefix_token_count(deit) == 2
    assert prefix_token_count(DeiTModel(deit.config)) == 2
    assert prefix_token_count(DeiTForImageClassification(deit.config)) == 2
    assert prefix_token_count(ViTModel(vit.config)) == 1
    assert patch_grid(vit) == (4, 4) and patch_grid(vit.config) == (4, 4)
    wide = _random_vit(image_size=(8, 12))
    assert patch_grid(wide) == (4, 6)
    hidden = vision_hidden_states(wide, torch.randn(2, 1, 8, 12))
    assert [tuple(h.shape) for h in hidden] == [(2, 1 + 24, 32)] * 4
    grid = tokens_to_grid(hidden[2], 1, (4, 6))
    assert grid.shape == (2, 32, 4, 6)
    # grid[b, :, i, j] is token P + i*w + j
    for i, j in [(0, 0), (1, 5), (3, 2)]:
        assert torch.equal(grid[1, :, i, j], hidden[2][1, 1 + i * 6 + j])
    with pytest.raises(ValueError, match="patch grid"):
        tokens_to_grid(hidden[2], 2, (4, 6))
    with pytest.raises(TypeError, match="vision transformer"):
        patch_grid(object())


def test_grid_orientation_follows_the_image():
    """Light up one image patch: only that grid cell of layer 0 changes (row-major, no transposition)."""
    model = _random_vit()
    base = torch.zeros(1, 1, 8, 8)
    lit = base.clone()
    lit[0, 0, 2:4, 6:8] = 3.0  # patch row 1, column 3 of the 4x4 grid
    difference = (layer_grids(model, lit)[0] - layer_grids(model, base)[0]).abs().sum(dim=1)[0]
    changed = (difference > 1e-6).nonzero().tolist()
    assert changed == [[1, 3]]


def test_hidden_states_are_block_outputs_before_the_final_norm(pixels):
    model = _random_vit()
    captured = []
    blocks = encoder_blocks(model)
    handles = [block.register_forward_hook(lambda m, i, out: captured.append(out[0] if isinstance(out, tuple) else out))
               for block in blocks]
    try:
        hidden = vision_hidden_states(model, pixels)
    finally:
        for handle in handles:
            handle.remove()
    assert len(hidden) == len(blocks) + 1
    for layer, output in enumerate(captured, start=1):
        torch.testing.assert_close(hidden[layer], output)
    with torch.no_grad():
        last = model.vit(pixel_values=pixels).last_hidden_state
    assert not torch.allclose(hidden[-1], last)  # the final LayerNorm comes after
    torch.testing.assert_close(model.vit.layernorm(hidden[-1]), last)


# --------------------------------------------------------------------------------------------
# Capture path == (B, C, H, W) path == numpy
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("distilled", [False, True], ids=["vit", "deit-distilled"])
def test_capture_path_equals_grid_path_and_numpy(pixels, distilled):
    model = _random_vit(distilled=distilled)
    profile = profile_vision_model(model, pixels, batch_size=2, progress=False)  # 3 streamed batches
    assert profile.prefix_tokens == (2 if distilled else 1)
    assert profile.num_tokens == 5 * 16 and profile.num_samples == 5
    grids = layer_grids(model, pixels)
    assert len(profile.layers) == len(grids) == 4
    for layer, grid in zip(profile.layers, grids):
        assert grid.shape == (5, 32, 4, 4)
        assert layer.intensity == pytest.approx(spectral_intensity(grid), rel=1e-5)
        np.testing.assert_allclose(layer.signature, numpy_grid_signature(grid.numpy()), rtol=1e-4, atol=1e-7)
    # the grid path without dropping the prefix would differ (the test can fail)
    hidden = vision_hidden_states(model, pixels)
    with_prefix = spectral_intensity(hidden[0])
    assert abs(with_prefix - profile.layers[0].intensity) > 1e-4 * profile.layers[0].intensity


# --------------------------------------------------------------------------------------------
# Prefix tokens are excluded
# --------------------------------------------------------------------------------------------

def _perturb_block_output(model, token: int):
    """Forward hook on the last block: add a large vector to one token's output (hidden_states[L]).

    ``prepend=True``: transformers 5 records ``hidden_states`` with its own forward hook on each block,
    installed on the first call; ours must run before it for the record to see the perturbation.
    """
    def hook(module, inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = hidden.clone()
        hidden[:, token] += 10.0 * torch.linspace(-1, 1, hidden.shape[-1])
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    return encoder_blocks(model)[-1].register_forward_hook(hook, prepend=True)


@pytest.mark.parametrize("distilled", [False, True], ids=["vit", "deit-distilled"])
def test_prefix_tokens_do_not_count(pixels, distilled):
    model = _random_vit(distilled=distilled)
    prefix = 2 if distilled else 1
    reference = profile_vision_model(model, pixels, progress=False).intensities
    # every prefix token's hidden vector, perturbed at the last layer: nothing changes
    for token in range(prefix):
        handle = _perturb_block_output(model, token)
        try:
            perturbed = profile_vision_model(model, pixels, progress=False).intensities
        finally:
            handle.remove()
        np.testing.assert_allclose(perturbed, reference, rtol=1e-6)
    # the first patch token, perturbed the same way: the last layer changes
    handle = _perturb_block_output(model, prefix)
    try:
        perturbed = profile_vision_model(model, pixels, progress=False).intensities
    finally:
        handle.remove()
    np.testing.assert_allclose(perturbed[:-1], reference[:-1], rtol=1e-6)
    assert abs(perturbed[-1] - reference[-1]) > 1e-3 * reference[-1]
    # the prefix tokens' embeddings (layer 0) do not count either
    with torch.no_grad():
        model.base_model.embeddings.cls_token.add_(5.0)
        if distilled:
            model.base_model.embeddings.distillation_token.add_(-5.0)
    moved = profile_vision_model(model, pixels, progress=False).intensities
    assert moved[0] == pytest.approx(reference[0], rel=1e-6)


# --------------------------------------------------------------------------------------------
# The widget
# --------------------------------------------------------------------------------------------

def test_explorer_sliders_update_the_map_and_signature(pixels):
    model = _random_vit(distilled=True)
    explorer = ViTSpectrumExplorer.from_model(model, pixels, k=1)
    sliders = explorer.sliders
    assert set(sliders) == {"layer", "k", "image"}
    assert sliders["layer"].max == 3 and sliders["k"].max == 15 and sliders["image"].max == 4
    hidden = [h.numpy().astype(np.float64) for h in vision_hidden_states(model, pixels)]
    for layer, k, image in [(2, 5, 3), (0, 0, 0), (3, 15, 4)]:
        sliders["layer"].value, sliders["k"].value, sliders["image"].value = layer, k, image
        patches = hidden[layer][:, 2:, :]  # DeiT: drop [CLS] and the distillation token
        spectrum = np.abs(np.fft.fft(patches, axis=-1)) / patches.shape[-1]
        expected_map = spectrum[image, :, k].reshape(4, 4)
        np.testing.assert_allclose(np.asarray(explorer.map_image.get_array()), expected_map, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(explorer.magnitude_map, expected_map, rtol=1e-5, atol=1e-7)
        direct = bin_magnitude_map(torch.tensor(hidden[layer]), k, prefix_tokens=2, grid=(4, 4), sample=image)
        np.testing.assert_allclose(direct.numpy(), expected_map, rtol=1e-5, atol=1e-7)
        signature = spectrum.mean(axis=(0, 1))[:16]
        np.testing.assert_allclose(explorer.signature_line.get_ydata(), signature, rtol=1e-5)
        x, y = explorer.marker.get_data()
        assert list(x) == [k] and y[0] == pytest.approx(signature[k], rel=1e-5)
        assert explorer.map_image.get_clim() == pytest.approx((expected_map.min(), expected_map.max()), rel=1e-5)
    with pytest.raises(ValueError, match="k=16"):
        explorer.update(k=16)
    assert explorer.k == 15


# --------------------------------------------------------------------------------------------
# Digits, training, the shape of a curve
# --------------------------------------------------------------------------------------------

def test_digits_data_is_a_stratified_normalised_split():
    data = digits_data()
    assert data.train_pixels.shape == (1347, 1, 8, 8) and data.test_pixels.shape == (450, 1, 8, 8)
    assert float(data.train_pixels.min()) == -1.0 and float(data.train_pixels.max()) == 1.0
    assert torch.bincount(data.test_labels).tolist() == pytest.approx([45] * 10, abs=2)
    from sklearn.datasets import load_digits

    first = torch.tensor(load_digits().images[0], dtype=torch.float32) / 8 - 1
    assert any(torch.equal(first, image[0]) for image in (data.train_pixels[0], data.test_pixels[0]))
    big = digits_data(image_size=16, channels=3)
    assert big.test_pixels.shape == (450, 3, 16, 16)


def test_train_vit_learns_something():
    from transformers import ViTForImageClassification

    torch.manual_seed(0)
    data = digits_data()
    model = ViTForImageClassification(tiny_vit_config(num_layers=2, hidden_size=32, num_heads=4))
    before = profile_vision_model(model, data.test_pixels[:32], progress=False).intensities
    result = train_vit(model, data, 2, lr=3e-3, batch_size=32, progress=False)
    history = result["history"]
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[-1]["loss"] < history[0]["loss"] and history[-1]["loss"] < np.log(10)  # below chance CE
    assert result["test_accuracy"] > 0.3  # chance is 0.1
    after = profile_vision_model(model, data.test_pixels[:32], progress=False).intensities
    assert not np.allclose(before, after)


def test_profile_shape_words_follow_the_numbers():
    assert profile_shape([3, 2, 1, 1, 2, 3])["shape"] == "U-shape"
    rising = profile_shape([1, 2, 3, 4, 5])
    assert rising["shape"] == "rising" and rising["hot_layers"] == [2, 3, 4] and rising["hottest"] == 4
    assert profile_shape([5, 4, 3, 2, 1])["shape"] == "falling"
    assert profile_shape([1, 3, 5, 3, 1])["shape"] == "peaked"
    with pytest.raises(ValueError):
        profile_shape([1, 2])


# --------------------------------------------------------------------------------------------
# spectralkd analyze --model <saved tiny ViT>
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("distilled", [False, True], ids=["vit", "deit-distilled"])
def test_cli_analyze_saved_tiny_vit(tmp_path, distilled, capsys):
    checkpoint = tmp_path / "tiny"
    model = tiny_vit(checkpoint, distilled=distilled, **SIZES)
    assert is_vision_checkpoint(checkpoint) and (checkpoint / "preprocessor_config.json").exists()
    out = tmp_path / "out"
    assert cli_main(["analyze", "--model", str(checkpoint), "--out", str(out), "--samples", "12",
                     "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().out
    data = json.loads((out / "intensity.json").read_text())
    assert data["layers"] == [0, 1, 2, 3] and data["prefix_tokens"] == (2 if distilled else 1)
    assert data["num_samples"] == 12 and data["num_tokens"] == 12 * 16
    assert "sklearn digits" in data["metadata"]["images"]
    assert (out / "intensity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the same numbers as the library path on the same images, loaded independently
    from transformers import AutoImageProcessor

    pixels, _ = digits_pixels_for(model, 12, AutoImageProcessor.from_pretrained(checkpoint))
    expected = [spectral_intensity(grid) for grid in layer_grids(model, pixels)]
    np.testing.assert_allclose(data["intensities"], expected, rtol=1e-4)


def test_is_vision_checkpoint_rejects_other_things(tmp_path):
    assert not is_vision_checkpoint(tmp_path)
    assert not is_vision_checkpoint("google/vit-base-patch16-224")  # a hub name is not a local checkpoint
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    assert not is_vision_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text("not json")
    assert not is_vision_checkpoint(tmp_path)


def test_full_path_code_runs_on_a_local_rgb_checkpoint(tmp_path, monkeypatch):
    """The pretrained path (image processor on PIL photos -> profile) on a local 3-channel DeiT; the hub
    loader refuses politely when offline."""
    from PIL import Image

    from spectralkd_tutorial.course.vision import analyze_pretrained_vision, load_hub_images

    checkpoint = tmp_path / "rgb-deit"
    model = tiny_vit(checkpoint, distilled=True, num_channels=3, image_size=16, patch_size=4, **SIZES)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, size=(32, 24, 3), dtype=np.uint8)) for _ in range(5)]
    profile = analyze_pretrained_vision(str(checkpoint), images, batch_size=2, progress=False)
    assert profile.prefix_tokens == 2 and profile.num_tokens == 5 * 16 and len(profile.layers) == 4
    from transformers import AutoImageProcessor

    pixels = AutoImageProcessor.from_pretrained(checkpoint)(images=images, return_tensors="pt")["pixel_values"]
    assert pixels.shape == (5, 3, 16, 16)
    expected = [spectral_intensity(grid) for grid in layer_grids(model, pixels)]
    np.testing.assert_allclose(profile.intensities, expected, rtol=1e-5)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE"):
        load_hub_images(n=2)
