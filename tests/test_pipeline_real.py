"""`make train SLEEP_EDF=DIR` end to end on a stand-in download: synthetic EDFs laid out and named
exactly like Sleep-EDF (DIR/sleep-cassette, DIR/sleep-telemetry, real file names), quick budgets.
The files are not PhysioNet's, so the model card must say the corpus is NOT verified Sleep-EDF."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from host_tools import constants as C
from host_tools import pipeline
from host_tools.bench.accuracy import SHA256SUMS
from host_tools.data import synth
from host_tools.data.fetch import parse_sums


def _real_names(folder: str) -> dict[str, str]:
    """Night stem (first 7 characters, e.g. ``SC4001E``) -> real hypnogram file name."""
    sums = parse_sums(SHA256SUMS.read_text())
    return {Path(rel).name[:7]: Path(rel).name for rel in sums
            if rel.startswith(folder + "/") and rel.endswith("-Hypnogram.edf")}


def write_standin_download(out: Path, domain: str, subjects: list[int], nights: int = 2,
                           night_minutes: int = 60, seed: int = 0) -> list[Path]:
    """Synthetic nights under ``out/sleep-cassette`` or ``out/sleep-telemetry`` with the real
    database's file names (the hypnogram's scorer letter taken from PhysioNet's list)."""
    folder = pipeline.SC_FOLDER if domain == "sc" else pipeline.ST_FOLDER
    real = _real_names(folder)
    written = []
    for subject in subjects:
        for night in range(1, nights + 1):
            psg, hyp = synth.generate_night(out / folder, subject, night, domain, seed, night_minutes)
            name = real[psg.name[:7]]  # KeyError: a night the real database does not have
            written += [psg, hyp.rename(hyp.with_name(name))]
    return written


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sleep-edfx")
    write_standin_download(root, "sc", [0, 1, 2, 3, 4])
    write_standin_download(root, "st", [1, 2, 4], seed=1)
    return root


def test_standin_looks_like_the_real_database(standin):
    sums = parse_sums(SHA256SUMS.read_text())
    files = sorted(p.relative_to(standin).as_posix() for p in standin.rglob("*.edf"))
    assert len(files) == 2 * 2 * 8 and all(f in sums for f in files)  # every name is a real one
    report = pipeline.verify_download(standin)
    assert report["verified"] is False
    assert report["studies"]["sc"]["psg"] == 10 and report["studies"]["st"]["psg"] == 6
    assert len(report["studies"]["sc"]["unverified"]) == 20 and report["studies"]["st"]["verified"] == 0


def test_verify_download_accepts_matching_hashes(standin, tmp_path):
    """The check itself: a SUMS list holding the files' own hashes verifies them."""
    from host_tools.data.fetch import sha256_file

    lines = [f"{sha256_file(p)}  {p.relative_to(standin).as_posix()}" for p in standin.rglob("*.edf")]
    sums = tmp_path / "SHA256SUMS.txt"
    sums.write_text("\n".join(lines) + "\n")
    assert pipeline.verify_download(standin, sums)["verified"] is True
    sums.write_text("\n".join(lines[1:]) + "\n")  # one file missing from the list
    assert pipeline.verify_download(standin, sums)["verified"] is False


def test_missing_cassette_folder_is_one_line_error(tmp_path, capsys):
    (tmp_path / "dl").mkdir()
    assert pipeline.main(["--quick", "--out", str(tmp_path / "o"), "--sleep-edf", str(tmp_path / "dl")]) == 2
    err = capsys.readouterr().err
    assert "sleep-cassette" in err and "Traceback" not in err


