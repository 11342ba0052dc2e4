"""Token-axis losses compare token ``n`` of the student with token ``n`` of the teacher:

    L_pair = f( X_s[:, n, :], X_t[:, n, :] )  for every n      => both tokenizers must split every text alike
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["check_tokenizers_compatible"]


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
