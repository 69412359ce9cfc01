"""Calibration of a synthetic corpus against the real Sleep-EDF per-epoch statistics.

Computes, on EDF files read back through MNE, the statistics that
``shared/data/sleep-edfx-real-epoch-statistics.json`` holds for the 153 real sleep-cassette nights
(per-stage quantiles of time-domain statistics, the spread of per-subject medians, Welch band PSDs)
and a subject-wise band-power classifier, then compares them. ``sleepedge data synth --report``
prints the table, writes ``docs/figures/calibration-*.png`` and a JSON.

Like the real figures: 30-s epochs within the sleep period +-30 min of wake, raw (unfiltered)
signals, stages from the written (scored) hypnogram.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from host_tools import SHARED_DIR
from host_tools import constants as C
from host_tools.errors import SleepEdgeError

REAL_STATS_PATH = SHARED_DIR / "data" / "sleep-edfx-real-epoch-statistics.json"
CHANNELS: tuple[str, ...] = ("Fpz-Cz", "Pz-Oz", "EOG horizontal")
EDF_CHANNELS: dict[str, str] = {"Fpz-Cz": "EEG Fpz-Cz", "Pz-Oz": "EEG Pz-Oz", "EOG horizontal": "EOG horizontal"}
TIME_STATS: tuple[str, ...] = (
    "std_uV", "iqr_uV", "excess_kurtosis", "zero_crossings_per_30s", "hjorth_mobility",
    "hjorth_complexity", "rms_frequency_Hz", "local_extrema_per_30s",
)
WELCH_BANDS: dict[str, tuple[float, float]] = {
    "delta 0.5-4": (0.5, 4.0), "theta 4-8": (4.0, 8.0), "alpha 8-13": (8.0, 13.0),
    "beta 13-30": (13.0, 30.0), "gamma 30-50": (30.0, 50.0),
}
#: Finer bands for the classifier's log band-power features (Hz).
CLF_BANDS: tuple[tuple[float, float], ...] = (
    (0.5, 1), (1, 2), (2, 3), (3, 4), (4, 6), (6, 8), (8, 10), (10, 12), (12, 14), (14, 16),
    (16, 20), (20, 25), (25, 30), (30, 40), (40, 50),
)
QUANTILES = (10, 25, 50, 75, 90)
WAKE_MARGIN_EPOCHS = 60  #: 30 min


def load_real_stats(path: Path | None = None) -> dict[str, Any]:
    """The real Sleep-EDF statistics JSON (see its ``source`` field)."""
    path = Path(path) if path is not None else REAL_STATS_PATH
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise SleepEdgeError(f"{path}: real Sleep-EDF statistics not found (keep shared/data beside the checkout)") from exc
    except json.JSONDecodeError as exc:
        raise SleepEdgeError(f"{path}: not valid JSON ({exc})") from exc


# ------------------------------------------------------------------------------------------
# per-epoch statistics
# ------------------------------------------------------------------------------------------


def time_stats(x: np.ndarray) -> np.ndarray:
    """Time-domain statistics of epochs, one column per :data:`TIME_STATS`.

    Parameters
    ----------
    x
        (n, samples) microvolts, unfiltered.

    Returns
    -------
    numpy.ndarray
        (n, len(TIME_STATS)); Hjorth mobility in per-sample units ``sqrt(var(dx)/var(x))``.
    """
    x = np.asarray(x, dtype=np.float64)
    xc = x - x.mean(axis=1, keepdims=True)
    var = np.maximum(xc.var(axis=1), 1e-12)
    std = np.sqrt(var)
    q75, q25 = np.percentile(x, [75, 25], axis=1)
    kurt = (xc**4).mean(axis=1) / var**2 - 3.0
    zc = np.count_nonzero(np.diff(np.signbit(xc), axis=1), axis=1)
    dx = np.diff(x, axis=1)
    ddx = np.diff(dx, axis=1)
    mob = np.sqrt(dx.var(axis=1) / var)
    mob_d = np.sqrt(ddx.var(axis=1) / np.maximum(dx.var(axis=1), 1e-12))
    comp = mob_d / np.maximum(mob, 1e-12)
    rmsf = mob * C.FS_HZ / (2 * math.pi)
    ext = np.count_nonzero(np.diff(np.signbit(dx), axis=1), axis=1)
    return np.column_stack([std, q75 - q25, kurt, zc, mob, comp, rmsf, ext])


def welch_psd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Welch PSD of epochs (4-s Hann windows, 50 % overlap): (freqs, (n, F) uV^2/Hz)."""
    import scipy.signal

    return scipy.signal.welch(np.asarray(x, dtype=np.float64), fs=C.FS_HZ, nperseg=400, axis=-1)


