"""``spectralkd distill``: from a teacher to a smaller student one can ship, in one call.

    teacher (``teacher.finetuned`` used as is, or ``teacher.model`` fine-tuned into OUT/teacher)
    -> its spectral profile (OUT/teacher_intensity.json/png)
    -> the strategy's layer mapping (default ``spectral-ends``)
    -> the student: ``layers:K`` (K teacher blocks copied), ``random:KxH``, or a smaller pretrained
       model (its head made for the teacher's labels). A student with another tokenizer reads its own
       tokens, the teacher its own: logit KD as usual, and the feature loss sentence-level
       (``pooled-spectral``: mean over each model's real tokens, spectrum over channels)
    -> distillation (OUT/student: checkpoints; an interrupted run resumes)
    -> OUT/model (``save_pretrained``: safetensors, tokenizer, label names; loads with
       ``transformers.pipeline("text-classification", model=OUT/model)``)
    -> OUT/metrics.json, the model card OUT/model/README.md (= OUT/model_card.md), OUT/config.toml

One student per call: the config's strategy when it names exactly one (else ``spectral-ends``) and
its first seed; the written ``config.toml`` holds those, so ``--config OUT/config.toml`` reruns it.

    from spectralkd_tutorial import get_preset
    from spectralkd_tutorial.pipelines.distill import distill
    result = distill(get_preset("quick", student__model="layers:3"), "runs/mine")
    result.record["retained"], result.model_dir
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..config.sections import RunConfig
from ..config.files import paths_relative_to, to_toml
from ..common.device import describe_device, resolve_device
from ..common.distributed import is_main_process, on_main
from ..engine.run_store import RunStore
from ..data import IntentDataset
from ..common.io import atomic_write_text, save_pretrained_atomic
from ..losses import check_feature_loss_tokenization, same_tokenization
from ..common.metrics import headline
from .model_card import disk_size, latency_profile, model_card_markdown, retained
from ..models.loading import count_parameters, hidden_width, load_model_dir, model_directory, num_blocks
from ..analysis.selection import LayerMapping
from .steps import (InitialStudent, TeacherResult, build_student, check_out_is_not_teacher, check_student,
    choose_layers, data_settings, distil_student, load_data, teacher_profile, train_teacher)

DEFAULT_STRATEGY = "spectral-ends"
TOKENIZER_SAMPLES = 64

__all__ = ["DEFAULT_STRATEGY", "DistillResult", "add_serving", "distill", "single_run_config", "make_student"]


@dataclass
class DistillResult:
    """A finished ``distill`` run: its directory, the record (``metrics.json``), the card, the student."""

    directory: Path
    record: dict[str, Any]
    card: str
    student: nn.Module
    tokenizer: Any

    @property
    def model_dir(self) -> Path:
        return self.directory / "model"

    @property
    def test(self) -> dict[str, float]:
        return self.record["student"]["metrics"]["test"]


def single_run_config(config: RunConfig) -> RunConfig:
    """``config`` narrowed to one student: its single strategy (else ``spectral-ends``), its first seed."""
    strategies = list(config.grid.strategies) if len(config.grid.strategies) == 1 else [DEFAULT_STRATEGY]
    return config.replace(**{"grid.strategies": strategies, "grid.seeds": [config.grid.seeds[0]]})


def distill_settings(config: RunConfig, teacher_fingerprint: str) -> dict[str, Any]:
    """What the student in OUT depends on (not where files lie, not progress bars)."""
    return {"data": data_settings(config.data), "teacher": teacher_fingerprint, "student": asdict(config.student),
            "loss": asdict(config.loss), "strategy": config.grid.strategies[0], "seed": config.grid.seeds[0],
            "analysis": asdict(config.analysis), "mixed_precision": config.runtime.mixed_precision}


def distill(config: RunConfig, out_dir: str | os.PathLike, *, dataset: IntentDataset | None = None,
            overwrite: bool = False, command: str | None = None, latency_repeats: int = 5,
            latency_queries: int = 64, export: str | None = None, quantize: str | None = None) -> DistillResult:
    """Distil the configured teacher into the configured student and write a model one can ship.

    Running it again on the same ``out_dir`` with the same settings returns the finished run (or
    resumes an interrupted one); other settings are refused unless ``overwrite``. ``export="onnx"``
    (implied by ``quantize="int8"``) also writes OUT/onnx/model.onnx (and model_int8.onnx) and puts
    their accuracy, agreement with the student and latency in the card (a finished run gains them).
    """
    ship = check_shipping(export, quantize)
    config = single_run_config(config)
    out = Path(out_dir)
    check_student(config)
    check_out_is_not_teacher(config, out)
    dataset = dataset or load_data(config)
    teacher = train_teacher(config, out / "teacher", dataset=dataset, overwrite=overwrite)
    source = str(config.teacher.finetuned or config.teacher.model)
    with RunStore(out, kind="distill", settings=distill_settings(config, teacher.fingerprint),
                  overwrite=overwrite) as store:
        config_toml = to_toml(paths_relative_to(config, out))
        if is_main_process():
            atomic_write_text(store.path("config.toml"), config_toml)
        if store.exists("metrics.json") and store.exists("model/config.json") and store.exists("model_card.md"):
            student, tokenizer = load_model_dir(store.path("model"))
            record, card = store.read_json("metrics.json"), store.path("model_card.md").read_text()
            if ship and not shipped(record, store.path("onnx"), ship):
                record, card = add_serving(store, record, config_toml, teacher, student, tokenizer, dataset, config,
                                           quantize=ship == "int8", repeats=latency_repeats, queries=latency_queries)
            return DistillResult(out, record, card, student, tokenizer)
        seed, strategy = config.grid.seeds[0], config.grid.strategies[0]
        profile = teacher_profile(store, teacher, dataset, config)
        student, tokenizer, init = make_student(config, teacher, dataset, profile.intensities, seed=seed, rms=profile.rms)
        mapping = choose_layers(strategy, num_blocks(student), num_blocks(teacher.model), profile.intensities, seed=seed,
                                rms=profile.rms)
        shared = tokenizer is teacher.tokenizer
        if not shared and mapping.pairs and config.loss.beta > 0:
            check_feature_loss_tokenization(config.loss.feature_loss, f"student {config.student.model!r}")
        child = store.child("student", kind="student", settings={"distill": store.fingerprint,
                                                                 "pairs": [list(p) for p in mapping.pairs]})
        with child:
            trained = distil_student(config.replace(**{"grid.dynamics_samples": 0}), teacher.model, tokenizer, dataset,
                                     student, mapping, seed=seed, store=child, description="student",
                                     teacher_tokenizer=None if shared else teacher.tokenizer)
            # the main process alone writes the model; the others wait for it (its error is raised on every process)
            model_dir = on_main(lambda: ship_student(student, tokenizer, dataset, config.data.max_length,
                                                     store.path("model")))
            record = build_record(config, dataset, teacher, source, trained, tokenizer, mapping, init, model_dir,
                                  command=command, latency=dict(repeats=latency_repeats, queries=latency_queries))
            if ship:  # the main process alone exports, times and writes; the others get its record and card
                record, card = on_main(lambda: add_serving(store, record, config_toml, teacher, student, tokenizer,
                                                           dataset, config, quantize=ship == "int8",
                                                           repeats=latency_repeats, queries=latency_queries))
            else:
                card = write_card(store, record, config_toml)
            child.remove_checkpoint()
    return DistillResult(out, record, card, student, tokenizer)


def write_card(store: RunStore, record: dict[str, Any], config_toml: str) -> str:
    """The model card (OUT/model/README.md and OUT/model_card.md) and OUT/metrics.json from ``record``."""
    card = model_card_markdown(record, config_toml)
    if is_main_process():  # the others wait at the run store's writes; one writer for the shipped files
        atomic_write_text(store.path("model") / "README.md", card)
        atomic_write_text(store.path("model_card.md"), card)
    store.write_json("metrics.json", record)
    return card


# ---------------------------------------------------------------------------------------------
# shipping: ONNX and int8
# ---------------------------------------------------------------------------------------------

def check_shipping(export: str | None, quantize: str | None) -> str | None:
    """``None`` (PyTorch only), ``"onnx"`` or ``"int8"`` (ONNX and its int8 version); the extra checked."""
    if export not in (None, "onnx") or quantize not in (None, "int8"):
        raise ValueError(f"export={export!r}, quantize={quantize!r}: the choices are export='onnx' and quantize='int8'")
    ship = "int8" if quantize else export
    if ship:
        from .serving import require_serving

        require_serving(f"--export onnx{' --quantize int8' if quantize else ''}")
    return ship


def shipped(record: dict[str, Any], onnx_dir: Path, ship: str) -> bool:
    """Whether the record already has the serving table asked for and its files exist."""
    from .serving import INT8_FILE, ONNX_FILE

    names = {e["name"] for e in record.get("serving", {}).get("variants", [])}
    files = [ONNX_FILE] + ([INT8_FILE] if ship == "int8" else [])
    return {"student-onnx", *(["student-int8"] if ship == "int8" else [])} <= names and all(
        (onnx_dir / f).is_file() for f in files)


def add_serving(store: RunStore, record: dict[str, Any], config_toml: str, teacher: TeacherResult,
                student: nn.Module, tokenizer, dataset: IntentDataset, config: RunConfig, *, quantize: bool,
                repeats: int, queries: int) -> tuple[dict[str, Any], str]:
    """Export the student to OUT/onnx (and int8), score and time teacher, student and the exports
    interleaved, and rewrite the record and the card with the serving table."""
    from .shipping import serving_record, shipped_variants, torch_variant

    teacher_dir = model_directory(teacher.directory) if teacher.directory is not None else None
    base = torch_variant("student", student, tokenizer, store.path("model"))
    variants = [torch_variant("teacher", teacher.model, teacher.tokenizer, teacher_dir), base,
                *shipped_variants(base, store.path("onnx"), quantize=quantize, calibration_texts=dataset.train.texts,
                                  max_length=config.data.max_length)]
    serving = serving_record(variants, dataset, max_length=config.data.max_length, repeats=repeats, queries=queries)
    record = {**record, "serving": serving}
    for entry in serving["variants"]:
        if entry["name"] in ("teacher", "student"):  # one set of timings in the card: the interleaved one
            record[entry["name"]] = {**record[entry["name"]], "latency_ms": entry["latency_ms"]}
    return record, write_card(store, record, config_toml)


# ---------------------------------------------------------------------------------------------
# the student
# ---------------------------------------------------------------------------------------------

def make_student(config: RunConfig, teacher: TeacherResult, dataset: IntentDataset, intensities, *,
                 seed: int = 0, rms=None) -> InitialStudent:
    """``(student, tokenizer, init mapping)`` from the one ``build_student``: ``layers:K`` / ``random:KxH``
    from the teacher (the teacher's tokenizer; seed 0, as every student of a grid starts), or a smaller
    pretrained model whose classifier head is made for the data's labels (``seed``): the teacher's
    tokenizer when both tokenize the training texts alike, else its own."""
    pretrained = config.student.num_layers is None
    student, tokenizer, init = build_student(config.student, teacher.model, intensities, rms=rms,
                                             seed=seed if pretrained else 0, label_names=dataset.label_names)
    if tokenizer is None or same_tokenization(teacher.tokenizer, tokenizer, dataset.train.texts[:TOKENIZER_SAMPLES]):
        tokenizer = teacher.tokenizer
    return InitialStudent(student, tokenizer, init)


def alignment_record(shared: bool, loss: str, mapping: LayerMapping) -> dict[str, Any]:
    """How teacher and student were compared, as the record and the model card state it."""
    if shared:
        statement = "the student uses the teacher's tokenizer; logits and features are compared token by token."
    elif mapping.pairs and loss != "none":
        statement = (f"the student has its own tokenizer; each model read the texts in its own tokens. Logit KD "
                     f"per text; features compared per sentence (`{loss}`: mean over each model's real tokens, "
                     "spectrum over channels), no token correspondence needed.")
    else:
        statement = "the student has its own tokenizer; each model read the texts in its own tokens; logit KD only."
    return {"tokenizers": "shared" if shared else "different", "feature_loss": loss if mapping.pairs else "none",
            "statement": statement}


def ship_student(student: nn.Module, tokenizer, dataset: IntentDataset, max_length: int,
                 directory: Path) -> Path:
    """``save_pretrained`` with the data's label names and the tokens per query it was trained with."""
    student.config.id2label = dict(enumerate(dataset.label_names))
    student.config.label2id = {label: i for i, label in enumerate(dataset.label_names)}
    previous = tokenizer.model_max_length
    tokenizer.model_max_length = max_length
    try:
        return save_pretrained_atomic(student, tokenizer, directory)
    finally:
        tokenizer.model_max_length = previous


# ---------------------------------------------------------------------------------------------
# the record
# ---------------------------------------------------------------------------------------------

def model_entry(model: nn.Module, tokenizer, metrics: dict, directory: Path | None, texts, *, device,
                max_length: int, latency: dict[str, int]) -> dict[str, Any]:
    sizes = disk_size(directory) if directory is not None else {"total_bytes": None, "weights_bytes": None}
    return {"blocks": num_blocks(model), "width": hidden_width(model), "parameters": count_parameters(model),
            **sizes, "metrics": metrics,
            "latency_ms": latency_profile(model, tokenizer, texts, device=device, max_length=max_length, **latency)}


def build_record(config: RunConfig, dataset: IntentDataset, teacher: TeacherResult, source: str, trained,
                 student_tokenizer, mapping: LayerMapping, init: LayerMapping | None, model_dir: Path, *,
                 command: str | None, latency: dict[str, int]) -> dict[str, Any]:
    """What ``metrics.json`` holds and the model card is written from."""
    device = resolve_device(config.runtime.device)
    texts, length = dataset.test.texts, config.data.max_length
    teacher_dir = model_directory(teacher.directory) if teacher.directory is not None else None
    teacher_entry = {"source": source, **model_entry(teacher.model, teacher.tokenizer, teacher.metrics, teacher_dir,
                                                     texts, device=device, max_length=length, latency=latency)}
    student_entry = {"model": config.student.model, "init": config.student.init,
                     "init_layers": init.teacher_layers if init is not None else None,
                     **model_entry(trained.model, student_tokenizer, trained.metrics, model_dir, texts, device=device,
                                   max_length=length, latency=latency)}
    test = student_entry["metrics"]["test"]
    return {
        "name": f"{student_entry['blocks']}-block student of {source} ({dataset.name})",
        "model_dir": str(model_dir), "command": command or "spectralkd_tutorial.pipelines.distill.distill(config, out_dir)",
        "dataset": dataset.summary(),
        "headline_metric": "in_scope_accuracy" if "in_scope_accuracy" in test else "accuracy",
        "teacher": teacher_entry, "student": student_entry,
        "retained": retained(test, teacher.test), "student_headline": headline(test),
        "mapping": {**mapping.to_dict(), "teacher_layers": mapping.teacher_layers,
                    "student_layers": mapping.student_layers},
        "loss": asdict(config.loss), "train": asdict(config.student.train),
        "alignment": alignment_record(student_tokenizer is teacher.tokenizer, config.loss.feature_loss, mapping), "seed": config.grid.seeds[0],
        "max_length": length, "device": describe_device(device), "seconds": trained.seconds,
        "history": trained.history,
    }

