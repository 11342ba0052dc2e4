"""Per-token spectra, sentence vs corpus signatures, profile comparison and the text explorer widget.

The reference everywhere is independent: the model's own ``hidden_states`` run one sentence at a
time (no padding at all), transformed with ``numpy.fft.fft`` in float64 and divided by H.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spectralkd_tutorial.models.loading import load_classifier
from spectralkd_tutorial.pipelines.steps import profile as analyze_model
from spectralkd_tutorial.analysis.spectral import spectral_signature
from spectralkd_tutorial.course.text_analysis import (
    ProfileComparison,
    SentenceSpectra,
    compare_profiles,
    corpus_signature,
    display_token,
    markdown_table,
    mean_of_sentence_signatures,
    plot_profile_comparison,
    plot_sentence_signatures,
    plot_token_energy,
    sentence_signature,
    token_energy_at_bin,
    token_spectra,
    token_spectra_by_layer,
)
from spectralkd_tutorial.course.widgets import TextSpectrumExplorer

LABELS = ["alarm", "weather", "music", "oos"]
# very different lengths, so a batch is heavily padded
TEXTS = [
    "hi",
    "set an alarm for seven tomorrow morning please and make it loud",
    "will it rain?",
    "play something relaxing by a jazz pianist from the fifties or sixties",
    "what's the weather like in paris",
]
ATOL = 2e-5  # float32 model vs float64 reference


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("spectralkd_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPECTRALKD_CACHE_DIR", str(root))
        patch.setenv("HF_HUB_OFFLINE", "1")
        model, tokenizer = load_classifier("tiny-roberta", LABELS, tiny_sizes=dict(num_layers=3, hidden_size=32, num_heads=2))
    return model.eval(), tokenizer


@torch.no_grad()
def _reference(model, tokenizer, text: str, layer: int, max_length: int = 64):
    """(tokens, |FFT_h(X)/H| per token) for one sentence, run alone (no padding), numpy float64."""
    encoded = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
    hidden = model(**encoded, output_hidden_states=True).hidden_states[layer][0].double().numpy()
    amplitude = np.abs(np.fft.fft(hidden, axis=-1)) / hidden.shape[-1]
    return tokenizer.convert_ids_to_tokens(encoded["input_ids"][0].tolist()), amplitude


# --------------------------------------------------------------------------------------------
# token spectra
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layer", [0, 2, 3])
def test_token_spectra_equal_numpy_fft_of_the_hidden_states(tiny, layer):
    model, tokenizer = tiny
    spectra = token_spectra(model, tokenizer, TEXTS, layer, max_length=64, batch_size=8)  # one padded batch
    assert len(spectra) == len(TEXTS)
    for text, item in zip(TEXTS, spectra):
        tokens, expected = _reference(model, tokenizer, text, layer)
        assert isinstance(item, SentenceSpectra) and item.text == text and item.layer == layer
        assert item.tokens == tokens
        assert item.amplitudes.shape == expected.shape == (len(tokens), 32)
        np.testing.assert_allclose(item.amplitudes.double().numpy(), expected, atol=ATOL, rtol=1e-4)
        # the DFT of a real vector is conjugate-symmetric: |F[k]| = |F[H-k]|
        np.testing.assert_allclose(item.amplitudes[:, 1:].numpy(), item.amplitudes[:, 1:].flip(-1).numpy(), atol=1e-6)


def test_padding_tokens_never_appear(tiny):
    model, tokenizer = tiny
    pad = tokenizer.pad_token
    by_layer = token_spectra_by_layer(model, tokenizer, TEXTS, batch_size=len(TEXTS))
    assert sorted(by_layer) == [0, 1, 2, 3]
    lengths = [len(tokenizer(text)["input_ids"]) for text in TEXTS]
    assert len(set(lengths)) > 2, "the texts must differ in length for this test to mean anything"
    for items in by_layer.values():
        for item, n in zip(items, lengths):
            assert pad not in item.tokens
            assert tokenizer.pad_token_id not in item.token_ids
            assert item.num_tokens == n == len(item.tokens) == len(item.special)
            assert item.special[0] and item.special[-1] and not any(item.special[1:-1])  # <s> ... </s>


def test_truncation_follows_max_length(tiny):
    model, tokenizer = tiny
    (item,) = token_spectra(model, tokenizer, [TEXTS[3]], 1, max_length=6)
    assert item.num_tokens == 6


def test_token_energy_at_bin_ranks_tokens(tiny):
    model, tokenizer = tiny
    spectra = token_spectra(model, tokenizer, TEXTS, 2)
    tokens, reference = _reference(model, tokenizer, TEXTS[1], 2)
    for k in (0, 1, 7, 16):  # (bin 0 is the channel mean: ~0 after LayerNorm, so only values are compared)
        ranked = token_energy_at_bin(spectra[1], k)
        positions = [e.position for e in ranked]
        assert sorted(positions) == list(range(len(tokens)))  # every real token once
        values = np.array([e.value for e in ranked])
        assert np.all(np.diff(values) <= 0)  # largest first
        np.testing.assert_allclose(values, np.sort(reference[:, k])[::-1], atol=ATOL)
        np.testing.assert_allclose(values, reference[positions, k], atol=ATOL)
        assert [e.token for e in ranked] == [display_token(tokens[t]) for t in positions]
    top3 = token_energy_at_bin(spectra, 5, top=3)  # over the whole corpus
    everything = np.concatenate([item.at_bin(5).numpy() for item in spectra])
    np.testing.assert_allclose([e.value for e in top3], np.sort(everything)[::-1][:3])
    assert all(not e.special for e in token_energy_at_bin(spectra, 5, skip_special=True))
    with pytest.raises(ValueError, match=r"k=32 .* \[0, 31\]"):
        token_energy_at_bin(spectra[0], 32)
    with pytest.raises(ValueError, match="top"):
        token_energy_at_bin(spectra[0], 1, top=0)


def test_sentence_and_corpus_signatures(tiny):
    model, tokenizer = tiny
    layer = 2
    spectra = token_spectra(model, tokenizer, TEXTS, layer)
    references = [_reference(model, tokenizer, text, layer)[1] for text in TEXTS]
    for item, reference in zip(spectra, references):
        np.testing.assert_allclose(sentence_signature(item).numpy(), reference.mean(axis=0), atol=ATOL)
        np.testing.assert_allclose(item.signature(bins=4).numpy(), reference.mean(axis=0)[:4], atol=ATOL)
    all_tokens = np.concatenate(references)  # token-weighted: long sentences count more
    np.testing.assert_allclose(corpus_signature(spectra).numpy(), all_tokens.mean(axis=0), atol=ATOL)
    per_sentence = np.mean([r.mean(axis=0) for r in references], axis=0)
    np.testing.assert_allclose(mean_of_sentence_signatures(spectra).numpy(), per_sentence, atol=ATOL)
    assert not np.allclose(per_sentence, all_tokens.mean(axis=0), atol=1e-4)
    # the corpus signature is what spectral.py and the profiler compute on the padded batch
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch, output_hidden_states=True).hidden_states[layer]
    masked = spectral_signature(hidden, batch["attention_mask"])
    np.testing.assert_allclose(corpus_signature(spectra).numpy(), masked.numpy(), atol=1e-6)
    profile = analyze_model(model, tokenizer, TEXTS, batch_size=2, progress=False)
    np.testing.assert_allclose(profile.signatures[layer].numpy(), all_tokens.mean(axis=0), atol=ATOL)


def test_bad_inputs_raise(tiny):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match=r"layers \[4\] out of range.*0\.\.3"):
        token_spectra(model, tokenizer, TEXTS, 4)
    with pytest.raises(TypeError, match="list of strings"):
        token_spectra(model, tokenizer, "hello there", 1)
    with pytest.raises(ValueError, match="empty"):
        token_spectra(model, tokenizer, [], 1)
    with pytest.raises(ValueError, match="non-empty string"):
        token_spectra(model, tokenizer, ["ok", "  "], 1)
    with pytest.raises(ValueError, match="no sentence spectra"):
        corpus_signature([])


# --------------------------------------------------------------------------------------------
# profile comparison
# --------------------------------------------------------------------------------------------

def test_compare_profiles(tiny):
    model, tokenizer = tiny
    before = analyze_model(model, tokenizer, TEXTS, progress=False)
    perturbed = type(model)(model.config).eval()
    perturbed.load_state_dict(model.state_dict())
    with torch.no_grad():
        for block in perturbed.roberta.encoder.layer[1:]:
            block.output.dense.weight.mul_(3.0)
    after = analyze_model(perturbed, tokenizer, TEXTS, progress=False)
    comparison = compare_profiles(before, after)
    assert isinstance(comparison, ProfileComparison)
    expected = np.asarray(after.intensities) - np.asarray(before.intensities)
    np.testing.assert_allclose(comparison.change, expected, rtol=1e-12)
    np.testing.assert_allclose(comparison.relative_change, expected / np.asarray(before.intensities), rtol=1e-12)
    assert comparison.layers == [0, 1, 2, 3]
    assert comparison.change[0] == pytest.approx(0.0, abs=1e-9)  # embeddings untouched
    assert comparison.change[1] == pytest.approx(0.0, abs=1e-9)  # block 1 untouched
    b, a = before.signatures.double().numpy(), after.signatures.double().numpy()
    cosine = (b * a).sum(1) / np.linalg.norm(b, axis=1) / np.linalg.norm(a, axis=1)
    np.testing.assert_allclose(comparison.signature_cosine, cosine, rtol=1e-9)
    assert comparison.largest_change() == int(np.argmax(np.abs(expected)))
    rows = comparison.rows(digits=3)
    assert rows[0]["layer"] == 0 and set(rows[0]) >= {"I_before", "I_after", "change", "signature_cosine"}
    table = comparison.to_markdown()
    assert table.count("\n") == 1 + 4 and table.startswith("| layer |")
    assert plot_profile_comparison(comparison).axes
    plain = compare_profiles([1.0, 2.0], [1.5, 1.0])
    assert plain.change == [0.5, -1.0] and plain.relative_change == [0.5, -0.5] and plain.signature_cosine is None
    with pytest.raises(ValueError, match="same architecture"):
        compare_profiles([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(TypeError):
        compare_profiles("abc", [1.0])


def test_markdown_table():
    text = markdown_table([{"a": 1, "b": 0.123456, "c": [1, 2]}, {"a": 2, "b": math.nan, "c": "x|y"}], digits=2)
    assert text.splitlines() == ["| a | b | c |", "|---|---|---|", "| 1 | 0.12 | 1, 2 |", "| 2 | nan | x\\|y |"]


def test_figures(tiny):
    model, tokenizer = tiny
    spectra = token_spectra(model, tokenizer, TEXTS, 1)
    figure = plot_token_energy(spectra[1], 3, top=5)
    assert len(figure.axes[0].patches) == 5
    figure = plot_sentence_signatures(spectra)
    assert len(figure.axes[0].lines) == len(TEXTS) + 1


# --------------------------------------------------------------------------------------------
# widget
# --------------------------------------------------------------------------------------------

def _bar_labels(explorer):
    return [label.get_text() for label in explorer.ax_tokens.get_xticklabels()]


def test_text_explorer_update_matches_numpy(tiny):
    model, tokenizer = tiny
    profile = analyze_model(model, tokenizer, TEXTS, progress=False)
    explorer = TextSpectrumExplorer.from_model(model, tokenizer, TEXTS, corpus=profile, layer=3, k=1, top=None)
    assert explorer.max_k == 16
    sliders = explorer.sliders
    assert set(sliders) == {"layer", "k", "sentence"}
    assert sliders["layer"].min == 0 and sliders["layer"].max == 3 and sliders["k"].max == 16
    sliders["layer"].value = 2
    sliders["k"].value = 5
    sliders["sentence"].value = 3
    assert (explorer.layer, explorer.k, explorer.sentence) == (2, 5, 3)

    tokens, reference = _reference(model, tokenizer, TEXTS[3], 2)
    heights = [bar.get_height() for bar in explorer.bars]
    np.testing.assert_allclose(heights, np.sort(reference[:, 5])[::-1], atol=ATOL)  # ranked, largest first
    positions = [entry.position for entry in explorer.ranked]
    np.testing.assert_allclose(heights, reference[positions, 5], atol=ATOL)
    assert _bar_labels(explorer) == [display_token(tokens[t]) for t in positions]
    # the marker sits on the corpus signature at bin k; the corpus is the masked mean over all tokens
    all_tokens = np.concatenate([_reference(model, tokenizer, text, 2)[1] for text in TEXTS])
    corpus = all_tokens.mean(axis=0)
    x, y = explorer.marker.get_data()
    assert list(x) == [5]
    assert float(np.asarray(y)[0]) == pytest.approx(corpus[5], abs=ATOL)
    np.testing.assert_allclose(explorer.corpus_line.get_ydata(), corpus[:17], atol=ATOL)
    np.testing.assert_allclose(explorer.sentence_line.get_ydata(), reference.mean(axis=0)[:17], atol=ATOL)

    # another layer and bin through the plain update method
    ranked = explorer.update(layer=0, k=0, sentence=0)
    tokens0, reference0 = _reference(model, tokenizer, TEXTS[0], 0)
    np.testing.assert_allclose([bar.get_height() for bar in explorer.bars], np.sort(reference0[:, 0])[::-1], atol=ATOL)
    assert len(ranked) == len(tokens0) == len(explorer.bars)


def test_text_explorer_top_and_default_corpus(tiny):
    model, tokenizer = tiny
    explorer = TextSpectrumExplorer.from_model(model, tokenizer, TEXTS, top=4, k=2, sentence=1)
    assert len(explorer.bars) == 4
    spectra = token_spectra(model, tokenizer, TEXTS, explorer.layer)
    expected = corpus_signature(spectra).double().numpy()
    np.testing.assert_allclose(explorer.corpus_line.get_ydata(), expected[:17], atol=1e-6)


def test_text_explorer_rejects_bad_values(tiny):
    model, tokenizer = tiny
    explorer = TextSpectrumExplorer.from_model(model, tokenizer, TEXTS[:2])
    with pytest.raises(ValueError, match=r"k=17 must be an integer in \[0, 16\]"):
        explorer.update(k=17)
    with pytest.raises(ValueError, match="layer=9"):
        explorer.update(layer=9)
    with pytest.raises(ValueError, match="sentence=2"):
        explorer.update(sentence=2)
    assert (explorer.layer, explorer.k, explorer.sentence) == (3, 1, 0)  # unchanged after errors
    with pytest.raises(ValueError, match="layers"):
        TextSpectrumExplorer(token_spectra_by_layer(model, tokenizer, TEXTS[:2]), np.ones((2, 32)))
    with pytest.raises(ValueError, match="empty"):
        TextSpectrumExplorer({})