def band_means(freqs: np.ndarray, psd: np.ndarray, bands: Any) -> np.ndarray:
    """Mean PSD within each band (upper edge inclusive only at Nyquist): (n, n_bands)."""
    cols = []
    for lo, hi in bands:
        sel = (freqs >= lo) & ((freqs < hi) | ((hi >= freqs[-1]) & (freqs <= hi)))
        cols.append(psd[:, sel].mean(axis=1))
    return np.column_stack(cols)


def classifier_features(fpz: np.ndarray) -> np.ndarray:
    """Log Welch band powers of Fpz-Cz epochs plus log total power (the spectral classifier's input)."""
    f, p = welch_psd(fpz)
    bp = band_means(f, p, CLF_BANDS)
    total = p[:, (f >= 0.5)].mean(axis=1, keepdims=True)
    return np.log(np.concatenate([bp, total, bp / total], axis=1) + 1e-6)


def sleep_period_mask(labels: np.ndarray, margin: int = WAKE_MARGIN_EPOCHS) -> np.ndarray:
    """Epochs from first sleep - margin to last sleep + margin, with a known AASM label."""
    mask = np.zeros(labels.size, bool)
    sleep = np.flatnonzero((labels >= 1) & (labels <= 4))
    if sleep.size:
        mask[max(sleep[0] - margin, 0): sleep[-1] + margin + 1] = True
    return mask & (labels >= 0)


