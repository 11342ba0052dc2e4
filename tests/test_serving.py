"""Shipping the student: ONNX export, int8 quantization, the serving table, ``bench serve``, ``export``.

* round trip: the ONNX file's logits match PyTorch's on a tiny model, at batch 1 and on padded
  batches longer than the export's sample (dynamic axes, the attention mask honoured);
* the int8 file stores every linear weight as int8 and keeps the embeddings and the classifier in
  float32 (as ``int8.json`` says), and its accuracy as ``score`` reports it equals a naive per-text
  loop over ONNX Runtime directly;
* smoothing: the calibration maxima equal PyTorch hooks' on the same batches, the smoothed float32
  graph gives the original logits, and on a model with an outlier channel it brings int8 closer to
  float32 than quantizing without it;
* the card's table: one row per variant, speed-ups = teacher ms / variant ms, the agreement column;
* ``spectralkd distill --quantize int8`` (the quick preset): int8 agrees with the float student on
  >= 99% of the test predictions; ``bench serve`` writes serving.json/md whose rows match;
* without onnxruntime the flags exit 2 naming what to install.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from spectralkd_tutorial import cli  # noqa: E402
from spectralkd_tutorial.data import embedded_intents  # noqa: E402
from spectralkd_tutorial.common.metrics import headline  # noqa: E402
from spectralkd_tutorial.pipelines.model_card import model_card_markdown, serving_table  # noqa: E402
from spectralkd_tutorial.models.loading import load_classifier, student_from_teacher  # noqa: E402
from spectralkd_tutorial.pipelines.serving import (INT8_FILE, RECIPE_FILE, activation_maxima, agreement,  # noqa: E402
                                                   calibration_feeds, export_onnx, load_onnx_dir, quantize_int8,
                                                   smooth_activations, weight_products)
from spectralkd_tutorial.pipelines.shipping import (best_fast_variant, score, shipped_variants, torch_variant,  # noqa: E402
                                          verdict)

TEXTS = ["wake me up at seven", "what is the balance of my checking account right now please",
         "book a table", "play some jazz music in the living room", "hi"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    dataset = embedded_intents()
    model, tokenizer = load_classifier("tiny-roberta", dataset.label_names,
                                       tiny_sizes=dict(num_layers=2, hidden_size=64, num_heads=4))
    model.eval()
    folder = tmp_path_factory.mktemp("onnx")
    export_onnx(model, tokenizer, folder)
    quantize_int8(folder, calibration=calibration_feeds(tokenizer, dataset.train.texts, max_length=32, count=40))
    return dataset, model, tokenizer, folder


def _torch_logits(model, tokenizer, texts):
    with torch.no_grad():
        batch = tokenizer(texts, padding=True, truncation=True, max_length=48, return_tensors="pt")
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def test_onnx_logits_match_pytorch_at_batch_1_and_on_padded_longer_batches(tiny):
    dataset, model, tokenizer, folder = tiny
    onnx_model, onnx_tokenizer = load_onnx_dir(folder)
    assert onnx_model.config.id2label == model.config.id2label
    long = [" ".join(TEXTS * 3)]  # longer than anything seen at export
    for texts in ([TEXTS[0]], TEXTS, long + TEXTS):
        expected = _torch_logits(model, tokenizer, texts)
        got = _torch_logits(onnx_model, onnx_tokenizer, texts)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-4, rtol=1e-4)
    # padding must not change a text's logits: alone vs in a padded batch
    alone = _torch_logits(onnx_model, onnx_tokenizer, [TEXTS[2]])
    padded = _torch_logits(onnx_model, onnx_tokenizer, TEXTS)[2:3]
    np.testing.assert_allclose(alone.numpy(), padded.numpy(), atol=1e-4)


def test_int8_file_holds_int8_linear_weights_and_keeps_embeddings_and_head_in_float(tiny):
    import onnx

    *_, folder = tiny
    float_graph = onnx.load(str(folder / "model.onnx")).graph
    graph = onnx.load(str(folder / INT8_FILE)).graph
    recipe = json.loads((folder / RECIPE_FILE).read_text())
    products = [n.name for n in float_graph.node if n.op_type == "MatMul"
                and n.input[1] in {t.name for t in float_graph.initializer}]
    assert sorted(recipe["quantized"]) == sorted(products) and len(products) == 2 * 6  # 2 blocks: q k v o, FFN in/out
    integer = [n for n in graph.node if n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul")]
    assert len(integer) == len(products)
    assert not any(n.op_type == "MatMul" and n.name in products for n in graph.node)
    types = {t.name: t.data_type for t in graph.initializer}
    matrices = [t for t in graph.initializer if len(t.dims) == 2 and t.data_type == onnx.TensorProto.INT8]
    assert len(matrices) == len(products)  # (the other int8 tensors are their zero points)
    embeddings = [n for n in graph.node if n.op_type == "Gather" and n.input[0] in types]
    assert embeddings and all(types[n.input[0]] == onnx.TensorProto.FLOAT for n in embeddings)
    head = [n for n in graph.node if n.op_type in ("Gemm", "MatMul") and n.input[1] in types]  # the classifier
    assert any("classifier" in n.name for n in head) and all(types[n.input[1]] == onnx.TensorProto.FLOAT for n in head)
    # every product's activation is smoothed first: one Mul per tensor read (q, k, v read the same)
    assert recipe["smoothing"]["nodes"] == products and recipe["smoothing"]["calibration_texts"] == 40
    muls = {n.output[0] for n in graph.node if n.op_type == "Mul" and n.name.startswith("smooth_")}
    read = {n.input[0] for n in float_graph.node if n.name in products}
    assert len(muls) == len(read) == 2 * 4
    quantized_inputs = [n.input[0] for n in graph.node if n.op_type == "DynamicQuantizeLinear"]
    assert quantized_inputs and set(quantized_inputs) == muls
    assert (folder / INT8_FILE).stat().st_size < (folder / "model.onnx").stat().st_size


def _hooked_linear_input_maxima(model, feeds):
    maxima, hooks = {}, []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            def hook(_, inputs, __, name=name):
                value = inputs[0].detach().abs().flatten(0, -2).amax(0).numpy()
                maxima[name] = np.maximum(maxima[name], value) if name in maxima else value
            hooks.append(module.register_forward_hook(hook))
    with torch.no_grad():
        for feed in feeds:
            model(**{k: torch.from_numpy(v) for k, v in feed.items()})
    for hook in hooks:
        hook.remove()
    return maxima


def test_calibration_maxima_equal_pytorch_hooks_and_smoothing_is_exact_in_float(tiny, tmp_path):
    import onnx
    import onnxruntime as ort

    dataset, model, tokenizer, folder = tiny
    feeds = calibration_feeds(tokenizer, dataset.train.texts, max_length=32, count=24, batch_size=8)
    assert [len(f["input_ids"]) for f in feeds] == [8, 8, 8]
    graph = onnx.load(str(folder / "model.onnx"))
    products = weight_products(graph)
    maxima = activation_maxima(graph, feeds, [n.input[0] for n in products])
    hooked = _hooked_linear_input_maxima(model, feeds)
    for node in products:  # "/roberta/encoder/layer.0/attention/self/query/MatMul" is module roberta.encoder...query
        module = node.name.strip("/").rsplit("/", 1)[0].replace("/", ".")
        np.testing.assert_allclose(maxima[node.input[0]], hooked[module], rtol=1e-4, atol=1e-5)
    smoothed = onnx.load(str(folder / "model.onnx"))
    assert smooth_activations(smoothed, feeds, alpha=0.8) == [n.name for n in products]
    onnx.save(smoothed, str(tmp_path / "smoothed.onnx"))
    plain = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    moved = ort.InferenceSession(str(tmp_path / "smoothed.onnx"), providers=["CPUExecutionProvider"])
    for feed in feeds:
        np.testing.assert_allclose(moved.run(["logits"], feed)[0], plain.run(["logits"], feed)[0], atol=1e-4)


def test_smoothing_brings_int8_closer_to_float_on_a_model_with_an_outlier_channel(tiny, tmp_path):
    """Channel 3 of every layer's input made 30x larger (its LayerNorm gain), the weights reading it
    30x smaller: one scale per activation tensor then wastes the int8 levels, which smoothing repairs."""
    import copy

    import onnxruntime as ort

    dataset, model, tokenizer, _ = tiny
    outlier = copy.deepcopy(model).eval()
    with torch.no_grad():
        for name, module in outlier.named_modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight[3] *= 30
                module.bias[3] *= 30
            if isinstance(module, torch.nn.Linear) and module.in_features == outlier.config.hidden_size:
                module.weight[:, 3] /= 30
    export_onnx(outlier, tokenizer, tmp_path)
    feeds = calibration_feeds(tokenizer, dataset.train.texts, max_length=32, count=64)
    quantize_int8(tmp_path, target="plain.onnx")
    quantize_int8(tmp_path, target="smoothed.onnx", calibration=feeds)
    test = calibration_feeds(tokenizer, dataset.test.texts, max_length=32, count=64)

    def error(file):
        reference = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
        session = ort.InferenceSession(str(tmp_path / file), providers=["CPUExecutionProvider"])
        return np.mean([np.abs(session.run(["logits"], f)[0] - reference.run(["logits"], f)[0]).mean() for f in test])

    assert error("smoothed.onnx") < 0.5 * error("plain.onnx")


def test_score_reports_the_accuracy_a_naive_loop_over_onnx_runtime_gives(tiny):
    import onnxruntime as ort

    dataset, model, tokenizer, folder = tiny
    base = torch_variant("m", model, tokenizer, None)
    int8, _ = load_onnx_dir(folder, INT8_FILE)
    from spectralkd_tutorial.pipelines.shipping import Variant

    variants = [base, Variant("m-int8", "ONNX Runtime int8", int8, tokenizer, 0, 2, 64, 1, reference="m")]
    scored = score(variants, dataset, max_length=32, batch_size=7)
    session = ort.InferenceSession(str(folder / INT8_FILE), providers=["CPUExecutionProvider"])
    correct, logits = 0, []
    for text, label in zip(dataset.test.texts, dataset.test.labels):  # one text at a time, no padding
        ids = tokenizer([text], truncation=True, max_length=32, return_tensors="np")
        out = session.run(["logits"], {"input_ids": ids["input_ids"].astype(np.int64),
                                       "attention_mask": ids["attention_mask"].astype(np.int64)})[0][0]
        logits.append(out)
        correct += int(np.argmax(out) == label)
    assert scored["m-int8"]["metrics"]["accuracy"] == pytest.approx(correct / len(dataset.test))
    reference = _torch_logits(model, tokenizer, list(dataset.test.texts)).numpy()
    naive_agreement = float(np.mean(np.argmax(reference, -1) == np.argmax(np.stack(logits), -1)))
    assert scored["m-int8"]["agreement"]["prediction_agreement"] == pytest.approx(naive_agreement, abs=1.5 / 72)


def test_agreement_against_numpy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 7)).astype(np.float32)
    b = a + rng.normal(scale=0.3, size=a.shape).astype(np.float32)
    got = agreement(torch.from_numpy(a), torch.from_numpy(b))
    assert got["prediction_agreement"] == pytest.approx(np.mean(a.argmax(1) == b.argmax(1)))
    assert got["max_abs_logit_diff"] == pytest.approx(np.abs(a - b).max())
    assert got["mean_abs_logit_diff"] == pytest.approx(np.abs(a - b).mean(), rel=1e-5)


def _entry(name, runtime, latency, retained, **extra):
    return {"name": name, "runtime": runtime, "blocks": 2, "width": 64, "parameters": 1000, "weights_bytes": 4000,
            "metrics": {"test": {"accuracy": retained * 0.9, "macro_f1": 0.5, "n": 10}}, "retained": retained,
            "latency_ms": {"batch_1": latency[0], "batch_32": latency[1]},
            "speedup": {"batch_1": 8.0 / latency[0], "batch_32": 2.0 / latency[1]}, **extra}


def _record():
    return {"teacher": "teacher", "headline_metric": "accuracy", "split": "test",
            "variants": [_entry("teacher", "PyTorch fp32", (8.0, 2.0), 1.0),
                         _entry("student", "PyTorch fp32", (4.0, 1.0), 0.995),
                         _entry("student-int8", "ONNX Runtime int8", (1.6, 0.4), 0.992, reference="student",
                                prediction_agreement=0.994, max_abs_logit_diff=0.1, mean_abs_logit_diff=0.01)]}


def test_the_serving_table_has_one_row_per_variant_with_its_speedups_and_agreement():
    rows = serving_table(_record(), {"teacher": "teacher `T`"})
    assert len(rows) == 2 + 3 and rows[2].startswith("| teacher `T` |")
    cells = [c.strip() for c in rows[4].strip("|").split("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    assert len(cells) == len(header)
    row = dict(zip(header, cells))
    assert row["speed-up, batch 1"] == "5.0x" and row["speed-up, batch 32"] == "5.0x"
    assert row["ms/query, batch 1"] == "1.60" and row["ms/query, batch 32"] == "0.400"
    assert row["agrees with fp32 (%)"] == "99.40" and row["retained (%)"] == "99.20"
    assert [c.strip() for c in rows[3].strip("|").split("|")][header.index("agrees with fp32 (%)")] == "-"


def test_verdict_names_the_variant_that_meets_both_targets_or_what_stands_in_the_way():
    record = _record()
    assert best_fast_variant(record)["name"] == "student-int8"
    assert verdict(record).startswith("`student-int8`")
    record["variants"][2]["retained"] = 0.98
    assert best_fast_variant(record) is None
    assert verdict(record).startswith("No variant") and "1 reach the speed-up" in verdict(record)


# ---------------------------------------------------------------------------------------------
# the commands
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ship")
    settings = root / "short.toml"
    settings.write_text("[teacher.train]\nepochs = 4\n")
    out = root / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPECTRALKD_CACHE_DIR", str(root / "cache"))
        patch.setenv("OMP_NUM_THREADS", "1")
        assert cli.main(["distill", "--preset", "quick", "--config", str(settings), "--epochs", "1", "--device",
                         "cpu", "--out", str(out), "--no-progress", "--quantize", "int8"]) == 0
        yield root, out


def test_distill_quantize_ships_an_int8_student_that_agrees_with_the_float_one(shipped_run):
    _, out = shipped_run
    record = json.loads((out / "metrics.json").read_text())
    names = [e["name"] for e in record["serving"]["variants"]]
    assert names == ["teacher", "student", "student-onnx", "student-int8"]
    entries = {e["name"]: e for e in record["serving"]["variants"]}
    assert entries["student-int8"]["prediction_agreement"] >= 0.99
    assert entries["student-onnx"]["prediction_agreement"] == 1.0
    assert entries["student"]["metrics"]["test"] == record["student"]["metrics"]["test"]
    teacher_ms = entries["teacher"]["latency_ms"]
    for entry in entries.values():
        assert entry["speedup"]["batch_32"] == pytest.approx(teacher_ms["batch_32"] / entry["latency_ms"]["batch_32"])
        assert entry["retained"] == pytest.approx(headline(entry["metrics"]["test"]) /
                                                  headline(entries["teacher"]["metrics"]["test"]))
    assert (out / "onnx" / "model_int8.onnx").is_file() and (out / "onnx" / "model.onnx").is_file()
    card = (out / "model" / "README.md").read_text()
    assert "| student-int8 | ONNX Runtime int8 |" in card and "load_onnx_dir" in card
    assert record["student"]["latency_ms"] == entries["student"]["latency_ms"]


def test_bench_serve_writes_a_table_whose_rows_match_its_json(shipped_run, capsys):
    root, out = shipped_run
    bench = root / "bench"
    assert cli.main(["bench", "serve", "--teacher", str(out / "teacher"), "--student", str(out), "--out", str(bench),
                     "--samples", "32", "--repeats", "1"]) == 0
    record = json.loads((bench / "serving.json").read_text())
    names = [e["name"] for e in record["variants"]]
    assert names == ["teacher", "teacher-onnx", "teacher-int8", "student", "student-onnx", "student-int8",
                     "student-torch-int8"]
    assert record["threads"] == torch.get_num_threads() and record["latency_queries"] == 32
    assert set(record["load_average"]) == {"before", "after"} and record["command"].startswith("spectralkd bench serve")
    rows = [line for line in (bench / "serving.md").read_text().splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(names)
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    for line, entry in zip(rows[1:], record["variants"]):
        row = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
        assert row["model"] == entry["name"] and row["runtime"] == entry["runtime"]
        assert row["ms/query, batch 1"] == f"{entry['latency_ms']['batch_1']:.2f}"
        assert row["speed-up, batch 32"] == f"{entry['speedup']['batch_32']:.1f}x"
    assert "bench serve" in capsys.readouterr().out


def test_export_writes_onnx_for_an_existing_student_and_scores_it(shipped_run, capsys):
    root, out = shipped_run
    target = root / "exported"
    assert cli.main(["export", "--model", str(out / "model"), "--out", str(target), "--quantize", "int8"]) == 0
    summary = json.loads((target / "export.json").read_text())
    entries = {e["name"]: e for e in summary["variants"]}
    record = json.loads((out / "metrics.json").read_text())
    assert entries["model"]["metrics"] == record["student"]["metrics"]["test"]  # scored on the run's test split
    assert entries["model-int8"]["agreement"]["prediction_agreement"] >= 0.99
    assert "predicts like `model`" in capsys.readouterr().out


def test_without_onnxruntime_the_flags_exit_2_naming_the_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    assert cli.main(["distill", "--preset", "quick", "--out", str(tmp_path / "x"), "--export", "onnx"]) == 2
    assert "pip install 'spectralkd-tutorial[serve]'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing trained or written
    assert cli.main(["export", "--model", str(tmp_path), "--quantize", "int8"]) == 2
    assert cli.main(["bench", "serve", "--teacher", str(tmp_path), "--student", str(tmp_path)]) == 2
    assert "onnxruntime" in capsys.readouterr().err


def test_latency_is_measured_interleaved_every_pass_runs_each_variant_in_turn(tiny):
    from types import SimpleNamespace

    from spectralkd_tutorial.pipelines.shipping import Variant, interleaved_latency

    dataset, _, tokenizer, _ = tiny
    calls = []

    class Recorder(torch.nn.Module):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def forward(self, input_ids, attention_mask):
            calls.append((self.name, input_ids.shape[0]))
            return SimpleNamespace(logits=torch.zeros(input_ids.shape[0], 2))

    variants = [Variant(n, "fake", Recorder(n), tokenizer, 0, 1, 1, 1) for n in ("a", "b")]
    texts = list(dataset.test.texts[:32])
    result = interleaved_latency(variants, texts, max_length=16, repeats=2, warmup=1, batches=(1, 32))
    # batch 1: 3 passes (1 warm-up + 2 timed), each a's 32 calls then b's 32; then batch 32: a, b, a, b, a, b
    expected = [(n, 1) for _ in range(3) for n in ("a",) * 32 + ("b",) * 32] + [(n, 32) for _ in range(3) for n in "ab"]
    assert calls == expected
    assert set(result) == {"a", "b"} and all(set(r) == {"batch_1", "batch_32"} for r in result.values())


def test_score_puts_each_prediction_back_on_its_own_utterance(tiny):
    """A fake classifier whose class is the utterance's token count: length-sorted batching must not
    move predictions between utterances (compared with a naive loop over the texts in order)."""
    from types import SimpleNamespace

    from spectralkd_tutorial.engine.evaluation import split_metrics
    from spectralkd_tutorial.pipelines.shipping import Variant

    dataset, model, tokenizer, _ = tiny
    labels = model.config.num_labels

    class ByLength(torch.nn.Module):
        config = model.config

        def forward(self, input_ids, attention_mask):
            return SimpleNamespace(logits=torch.nn.functional.one_hot(attention_mask.sum(-1) % labels, labels).float())

    scored = score([Variant("len", "fake", ByLength(), tokenizer, 0, 1, 1, 1)], dataset, max_length=32, batch_size=5)
    naive = [len(tokenizer(t, truncation=True, max_length=32)["input_ids"]) % labels for t in dataset.test.texts]
    assert scored["len"]["metrics"] == split_metrics(torch.tensor(naive), dataset.test.labels, dataset)
    assert len(set(naive)) > 3  # the lengths differ, so a shuffled prediction would show


def test_onnx_runtime_runs_with_denormals_flushed_and_the_thread_is_left_as_it_was(tiny, tmp_path):
    """A graph that multiplies by one: inside ``flushed_denormals`` a denormal input comes out 0, outside
    unchanged; the classifier's logits are those of a session run without the flag."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from spectralkd_tutorial.pipelines.serving import flushed_denormals

    graph = helper.make_graph([helper.make_node("Mul", ["x", "one"], ["y"])], "times_one",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
                              [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
                                   .SerializeToString(), options, providers=["CPUExecutionProvider"])
    denormal = np.array([1e-39], dtype=np.float32)
    assert session.run(["y"], {"x": denormal})[0][0] == denormal[0] != 0
    with flushed_denormals():
        assert session.run(["y"], {"x": denormal})[0][0] == 0
    assert session.run(["y"], {"x": denormal})[0][0] == denormal[0]  # the thread as it was
    dataset, model, tokenizer, folder = tiny
    onnx_model, _ = load_onnx_dir(folder)
    batch = tokenizer(list(dataset.test.texts[:8]), padding=True, return_tensors="np")
    plain = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = plain.run(["logits"], {k: batch[k].astype(np.int64) for k in ("input_ids", "attention_mask")})[0]
    got = _torch_logits(onnx_model, tokenizer, list(dataset.test.texts[:8]))
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)
    assert float(torch.tensor(1e-39) * 1.0) != 0.0
