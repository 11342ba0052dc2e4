"""The practitioner's commands: ``distill`` (a teacher in, a smaller model one can ship out),
``predict`` and ``evaluate`` (a saved model on texts or on a labelled data set).

    spectralkd distill --teacher runs/mine/teacher --data my_intents.csv --student layers:3 --out runs/mine/student
    spectralkd predict --model runs/mine/student/model "wake me up at 7" "what's my balance"
    spectralkd evaluate --model runs/mine/student/model --data my_intents.csv --oos-label oos

The option groups and the config resolution are :mod:`.options`'; the work is
:func:`..pipelines.distill.distill` and :mod:`..pipelines.inference`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterable

from ..common.errors import UsageError
from ..data.common import SPLITS
from .options import (add_data_options, add_distillation_options, add_run_options, add_training_options, check_out,
                      output_store, resolve_config, setup_threads, write_config)

DISTILL_DESCRIPTION = """\
Distil a teacher into a smaller student and save the student as a model one can ship.

teacher: --teacher DIR (a fine-tuned classifier, used as is) or --teacher-base NAME_OR_DIR (fine-tuned
first into OUT/teacher; default: the preset's) -> spectral profile -> --strategy picks the teacher
layers the student aligns with -> student: --student layers:K (K teacher blocks copied, chosen by
--student-init), random:KxH, or a smaller pretrained model that tokenizes like the teacher ->
distillation -> OUT/model (save_pretrained: loads with transformers.pipeline("text-classification",
model="OUT/model")), OUT/metrics.json, the model card OUT/model/README.md (= OUT/model_card.md) and
OUT/config.toml (--config OUT/config.toml reruns it). --export onnx / --quantize int8 also write
OUT/onnx/model.onnx / model_int8.onnx (ONNX Runtime; needs the `serve` extra) and add them to the card.
"""


def add_parsers(sub: argparse._SubParsersAction, formatter: type) -> None:
    """``distill``, ``predict`` and ``evaluate`` on the ``spectralkd`` parser."""
    p = sub.add_parser("distill", help="distil a teacher into a smaller student; save it with a model card",
                       description=DISTILL_DESCRIPTION, formatter_class=formatter)
    add_run_options(p)
    add_data_options(p)
    add_training_options(p, "student")
    add_distillation_options(p, grid=False)
    group = p.add_argument_group("shipping (needs: pip install 'spectralkd-tutorial[serve]')")
    group.add_argument("--export", choices=["onnx"], default=None, help="also write OUT/onnx/model.onnx, scored and "
                       "timed in the model card (a finished run gains it)")
    group.add_argument("--quantize", choices=["int8"], default=None, help="also write OUT/onnx/model_int8.onnx "
                       "(ONNX Runtime dynamic int8 of the linear layers, activations smoothed on 512 training "
                       "utterances first; embeddings and head float32; recipe in int8.json; implies --export onnx)")
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("export", help="export a saved classifier to ONNX (and int8); score and time it",
                       formatter_class=formatter)
    p.add_argument("--model", required=True, help="a save_pretrained directory or a distill run directory")
    p.add_argument("--out", default=None, help="where model.onnx goes (default: RUN/onnx for a distill run's "
                   "RUN/model, else MODEL_DIR-onnx)")
    p.add_argument("--quantize", choices=["int8"], default=None, help="also write model_int8.onnx (and int8.json), "
                   "activations smoothed on the data's training utterances (without data: not smoothed)")
    p.add_argument("--config", default=None, help="data to score on (default: the run's config.toml when there is "
                   "one; without data the export is only checked against PyTorch on a few texts)")
    p.add_argument("--dataset", "--data", dest="dataset", default=None, help="data set to score on (overrides --config)")
    p.add_argument("--data-dir", default=None, help="upstream files of the named sets (default: $SPECTRALKD_DATA_DIR)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("predict", help="classify texts with a saved model: label and probability per text",
                       formatter_class=formatter)
    p.add_argument("texts", nargs="*", help='texts to classify; "-" reads one text per line from stdin')
    _add_model_options(p)
    p.add_argument("--file", default=None, help='also classify each non-empty line of this file ("-": stdin)')
    p.add_argument("--json", action="store_true", help="print one JSON object per text instead of label<TAB>"
                   "probability<TAB>text")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="metrics of a saved model on a labelled data set", formatter_class=formatter)
    _add_model_options(p, max_length=False)
    p.add_argument("--config", default=None, help="take the data settings from this TOML file (e.g. the run's "
                   "OUT/config.toml: the data it was trained on); data flags override it")
    p.add_argument("--split", default="test", choices=list(SPLITS), help="split to score")
    p.add_argument("--out", default=None, help="also write metrics.json and config.toml into this directory")
    add_data_options(p)
    for action in p._actions:
        if action.dest == "max_length":
            action.help = ("tokens per utterance (default: --config's data.max_length, else what the model was "
                           "saved with: its tokenizer's model_max_length)")
        if action.dest == "dataset":
            action.help += " (required unless --config or --train-file)"
    p.set_defaults(func=cmd_evaluate, preset=None)


def _add_model_options(parser: argparse.ArgumentParser, *, max_length: bool = True) -> None:
    parser.add_argument("--model", required=True, help="a save_pretrained directory: OUT/model of distill, OUT of "
                        "teacher, or any fine-tuned sequence classifier")
    if max_length:
        parser.add_argument("--max-length", type=int, default=None, help="tokens per text (default: what the model "
                            "was saved with: its tokenizer's model_max_length, at most 128 when unset)")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per forward pass")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")


# ---------------------------------------------------------------------------------------------
# distill
# ---------------------------------------------------------------------------------------------

def cmd_distill(args: argparse.Namespace) -> int:
    """Teacher -> profile -> mapping -> student -> distillation -> OUT/model + model card."""
    from ..pipelines.distill import distill, single_run_config
    from ..pipelines.model_card import format_bytes
    from ..pipelines.steps import check_out_is_not_teacher, check_student, load_data

    from ..pipelines.distill import check_shipping

    check_shipping(args.export, args.quantize)  # before any work: a missing extra names what to install
    config = single_run_config(resolve_config(args))
    setup_threads(args.threads)
    check_out_is_not_teacher(config, args.out)  # before the other --out checks: the plainest message
    check_out(args.out, "distill")
    check_student(config)
    dataset = load_data(config)
    teacher = config.teacher.finetuned or f"{config.teacher.model} (fine-tuned first into {Path(args.out) / 'teacher'})"
    print(f"distill: teacher {teacher} -> student {config.student.model}, strategy {config.grid.strategies[0]}, "
          f"seed {config.grid.seeds[0]}; {dataset.name} ({len(dataset.train)} train, {len(dataset.test)} test)")
    result = distill(config, args.out, dataset=dataset, overwrite=args.overwrite,
                     command=getattr(args, "command_line", None), export=args.export, quantize=args.quantize)
    record = result.record
    metric = record["headline_metric"]
    for role in ("teacher", "student"):
        entry = record[role]
        print(f"  {role:7s} {entry['blocks']} blocks x {entry['width']}: test {metric.replace('_', ' ')} "
              f"{100 * entry['metrics']['test'][metric]:.2f}%, {entry['parameters']:,} parameters, "
              f"{format_bytes(entry['weights_bytes'])}, {entry['latency_ms']['batch_1']:.2f} ms/query (batch 1), "
              f"{entry['latency_ms']['batch_32']:.3f} ms/query (batch 32)")
    print(f"  retained {100 * record['retained']:.2f}% of the teacher's {metric.replace('_', ' ')}; aligned teacher "
          f"layers {record['mapping']['teacher_layers']} ({record['mapping']['strategy']}) on {record['device']}")
    if "serving" in record:
        from ..pipelines.shipping import agreement_lines, verdict

        for entry in record["serving"]["variants"][2:]:
            print(f"  {entry['name']:12s} {entry['runtime']}: test {metric.replace('_', ' ')} "
                  f"{100 * entry['metrics']['test'][metric]:.2f}%, {format_bytes(entry['weights_bytes'])}, "
                  f"{entry['latency_ms']['batch_1']:.2f} ms/query (batch 1), {entry['latency_ms']['batch_32']:.3f} "
                  f"ms/query (batch 32), {entry['speedup']['batch_1']:.1f}x / {entry['speedup']['batch_32']:.1f}x "
                  f"the teacher")
        print("\n".join(["  " + verdict(record["serving"]), *("  " + line for line in agreement_lines(record["serving"]))]))
    print(f"wrote {result.model_dir} (transformers.pipeline('text-classification', model='{result.model_dir}')), "
          f"model_card.md, metrics.json, config.toml" + (", onnx/" if "serving" in record else ""))
    return 0


# ---------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------

def export_target(model_dir: Path, out: str | None) -> Path:
    """``--out``, else RUN/onnx for a distill run's RUN/model, else MODEL_DIR-onnx."""
    if out is not None:
        return Path(out)
    if model_dir.name == "model" and (model_dir.parent / "metrics.json").is_file():
        return model_dir.parent / "onnx"
    return model_dir.with_name(model_dir.name + "-onnx")


def cmd_export(args: argparse.Namespace) -> int:
    """ONNX (and int8) of a saved classifier; scored against the PyTorch model on the run's test split."""
    from .bench import serve_config
    from ..common.io import atomic_write_json
    from ..models.loading import load_model_dir, model_directory
    from ..pipelines.serving import require_serving
    from ..pipelines.shipping import agreement_lines, score, shipped_variants, torch_variant
    from ..pipelines.steps import load_data

    require_serving("spectralkd export")
    folder = model_directory(args.model)
    target = export_target(folder, args.out)
    check_out(target)
    setup_threads()
    model, tokenizer = load_model_dir(folder)
    base = torch_variant("model", model, tokenizer, folder)
    run_config = folder.parent / "config.toml"
    dataset = config = None
    if args.config or args.dataset or run_config.is_file():
        config, _ = serve_config(str(folder), config_path=args.config, dataset=args.dataset, data_dir=args.data_dir)
        dataset = load_data(config)
    calibration = dict(calibration_texts=dataset.train.texts, max_length=config.data.max_length) if dataset else {}
    variants = [base, *shipped_variants(base, target, quantize=args.quantize == "int8", **calibration)]
    print(f"export: {folder} -> {target / 'model.onnx'}" + (", model_int8.onnx" if args.quantize else ""))
    if dataset is None:
        print("  no data named (--config/--dataset) and no run config.toml: exported, not scored"
              + ("; int8 without activation smoothing (no training texts to calibrate on)" if args.quantize else ""))
        return 0
    scored = score(variants, dataset, max_length=config.data.max_length)
    summary = {"model": str(folder), "dataset": dataset.summary(), "split": "test",
               "variants": [{"name": v.name, "runtime": v.runtime, "weights_bytes": v.weights_bytes,
                             **scored[v.name]} for v in variants]}
    for entry in summary["variants"]:
        metric = "in_scope_accuracy" if "in_scope_accuracy" in entry["metrics"] else "accuracy"
        print(f"  {entry['name']:12s} {entry['runtime']:18s} test {metric.replace('_', ' ')} "
              f"{100 * entry['metrics'][metric]:.2f}%")
    lines = agreement_lines({"split": "test", "variants": [{"name": e["name"], "reference": "model",
                                                            **e.get("agreement", {})} for e in summary["variants"]
                                                           if "agreement" in e]})
    print("\n".join("  " + line for line in lines))
    atomic_write_json(target / "export.json", summary)
    print(f"wrote {target} (model.onnx{', model_int8.onnx' if args.quantize else ''}, tokenizer, config.json, "
          "export.json)")
    return 0


# ---------------------------------------------------------------------------------------------
# predict and evaluate
# ---------------------------------------------------------------------------------------------

def _lines(stream: Iterable[str]) -> list[str]:
    return [line.strip() for line in stream if line.strip()]


def read_texts(texts: list[str], file: str | None) -> list[str]:
    """The positional texts ("-": stdin's lines) then ``file``'s lines ("-": stdin)."""
    collected: list[str] = []
    for number, text in enumerate(texts, start=1):
        if text != "-" and not text.strip():
            raise UsageError(f"text {number} of the arguments is empty; an empty text has no words to classify "
                             "(the model would still name a label): remove it or give the text")
        collected += _lines(sys.stdin) if text == "-" else [text]
    if file == "-":
        collected += _lines(sys.stdin)
    elif file is not None:
        with open(file, encoding="utf-8") as handle:
            collected += _lines(handle)
    if not collected:
        raise UsageError('no texts to classify: give them as arguments, with --file FILE, or "-" to read stdin')
    return collected


def _load(args: argparse.Namespace):
    from ..common.device import resolve_device
    from ..models.loading import check_max_length, load_model_dir

    if args.batch_size < 1 or (args.max_length is not None and args.max_length < 2):
        raise UsageError("--batch-size must be >= 1 and --max-length >= 2")
    model, tokenizer = load_model_dir(args.model)
    if args.max_length is not None:
        check_max_length(model, args.max_length, str(args.model))
    return model.to(resolve_device(args.device)), tokenizer


def cmd_predict(args: argparse.Namespace) -> int:
    """Label and probability of each text."""
    from ..pipelines.inference import classify

    texts = read_texts(args.texts, args.file)
    model, tokenizer = _load(args)
    for text, (label, probability) in zip(texts, classify(model, tokenizer, texts, max_length=args.max_length,
                                                            batch_size=args.batch_size)):
        if args.json:
            print(json.dumps({"text": text, "label": label, "probability": round(probability, 6)}))
        else:
            print(f"{label}\t{probability:.4f}\t{text}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Metrics of a saved model on a split of a labelled data set (its classes matched by name)."""
    import contextlib

    from ..pipelines.inference import evaluate_saved, saved_max_length
    from ..common.io import atomic_write_json
    from ..models.loading import check_max_length
    from ..pipelines.steps import data_settings, load_data

    if not (args.dataset or args.train_file or args.config):
        raise UsageError("name the data: --dataset SPEC (a named set or a file), --train-file ..., or --config "
                         "OUT/config.toml of the run that trained the model")
    config = resolve_config(args)
    if args.out:
        check_out(args.out)
    dataset = load_data(config)
    model, tokenizer = _load(args)
    length = config.data.max_length if (args.max_length or args.config) else saved_max_length(
        model, tokenizer, default=config.data.max_length)
    check_max_length(model, length, str(args.model))
    settings = {"model": str(args.model), "data": data_settings(config.data), "split": args.split, "max_length": length}
    with output_store(args.out, "evaluation", settings) if args.out else contextlib.nullcontext():
        metrics = evaluate_saved(model, tokenizer, dataset, args.split, max_length=length, batch_size=args.batch_size,
                                 name=str(args.model))
        print(f"{args.model} on {dataset.name} {args.split} ({metrics['n']} utterances, {length} tokens per utterance):")
        for key, value in metrics.items():
            print(f"  {key:18s} {value if key == 'n' else f'{100 * value:.2f}%'}")
        if args.out:
            atomic_write_json(Path(args.out) / "metrics.json", {"model": str(args.model), "split": args.split,
                                                                "max_length": length, "dataset": dataset.summary(),
                                                                "metrics": metrics})
            write_config(config.replace(**{"data.max_length": length}), args.out)
            print(f"wrote {Path(args.out) / 'metrics.json'} and config.toml")
    return 0
