"""Shared fixtures: offline, a private cache for tiny checkpoints, the real data directory."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `pytest -n 2` runs two workers on two cores: one thread each avoids oversubscription, which
# makes small CPU kernels an order of magnitude slower.
import torch  # noqa: E402

torch.set_num_threads(1)

if SHARED_DATA.is_dir():
    os.environ.setdefault("SPECTRALKD_DATA_DIR", str(SHARED_DATA))


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One intra-op thread per test worker (set at import above; re-asserted for every session)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("SPECTRALKD_DATA_DIR", SHARED_DATA))
    if not path.is_dir():
        pytest.skip(f"real data directory {path} not found (set SPECTRALKD_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory):
    """A tiny RoBERTa classifier + tokenizer, saved and reloaded through from_pretrained."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from spectralkd_tutorial.models.tiny import build_tiny_checkpoint

    path = build_tiny_checkpoint(tmp_path_factory.mktemp("tiny-roberta"), "roberta", num_labels=3, num_layers=3,
                                 hidden_size=32, num_heads=4)
    return AutoModelForSequenceClassification.from_pretrained(path), AutoTokenizer.from_pretrained(path)


@pytest.fixture
def disk_full(monkeypatch):
    """``disk_full("results.json")``: from then on, an atomic write onto that file name fails with
    ENOSPC; ``disk_full(None)``: the disk has room again."""
    replace = os.replace

    def arm(name: str | None) -> None:
        if name is None:
            monkeypatch.setattr(os, "replace", replace)
            return

        def failing(source, target, *args, **kwargs):
            if Path(target).name == name:
                raise OSError(errno.ENOSPC, "No space left on device")
            return replace(source, target, *args, **kwargs)

        monkeypatch.setattr(os, "replace", failing)

    return arm


@pytest.fixture
def interrupt_training(monkeypatch):
    """``interrupt_training(9)``: the training loop raises KeyboardInterrupt once 9 batches are done;
    ``interrupt_training(None)``: it trains normally again."""
    from spectralkd_tutorial.engine import training

    train_step = training.train_step

    def arm(after_batches: int | None) -> None:
        if after_batches is None:
            monkeypatch.setattr(training, "train_step", train_step)
            return

        def interrupted(loop):
            if loop.batch_index >= after_batches:
                raise KeyboardInterrupt
            return train_step(loop)

        monkeypatch.setattr(training, "train_step", interrupted)

    return arm


@pytest.fixture(scope="module")
def offline_private_cache(tmp_path_factory):
    """Offline, a private cache of tiny checkpoints, for one test module and its subprocesses."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPECTRALKD_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield
