"""Chapter 5: RoBERTa-large end to end — teacher, spectral analysis, layer choice, students, model card.

One code path, three sizes. :class:`EndToEndPlan` says *which* models play which part (data, not
code, ``plan``); :class:`EndToEnd` performs the steps with the shared ``steps`` (the teacher, the
profile, ``build_student``, ``distil_student``) and one
:class:`~spectralkd_tutorial.engine.run_store.RunStore` per directory (``runner``); each writes its
results under ``out`` and, run again, reuses them; ``model_card.end_to_end_card_markdown`` turns the
results into the model card and ``report`` draws the figures:

    1. teacher      ``steps.train_teacher`` (checkpoints, resume; bf16 autocast on a GPU, FFT losses
                    in float32)                                         -> out/teacher/model, metrics.json
    2. profile      I_l = mean_k masked-mean_{n,t} |FFT_h(X_l)/H|[k] for every layer l = 0..L
                                                                        -> out/teacher/intensity.json/png
    3. layers       choose teacher layers for every student depth (``plan.selection``, default
                    ``spectral-ends``) next to ``spectral-topk``, ``uniform`` and the blog's RoBERTa-large
                    choice 1-9 + 21-23                                  -> out/teacher/layers.json/png
    4. students     L = (1 - alpha) CE + alpha T^2 KL(p_t^T || p_s^T) + beta L_feat(mapping), with
                    L_feat: ``spectral`` (teacher channels average-pooled H_t -> H_s, parameter-free),
                    ``spectral-projection`` (learned W_p: H_s -> H_t), or ``none`` (logits only)
                                                                        -> out/students/<run>/...
    5. summary      accuracy (in-scope, OOS recall, overall), retained = student / teacher in-scope
                    accuracy, parameters, latency per query              -> out/summary.json, model_card.md

Layer numbering: layer 0 = embedding output; layer l (1..L) = output of transformer block l
(Hugging Face ``hidden_states[l]``).
"""

from __future__ import annotations

from .outcomes import LayerChoice, student_report
from .plan import (BLOG_LAYERS, PLANS, EndToEndPlan, ModelSource, StudentRun, blog_comparison, format_layers,
    plan_for_preset)
from .report import mapping_figure, plot_tradeoff
from .runner import EndToEnd, end_to_end_settings, run_end_to_end

__all__ = [
    "BLOG_LAYERS",
    "ModelSource",
    "StudentRun",
    "EndToEndPlan",
    "PLANS",
    "plan_for_preset",
    "EndToEnd",
    "run_end_to_end",
    "blog_comparison",
    "format_layers",
    "plot_tradeoff",
    "mapping_figure",
    "end_to_end_settings",
    "LayerChoice",
    "student_report",
]