def read_night(psg: Path, hyp: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Read a night through MNE: per-channel epochs (n, 3000) in uV and AASM labels (-1 = none)."""
    import mne

    try:
        raw = mne.io.read_raw_edf(psg, include=list(EDF_CHANNELS.values()), preload=True, verbose="error")
        ann = mne.read_annotations(hyp)
    except Exception as exc:  # noqa: BLE001 - any reader failure means a bad file
        raise SleepEdgeError(f"{psg.name}/{hyp.name}: cannot read with MNE ({exc})") from exc
    if int(round(raw.info["sfreq"])) != C.FS_HZ:
        raise SleepEdgeError(f"{psg}: sample rate {raw.info['sfreq']} Hz, expected {C.FS_HZ}")
    missing = [c for c in EDF_CHANNELS.values() if c not in raw.ch_names]
    if missing:
        raise SleepEdgeError(f"{psg}: missing channel(s) {', '.join(missing)}")
    n = raw.n_times // C.EPOCH_SAMPLES
    labels = np.full(n, -1, np.int64)
    for onset, dur, desc in zip(ann.onset, ann.duration, ann.description):
        cls = C.RK_TO_AASM.get(desc)
        if cls is None:
            continue
        a = int(round(onset / C.EPOCH_S))
        labels[a: min(a + int(round(dur / C.EPOCH_S)), n)] = cls
    data = raw.get_data(picks=list(EDF_CHANNELS.values()), units="uV")
    epochs = {
        short: data[i, : n * C.EPOCH_SAMPLES].reshape(n, C.EPOCH_SAMPLES)
        for i, short in enumerate(EDF_CHANNELS)
    }
    return epochs, labels


def _night_features(pair: tuple[str, str]) -> dict[str, Any]:
    psg, hyp = Path(pair[0]), Path(pair[1])
    epochs, labels = read_night(psg, hyp)
    keep = sleep_period_mask(labels)
    res: dict[str, Any] = {"id": psg.name.replace("-PSG.edf", ""), "subject": psg.name[:5], "y": labels[keep]}
    for ch in CHANNELS:
        x = epochs[ch][keep]
        res[f"time/{ch}"] = time_stats(x)
        if ch != "EOG horizontal":
            f, p = welch_psd(x)
            res[f"welch/{ch}"] = band_means(f, p, WELCH_BANDS.values())
    res["clf"] = classifier_features(epochs["Fpz-Cz"][keep])
    return res


def corpus_features(corpus: Path, workers: int = 2) -> list[dict[str, Any]]:
    """Per-night features of every PSG/hypnogram pair in ``corpus``."""
    pairs = _find_pairs(corpus)
    items = [(str(p), str(h)) for p, h in pairs]
    if workers > 1 and len(items) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(workers, len(items))) as pool:
            return list(pool.map(_night_features, items))
    return [_night_features(it) for it in items]


def _find_pairs(corpus: Path) -> list[tuple[Path, Path]]:
    corpus = Path(corpus)
    if not corpus.is_dir():
        raise SleepEdgeError(f"{corpus}: not a folder")
    pairs = []
    for psg in sorted(corpus.glob("*-PSG.edf")):
        stem = psg.name[:7]
        hyps = sorted(corpus.glob(f"{stem}?-Hypnogram.edf"))
        if not hyps:
            raise SleepEdgeError(f"{psg}: no matching {stem}?-Hypnogram.edf")
        pairs.append((psg, hyps[0]))
    if not pairs:
        raise SleepEdgeError(f"{corpus}: no *-PSG.edf files")
    return pairs


# ------------------------------------------------------------------------------------------
# comparison with the real statistics
# ------------------------------------------------------------------------------------------


def summarize(nights: list[dict[str, Any]]) -> dict[str, Any]:
    """Quantiles like the real JSON: time domain, subject spread, Welch band PSDs, stage counts."""
    y = np.concatenate([n["y"] for n in nights])
    subj = np.concatenate([np.full(n["y"].size, n["subject"]) for n in nights])
    out: dict[str, Any] = {"time_domain": {}, "subject_spread": {}, "welch_band_psd_uV2_per_Hz": {}}
    for ch in CHANNELS:
        feats = np.concatenate([n[f"time/{ch}"] for n in nights])
        out["time_domain"][ch] = {}
        out["subject_spread"][ch] = {}
        for j, name in enumerate(TIME_STATS):
            td, sp = {}, {}
            for s, stage in enumerate(C.STAGES):
                v = feats[y == s, j]
                td[stage] = np.percentile(v, QUANTILES).round(4).tolist() if v.size else None
                meds = [np.median(v_) for u in np.unique(subj) if (v_ := feats[(y == s) & (subj == u), j]).size]
                sp[stage] = np.percentile(meds, [10, 50, 90]).round(4).tolist() if meds else None
            out["time_domain"][ch][name] = td
            out["subject_spread"][ch][name] = sp
        if ch != "EOG horizontal":
            bp = np.concatenate([n[f"welch/{ch}"] for n in nights])
            out["welch_band_psd_uV2_per_Hz"][ch] = {
                band: {st: (np.percentile(bp[y == s, b], QUANTILES).round(4).tolist() if np.any(y == s) else None)
                       for s, st in enumerate(C.STAGES)}
                for b, band in enumerate(WELCH_BANDS)
            }
    out["stage_counts"] = {st: int(np.count_nonzero(y == s)) for s, st in enumerate(C.STAGES)}
    return out


def compare(summary: dict[str, Any], real: dict[str, Any]) -> dict[str, Any]:
    """Per stage: generated median vs real IQR for Fpz-Cz amplitude and mobility, spread ratio."""
    checks: dict[str, Any] = {}
    for stat in ("std_uV", "hjorth_mobility"):
        for stage in C.STAGES:
            gen = summary["time_domain"]["Fpz-Cz"][stat][stage]
            ref = real["time_domain"]["Fpz-Cz"][stat][stage]
            if gen is None:
                checks[f"{stat}/{stage}"] = {"median": None, "real_iqr": [ref[1], ref[3]], "inside": False}
                continue
            gsp = summary["subject_spread"]["Fpz-Cz"][stat][stage]
            rsp = real["subject_spread"]["Fpz-Cz"][stat][stage]
            checks[f"{stat}/{stage}"] = {
                "median": gen[2], "real_iqr": [ref[1], ref[3]], "inside": ref[1] <= gen[2] <= ref[3],
                # spread of subject medians, 90th/10th percentile ratio, generated vs real
                "subject_spread_ratio": round((gsp[2] / gsp[0]) / (rsp[2] / rsp[0]), 3),
            }
    return checks


# ------------------------------------------------------------------------------------------
# band-power classifier
# ------------------------------------------------------------------------------------------


def _make_clf(seed: int = 0) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=150, learning_rate=0.08, max_leaf_nodes=31,
                                          l2_regularization=1.0, random_state=seed)


def _scores(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, f1_score

    f1 = f1_score(y, pred, labels=list(range(C.N_CLASSES)), average=None, zero_division=0)
    return {
        "accuracy": round(float(accuracy_score(y, pred)), 4),
        "macro_f1": round(float(np.mean(f1)), 4),
        "kappa": round(float(cohen_kappa_score(y, pred)), 4),
        "f1": {st: round(float(v), 4) for st, v in zip(C.STAGES, f1)},
        "confusion": confusion_matrix(y, pred, labels=list(range(C.N_CLASSES))).tolist(),
        "n_epochs": int(y.size),
    }


def subjectwise_classifier(nights: list[dict[str, Any]], folds: int = 5) -> dict[str, Any]:
    """Gradient boosting on Fpz-Cz log band powers, GroupKFold by subject."""
    from sklearn.model_selection import GroupKFold

    X = np.concatenate([n["clf"] for n in nights])
    y = np.concatenate([n["y"] for n in nights])
    g = np.concatenate([np.full(n["y"].size, n["subject"]) for n in nights])
    k = min(folds, np.unique(g).size)
    if k < 2:
        raise SleepEdgeError("classifier check needs at least 2 subjects")
    pred = np.empty_like(y)
    for tr, te in GroupKFold(n_splits=k).split(X, y, g):
        pred[te] = _make_clf().fit(X[tr], y[tr]).predict(X[te])
    res = _scores(y, pred)
    res["folds"] = k
    return res


def transfer_classifier(source: list[dict[str, Any]], target: list[dict[str, Any]]) -> dict[str, Any]:
    """Train on every source night, test on the target corpus."""
    Xs = np.concatenate([n["clf"] for n in source])
    ys = np.concatenate([n["y"] for n in source])
    Xt = np.concatenate([n["clf"] for n in target])
    yt = np.concatenate([n["y"] for n in target])
    return _scores(yt, _make_clf().fit(Xs, ys).predict(Xt))


# ------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------


def run_report(
    corpus: Path,
    st_dir: Path | None = None,
    figures_dir: Path | None = Path("docs/figures"),
    json_path: Path | None = None,
    workers: int = 2,
) -> dict[str, Any]:
    """Compute the calibration report of ``corpus`` (and the SC->ST gap with ``st_dir``).

    Returns
    -------
    dict
        ``summary`` (statistics like the real JSON), ``checks``, ``classifier``, optional
        ``transfer``; written to ``json_path`` (default ``corpus/calibration.json``).
    """
    from rich.progress import track

    real = load_real_stats()
    pairs = _find_pairs(corpus)
    nights = []
    if workers > 1 and len(pairs) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(workers, len(pairs))) as pool:
            it = pool.imap(_night_features, [(str(p), str(h)) for p, h in pairs])
            nights = list(track(it, total=len(pairs), description="calibration: reading nights"))
    else:
        for p, h in track(pairs, description="calibration: reading nights"):
            nights.append(_night_features((str(p), str(h))))
    summary = summarize(nights)
    report: dict[str, Any] = {
        "corpus": str(corpus), "n_nights": len(nights),
        "n_subjects": len({n["subject"] for n in nights}),
        "summary": summary, "checks": compare(summary, real),
        "classifier": subjectwise_classifier(nights),
        "real_classifier": real.get("notes", {}).get("reference_classifier"),
    }
    if st_dir is not None:
        st = corpus_features(Path(st_dir), workers=workers)
        report["transfer"] = transfer_classifier(nights, st)
        report["transfer"]["target"] = str(st_dir)
        report["transfer"]["loss_points"] = round(
            100 * (report["classifier"]["accuracy"] - report["transfer"]["accuracy"]), 2)
    json_path = Path(json_path) if json_path is not None else Path(corpus) / "calibration.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=1))
    report["json"] = str(json_path)
    if figures_dir is not None:
        report["figures"] = [str(p) for p in write_figures(summary, real, Path(figures_dir))]
    return report


def print_report(report: dict[str, Any]) -> None:
    """Print the generated-vs-real table and the classifier scores."""
    from rich.console import Console
    from rich.table import Table

    real = load_real_stats()
    con = Console()
    s = report["summary"]
    for ch in CHANNELS:
        t = Table(title=f"{ch}: generated median [real IQR] (synthetic corpus {report['corpus']})")
        t.add_column("statistic")
        for st in C.STAGES:
            t.add_column(st)
        for stat in TIME_STATS:
            row = [stat]
            for st in C.STAGES:
                g = s["time_domain"][ch][stat][st]
                r = real["time_domain"][ch][stat][st]
                if g is None:
                    row.append("-")
                    continue
                inside = r[1] <= g[2] <= r[3]
                col = "green" if inside else "red"
                row.append(f"[{col}]{g[2]:.3g}[/{col}] [{r[1]:.3g}, {r[3]:.3g}]")
            t.add_row(*row)
        con.print(t)
    c = report["classifier"]
    con.print(f"stage counts: {s['stage_counts']}")
    con.print(f"band-power classifier (Fpz-Cz, GroupKFold {c['folds']}): acc {c['accuracy']:.3f} "
              f"macro-F1 {c['macro_f1']:.3f} kappa {c['kappa']:.3f} N1 F1 {c['f1']['N1']:.3f}  "
              f"[targets: acc 0.65-0.80, N1 F1 <= 0.45]")
    con.print(f"real reference: {report.get('real_classifier')}")
    if "transfer" in report:
        tr = report["transfer"]
        con.print(f"SC -> ST transfer: acc {tr['accuracy']:.3f} (loss {tr['loss_points']:.1f} points, target >= 5)")
    con.print(f"JSON: {report['json']}  figures: {', '.join(report.get('figures', []))}")


def write_figures(summary: dict[str, Any], real: dict[str, Any], out: Path) -> list[Path]:
    """calibration-amplitude.png, calibration-mobility.png, calibration-psd.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for stat, fname, unit in (("std_uV", "amplitude", "std (uV)"), ("hjorth_mobility", "mobility", "Hjorth mobility (per sample)")):
        fig, axes = plt.subplots(1, 3, figsize=(13, 4))
        for ax, ch in zip(axes, CHANNELS):
            for i, st in enumerate(C.STAGES):
                for off, src, color in ((-0.18, real["time_domain"][ch][stat][st], "tab:gray"),
                                        (0.18, summary["time_domain"][ch][stat][st], "tab:blue")):
                    if src is None:
                        continue
                    q10, q25, q50, q75, q90 = src
                    ax.add_patch(matplotlib.patches.Rectangle((i + off - 0.15, q25), 0.3, q75 - q25,
                                                              facecolor=color, alpha=0.5, edgecolor=color))
                    ax.plot([i + off - 0.15, i + off + 0.15], [q50, q50], color="k")
                    ax.plot([i + off, i + off], [q10, q25], color=color)
                    ax.plot([i + off, i + off], [q75, q90], color=color)
            ax.set_xticks(range(C.N_CLASSES), C.STAGES)
            ax.set_xlim(-0.6, C.N_CLASSES - 0.4)
            ax.autoscale(axis="y")
            ax.set_title(ch)
            ax.set_ylabel(unit)
        axes[0].legend(handles=[matplotlib.patches.Patch(color="tab:gray", alpha=0.5, label="real Sleep-EDF SC"),
                                matplotlib.patches.Patch(color="tab:blue", alpha=0.5, label="synthetic")])
        fig.suptitle(f"{unit} per stage, 10/25/50/75/90 %: synthetic corpus vs real Sleep-EDF")
        fig.tight_layout()
        p = out / f"calibration-{fname}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths.append(p)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    centers = [math.sqrt(lo * hi) for lo, hi in WELCH_BANDS.values()]
    colors = dict(zip(C.STAGES, ("tab:orange", "tab:green", "tab:blue", "tab:purple", "tab:red")))
    for ax, ch in zip(axes, ("Fpz-Cz", "Pz-Oz")):
        for st in C.STAGES:
            r = [real["welch_band_psd_uV2_per_Hz"][ch][b][st][2] for b in WELCH_BANDS]
            g = [(summary["welch_band_psd_uV2_per_Hz"][ch][b][st] or [np.nan] * 5)[2] for b in WELCH_BANDS]
            ax.loglog(centers, r, "--", color=colors[st], alpha=0.7)
            ax.loglog(centers, g, "-o", color=colors[st], label=st)
        ax.set_title(f"{ch}: median band PSD (solid synthetic, dashed real)")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks(centers, [b.split()[0] for b in WELCH_BANDS])
        ax.set_xlabel("band (geometric centre, log scale)")
        ax.set_ylabel("uV^2/Hz")
        ax.legend()
    fig.tight_layout()
    p = out / "calibration-psd.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    paths.append(p)
    return paths
