"""Tiny, randomly initialised Hugging Face checkpoints for the ``quick`` preset and the tests.

A tiny checkpoint is built exactly like a hub checkpoint is published: a tokenizer trained with the
``tokenizers`` library on the embedded intent text (byte-level BPE for RoBERTa, WordPiece for BERT),
a config, and weights, all written with ``save_pretrained`` (safetensors) and read back with the
``Auto*`` classes. So the quick preset runs every line of the real ``from_pretrained`` path.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import torch

TINY_MODEL_TYPES = ("roberta", "bert", "mpnet")
from ..common.io import CACHE_ENV, cache_dir  # noqa: E402,F401 - the cache root lives at the bottom (data uses it too)


def _default_texts() -> list[str]:
    from ..data import embedded_intents

    dataset = embedded_intents()
    return dataset.train.texts + dataset.validation.texts + dataset.test.texts


def _roberta_layout(tokenizer, wrapper, unk_token: str):
    """RoBERTa's ``<s> A </s>`` (pairs: ``<s> A </s></s> B </s>``) template and special tokens around a
    trained ``tokenizers.Tokenizer``, wrapped in the ``transformers`` class ``wrapper``."""
    from tokenizers import processors

    tokenizer.post_processor = processors.RobertaProcessing(
        ("</s>", tokenizer.token_to_id("</s>")), ("<s>", tokenizer.token_to_id("<s>")), trim_offsets=True
    )
    return wrapper(
        tokenizer_object=tokenizer,
        bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token=unk_token, pad_token="<pad>", mask_token="<mask>",
        model_max_length=512,
    )


def _train_roberta(texts: Sequence[str], vocab_size: int):
    """Byte-level BPE with RoBERTa's specials and ``<s> A </s>`` template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(texts), trainer)
    return _roberta_layout(tokenizer, PreTrainedTokenizerFast, "<unk>")


def _train_wordpiece(texts: Sequence[str], vocab_size: int, special: list[str], unk: str):
    """An uncased WordPiece tokenizer (BERT normaliser and pre-tokeniser), trained on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token=unk))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False)
    tokenizer.train_from_iterator(list(texts), trainer)
    return tokenizer


def _train_bert(texts: Sequence[str], vocab_size: int):
    """WordPiece with BERT's specials and ``[CLS] A [SEP]`` template."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    tokenizer = _train_wordpiece(texts, vocab_size, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], "[UNK]")
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
        model_max_length=512,
    )


