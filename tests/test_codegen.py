"""The committed C constants header is generated from host_tools.constants and stays in sync."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np

from host_tools.deploy import codegen
from host_tools import constants as C
from host_tools.cli import main
from host_tools.data.filters import design_sos


def test_committed_header_is_up_to_date():
    committed = codegen.DEFAULT_HEADER.read_text()
    assert committed == codegen.constants_header(), "run `sleepedge gen-headers` and commit the header"


def test_header_values_parse_back_exactly(tmp_path):
    text = codegen.constants_header()
    assert re.search(rf"#define SE_EPOCH_SAMPLES {C.EPOCH_SAMPLES}\b", text)
    for name, value in C.FRAME_TYPES.items():
        assert f"#define SE_FRAME_{name} 0x{value:02X}" in text
    rows = re.findall(r"\{ ([^{}]+) \}, \\", text)
    got = np.array([[np.float32(v.rstrip("f")) for v in row.split(", ")] for row in rows], dtype=np.float32)
    sos = design_sos()
    assert np.array_equal(got, sos[:, [0, 1, 2, 4, 5]])  # float32 literals round-trip bit for bit


def test_header_compiles_and_filter_literals_are_float32(tmp_path):
    src = tmp_path / "t.c"
    src.write_text('#include "sleepedge_constants.h"\n#include <stdio.h>\n'
                   "static const float sos[SE_FILTER_SECTIONS][5] = SE_FILTER_SOS;\n"
                   'int main(void){for(int i=0;i<SE_FILTER_SECTIONS;i++)for(int j=0;j<5;j++)printf("%a\\n",(double)sos[i][j]);'
                   "return SE_EPOCH_SAMPLES == 3000 ? 0 : 1;}\n")
    exe = tmp_path / "t"
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", f"-I{codegen.DEFAULT_HEADER.parent}",
                    str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    assert [float.fromhex(v) for v in out] == [float(v) for v in design_sos()[:, [0, 1, 2, 4, 5]].ravel()]


def test_gen_headers_cli_writes_the_header(tmp_path, capsys):
    out = tmp_path / "h.h"
    assert main(["gen-headers", "--out", str(out)]) == 0
    assert out.read_text() == codegen.constants_header()


def test_cli_help_is_fast_and_lists_every_stage():
    # Heavy libraries are imported inside commands, so --help must not load TensorFlow.
    code = ("import sys, host_tools.cli as c; c.build_parser(); "
            "print(any(m.startswith(('tensorflow', 'mne', 'fastapi')) for m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"
    res = subprocess.run([sys.executable, "-m", "host_tools", "--help"], capture_output=True, text=True, check=True)
    for word in ("data", "train", "transfer", "compress", "export", "predict", "bench", "monitor", "cloud", "proxy"):
        assert word in res.stdout
