"""CLINC150 ``full`` without a data directory (Colab): the upstream ``data_full.json`` is downloaded
once into the cache with its SHA-256 checked; offline, today's message. The download is mocked: the
fake server answers with the bytes of ``../shared/data/clinc150/data_full.json`` (the same upstream file)."""

from __future__ import annotations

import hashlib
import io

import pytest

from spectralkd_tutorial.data import DataNotAvailableError, load_intent_dataset
from spectralkd_tutorial.data import download


@pytest.fixture
def colab(monkeypatch, tmp_path):
    """No data directory, network allowed, an empty cache; ``colab(body)`` serves ``body`` for every URL."""
    monkeypatch.delenv("SPECTRALKD_DATA_DIR", raising=False)
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPECTRALKD_CACHE_DIR", str(tmp_path / "cache"))
    requests = []

    def serve(body: bytes):
        def urlopen(url, timeout=None):
            requests.append(url)
            return io.BytesIO(body)

        monkeypatch.setattr(download.urllib.request, "urlopen", urlopen)
        return requests

    return serve


def test_the_pinned_checksum_is_that_of_the_upstream_file(data_dir):
    assert hashlib.sha256((data_dir / "clinc150" / "data_full.json").read_bytes()).hexdigest() == \
        download.CLINC150_FULL_SHA256
    assert download.CLINC150_FULL_URL.startswith("https://raw.githubusercontent.com/clinc/oos-eval/")
    assert download.CLINC150_FULL_URL.endswith("/data/data_full.json")


def test_full_is_downloaded_once_checked_and_equals_the_local_copy(colab, data_dir, capsys):
    requests = colab((data_dir / "clinc150" / "data_full.json").read_bytes())
    fetched = load_intent_dataset("clinc150", variant="full")
    said = capsys.readouterr().out
    assert requests == [download.CLINC150_FULL_URL]
    assert "downloading the upstream data_full.json" in said and "CC BY 3.0" in said and "SHA-256 checked" in said
    local = load_intent_dataset("clinc150", variant="full", data_dir=data_dir)
    assert fetched.label_names == local.label_names and fetched.variant == "full"
    for split in ("train", "validation", "test"):
        assert getattr(fetched, split).texts == getattr(local, split).texts
        assert getattr(fetched, split).labels == getattr(local, split).labels
    assert "clinc/oos-eval" in fetched.notes
    again = load_intent_dataset("clinc150", variant="full")  # from the cache: no second request
    assert requests == [download.CLINC150_FULL_URL] and again.train.texts == local.train.texts
    assert "downloading" not in capsys.readouterr().out


def test_a_download_with_another_checksum_is_refused_and_not_kept(colab, data_dir):
    body = (data_dir / "clinc150" / "data_full.json").read_bytes()
    colab(body[:-2] + b" }")
    with pytest.raises(DataNotAvailableError, match="SHA-256 .* not the expected"):
        load_intent_dataset("clinc150", variant="full")
    folder = download.clinc150_cache()
    assert not folder.exists() or not any(folder.iterdir())


def test_offline_fails_with_the_message_it_gives_without_the_download(colab, monkeypatch):
    requests = colab(b"never served")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataNotAvailableError, match="variant 'full' is not on the Hugging Face hub") as error:
        load_intent_dataset("clinc150", variant="full")
    assert "no data directory given" in str(error.value) and requests == []


def test_an_unreachable_network_says_how_to_get_the_data(colab, monkeypatch):
    def refuse(url, timeout=None):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(download.urllib.request, "urlopen", refuse)
    with pytest.raises(DataNotAvailableError, match="Network is unreachable.*SPECTRALKD_DATA_DIR"):
        load_intent_dataset("clinc150", variant="full")


def test_the_workshop_preset_reads_it_without_edits(colab, data_dir):
    from spectralkd_tutorial.config.presets import get_preset
    from spectralkd_tutorial.pipelines.steps import load_data

    requests = colab((data_dir / "clinc150" / "data_full.json").read_bytes())
    dataset = load_data(get_preset("workshop"))
    assert requests == [download.CLINC150_FULL_URL] and dataset.name == "clinc150" and dataset.variant == "full"
