"""``sleepedge export``: put an int8 model where the firmware takes it, and prove TFLM runs it.

1. copy the flatbuffer to ``OUT/model.tflite`` after checking its operator set;
2. ``host_tools.deploy.c_export.export_model`` writes the C arrays and the native engine's plan;
3. regenerate ``firmware/generated/sleepedge_constants.h`` (``host_tools.deploy.codegen``);
4. run held-out epochs through the host TFLite interpreter and the real TFLite Micro interpreter
   and report their agreement (TFLM is the reference the firmware reproduces bit for bit; TFLite
   differs from it in rare rounding ties, see ``export.json``);
   With ``context.tflite`` next to the model (``sleepedge train context``), the head is copied
   too and exported as ``context_plan.{c,h}`` / ``context_data.{c,h}`` (SE_CONTEXT_ENABLED 1);
5. save reference vectors (filtered epoch, int8 input, TFLM int8 output) as
   ``OUT/reference_vectors.npz`` for the firmware tests, and ``OUT/export.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from host_tools import constants as C
from host_tools import shown_path
from host_tools.errors import SleepEdgeError
from host_tools.learn.context import CONTEXT_META, CONTEXT_TFLITE

REFERENCE_FILE = "reference_vectors.npz"
#: Reference vectors saved for the firmware tests (a few, kept small in git).
N_REFERENCE: int = 8
#: A threshold that never escalates: the largest of 5 probabilities is at least 0.2, so any
#: confidence the int8 model can produce lies above it (the header rejects 0).
NEVER_ESCALATE: float = 0.05


def check_epochs(cache: Path | None, n: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """Held-out filtered epochs to compare interpreters on, and where they come from.

    With a cache: a random sample of the held-out (fold-0 test) subjects' epochs. Without one:
    band-passed Gaussian noise of EEG-like amplitude through the device filter (stated as such).
    """
    rng = np.random.default_rng(seed)
    if cache is not None:
        from host_tools.data import datasets, prepare

        index = datasets.load_index_checked(cache)
        tests = prepare.subject_folds(index)[0][1]
        x, _, _, _ = prepare.load_epochs(cache, datasets.night_ids_for(index, tests))  # held-out only
        if len(x) == 0:
            raise SleepEdgeError(f"{cache}: the held-out subjects have no epochs")
        pick = np.sort(rng.choice(len(x), size=min(n, len(x)), replace=False))
        return x[pick], f"{cache} held-out subjects {', '.join(tests)}"
    from host_tools.data import filters

    noise = rng.standard_normal(n * C.EPOCH_SAMPLES) * 40.0
    y = filters.filter_device(noise).reshape(n, C.EPOCH_SAMPLES)
    return y, "filtered Gaussian noise (no cache given)"


CONTEXT_FILES: tuple[str, str] = (CONTEXT_TFLITE, CONTEXT_META)


def _copy_context(src: Path, out: Path) -> Path | None:
    """The context head next to the edge model (``context.tflite`` + ``context.json``, written by
    ``sleepedge train context``) travels with it; without one, a stale head in ``out`` goes."""
    if not (src / CONTEXT_FILES[0]).is_file():
        if src.resolve() != out.resolve():
            for f in CONTEXT_FILES:
                (out / f).unlink(missing_ok=True)
        return None
    meta_path = src / CONTEXT_FILES[1]
    if meta_path.is_file():  # a head trained on another edge model would read meaningless inputs
        trained_on = (json.loads(meta_path.read_text()).get("edge_model") or {}).get("sha256")
        edge_sha = hashlib.sha256((src / "model.tflite").read_bytes()).hexdigest() \
            if (src / "model.tflite").is_file() else None
        if trained_on and edge_sha and trained_on != edge_sha:
            raise SleepEdgeError(f"{src / CONTEXT_FILES[0]}: trained on edge model {trained_on[:12]}, but "
                                 f"{src / 'model.tflite'} is {edge_sha[:12]}; retrain it (`sleepedge train context`)")
    for f in CONTEXT_FILES:
        if (src / f).is_file() and (src / f).resolve() != (out / f).resolve():
            shutil.copyfile(src / f, out / f)
    return out / CONTEXT_FILES[0]


def export(
    tflite: Path, out: Path, *, threshold: float = C.DEFAULT_CONFIDENCE_THRESHOLD,
    name: str = "edge", cache: Path | None = None, n_check: int = 200, c_out: Path | None = None,
    header: Path | None = None, seed: int = 0, input_norm: bool | None = None,
) -> dict[str, Any]:
    """Export ``tflite`` into ``out`` and check TFLM against the TFLite interpreter.

    ``input_norm``: the model sees the causal running-normalized input; ``None`` (default) takes
    it from ``compress.json`` next to ``tflite`` (``"input_norm"``, absent = off). Recorded in
    ``export.json`` (what ``sleepedge predict`` reads) and as ``SE_MODEL_INPUT_NORM`` in C.

    Returns
    -------
    dict
        The ``export.json`` report (sha256, quantization, ops, agreement, files written).
    """
    from host_tools.deploy import codegen
    from host_tools.learn.compress import check_ops, dequantize, io_quantization, tflite_predict_int8
    from host_tools.deploy.predict import TflmModel, decide

    tflite, out = Path(tflite), Path(out)
    if not tflite.is_file():
        raise SleepEdgeError(f"{tflite}: no such .tflite file")
    if not 0.0 < threshold <= 1.0:
        raise SleepEdgeError(f"--threshold must be within (0, 1], got {threshold} "
                             f"(any value <= {NEVER_ESCALATE} never escalates)")
    data = tflite.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise SleepEdgeError(f"{tflite}: not a TFLite flatbuffer (no TFL3 identifier)")
    ops = check_ops(data, str(tflite))
    io = io_quantization(data)
    if io["input_dtype"] != "int8" or io["output_dtype"] != "int8":
        raise SleepEdgeError(f"{tflite}: must be full int8 (input {io['input_dtype']}, output {io['output_dtype']})")
    out.mkdir(parents=True, exist_ok=True)
    dest = out / "model.tflite"
    if dest.resolve() != tflite.resolve():
        shutil.copyfile(tflite, dest)

    try:
        from host_tools.deploy import c_export
    except ModuleNotFoundError as exc:
        raise SleepEdgeError("host_tools.deploy.c_export is not available in this build: cannot write C arrays") from exc
    from host_tools.data.normalize import default_input_norm, model_input_norm

    if input_norm is None:
        norm = model_input_norm(tflite.parent, files=("compress.json",))
    else:
        norm = default_input_norm() if input_norm else None
    c_dir = Path(c_out) if c_out is not None else out
    context = _copy_context(tflite.parent, out)
    c_result = c_export.export_model(dest, c_dir, threshold=float(threshold), name=name,
                                     input_norm=norm is not None, context=context)
    c_figures = {k: getattr(c_result, k) for k in ("arena_bytes", "macs", "hash_u32", "model_bytes")
                 if hasattr(c_result, k)}
    header_path = codegen.write_constants_header(header) if header else codegen.write_constants_header()

    x, source = check_epochs(cache, n_check, seed)
    tflm = TflmModel.load(dest)
    q_in = tflm.quantize_plain(x)  # interpreters compared on the same inputs (epochs of many nights)
    micro = tflm.run_int8(q_in)
    stages, conf = decide(micro, tflm.output_scale, tflm.output_zero_point)

    def compare(host: np.ndarray, kernels: str) -> dict[str, Any]:
        diff = np.abs(micro.astype(np.int16) - host.astype(np.int16))
        return {
            "tflite_kernels": kernels,
            "bit_exact_fraction": float((diff.max(axis=1) == 0).mean()),
            "max_abs_lsb": int(diff.max()),
            "argmax_agreement": float((micro.argmax(1) == host.argmax(1)).mean()),
            "max_prob_diff": float(np.abs(dequantize(micro, io["output_scale"], io["output_zero_point"])
                                          - dequantize(host, io["output_scale"], io["output_zero_point"])).max()),
        }

    # TFLite's reference kernels are the closest host twin of TFLM, yet not identical: on a
    # distilled edge CNN 2.5 % of epochs differed by 1 LSB at the FULLY_CONNECTED output (a
    # requantization rounding tie), which the int8 softmax widens to a few LSB. The default
    # resolver (XNNPACK) differs far more often; both are reported, TFLM stays the reference.
    agreement = {"epochs": int(len(x)), "epochs_from": source,
                 **compare(tflite_predict_int8(data, x, "BUILTIN_REF"), "reference (BUILTIN_REF)"),
                 "default_xnnpack": compare(tflite_predict_int8(data, x, "AUTO"), "default (AUTO, XNNPACK)")}
    k = min(N_REFERENCE, len(x))
    np.savez_compressed(
        out / REFERENCE_FILE, x_filt=x[:k].astype(np.float32), input_int8=q_in[:k], output_int8=micro[:k],
        stage=stages[:k].astype(np.int8), confidence=conf[:k].astype(np.float32),
        input_scale=np.float32(tflm.input_scale), input_zero_point=np.int32(tflm.input_zero_point),
        output_scale=np.float32(tflm.output_scale), output_zero_point=np.int32(tflm.output_zero_point),
    )
    report = {
        "tflite": shown_path(dest), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
        "name": name, "threshold": float(threshold), "ops": ops, "io": io,
        "tflm_vs_tflite": agreement, "reference_vectors": shown_path(out / REFERENCE_FILE),
        "c_out": shown_path(c_dir), "c_export": c_figures, "header": shown_path(header_path),
        "input_norm": norm,
        "context_head": shown_path(context) if context is not None else None,
    }
    (out / "export.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tflite", type=Path, required=True, help="full-int8 model from `sleepedge compress`")
    parser.add_argument("--out", type=Path, default=Path("models/edge"), help="model folder (default: %(default)s)")
    parser.add_argument("--threshold", type=float, default=C.DEFAULT_CONFIDENCE_THRESHOLD,
                        help="escalation confidence threshold baked into the header (default: %(default)s)")
    parser.add_argument("--name", default="edge", help="model name in the C sources (default: %(default)s)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="prepared cache: check TFLM on its held-out epochs (default: filtered noise)")
    parser.add_argument("--c-out", type=Path, default=None, help="folder for model_data/model_plan (default: --out)")
    parser.add_argument("--header", type=Path, default=None,
                        help="constants header to regenerate (default: firmware/generated/sleepedge_constants.h)")
    parser.add_argument("--input-norm", choices=("auto", "on", "off"), default="auto",
                        help="model input is the causal running-normalized epoch (SE_MODEL_INPUT_NORM); "
                             "auto: as compress.json next to --tflite says (default: %(default)s)")
    parser.add_argument("--n-check", type=int, default=200, help="epochs compared TFLM vs TFLite (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    if args.n_check < 1:
        raise SleepEdgeError(f"--n-check must be at least 1, got {args.n_check}")
    r = export(args.tflite, args.out, threshold=args.threshold, name=args.name, cache=args.cache,
               n_check=args.n_check, c_out=args.c_out, header=args.header,
               input_norm={"auto": None, "on": True, "off": False}[args.input_norm])
    a = r["tflm_vs_tflite"]
    print(f"exported {r['tflite']} ({r['bytes']} bytes, sha256 {r['sha256'][:12]}), threshold {r['threshold']:.3f}, "
          f"input norm {'on' if r['input_norm'] else 'off'}")
    print(f"TFLM vs TFLite on {a['epochs']} epochs ({a['epochs_from']}): bit-exact {a['bit_exact_fraction']:.1%}, "
          f"max |diff| {a['max_abs_lsb']} LSB, argmax agreement {a['argmax_agreement']:.1%}")
    print(f"wrote C sources to {r['c_out']}, {r['header']}, {r['reference_vectors']}")
    return 0
