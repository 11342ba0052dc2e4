"""Token-axis losses compare token ``n`` of the student with token ``n`` of the teacher:

    L_pair = f( X_s[:, n, :], X_t[:, n, :] )  for every n      => both tokenizers must split every text alike

A student that tokenizes differently still distils: logit KD on each model's own tokens, and a
sentence-level feature loss (``pooled-spectral``, registered with ``token_level=False``).
"""

from __future__ import annotations

from typing import Any, Sequence

from ..common.errors import UsageError
from .registry import FEATURE_LOSS_REGISTRY, get_feature_loss

__all__ = ["check_feature_loss_tokenization", "check_tokenizers_compatible", "same_tokenization"]


def _tokens(tokenizer: Any, text: str) -> tuple[list[int], list[str] | None]:
    ids = list(tokenizer(text)["input_ids"])
    convert = getattr(tokenizer, "convert_ids_to_tokens", None)
    return ids, (list(convert(ids)) if callable(convert) else None)


def check_tokenizers_compatible(
    teacher_tokenizer: Any, student_tokenizer: Any, sample_texts: Sequence[str]
) -> None:
    """Raise ``ValueError`` unless both tokenizers split every sample text identically.

    Token-axis losses compare token ``n`` of the student with token ``n`` of the teacher, so the
    two sequences must have the same length and the same tokens (same ids, or at least the same
    token strings when only the vocabulary numbering differs).
    """
    texts = [sample_texts] if isinstance(sample_texts, str) else list(sample_texts)
    if not texts:
        raise ValueError("sample_texts is empty; pass a few training texts to compare the tokenizers on")
    for text in texts:
        ids_t, tok_t = _tokens(teacher_tokenizer, text)
        ids_s, tok_s = _tokens(student_tokenizer, text)
        if ids_t == ids_s or (tok_t is not None and tok_t == tok_s):
            continue
        raise ValueError(
            "teacher and student tokenizers split the text differently, so token-axis spectral / hidden "
            "losses are impossible (token n of one model is not token n of the other).\n"
            f"  text:    {text!r}\n"
            f"  teacher: {len(ids_t)} tokens {tok_t if tok_t is not None else ids_t}\n"
            f"  student: {len(ids_s)} tokens {tok_s if tok_s is not None else ids_s}\n"
            "Use logits-only KD (feature_loss='none'), or a student that uses the teacher's tokenizer "
            "(e.g. initialise it from the teacher's layers)."
        )


def same_tokenization(teacher_tokenizer: Any, student_tokenizer: Any, texts: Sequence[str]) -> bool:
    """Whether both tokenizers turn every text into the same token ids (then token-level losses apply)."""
    texts = list(texts)
    return teacher_tokenizer(texts)["input_ids"] == student_tokenizer(texts)["input_ids"]


def check_feature_loss_tokenization(feature_loss: str, student: str = "the student") -> None:
    """Refuse a token-level feature loss for a student that tokenizes differently from its teacher."""
    if not get_feature_loss(feature_loss).token_level:
        return
    sentence_level = [name for name, entry in FEATURE_LOSS_REGISTRY.items() if not entry.token_level]
    raise UsageError(
        f"{student} tokenizes differently from the teacher, so the token-level feature loss {feature_loss!r} "
        "cannot apply (token n of one model is not token n of the other). Use a sentence-level feature "
        f"loss: --feature-loss pooled-spectral (loss.feature_loss; registered: {sentence_level}), or "
        "--beta 0 / --strategy none for logits-only KD, or a student that shares the teacher's tokenizer "
        "(layers:K, random:KxH)"
    )
