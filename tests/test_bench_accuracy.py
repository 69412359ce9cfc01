"""The `make train` pipeline in quick mode, end to end, and `sleepedge bench accuracy` on its output."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import types

import numpy as np
import pytest

from host_tools.bench import accuracy as B
from host_tools import pipeline
from host_tools.cli import main


def _c_export_stub(out_dir, *, threshold, name, tflite_path=None):  # pragma: no cover - stand-in
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model_data.h").write_text(f"/* stand-in: threshold {threshold} */\n")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """`python -m host_tools.pipeline --quick --out DIR`, in process. Until the engine's
    host_tools.deploy.c_export lands, a stand-in writes a placeholder header for it."""
    mp = pytest.MonkeyPatch()
    if importlib.util.find_spec("host_tools.deploy.c_export") is None:
        stub = types.ModuleType("host_tools.deploy.c_export")
        stub.export_model = lambda tflite_path, out_dir, *, threshold, name: _c_export_stub(
            out_dir, threshold=threshold, name=name)
        mp.setitem(sys.modules, "host_tools.deploy.c_export", stub)
    out = tmp_path_factory.mktemp("quick")
    try:
        assert pipeline.main(["--quick", "--out", str(out)]) == 0
    finally:
        mp.undo()
    return out


def test_quick_pipeline_outputs(quick_run):
    from host_tools.data import prepare
    from host_tools.deploy.predict import predict_epochs_int8

    models, work = quick_run / "models", quick_run / "work"
    m = json.loads((models / "metrics.json").read_text())
    for key in ("source", "edge_float", "edge_int8", "hybrid"):
        assert {"acc", "mf1", "kappa"} <= set(m[key]), key
    assert {"acc", "escalated_fraction", "threshold"} <= set(m["hybrid"])
    assert m["transfer"]["finetune"] and m["synthetic"] is True
    assert m["corpus"].startswith("SYNTHETIC")
    card = (models / "MODEL_CARD.md").read_text()
    assert "SYNTHETIC" in card and "python -m host_tools.pipeline --quick" in card

    # Held-out subjects were never trained on, by the source or the distilled edge model.
    test = set(m["test_subjects"])
    src_split = json.loads((models / "source" / "model.json").read_text())["split"]
    edge_split = json.loads((work / "train" / "edge" / "model.json").read_text())["split"]
    assert test == set(src_split["test"])
    for split in (src_split, edge_split):
        assert not test & (set(split["train"]) | set(split.get("val", [])))
    # Pruning fine-tuned on the training side only (validation subjects choose the threshold).
    comp = json.loads((models / "edge" / "compress.json").read_text())
    assert {n[:5] for n in comp["train_nights"]} == set(src_split["train"])

    # The exported threshold is the one chosen on validation subjects, and the hybrid used it.
    chosen = json.loads((work / "train" / "threshold.json").read_text())
    exported = json.loads((models / "edge" / "export.json").read_text())
    assert chosen["subjects"] == src_split["val"]
    assert exported["threshold"] == max(chosen["recommended"]["threshold"], 0.05) == m["hybrid"]["threshold"]

    # The cloud model: a head trained on exactly the exported edge model's outputs, over the
    # exported source CNN, on the source split; the hybrid escalates to it.
    from host_tools.cloud.model import ContextCloudModel, load_cloud

    cloud_meta = json.loads((models / "cloud" / "model.json").read_text())
    assert cloud_meta["edge_model"]["sha256"] == exported["sha256"]
    assert cloud_meta["split"] == src_split and cloud_meta["encoder"] == "../source"
    assert isinstance(load_cloud(models / "cloud"), ContextCloudModel)
    assert {"acc", "mf1", "kappa"} <= set(m["cloud"]) and m["hybrid"]["cloud_model"] == "cloud"
    assert "| cloud (source CNN + edge history) |" in card and "## Checks" in card

    # edge_int8 accuracy is what the device reports on the held-out nights: TFLite Micro's edge
    # outputs, then the context head (make train trains one) over each night's last epochs.
    from host_tools.deploy.predict import ContextHead, decide

    index = prepare.load_index(work / "cache" / "sc")
    ids = [n["id"] for n in index["nights"] if n["subject"] in test]
    x, y, _, nights = prepare.load_epochs(work / "cache" / "sc", ids)
    raw, stages, _ = predict_epochs_int8(models / "edge", x)
    head = ContextHead.find(models / "edge")
    assert head is not None
    epoch_numbers = prepare.load_epoch_numbers(work / "cache" / "sc", ids)
    reported = np.zeros_like(raw)
    for nid in ids:
        rows = nights == nid
        reported[rows] = head.run(raw[rows], epoch_numbers[rows], 1 / 256, -128)
    with_head, _ = decide(reported, head.output_scale, head.output_zero_point)
    assert m["edge_int8"]["acc"] == pytest.approx(float((with_head == y).mean()), abs=1e-4)
    bench = json.loads((quick_run / "reports" / "bench-accuracy" / "bench-accuracy.json").read_text())
    assert bench["scores"]["edge_int8_no_context"]["acc"] == pytest.approx(float((stages == y).mean()), abs=1e-4)

    reports = quick_run / "reports" / "bench-accuracy"
    for name in ("escalation.png", "confusion_edge_int8.png", "confusion_hybrid.png", "README.md"):
        assert (reports / name).stat().st_size > 0, name
    assert sum(f.stat().st_size for f in models.rglob("*") if f.is_file()) < 10_000_000


def test_quick_pipeline_resumes(quick_run, capsys):
    card = quick_run / "models" / "MODEL_CARD.md"
    before = card.stat().st_mtime_ns
    assert pipeline.main(["--quick", "--out", str(quick_run)]) == 0
    assert json.loads((quick_run / "work" / "timings.json").read_text()) == {}
    assert card.stat().st_mtime_ns == before
    assert capsys.readouterr().err.count("skipped") == len(pipeline.plan(
        pipeline.Paths(quick_run, quick_run, quick_run), pipeline.quick_settings(), ""))


def test_bench_cli_with_yasa_and_threshold_zero(quick_run, tmp_path):
    """Threshold 0 never escalates, so the hybrid must equal the int8 edge model exactly."""
    out = tmp_path / "bench"
    rc = main(["bench", "accuracy", "--cache", str(quick_run / "work" / "cache" / "sc"),
               "--models", str(quick_run / "models"), "--out", str(out), "--threshold", "0",
               "--ablation-passes", "0"])
    assert rc == 0
    r = json.loads((out / "bench-accuracy.json").read_text())
    s = r["scores"]
    assert s["hybrid"]["escalated_fraction"] == 0.0
    assert s["hybrid"]["confusion"] == s["edge_int8"]["confusion"]
    assert 0.0 <= s["yasa"]["acc"] <= 1.0 and sum(map(sum, s["yasa"]["confusion"])) == r["n_epochs"]
    assert "SYNTHETIC" in (out / "README.md").read_text()
    curve = json.loads((out / "escalation.json").read_text())["curve"]
    assert [p["escalated_fraction"] for p in curve] == sorted(p["escalated_fraction"] for p in curve)


def test_bench_cloud_head_of_another_edge_model_is_not_used(quick_run, tmp_path):
    """A head trained on another edge model's outputs would read them wrongly: the benchmark,
    like the service, then escalates to the source CNN alone."""
    import shutil

    models = tmp_path / "models"
    shutil.copytree(quick_run / "models", models)
    meta_path = models / "cloud" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["edge_model"]["sha256"] = "0" * 64
    meta_path.write_text(json.dumps(meta))
    r = B.bench_accuracy(quick_run / "work" / "cache" / "sc", models, tmp_path / "bench", with_yasa=False,
                         ablation_passes=0, progress=False)
    assert r["hybrid_cloud"] == "source_float" and "cloud" not in r["scores"]
    full = json.loads((quick_run / "reports" / "bench-accuracy" / "bench-accuracy.json").read_text())
    assert full["hybrid_cloud"] == "cloud" and "cloud" in full["scores"]


def test_train_cloud_cli(quick_run, tmp_path, capsys):
    """`sleepedge train cloud` on the quick run's models: a head over that edge model's outputs."""
    models = quick_run / "models"
    out = tmp_path / "cloud"
    rc = main(["train", "cloud", "--source", str(models / "source"), "--edge", str(models / "edge"),
               "--cache", str(quick_run / "work" / "cache" / "sc"), "--out", str(out), "--passes", "1", "--quiet"])
    assert rc == 0
    assert "held-out subjects" in capsys.readouterr().out
    meta = json.loads((out / "model.json").read_text())
    exported = json.loads((models / "edge" / "export.json").read_text())
    assert meta["edge_model"]["sha256"] == exported["sha256"] and meta["history_length"] == 11
    assert meta["train"]["passes_run"] == 1 and meta["test"]["n"] > 0
    from host_tools.cloud.model import load_context_model

    assert load_context_model(out).edge.sha256 == exported["sha256"]


def test_corpus_label_checks_hashes(tiny_corpus, tiny_cache, tmp_path):
    from host_tools.data import prepare

    index = prepare.load_index(tiny_cache)
    ids = [index["nights"][0]["id"]]
    psg = tiny_corpus / f"{ids[0]}-PSG.edf"
    sums = tmp_path / "SHA256SUMS.txt"
    sums.write_text("0" * 64 + "  other.edf\n")
    assert B.corpus_label(tiny_cache, index, ids, sums).startswith("SYNTHETIC")
    sums.write_text(hashlib.sha256(psg.read_bytes()).hexdigest() + f"  {psg.name}\n")
    assert B.corpus_label(tiny_cache, index, ids, sums).startswith("Sleep-EDF")
    moved = {**index, "nights": [{**n, "psg": str(tmp_path / "gone.edf")} for n in index["nights"]]}
    assert B.corpus_label(tiny_cache, moved, ids, sums).startswith("UNVERIFIED")


def test_bad_inputs(tiny_cache, tmp_path, capsys):
    cases = [
        (["--cache", str(tiny_cache), "--models", str(tmp_path)], "source/"),
        (["--cache", str(tmp_path), "--models", str(tmp_path)], "index.json"),
        (["--cache", str(tiny_cache), "--models", str(tmp_path), "--max-escalated", "2"], "max-escalated"),
        (["--cache", str(tiny_cache), "--models", str(tmp_path), "--threshold", "-1"], "threshold"),
        (["--cache", str(tiny_cache), "--models", str(tmp_path), "--test-subjects", "SC499"], "SC499"),
    ]
    for args, message in cases:
        rc = main(["bench", "accuracy", *args, "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert rc == 2 and message in err and "Traceback" not in err, (args, err)
    with pytest.raises(SystemExit):
        pipeline.main(["--quick"])  # quick mode must not overwrite models/
    assert np.isfinite(pipeline.quick_settings().max_escalated)


def test_plotting_figures(tmp_path):
    """The reusable figures render (with unknown-stage gaps and a corpus caption) and check shapes."""
    import matplotlib.image as mpimg

    from host_tools import evaluation, plotting

    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 200)
    y[50:60] = 255  # incomplete epochs
    hyp = plotting.hypnogram(tmp_path / "h.png", {"truth": y, "edge": np.roll(y, 1)},
                             escalated=rng.random(200) < 0.1, note="corpus: SYNTHETIC test")
    cm = plotting.confusion_matrix(tmp_path / "c.png", np.arange(25).reshape(5, 5), note="SYNTHETIC")
    curve = [evaluation.CurvePoint(t, t / 2, 0.5 + t / 4, 0.4, 0.3) for t in (0.0, 0.5, 1.0)]
    esc = plotting.escalation_curve(tmp_path / "e.png", curve, recommended=curve[1], max_escalated=0.2,
                                    references={"edge": 0.5})
    bars = plotting.grouped_bars(tmp_path / "b.png", ["a", "b", "c"], {"m1": [0.5, 0.6, 0.7], "m2": [0.8, 0.2, 0.4]},
                                 ylabel="accuracy", title="per person", note="corpus: SYNTHETIC test")
    for path in (hyp, cm, esc, bars):
        img = mpimg.imread(path)
        assert img.ndim == 3 and img.shape[0] > 100 and img.std() > 0.01
    with pytest.raises(ValueError, match="5x5"):
        plotting.confusion_matrix(tmp_path / "bad.png", np.zeros((4, 4)))
