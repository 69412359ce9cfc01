"""``sleepedge predict``: the host reference of what the device computes, epoch by epoch.

Recording channel (uV; any format of ``data.recordings``, resampled to 100 Hz) -> int16 transport -> causal Butterworth over the whole recording
(``filters.filter_device``) -> 30-s epochs from the start -> int8 input
(``filters.quantize_model_input`` with the model's scale / zero point) -> the real TFLite Micro
interpreter -> argmax and confidence = dequantized max probability ``(q_max - zp) * scale``
(float32), exactly as the firmware does it. Ties in the int8 output go to the lowest class index.
Like the device, every epoch first passes the signal-quality gate (``host_tools.data.quality``
on the raw int16 samples): an epoch judged flat, clipped, of implausible amplitude or
mains-dominated gets the stage ``artefact`` with that reason in the ``quality`` column and no
confidence, never a sleep stage.

A model folder whose metadata switches on the causal running input normalization
(``"input_norm"`` in ``export.json``/``compress.json``, :mod:`host_tools.data.normalize`) gets its
int8 input from the 0.25-uV transport samples times the running gain, the ring fed only with the
epochs the gate passes, as the firmware does with ``SE_MODEL_INPUT_NORM 1``.

With a context head next to the model (``context.tflite``, ``sleepedge train context``) the
stage and confidence are the head's, over the last ``CONTEXT_EPOCHS`` edge outputs (artefact
epochs absent), as the device computes them.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from host_tools import constants as C
from host_tools.errors import SleepEdgeError
from host_tools.learn.context import CONTEXT_TFLITE

CSV_FIELDS: tuple[str, ...] = ("recording", "epoch", "onset_s", "stage", "confidence", "quality")
#: The ``stage`` of an epoch the quality gate rejected (its reason is in ``quality``).
ARTEFACT_STAGE = "artefact"
MODEL_FILE = "model.tflite"


def resolve_tflite(model: str | Path) -> Path:
    """A ``.tflite`` file, the ``model.tflite`` inside a model folder (e.g. ``models/edge``), or
    the edge model of a models folder (``models/``, or an ``sleepedge adapt`` output)."""
    path = Path(model)
    if path.is_dir():
        path = path / MODEL_FILE if (path / MODEL_FILE).is_file() or not (path / "edge").is_dir() \
            else path / "edge" / MODEL_FILE
    if not path.is_file():
        raise SleepEdgeError(f"{path}: no such model (give a .tflite file or a folder holding {MODEL_FILE})")
    return path


@dataclass
class TflmModel:
    """An int8 classifier running in the TFLite Micro interpreter (the device's reference)."""

    path: Path
    interpreter: Any
    input_shape: tuple[int, ...]
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    #: ``input_norm`` of the model folder (``None``: plain input, today's models).
    input_norm: dict[str, Any] | None = None

    @classmethod
    def load(cls, model: str | Path) -> "TflmModel":
        """Open ``model`` (file or folder) and check it is the int8 (3000 -> 5) edge model."""
        from host_tools.learn.tflm import open_interpreter

        path = resolve_tflite(model)
        data = path.read_bytes()
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise SleepEdgeError(f"{path}: not a TFLite flatbuffer (no TFL3 identifier)")
        try:
            # The arena only has to exceed the largest pair of activations; 10x the model (the
            # runtime's default) with a 256 KB floor is plenty for the edge CNN.
            it = open_interpreter(data, max(10 * len(data), 256 * 1024))
            i, o = it.get_input_details(0), it.get_output_details(0)
        except Exception as exc:  # noqa: BLE001 - TFLM raises RuntimeError / ValueError
            raise SleepEdgeError(f"{path}: TFLite Micro cannot load it ({type(exc).__name__}: {exc})") from exc
        shape = tuple(int(v) for v in i["shape"])
        if np.dtype(i["dtype"]) != np.int8 or np.dtype(o["dtype"]) != np.int8:
            raise SleepEdgeError(f"{path}: input/output must be int8, got {np.dtype(i['dtype'])}/{np.dtype(o['dtype'])}")
        if int(np.prod(shape)) != C.EPOCH_SAMPLES or int(np.prod(o["shape"])) != C.N_CLASSES:
            raise SleepEdgeError(f"{path}: expected {C.EPOCH_SAMPLES} inputs and {C.N_CLASSES} outputs, "
                                 f"got shapes {list(shape)} and {list(o['shape'])}")
        iq, oq = i["quantization_parameters"], o["quantization_parameters"]
        from host_tools.data.normalize import model_input_norm

        # Only a model folder's model.tflite has metadata beside it (a loose .tflite is plain).
        norm = model_input_norm(path.parent) if path.name == MODEL_FILE else None
        return cls(path, it, shape, float(iq["scales"][0]), int(iq["zero_points"][0]),
                   float(oq["scales"][0]), int(oq["zero_points"][0]), norm)

    def run_int8(self, q: np.ndarray) -> np.ndarray:
        """Raw int8 outputs (n, 5) for int8 inputs (n, 3000)."""
        from host_tools.learn.tflm import run_rows

        return run_rows(self.interpreter, np.asarray(q, dtype=np.int8).reshape(-1, C.EPOCH_SAMPLES))

    def dequantize(self, raw: np.ndarray) -> np.ndarray:
        """Raw int8 outputs (n, 5) -> float32 probabilities ``(q - zp) * scale``, as the device."""
        from host_tools.learn.compress import dequantize

        return dequantize(raw, self.output_scale, self.output_zero_point)

    def quantize(self, x_filt: np.ndarray) -> np.ndarray:
        """Filtered uV epochs (n, 3000) -> int8 model input, as the firmware quantizes.

        Refused for a model that normalizes its input over each recording: its input depends on
        the epochs before, so only :meth:`quantize_stream` (one recording at a time) is right.
        """
        if self.input_norm is not None:
            raise SleepEdgeError(f"{self.path}: this model normalizes its input over each recording "
                                 "(input_norm); quantize one recording at a time (quantize_stream)")
        return self.quantize_plain(x_filt)

    def quantize_plain(self, x_filt: np.ndarray) -> np.ndarray:
        """Per-sample quantization, never normalized: for comparing interpreters on the same
        int8 inputs (export's check), not the device's input of a normalized model."""
        from host_tools.data.filters import quantize_model_input

        return quantize_model_input(x_filt, self.input_scale, self.input_zero_point)

    def quantize_stream(self, x_filt: np.ndarray, classified: np.ndarray | None = None) -> np.ndarray:
        """One recording's filtered epochs in stream order -> the int8 inputs the device feeds.

        Plain :meth:`quantize` unless the model folder switches the running normalization on;
        then only ``classified`` epochs (default all) enter the running scale, as on the device.
        """
        if self.input_norm is None:
            return self.quantize_plain(x_filt)
        from host_tools.data.normalize import normalized_model_input

        return self.quantize_plain(normalized_model_input(x_filt, classified))


@dataclass
class ContextHead:
    """The device's context head (``context.tflite`` next to the edge model) in TFLite Micro.

    The device keeps its last ``length`` edge outputs; an epoch without one (artefact,
    incomplete, model error, before the stream) is absent. What it reports for an epoch it
    classified is the head's output over that window (:mod:`host_tools.learn.context`).
    """

    path: Path
    interpreter: Any
    length: int
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int

    @classmethod
    def find(cls, model: str | Path) -> "ContextHead | None":
        """The head next to the edge model ``model`` (file or folder), or None without one."""
        path = resolve_tflite(model).parent / CONTEXT_TFLITE
        return cls.load(path) if path.is_file() else None

    @classmethod
    def load(cls, path: str | Path) -> "ContextHead":
        from host_tools.learn.context import HISTORY_FEATURES
        from host_tools.learn.tflm import open_interpreter

        path = Path(path)
        try:
            it = open_interpreter(path.read_bytes(), 64 * 1024)
            i, o = it.get_input_details(0), it.get_output_details(0)
        except Exception as exc:  # noqa: BLE001 - TFLM raises RuntimeError / ValueError
            raise SleepEdgeError(f"{path}: TFLite Micro cannot load the context head ({type(exc).__name__}: {exc})") from exc
        size = int(np.prod(i["shape"]))
        if size % HISTORY_FEATURES or int(np.prod(o["shape"])) != C.N_CLASSES:
            raise SleepEdgeError(f"{path}: a context head takes L x {HISTORY_FEATURES} values and gives "
                                 f"{C.N_CLASSES}; got shapes {list(i['shape'])} and {list(o['shape'])}")
        iq, oq = i["quantization_parameters"], o["quantization_parameters"]
        return cls(path, it, size // HISTORY_FEATURES, float(iq["scales"][0]), int(iq["zero_points"][0]),
                   float(oq["scales"][0]), int(oq["zero_points"][0]))

    def run(self, edge_raw: np.ndarray, epoch_index: np.ndarray, edge_scale: float, edge_zero_point: int
            ) -> np.ndarray:
        """Head outputs (n, 5) int8 for the epochs of one stream that have an edge output
        (``epoch_index``: their epoch numbers; any other epoch is absent)."""
        from host_tools.learn.context import history_features, history_windows, quantize_features

        hp, hm = history_windows(np.asarray(edge_raw, np.int8), epoch_index, self.length)
        q = quantize_features(history_features(hp, hm, edge_scale, edge_zero_point), self.input_scale,
                              self.input_zero_point)
        from host_tools.learn.tflm import run_rows

        return run_rows(self.interpreter, q)

    def run_stream(self, edge_raw: np.ndarray, have: np.ndarray, edge_scale: float, edge_zero_point: int
                   ) -> np.ndarray:
        """Head outputs for epochs 0..n-1 of a stream; rows where ``have`` is False (no edge
        output: artefact, incomplete) are zeros and absent for later epochs."""
        ok = np.flatnonzero(np.asarray(have, bool))
        out = np.zeros((len(have), C.N_CLASSES), np.int8)
        out[ok] = self.run(np.asarray(edge_raw, np.int8)[ok], ok, edge_scale, edge_zero_point)
        return out


def reported_outputs(tflm: TflmModel, head: ContextHead | None, x_filt: np.ndarray, have: np.ndarray
                     ) -> tuple[np.ndarray, float, int]:
    """What the device reports per epoch (RESULT probs) and its output quantization: the edge
    model's int8 output, or the context head's over the last epochs when the folder has one."""
    raw = tflm.run_int8(tflm.quantize_stream(x_filt, classified=have))
    if head is None:
        return raw, tflm.output_scale, tflm.output_zero_point
    return head.run_stream(raw, have, tflm.output_scale, tflm.output_zero_point), head.output_scale, head.output_zero_point


def reported_night_outputs(tflm: TflmModel, head: ContextHead | None, raw: np.ndarray, nights: np.ndarray,
                           epoch_index: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Cached epochs of several nights: the edge outputs ``raw`` (n, 5) -> what the device would
    report streaming each night (the head's outputs over each night's windows, epochs missing
    from the cache absent), and the output quantization. Without a head: ``raw`` unchanged."""
    if head is None:
        return raw, tflm.output_scale, tflm.output_zero_point
    nights, epoch_index = np.asarray(nights), np.asarray(epoch_index)
    out = np.empty_like(np.asarray(raw, np.int8))
    for nid in dict.fromkeys(nights.tolist()):
        rows = np.flatnonzero(nights == nid)
        out[rows] = head.run(raw[rows], epoch_index[rows], tflm.output_scale, tflm.output_zero_point)
    return out, head.output_scale, head.output_zero_point


def decide(raw: np.ndarray, output_scale: float, output_zero_point: int) -> tuple[np.ndarray, np.ndarray]:
    """Stage index (first maximum) and float32 confidence ``(q_max - zp) * scale`` per row."""
    raw = np.asarray(raw, dtype=np.int8).reshape(-1, C.N_CLASSES)
    stages = raw.argmax(axis=1).astype(np.int64)
    qmax = raw.max(axis=1).astype(np.int32)
    conf = (qmax - np.int32(output_zero_point)).astype(np.float32) * np.float32(output_scale)
    return stages, conf


def predict_epochs_int8(
    model_path: str | Path, x_filt: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run filtered epochs through the int8 model in TFLite Micro.

    Parameters
    ----------
    model_path
        ``.tflite`` file or a folder holding ``model.tflite``.
    x_filt
        (n, 3000) float32 filtered microvolts (``filters.filter_device`` cut into epochs).

    Returns
    -------
    raw : int8 (n, 5)
        The model's int8 output, what the device sends in RESULT frames.
    stages : int64 (n,)
        Class indices into ``constants.STAGES``.
    confidences : float32 (n,)
        Dequantized max probability.
    """
    x = np.asarray(x_filt, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != C.EPOCH_SAMPLES:
        raise SleepEdgeError(f"x_filt: expected (n, {C.EPOCH_SAMPLES}) epochs, got shape {x.shape}")
    model = TflmModel.load(model_path)
    raw = model.run_int8(model.quantize(x))  # loose epochs: plain input only (refused for input_norm models)
    stages, conf = decide(raw, model.output_scale, model.output_zero_point)
    return raw, stages, conf


def recording_epochs(psg: str | Path, channel: str = "Fpz-Cz") -> tuple[np.ndarray, str]:
    """Filtered epochs of one PSG exactly as the device forms them, and the recording id.

    Any format of :mod:`host_tools.data.recordings` (EDF, BDF, BrainVision, FIF); ``channel`` may
    list alternatives (``Fpz-Cz,C3-A1``). Rates other than 100 Hz are resampled to 100 Hz first, as
    the host does before streaming. The whole recording is filtered from its first sample; a
    trailing partial epoch is dropped.
    """
    y, name, _verdicts = recording_epochs_with_quality(psg, channel)
    return y, name


def recording_epochs_with_quality(psg: str | Path, channel: str = "Fpz-Cz") -> tuple[np.ndarray, str, np.ndarray]:
    """:func:`recording_epochs` plus each epoch's quality verdict code (device's gate, on the
    raw int16 transport samples; index into ``constants.QUALITY_VERDICTS``)."""
    from host_tools.data import filters, quality, recordings

    psg = Path(psg)
    signal, _fs_in, _start, _name = recordings.read_eeg(psg, channel)
    n = len(signal) // C.EPOCH_SAMPLES
    if n == 0:
        raise SleepEdgeError(f"{psg}: shorter than one {C.EPOCH_S}-s epoch")
    q = filters.to_device_samples(signal)
    y, _ = filters.filter_causal(filters.from_device_samples(q))
    return y[: n * C.EPOCH_SAMPLES].reshape(n, C.EPOCH_SAMPLES), recordings.recording_id(psg), \
        quality.recording_verdicts(q)


def find_recordings(path: str | Path) -> list[Path]:
    """``path`` itself if it is a file, else the ``*-PSG.<edf|bdf|vhdr|fif>`` files in the folder, sorted."""
    from host_tools.data.recordings import find_recordings as find

    return find(path)


def predict_recordings(
    model: str | Path, recordings: Iterable[Path], channel: str = "Fpz-Cz", progress: bool = True
) -> list[dict[str, Any]]:
    """CSV rows (:data:`CSV_FIELDS`) for every epoch of every recording."""
    from rich.progress import Progress

    tflm = TflmModel.load(model)
    head = ContextHead.find(model)
    rows: list[dict[str, Any]] = []
    recordings = list(recordings)
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("predict", total=len(recordings))
        for psg in recordings:
            epochs, name, verdicts = recording_epochs_with_quality(psg, channel)
            raw, scale, zp = reported_outputs(tflm, head, epochs, np.asarray(verdicts) == 0)
            stages, conf = decide(raw, scale, zp)
            for k, (s, c, v) in enumerate(zip(stages, conf, verdicts)):
                row = {"recording": name, "epoch": k, "onset_s": k * C.EPOCH_S,
                       "stage": C.STAGES[int(s)], "confidence": f"{float(c):.6f}",
                       "quality": C.QUALITY_VERDICTS[int(v)]}
                if v != 0:  # the device gives no stage to an artefact epoch; neither do we
                    row.update(stage=ARTEFACT_STAGE, confidence="")
                rows.append(row)
            bar.advance(task)
    return rows


def write_csv(rows: list[dict[str, Any]], out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(CSV_FIELDS))
        w.writeheader()
        w.writerows(rows)
    return out


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=Path("models/edge"),
                        help="int8 .tflite or model folder (default: %(default)s)")
    parser.add_argument("--in", dest="inp", type=Path, required=True,
                        help="a recording (EDF, BDF, BrainVision .vhdr, FIF) or a folder of *-PSG.<ext>")
    parser.add_argument("--out", type=Path, required=True, help="CSV to write")
    parser.add_argument("--channel", default="Fpz-Cz",
                        help="EEG channel as the file names it, or comma-separated alternatives tried in order "
                             "(case-insensitive, 'EEG ' prefix optional; default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    rows = predict_recordings(args.model, find_recordings(args.inp), args.channel)
    write_csv(rows, args.out)
    artefacts = sum(r["stage"] == ARTEFACT_STAGE for r in rows)
    print(f"wrote {args.out} ({len(rows)} epochs, {artefacts} artefact)")
    return 0