def _train_mpnet(texts: Sequence[str], vocab_size: int):
    """WordPiece laid out like all-mpnet-base-v2's: ``<s>``=0, ``<pad>``=1, ``</s>``=2, RoBERTa-style
    ``<s> A </s></s> B </s>`` template, wrapped in ``MPNetTokenizerFast`` (saved as ``MPNetTokenizer``)."""
    from transformers import MPNetTokenizerFast

    tokenizer = _train_wordpiece(texts, vocab_size, ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"], "[UNK]")
    return _roberta_layout(tokenizer, MPNetTokenizerFast, "[UNK]")


def train_tokenizer(texts: Sequence[str], model_type: str = "roberta", vocab_size: int = 400):
    """Train a tokenizer on ``texts``: byte-level BPE (RoBERTa) or WordPiece (BERT, MPNet)."""
    trainers = {"roberta": _train_roberta, "bert": _train_bert, "mpnet": _train_mpnet}
    if model_type not in trainers:
        raise ValueError(f"model_type={model_type!r} is not supported; choose one of {TINY_MODEL_TYPES}")
    return trainers[model_type](texts, vocab_size)


def tiny_config(
    model_type: str = "roberta",
    *,
    vocab_size: int,
    num_labels: int = 2,
    num_layers: int = 4,
    hidden_size: int = 64,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    max_position: int = 130,
    pad_token_id: int = 1,
    id2label: dict[int, str] | None = None,
):
    """A small ``RobertaConfig``, ``BertConfig`` or ``MPNetConfig``."""
    from transformers import BertConfig, MPNetConfig, RobertaConfig

    if hidden_size % num_heads:
        raise ValueError(f"hidden_size={hidden_size} must be divisible by num_heads={num_heads}")
    common = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_labels=num_labels,
        pad_token_id=pad_token_id,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    if id2label is not None:
        common["id2label"] = {int(k): v for k, v in id2label.items()}
        common["label2id"] = {v: int(k) for k, v in id2label.items()}
    if model_type == "roberta":
        return RobertaConfig(max_position_embeddings=max_position + 2, type_vocab_size=1, **common)
    if model_type == "bert":
        return BertConfig(max_position_embeddings=max_position, **common)
    if model_type == "mpnet":  # positions count from pad_token_id + 1, as in RoBERTa
        return MPNetConfig(max_position_embeddings=max_position + 2, **common)
    raise ValueError(f"model_type={model_type!r} is not supported; choose one of {TINY_MODEL_TYPES}")


def build_tiny_checkpoint(
    out_dir: str | os.PathLike,
    model_type: str = "roberta",
    *,
    num_labels: int = 2,
    label_names: Sequence[str] | None = None,
    num_layers: int = 4,
    hidden_size: int = 64,
    num_heads: int = 4,
    seed: int = 0,
    texts: Sequence[str] | None = None,
    tokenizer_from: str | os.PathLike | None = None,
    vocab_size: int = 400,
) -> Path:
    """Write a tiny sequence classifier + tokenizer to ``out_dir`` with ``save_pretrained``.

    ``tokenizer_from``: reuse the tokenizer of another checkpoint (a student must tokenize like its
    teacher for token-level alignment).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if tokenizer_from is not None:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_from))
    else:
        tokenizer = train_tokenizer(texts if texts is not None else _default_texts(), model_type, vocab_size)
    if label_names is not None:
        num_labels = len(label_names)
    config = tiny_config(
        model_type,
        vocab_size=len(tokenizer),
        num_labels=num_labels,
        num_layers=num_layers,
        hidden_size=hidden_size,
        num_heads=num_heads,
        pad_token_id=tokenizer.pad_token_id,
        id2label=dict(enumerate(label_names)) if label_names is not None else None,
    )
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def tiny_checkpoint(
    model_type: str = "roberta",
    *,
    num_labels: int = 2, label_names: Sequence[str] | None = None,  # the head
    num_layers: int = 4, hidden_size: int = 64, num_heads: int = 4, seed: int = 0,  # the encoder
    tokenizer_from: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
) -> Path:
    """Build (once) and return the directory of a tiny checkpoint, keyed by its settings.

    The settings are :func:`build_tiny_checkpoint`'s; ``root``: where checkpoints are kept (default
    :func:`cache_dir`).
    """
    settings = dict(
        model_type=model_type, num_labels=num_labels, label_names=list(label_names or []),
        num_layers=num_layers, hidden_size=hidden_size, num_heads=num_heads, seed=seed,
        tokenizer_from=str(tokenizer_from or ""), version=1,
    )
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    out = Path(root or cache_dir()) / f"tiny-{model_type}-{num_layers}x{hidden_size}-{key}"

    def build() -> None:
        if (out / "config.json").exists() and (out / "tokenizer.json").exists():
            return
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        build_tiny_checkpoint(
            tmp, model_type, num_labels=num_labels, label_names=label_names, num_layers=num_layers,
            hidden_size=hidden_size, num_heads=num_heads, seed=seed, tokenizer_from=tokenizer_from,
        )
        try:
            os.replace(tmp, out)
        except OSError:  # another process won the race: keep theirs
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)

    from ..common.distributed import on_main

    # under a launcher the main process builds it (transformers writes weights on rank 0 only), the others wait
    on_main(build)
    return out


def tiny_text_model(model_type: str = "roberta", *, num_labels: int = 2, seed: int = 0, **sizes):
    """``(model, tokenizer)`` of a tiny checkpoint, loaded through ``from_pretrained``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = tiny_checkpoint(model_type, num_labels=num_labels, seed=seed, **sizes)
    return AutoModelForSequenceClassification.from_pretrained(path), AutoTokenizer.from_pretrained(path)
