"""`sleepedge bench randomization` at a tiny size: 3 subjects (2 training, 1 test), 30-min
nights, 1 pass, 2 arms (control and montage), the shipped float edge model as the start and the
real DREAMS people (../shared, read in place) as the real test set."""

from __future__ import annotations

import json

import numpy as np
import pytest

from host_tools import REPO_ROOT
from host_tools import constants as C
from host_tools.bench import randomization as B
from host_tools.bench import real as R
from host_tools.cli import main

INIT = REPO_ROOT / "models" / "edge" / "float.keras"
TINY = ["--train-subjects", "SC401,SC402", "--test-subjects", "SC400", "--night-minutes", "30"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """One end-to-end run of the command; returns (work folder, out folder, report)."""
    if not R.DREAMS_DIR.is_dir():
        pytest.fail(f"{R.DREAMS_DIR} is missing: CI and developers keep ../shared beside the checkout")
    tmp = tmp_path_factory.mktemp("bench_randomization")
    work, out = tmp / "work", tmp / "out"
    rc = main(["bench", "randomization", "--init", str(INIT), "--work", str(work), "--out", str(out), *TINY,
               "--passes", "1", "--arms", "control,montage", "--quiet"])
    assert rc == 0
    return work, out, json.loads((out / "randomization.json").read_text())


@pytest.mark.slow
def test_every_arm_on_every_test_set(bench):
    """Each arm (and the starting model) is scored on plain, randomized and DREAMS; the figures
    agree with their own confusion matrices; reports and figures are written."""
    _, out, r = bench
    assert list(r["arms"]) == ["control", "montage"]
    for name, scores in [("init", r["init"])] + [(n, a["scores"]) for n, a in r["arms"].items()]:
        assert set(scores) == set(B.TEST_SETS), name
        for test, s in scores.items():
            cm = np.array(s["confusion"])
            assert cm.sum() == s["n"] and s["acc"] == pytest.approx(np.trace(cm) / cm.sum())
            n3 = C.STAGES.index("N3")
            if cm[n3].sum():
                assert s["n3_recall"] == pytest.approx(cm[n3, n3] / cm[n3].sum())
        assert scores["dreams"]["n"] == 240 and set(scores["dreams"]["per_person"]) == {
            f"excerpt{k}" for k in R.DREAMS_EXCERPTS}
        assert scores["plain"]["n"] == scores["randomized"]["n"]  # same nights, other recordings
    # The montage arm trains on plain + montage: the same epochs twice as many.
    assert r["arms"]["montage"]["train"]["n_train"] == 2 * r["arms"]["control"]["train"]["n_train"]
    assert r["arms"]["montage"]["train"]["corpora"] == ["plain", "montage"]
    md = (out / "README.md").read_text()
    assert "| control |" in md and "| montage |" in md and "DREAMS" in md and "not Sleep-EDF" in md
    assert (out / "randomization_acc.png").stat().st_size > 0 and (out / "randomization_kappa.png").is_file()


@pytest.mark.slow
def test_model_card_section_only_for_its_start_model(bench, tmp_path):
    """The card shows the report's rows when it was made from this edge model, nothing when stale."""
    _, _, r = bench
    summary = B.card_summary(r, INIT)
    assert summary is not None and list(summary["rows"]) == ["init (no fine-tuning)", "control", "montage"]
    text = "\n".join(B.card_lines(summary))
    acc = r["arms"]["montage"]["scores"]["dreams"]["acc"]
    assert "| montage |" in text and f"{acc:.3f}" in text and "DREAMS" in text
    other = tmp_path / "other.keras"
    other.write_bytes(INIT.read_bytes() + b"x")
    assert B.card_summary(r, other) is None and B.card_summary({}, INIT) is None


@pytest.mark.slow
def test_montage_corpus_differs_from_plain_only_by_montage(bench):
    """Montage-only nights: every other family neutral in the sidecar; signals identical to plain
    exactly where the montage drawn is the frontal one. A central night's physiology is drawn
    with the central factors from the same stream, so its scorer's noise is drawn differently:
    same generating sequence, labels that agree closely but not always (a frontal night: all).
    The fully randomized corpus does differ in gain and native rate."""
    from host_tools.data import prepare

    work, _, _ = bench
    sidecars = sorted((work / "synth" / "montage").glob("*-randomization.json"))
    assert len(sidecars) == 3
    for path in sidecars:
        d = json.loads(path.read_text())
        assert d["gain"] == 1.0 and d["native_fs"] == C.FS_HZ and d["dc_offset_uv"] == 0.0
        assert d["noise_uv"] == d["mains_uv"] == d["emg_per_h"] == d["pops_per_h"] == d["movements_per_h"] == 0.0
        night = path.name.replace("-randomization.json", "")
        plain = prepare.load_night(work / "cache" / "plain", night)
        mont = prepare.load_night(work / "cache" / "montage", night)
        if d["montage"] == "frontal":
            assert np.array_equal(plain["y"], mont["y"]) and np.array_equal(plain["x_raw"], mont["x_raw"])
        else:
            same = np.intersect1d(plain["epoch_index"], mont["epoch_index"])
            agree = np.mean(plain["y"][np.isin(plain["epoch_index"], same)]
                            == mont["y"][np.isin(mont["epoch_index"], same)])
            assert agree > 0.75 and not np.array_equal(plain["x_raw"][: len(same)], mont["x_raw"][: len(same)])
    full = [json.loads(p.read_text()) for p in (work / "synth" / "all").glob("*-randomization.json")]
    assert all(d["gain"] != 1.0 and d["native_fs"] != C.FS_HZ for d in full)
    assert not list((work / "synth" / "plain").glob("*-randomization.json"))


def test_gain_corpus_differs_from_plain_only_by_gain_and_is_reused(tmp_path):
    """Gain-only night: the plain night's labels, other samples, frontal montage at 100 Hz; the
    corpus is built once and reused; other settings rebuild it."""
    from host_tools.data import prepare

    logs: list[str] = []
    plain = B.build_corpus(tmp_path, "plain", B.CorpusSettings(("SC401",), 1, 30, 0, None), workers=1)
    settings = B.CorpusSettings(("SC401",), 1, 30, 0, B.CORPORA["gain"])
    cache = B.build_corpus(tmp_path, "gain", settings, workers=1, say=logs.append)
    d = json.loads((tmp_path / "synth" / "gain" / "SC4011E0-randomization.json").read_text())
    assert d["montage"] == "frontal" and d["native_fs"] == C.FS_HZ and d["gain"] != 1.0 and d["noise_uv"] == 0.0
    a, b = prepare.load_night(plain, "SC4011E0"), prepare.load_night(cache, "SC4011E0")
    assert np.array_equal(a["y"], b["y"]) and not np.array_equal(a["x_raw"], b["x_raw"])
    night = cache / "nights" / "SC4011E0.npz"
    first = night.stat().st_mtime_ns
    assert B.build_corpus(tmp_path, "gain", settings, workers=1, say=logs.append) == cache
    assert night.stat().st_mtime_ns == first and logs[-1].startswith("corpus gain: reused")
    other = B.CorpusSettings(("SC401",), 1, 30, 1, B.CORPORA["gain"])
    B.build_corpus(tmp_path, "gain", other, workers=1, say=logs.append)
    assert logs[-1].startswith("corpus gain: 1 nights")
    assert json.loads((cache / "bench-randomization.json").read_text())["seed"] == 1


def test_norm_inputs_are_per_night_and_clipped():
    """`+norm` inputs: each night normalized on its own (a night 3x louder gives the same
    inputs, up to the device's 0.25-uV transport and integer MAD rounding), then clipped to the
    edge model's input range; without norm only the clip."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((8, C.EPOCH_SAMPLES)).astype(np.float32) * 20
    x = np.concatenate([a, 3 * a])
    nights = np.array(["n1"] * 8 + ["n2"] * 8)
    y = B.model_inputs(x, nights, norm=True)
    assert abs(y[8:].std() / y[:8].std() - 1) < 0.03 and np.abs(y[8:] - y[:8]).max() < 0.05 * y[:8].std() * 10
    assert np.allclose(y[:8], np.clip(B.normalize_night(a), -C.EDGE_INPUT_CLIP_UV, C.EDGE_INPUT_CLIP_UV))
    big = np.full((2, C.EPOCH_SAMPLES), 500.0, np.float32)
    assert np.abs(B.model_inputs(big, None, norm=False)).max() == C.EDGE_INPUT_CLIP_UV


def test_family_configs_switch_exactly_their_families():
    for name, switches in B.CORPORA.items():
        cfg = B.family_config(switches)
        assert {s for s in B.SWITCHES if getattr(cfg, s)} == set(switches), name
    assert B.ARMS["acquisition"].corpus == "acquisition" and set(B.CORPORA["acquisition"]) == {
        "acquisition", "noise", "mains"}
    assert B.ARMS["all+norm"].norm and not B.ARMS["control"].augment and B.ARMS["augment"].corpus is None


@pytest.mark.parametrize("args, needle", [
    (["--arms", "control,bogus"], "--arms"),
    (["--init", "/nonexistent/float.keras"], "/nonexistent/float.keras"),
    (["--train-subjects", "SC401", "--test-subjects", "XY1"], "XY1"),
    (["--train-subjects", "SC401,SC400", "--test-subjects", "SC400"], "both in training and test"),
    (["--split", "/nonexistent/model.json"], "/nonexistent/model.json"),
    (["--passes", "0"], "--passes"),
])
def test_errors_are_one_line(tmp_path, capsys, args, needle):
    rc = main(["bench", "randomization", "--init", str(INIT), "--work", str(tmp_path / "w"),
               "--out", str(tmp_path / "o"), "--quiet", *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "w").exists()