@pytest.mark.slow
def test_make_train_on_standin_download(standin, tmp_path_factory):
    out = tmp_path_factory.mktemp("real-run")
    assert pipeline.main(["--quick", "--out", str(out), "--sleep-edf", str(standin)]) == 0
    work, models = out / "work", out / "models"
    # The real files were read in place: no synthetic corpus was generated.
    assert not (work / "synth").exists()
    sc_index = json.loads((work / "cache" / "sc" / "index.json").read_text())
    assert {Path(n["psg"]).parent.name for n in sc_index["nights"]} == {"sleep-cassette"}
    assert sc_index["wake_margin_min"] == 30 and sc_index["channel"] == "EEG Fpz-Cz"
    st_index = json.loads((work / "cache" / "st" / "index.json").read_text())
    assert {n["subject"] for n in st_index["nights"]} == {"ST701", "ST702", "ST704"}

    m = json.loads((models / "metrics.json").read_text())
    assert m["synthetic"] is True and "synth" not in m and m["sleep_edf"]["verified"] is False
    assert m["corpus"].startswith("NOT verified Sleep-EDF")
    split = m["split"]
    assert not set(split["test"]) & (set(split["train"]) | set(split["val"]))  # subject-wise
    assert m["transfer"]["finetune"] and set(m["transfer"]["test_subjects"]) <= {"ST701", "ST702", "ST704"}
    # The device's context head: trained after compress, exported with the edge model, and the
    # cloud's history is the head's outputs (what the device reports).
    edge = models / "edge"
    assert (edge / "context.tflite").is_file() and (edge / "context_plan.c").is_file()
    assert "#define SE_CONTEXT_ENABLED 1" in (edge / "model_data.h").read_text()
    assert json.loads((edge / "context.json").read_text())["length"] == C.CONTEXT_EPOCHS
    assert json.loads((models / "cloud" / "model.json").read_text())["edge_model"]["context_head_sha256"]
    card = (models / "MODEL_CARD.md").read_text()
    assert "**The corpus is NOT verified Sleep-EDF" in card
    assert "sleep-telemetry (ST) recordings" in card
    assert re.search(r"--sleep-edf \S+", card)


@pytest.mark.parametrize("verified", [True, False])
def test_card_names_the_corpus_from_the_check(verified):
    """A download whose every file verified is called Sleep-EDF; otherwise NOT verified, in bold."""
    check = {"dir": "dl", "sums": "SHA256SUMS.txt", "verified": verified,
             "studies": {"sc": {"psg": 2, "hypnograms": 2, "verified": 4 if verified else 3,
                                "unverified": [] if verified else ["SC4001E0-PSG.edf"]}}}
    m = {"corpus": "Sleep-EDF Expanded (PSG SHA-256 verified ...)", "synthetic": False, "synth": {"seed": 0}}
    pipeline._label_download(m, check)
    note = pipeline._corpus_note(m)
    assert "synth" not in m and m["synthetic"] is (not verified) and m["sleep_edf"] is check
    if verified:
        assert m["corpus"].startswith("Sleep-EDF Expanded") and "NOT" not in note and "SC: 2 PSG files" in note
    else:
        assert m["corpus"].startswith("NOT verified Sleep-EDF: 1 of 4 files under dl")
        assert note.startswith("**The corpus is NOT verified Sleep-EDF")


def test_download_without_telemetry_has_no_transfer_stage(tmp_path):
    """Only sleep-cassette/: prepare-st and transfer are left out (no curve), verify replaces synth."""
    write_standin_download(tmp_path / "dl", "sc", [0], nights=1)
    p = pipeline.Paths(tmp_path / "w", tmp_path / "m", tmp_path / "r", sleep_edf=tmp_path / "dl")
    names = [n for n, _, _ in pipeline.plan(p, pipeline.quick_settings(), "")]
    assert names[0] == "verify" and "prepare-sc" in names
    assert not {"synth-sc", "synth-st", "prepare-st", "transfer"} & set(names)
    (tmp_path / "dl" / "sleep-telemetry").mkdir()
    assert "transfer" not in [n for n, _, _ in pipeline.plan(p, pipeline.quick_settings(), "")]
