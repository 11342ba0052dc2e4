"""``spectralkd distill`` / ``predict`` / ``evaluate`` through ``cli.main``, and ``--help``.

* the config round trip: ``distill --preset quick ... --out A`` then ``distill --config A/config.toml
  --out B`` gives the same metrics (CPU, fixed seed);
* the saved student, loaded by ``transformers.pipeline``, predicts what training evaluated;
* the model card states both models' accuracy, retention, size, latency, the command and the config;
* the README flow on a small user CSV (teacher, then distill --teacher), a pretrained student that
  shares the teacher's tokenizer, and one that does not (refused).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import tomllib

import pytest
import torch

from spectralkd_tutorial.cli import app as cli

from spectralkd_tutorial.cli import commands, run_commands
from spectralkd_tutorial.engine.evaluation import predict, split_metrics
from spectralkd_tutorial.data import embedded_intents, load_dataset
from spectralkd_tutorial.models.loading import load_model_dir, num_blocks


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill_cli")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPECTRALKD_CACHE_DIR", str(root / "cache"))
        patch.setenv("OMP_NUM_THREADS", "1")  # keep options.setup_threads at one thread
        yield root


@pytest.fixture(scope="module")
def run_a(workdir):
    """``distill --preset quick`` with a TOML file (a short teacher) and flags (a one-epoch student)."""
    settings = workdir / "short.toml"
    settings.write_text("[teacher.train]\nepochs = 4\n")
    out = workdir / "A"
    argv = ["distill", "--preset", "quick", "--config", str(settings), "--epochs", "1", "--device", "cpu",
            "--out", str(out), "--no-progress"]
    assert cli.main(argv) == 0
    return out, argv


def _metrics(out):
    return json.loads((out / "metrics.json").read_text())


def test_config_round_trip_gives_the_same_metrics(run_a, workdir, capsys):
    a, _ = run_a
    config = tomllib.loads((a / "config.toml").read_text())
    assert config["teacher"]["train"]["epochs"] == 4 and config["student"]["train"]["epochs"] == 1.0
    assert config["grid"]["strategies"] == ["spectral-ends"] and config["grid"]["seeds"] == [0]
    b = workdir / "B"
    assert cli.main(["distill", "--config", str(a / "config.toml"), "--out", str(b), "--no-progress"]) == 0
    assert (b / "config.toml").read_text() == (a / "config.toml").read_text()
    first, second = _metrics(a), _metrics(b)
    for role in ("teacher", "student"):
        assert second[role]["metrics"] == first[role]["metrics"], role
    assert second["mapping"]["pairs"] == first["mapping"]["pairs"]
    assert "retained" in capsys.readouterr().out


def test_the_saved_student_predicts_in_a_pipeline_what_training_evaluated(run_a):
    from transformers import pipeline

    a, _ = run_a
    record = _metrics(a)
    dataset = embedded_intents()
    model, tokenizer = load_model_dir(a / "model")
    assert [model.config.id2label[i] for i in range(dataset.num_labels)] == dataset.label_names
    assert tokenizer.model_max_length == record["max_length"] == 32
    assert num_blocks(model) == 2 and (a / "model" / "model.safetensors").exists()
    classifier = pipeline("text-classification", model=str(a / "model"), device="cpu")
    texts = dataset.test.texts
    piped = [out["label"] for out in classifier(texts, truncation=True, batch_size=16)]
    ours = predict(model, tokenizer, texts, max_length=record["max_length"]).tolist()
    assert piped == [dataset.label_names[i] for i in ours]
    indices = torch.tensor([dataset.label_names.index(label) for label in piped])
    assert split_metrics(indices, dataset.test.labels, dataset) == record["student"]["metrics"]["test"]


def test_the_model_card_states_accuracy_size_latency_command_and_config(run_a):
    a, argv = run_a
    record = _metrics(a)
    card = (a / "model_card.md").read_text()
    assert (a / "model" / "README.md").read_text() == card
    assert record["command"] == "spectralkd " + " ".join(argv)
    assert record["command"] in card and (a / "config.toml").read_text().strip() in card
    teacher, student = record["teacher"], record["student"]
    for entry in (teacher, student):
        test = entry["metrics"]["test"]
        assert f"{100 * test['in_scope_accuracy']:.2f}" in card and f"{100 * test['oos_recall']:.2f}" in card
        assert entry["latency_ms"]["batch_1"] > 0 and entry["latency_ms"]["batch_32"] > 0
        assert f"{entry['latency_ms']['batch_1']:.2f}" in card and f"{entry['latency_ms']['batch_32']:.3f}" in card
        assert entry["weights_bytes"] > 4 * entry["parameters"] * 0.9
    assert student["parameters"] < teacher["parameters"] and student["blocks"] == 2
    assert record["retained"] == pytest.approx(student["metrics"]["test"]["in_scope_accuracy"]
                                               / teacher["metrics"]["test"]["in_scope_accuracy"])
    assert f"{100 * record['retained']:.2f}" in card
    assert "batch 1" in card and "batch 32" in card and record["device"] in card


def test_same_command_again_reuses_the_run_and_other_settings_are_refused(run_a, monkeypatch, capsys):
    from spectralkd_tutorial.pipelines import distill as distill_module
    a, argv = run_a
    before = (a / "metrics.json").read_text()
    monkeypatch.setattr(distill_module, "distil_student", lambda *a, **k: pytest.fail("trained again"))
    assert cli.main(argv) == 0
    assert (a / "metrics.json").read_text() == before
    assert cli.main(argv + ["--seed", "1"]) == 2
    assert "seed: 0 -> 1" in capsys.readouterr().err


def test_predict_prints_label_and_probability_from_arguments_stdin_and_a_file(run_a, workdir, monkeypatch, capsys):
    a, _ = run_a
    model = str(a / "model")
    texts = ["wake me up at seven", "play some jazz"]
    assert cli.main(["predict", "--model", model, *texts]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    student, tokenizer = load_model_dir(model)
    with torch.no_grad():
        probabilities = student(**tokenizer(texts, padding=True, return_tensors="pt")).logits.softmax(-1)
    for line, text, row in zip(lines, texts, probabilities):
        label, probability, shown = line.split("\t")
        assert shown == text and label == student.config.id2label[int(row.argmax())]
        assert float(probability) == pytest.approx(float(row.max()), abs=1e-4)
    monkeypatch.setattr("sys.stdin", io.StringIO("play some jazz\n\nwake me up at seven\n"))
    assert cli.main(["predict", "--model", model, "-", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["text"] for r in rows] == ["play some jazz", "wake me up at seven"]
    assert [r["label"] for r in rows] == [line.split("\t")[0] for line in lines[::-1]]
    listing = workdir / "texts.txt"
    listing.write_text("play some jazz\n")
    assert cli.main(["predict", "--model", model, "--file", str(listing)]) == 0
    assert capsys.readouterr().out.strip() == lines[1]
    assert cli.main(["predict", "--model", model]) == 2
    assert "no texts" in capsys.readouterr().err


def test_evaluate_prints_and_writes_the_training_metrics(run_a, workdir, capsys):
    a, _ = run_a
    expected = _metrics(a)["student"]["metrics"]["test"]
    out = workdir / "eval"
    assert cli.main(["evaluate", "--model", str(a / "model"), "--dataset", "embedded", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{100 * expected['in_scope_accuracy']:.2f}%" in printed
    written = json.loads((out / "metrics.json").read_text())
    assert written["metrics"] == expected and written["max_length"] == 32
    assert tomllib.loads((out / "config.toml").read_text())["data"]["dataset"] == "embedded"
    assert cli.main(["evaluate", "--model", str(a / "model"), "--config", str(a / "config.toml")]) == 0
    assert f"{100 * expected['in_scope_accuracy']:.2f}%" in capsys.readouterr().out
    assert cli.main(["evaluate", "--model", str(a / "model")]) == 2
    assert "--dataset" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# the README flow on the user's CSV
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def csv_teacher(workdir):
    """my_intents.csv (text,label; 'oos' is out of scope) and a tiny-bert teacher fine-tuned on it."""
    data = embedded_intents()
    rows = [(text, data.label_names[label]) for text, label in zip(data.train.texts, data.train.labels)]
    rows += [("so, what's the weather like in rome", "weather")]  # a comma, quoted by the csv writer
    path = workdir / "my_intents.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    teacher = workdir / "mine" / "teacher"
    assert cli.main(["teacher", "--teacher-base", "tiny-bert", "--data", str(path), "--oos-label", "oos",
                     "--epochs", "6", "--out", str(teacher), "--no-progress"]) == 0
    return path, teacher


def test_distill_on_a_user_csv_with_an_oos_label(csv_teacher, workdir, capsys):
    path, teacher = csv_teacher
    out = workdir / "mine" / "student"
    assert cli.main(["distill", "--teacher", str(teacher), "--data", str(path), "--oos-label", "oos",
                     "--student", "layers:1", "--strategy", "spectral-ends", "--epochs", "2", "--out", str(out),
                     "--no-progress"]) == 0
    capsys.readouterr()
    record = _metrics(out)
    dataset = load_dataset(str(path), oos_label="oos")
    assert record["dataset"]["num_labels"] == dataset.num_labels and record["headline_metric"] == "in_scope_accuracy"
    assert record["teacher"]["source"] == str(teacher) and not (out / "teacher").exists()  # used as is
    assert record["student"]["blocks"] == 1 and record["mapping"]["strategy"] == "spectral-ends"
    assert record["student"]["metrics"]["test"]["n"] == len(dataset.test)
    model, _ = load_model_dir(out / "model")
    assert model.config.id2label[dataset.oos_label] == "oos"
    assert cli.main(["predict", "--model", str(out / "model"), "what's the weather in rome"]) == 0
    assert capsys.readouterr().out.split("\t")[0] in dataset.label_names
    card = (out / "model_card.md").read_text()
    assert "in-scope acc." in card and "OOS recall" in card and str(teacher) in card


def test_a_pretrained_student_sharing_the_tokenizer_distils(csv_teacher, workdir, capsys):
    from spectralkd_tutorial.models.tiny import build_tiny_checkpoint

    path, teacher = csv_teacher
    same = build_tiny_checkpoint(workdir / "small-same", "bert", num_labels=2, num_layers=2, hidden_size=32,
                                 tokenizer_from=teacher / "model")
    out = workdir / "mine" / "pretrained-student"
    common = ["--teacher", str(teacher), "--data", str(path), "--oos-label", "oos", "--epochs", "1", "--no-progress"]
    assert cli.main(["distill", *common, "--student", str(same), "--out", str(out)]) == 0
    record = _metrics(out)
    assert record["student"]["model"] == str(same) and record["student"]["init_layers"] is None
    assert record["student"]["blocks"] == 2 and len(record["mapping"]["pairs"]) == 2
    assert record["alignment"]["tokenizers"] == "shared"
    model, _ = load_model_dir(out / "model")
    assert model.config.num_labels == record["dataset"]["num_labels"]  # the head made for the teacher's labels


def test_a_student_with_another_tokenizer_distils_per_sentence(csv_teacher, workdir, capsys):
    """tiny-bert teacher, tiny RoBERTa student: token-level losses refuse naming the fix; the
    sentence-level loss distils, the record and card say how, and the shipped student keeps its tokenizer."""
    from transformers import AutoTokenizer, pipeline

    from spectralkd_tutorial.models.tiny import build_tiny_checkpoint

    path, teacher = csv_teacher
    other = build_tiny_checkpoint(workdir / "small-other", "roberta", num_labels=2, num_layers=2, hidden_size=32)
    common = ["--teacher", str(teacher), "--data", str(path), "--oos-label", "oos", "--epochs", "1", "--no-progress",
              "--student", str(other)]
    capsys.readouterr()
    assert cli.main(["distill", *common, "--out", str(workdir / "refused")]) == 2
    err = capsys.readouterr().err
    assert "tokenizes differently" in err and "'spectral'" in err and "--feature-loss pooled-spectral" in err
    out = workdir / "mine" / "other-tokenizer"
    assert cli.main(["distill", *common, "--feature-loss", "pooled-spectral", "--out", str(out)]) == 0
    record = _metrics(out)
    assert record["alignment"]["tokenizers"] == "different" and record["alignment"]["feature_loss"] == "pooled-spectral"
    assert record["history"][-1]["train_feature"] > 0 and len(record["mapping"]["pairs"]) == 2
    card = (out / "model_card.md").read_text()
    assert "its own tokenizer" in card and "per sentence" in card
    texts = ["what's the weather in rome", "play some jazz"]
    shipped = AutoTokenizer.from_pretrained(out / "model")
    assert shipped(texts)["input_ids"] == AutoTokenizer.from_pretrained(other)(texts)["input_ids"]
    dataset = load_dataset(str(path), oos_label="oos")
    model, tokenizer = load_model_dir(out / "model")
    piped = [o["label"] for o in pipeline("text-classification", model=str(out / "model"), device="cpu")(texts)]
    assert piped == [dataset.label_names[i] for i in predict(model, tokenizer, texts, max_length=32).tolist()]


# ---------------------------------------------------------------------------------------------
# --help
# ---------------------------------------------------------------------------------------------

def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_help_lists_every_option_with_a_meaningful_help_and_its_default():
    parser = cli.build_parser()
    subparsers = _subparsers(parser)
    assert {"distill", "predict", "evaluate", "end-to-end"} <= set(subparsers)
    assert subparsers["distill"] is not subparsers["end-to-end"]  # distill is no longer chapter 5's alias
    assert parser.parse_args(["distill", "--out", "x"]).func is commands.cmd_distill
    assert parser.parse_args(["end-to-end", "--out", "x"]).func is run_commands.cmd_end_to_end
    for name, sub in subparsers.items():
        text = sub.format_help()
        assert "(default: None)" not in text and "(default: False)" not in text, name
        for action in sub._actions:
            assert action.help and len(action.help) > 8, f"{name} {action.option_strings or action.dest}"
    distill = " ".join(subparsers["distill"].format_help().split())  # unwrapped
    for option in ("--teacher ", "--teacher-base", "--student ", "--strategy", "--seed ", "--feature-loss", "--alpha",
                   "--temperature", "--beta", "--epochs", "--lr", "--batch-size", "--max-length", "--config"):
        assert option in distill, option
    assert "quick layers:2, workshop layers:3" in distill and "spectral-ends" in distill
    assert "quick 4, workshop 1, full 4" in distill  # student epochs, read from the presets
    assert "(default: 64)" in subparsers["predict"].format_help()
