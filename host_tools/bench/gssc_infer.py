"""GSSC (Greifswald Sleep Stage Classifier) on single-channel recordings, run in ``.venv-gssc``.

GSSC needs PyTorch, which stays out of SleepEdge's own environment, so ``sleepedge bench real``
runs this file as a script with the GSSC environment's Python::

    .venv-gssc/bin/python host_tools/bench/gssc_infer.py IN.npz OUT.npz

``IN.npz`` holds ``names`` (str array) and, per name, ``signal_<name>`` (float microvolts),
``fs_<name>`` and ``channel_<name>``. ``OUT.npz`` gets ``stages_<name>`` (int, one per 30-s epoch
from the recording's start; 0 W, 1 N1, 2 N2, 3 N3, 4 REM, the order of SleepEdge's STAGES) and
``gssc_version``. Each recording is staged whole, so GSSC's recurrent context sees the whole night.
It imports nothing from SleepEdge.
"""

from __future__ import annotations

import sys
import warnings


def stage_recording(infer, signal_uv, fs: float, channel: str):
    """GSSC's stages of one EEG channel (no EOG), on CPU, whole recording at once."""
    import mne
    import numpy as np

    x = np.asarray(signal_uv, dtype=np.float64)
    # GSSC takes the duration as raw.times[-1], one sample short of whole epochs, and would drop
    # the last epoch; one repeated sample makes the duration exact (and epochs end inclusive).
    x = np.append(x, x[-1:])
    info = mne.create_info([channel], float(fs), ch_types=["eeg"])
    raw = mne.io.RawArray(x[None, :] * 1e-6, info, verbose="error")
    stages, _times = infer.mne_infer(raw, eeg=[channel], eog=[], filter=True)
    return np.asarray(stages, dtype=np.int64)


def load_infer():
    """GSSC's default networks. Torch >= 2.6 loads weights only by default; GSSC ships whole
    pickled modules (trusted: they come inside the installed wheel), so load them explicitly."""
    import torch
    from importlib_resources import files

    from gssc.infer import EEGInfer

    nets = files("gssc.nets")
    net = torch.load(nets.joinpath("sig_net_v1.pt"), weights_only=False, map_location="cpu")
    con_net = torch.load(nets.joinpath("gru_net_v1.pt"), weights_only=False, map_location="cpu")
    return EEGInfer(net=net, con_net=con_net, use_cuda=False)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: gssc_infer.py IN.npz OUT.npz", file=sys.stderr)
        return 2
    import contextlib
    import io
    from importlib.metadata import version

    import mne
    import numpy as np

    mne.set_log_level("ERROR")
    warnings.simplefilter("ignore")
    data = np.load(argv[0], allow_pickle=False)
    infer = load_infer()
    out: dict[str, np.ndarray] = {"gssc_version": np.array(version("gssc"))}
    for name in (str(n) for n in data["names"]):
        with contextlib.redirect_stdout(io.StringIO()):  # GSSC prints per permutation
            out[f"stages_{name}"] = stage_recording(infer, data[f"signal_{name}"], float(data[f"fs_{name}"]),
                                                    str(data[f"channel_{name}"]))
    np.savez(argv[1], **out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
