"""Ahead-of-time plan for the native int8 engine (``firmware/core/engine``).

:func:`build_plan` reads a full-int8 ``.tflite`` flatbuffer and resolves everything the firmware
would otherwise compute at start-up, following TFLite Micro's ``Prepare`` functions exactly:
per-channel requantization multipliers and shifts (``QuantizeMultiplier``), activation clamps,
SAME/VALID padding, softmax's fixed-point beta multiplier, ADD's rescaling. It also folds the
input offset into the biases, lays weights out as packed int16 pairs in the order the kernels
read them, and places every activation tensor and scratch buffer in one static arena
(lifetime-based first fit). :func:`plan_to_c` renders the plan as C (``model_plan.{h,c}``).

Supported operators: CONV_2D and DEPTHWISE_CONV_2D used as 1-D convolutions, MAX_POOL_2D,
AVERAGE_POOL_2D, FULLY_CONNECTED, ADD, SOFTMAX and the shape-only EXPAND_DIMS, RESHAPE,
SQUEEZE (free: their output aliases their input). Anything else raises
:class:`~host_tools.errors.SleepEdgeError` naming the operator. docs/engine.md has the details.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from host_tools.errors import SleepEdgeError

#: Byte alignment of every arena buffer (LDRD needs 4, keep 8 for 64-bit friendliness).
ARENA_ALIGN = 8
#: Upper bound for one convolution's int16 expansion buffer; larger chunks gain nothing.
MAX_SCRATCH_BYTES = 2048
#: Output positions expanded per chunk at most (amortises overlap of neighbouring windows).
MAX_CHUNK = 32

_SHAPE_OPS = ("EXPAND_DIMS", "RESHAPE", "SQUEEZE")
_SUPPORTED = (
    "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D",
    "FULLY_CONNECTED", "ADD", "SOFTMAX", *_SHAPE_OPS,
)


# --- TFLite quantization arithmetic (Python mirrors of TFLM's Prepare-time helpers) ---------

def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier``: ``real ~= q * 2**(shift - 31)`` with ``q`` in [2**30, 2**31).

    Parameters
    ----------
    real : float
        Positive real multiplier (double precision, as TFLM computes it).

    Returns
    -------
    tuple of int
        ``(quantized_multiplier, shift)``; shift > 0 is a left shift.
    """
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    # TfLiteRound = round half away from zero
    q_fixed = int(math.floor(abs(q) * (1 << 31) + 0.5)) * (1 if q >= 0 else -1)
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def activation_range(act: int, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLite ``CalculateActivationRangeQuantized`` for int8 outputs.

    Parameters
    ----------
    act : int
        ``ActivationFunctionType`` (0 none, 1 RELU, 2 RELU_N1_TO_1, 3 RELU6).
    scale, zero_point : float, int
        Output quantization.
    """
    qmin, qmax = -128, 127
    s = np.float32(scale)

    def quantize(f: float) -> int:
        v = np.float32(f) / s  # float32 division, as in TFLM
        return zero_point + int(math.copysign(math.floor(abs(float(v)) + 0.5), float(v)))

    if act == 0:
        return qmin, qmax
    if act == 1:
        return max(qmin, quantize(0.0)), qmax
    if act == 3:
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if act == 2:
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    raise SleepEdgeError(f"unsupported fused activation type {act}")


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """TFLM int8 softmax prepare: ``(input_multiplier, input_left_shift, diff_min)``."""
    integer_bits = 5  # kScaledDiffIntegerBits
    real = min(beta * float(np.float32(input_scale)) * (1 << (31 - integer_bits)), (1 << 31) - 1.0)
    mult, shift = quantize_multiplier(real)
    if shift < 0:
        raise SleepEdgeError("softmax input scale too small for TFLM's fixed-point softmax")
    radius = math.floor(((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << shift))
    return mult, shift, -radius


def _out_size(padding_same: bool, size: int, k: int, stride: int) -> int:
    return (size + stride - 1) // stride if padding_same else (size + stride - k) // stride


def _pad_before(size: int, k: int, stride: int, out: int) -> int:
    total = (out - 1) * stride + k - size
    return max(total, 0) // 2


# --- plan data structures -------------------------------------------------------------------

@dataclass
class TensorInfo:
    """One int8 activation tensor of the graph."""

    index: int
    shape: tuple[int, ...]
    scale: float
    zero_point: int

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1


@dataclass
class PlanOp:
    """One engine operation with every parameter resolved.

    ``kind`` is one of ``conv`` (CONV_2D and FULLY_CONNECTED), ``dwconv``, ``maxpool``,
    ``avgpool``, ``add``, ``softmax``. ``inputs``/``output`` are buffer ids (aliases resolved),
    ``params`` scalar C fields, ``arrays`` name -> (C type, numpy array) of constant data.
    """

    kind: str
    tflite_op: str
    inputs: list[int]
    output: int
    params: dict[str, int] = field(default_factory=dict)
    arrays: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)
    scratch_bytes: int = 0
    macs: int = 0


@dataclass
class Plan:
    """The whole ahead-of-time plan: ops, arena offsets and model I/O description."""

    ops: list[PlanOp]
    offsets: dict[str, int]
    arena_bytes: int
    macs: int
    input: TensorInfo
    output: TensorInfo
    #: per arena buffer ("t<tensor>" activations, "s<op>" scratch): bytes and [first, last] op
    sizes: dict[str, int]
    lifetimes: dict[str, tuple[int, int]]


# --- flatbuffer reading -----------------------------------------------------------------------

def _load(model_bytes: bytes, source: str) -> Any:
    from tensorflow.lite.python import schema_py_generated as schema  # heavy: lazy

    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(model_bytes), 0))
    except Exception as exc:  # flatbuffers raises assorted errors on garbage
        raise SleepEdgeError(f"{source}: not a TFLite flatbuffer ({exc.__class__.__name__})") from None
    if not model.subgraphs:
        raise SleepEdgeError(f"{source}: TFLite model has no subgraph")
    if len(model.subgraphs) != 1:
        raise SleepEdgeError(f"{source}: TFLite model has {len(model.subgraphs)} subgraphs, expected 1")
    return model


def _op_name(model: Any, op: Any) -> str:
    from tensorflow.lite.python import schema_py_generated as schema

    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    if builtin == schema.BuiltinOperator.CUSTOM:
        name = code.customCode.decode() if code.customCode else "?"
        return f"CUSTOM({name})"
    for key, value in vars(schema.BuiltinOperator).items():
        if not key.startswith("_") and value == builtin:
            return key
    return f"BUILTIN_{builtin}"


class _Graph:
    """Typed accessors over the object-API model."""

    def __init__(self, model: Any, source: str, raw: bytes) -> None:
        self.model = model
        self.source = source
        self.sg = model.subgraphs[0]
        self._bytes = raw  # for buffers stored after the flatbuffer (offset/size form)

    def tensor(self, i: int) -> Any:
        return self.sg.tensors[i]

    def shape(self, i: int) -> tuple[int, ...]:
        s = self.tensor(i).shape
        return tuple(int(v) for v in s) if s is not None else ()

    def data(self, i: int, dtype: Any) -> np.ndarray:
        t = self.tensor(i)
        buf = self.model.buffers[t.buffer]
        raw = buf.data
        if raw is None or len(raw) == 0:
            if getattr(buf, "size", 0):
                off, size = int(buf.offset), int(buf.size)
                raw = self._bytes[off:off + size]
            else:
                raise SleepEdgeError(f"{self.source}: constant tensor {t.name!r} has no data")
        arr = np.frombuffer(bytes(bytearray(raw)), dtype=dtype)
        return arr.reshape(self.shape(i)) if self.shape(i) else arr

    def quant(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        q = self.tensor(i).quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            name = self.tensor(i).name.decode(errors="replace")
            raise SleepEdgeError(f"{self.source}: tensor {name!r} is not quantized (need a full-int8 model)")
        return np.asarray(q.scale, dtype=np.float32), np.asarray(q.zeroPoint, dtype=np.int64)

    def act_info(self, i: int) -> TensorInfo:
        from tensorflow.lite.python import schema_py_generated as schema

        t = self.tensor(i)
        if t.type != schema.TensorType.INT8:
            name = t.name.decode(errors="replace")
            raise SleepEdgeError(f"{self.source}: tensor {name!r} is not int8 (type {t.type}); "
                                 "export a full-int8 model")
        scale, zp = self.quant(i)
        return TensorInfo(i, self.shape(i), float(scale[0]), int(zp[0]))


def _time_axis(source: str, op_name: str, shape4: tuple[int, ...], kh: int, kw: int) -> str:
    """Which spatial axis of an NHWC tensor is time: 'w' (H == 1) or 'h' (W == 1)."""
    if len(shape4) != 4 or shape4[0] != 1:
        raise SleepEdgeError(f"{source}: {op_name} input shape {list(shape4)} is not (1, H, W, C)")
    _, h, w, _ = shape4
    if h == 1 and kh == 1:
        return "w"
    if w == 1 and kw == 1:
        return "h"
    raise SleepEdgeError(f"{source}: {op_name} is a 2-D window ({kh}x{kw} over {h}x{w}); "
                         "only 1-D (height or width 1) is supported")


def _pack_pairs(w: np.ndarray) -> np.ndarray:
    """int16 matrix (..., K_even) -> uint32 words, element 2j in the low half, 2j+1 high."""
    w16 = w.astype(np.int16).view(np.uint16).astype(np.uint32)
    return w16[..., 0::2] | (w16[..., 1::2] << 16)


def _conv_weights(w: np.ndarray) -> np.ndarray:
    """Lay out (out_c, K) int8 weights as the conv kernels read them.

    Output channels go in groups of 4, then a group of 2 and a group of 1 for the rest; inside a
    group, for each int16 pair j of the patch, the pair words of the group's channels follow each
    other. K is padded to a multiple of 4 with zero weights.
    """
    out_c, k = w.shape
    if k % 4:  # whole SMLAD pairs, an even number of them: no tail code in the kernels
        w = np.concatenate([w, np.zeros((out_c, 4 - k % 4), w.dtype)], axis=1)
    words = _pack_pairs(w)  # (out_c, K2)
    blocks = []
    c = 0
    while c < out_c:
        g = 4 if out_c - c >= 4 else (2 if out_c - c >= 2 else 1)
        blocks.append(words[c:c + g].T.reshape(-1))  # (K2, g) -> pair-major
        c += g
    return np.concatenate(blocks).astype(np.uint32)


def _per_channel(graph: _Graph, in_t: TensorInfo, w_idx: int, out_t: TensorInfo,
                 n: int) -> tuple[np.ndarray, np.ndarray]:
    w_scale, w_zp = graph.quant(w_idx)
    if np.any(w_zp != 0):
        raise SleepEdgeError(f"{graph.source}: weights with nonzero zero point are not int8-spec")
    scales = np.broadcast_to(w_scale, (n,)) if len(w_scale) == 1 else w_scale
    if len(scales) != n:
        raise SleepEdgeError(f"{graph.source}: {len(scales)} weight scales for {n} channels")
    mult = np.zeros(n, np.int32)
    shift = np.zeros(n, np.int8)
    for c in range(n):
        real = float(np.float32(in_t.scale)) * float(scales[c]) / float(np.float32(out_t.scale))
        mult[c], shift[c] = quantize_multiplier(real)
    return mult, shift


def _bias(graph: _Graph, op: Any, n: int) -> np.ndarray:
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return np.zeros(n, np.int64)
    from tensorflow.lite.python import schema_py_generated as schema

    if graph.tensor(op.inputs[2]).type != schema.TensorType.INT32:
        raise SleepEdgeError(f"{graph.source}: bias is not int32 (16x8 models are not supported)")
    return graph.data(op.inputs[2], np.int32).astype(np.int64).reshape(-1)


def _wrap32(v: np.ndarray) -> np.ndarray:
    return ((v.astype(np.int64) + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int32)


# --- plan building --------------------------------------------------------------------------

def build_plan(model_bytes: bytes, source: str = "<model>") -> Plan:
    """Resolve a full-int8 TFLite model into an engine plan.

    Parameters
    ----------
    model_bytes : bytes
        The ``.tflite`` flatbuffer.
    source : str
        Name used in error messages (usually the file path).

    Returns
    -------
    Plan
        Ops, arena layout, MAC count and I/O quantization.

    Raises
    ------
    SleepEdgeError
        Unsupported operator, non-int8 tensors, 2-D windows, broadcasting ADD, ...
    """
    model = _load(model_bytes, source)
    g = _Graph(model, source, bytes(model_bytes))
    sg = g.sg
    if len(sg.inputs) != 1 or len(sg.outputs) != 1:
        raise SleepEdgeError(f"{source}: model must have one input and one output "
                             f"(has {len(sg.inputs)} and {len(sg.outputs)})")
    in_t = g.act_info(int(sg.inputs[0]))
    out_t = g.act_info(int(sg.outputs[0]))

    # alias[i] = buffer id holding tensor i (shape ops are free)
    alias: dict[int, int] = {in_t.index: in_t.index}
    ops: list[PlanOp] = []
    for op in sg.operators:
        name = _op_name(model, op)
        if name not in _SUPPORTED:
            raise SleepEdgeError(f"{source}: operator {name} is not supported by the native engine "
                                 f"(supported: {', '.join(_SUPPORTED)})")
        ins = [int(i) for i in op.inputs]
        out = int(op.outputs[0])
        if name in _SHAPE_OPS:
            a, b = g.act_info(ins[0]), g.act_info(out)
            if a.size != b.size or a.scale != b.scale or a.zero_point != b.zero_point:
                raise SleepEdgeError(f"{source}: {name} changes size or quantization")
            alias[out] = alias[ins[0]]
            continue
        for i in ins[:1] + ([ins[1]] if name == "ADD" else []):
            if i not in alias:
                raise SleepEdgeError(f"{source}: {name} reads tensor {i} before it is computed")
        alias[out] = out
        ops.append(_build_op(g, name, op, alias))

    if out_t.index not in alias:
        raise SleepEdgeError(f"{source}: the output tensor is never computed")
    return _allocate(ops, alias, in_t, out_t, g)


def _build_op(g: _Graph, name: str, op: Any, alias: dict[int, int]) -> PlanOp:
    src = g.source
    ins = [int(i) for i in op.inputs]
    out = int(op.outputs[0])
    x, y = g.act_info(ins[0]), g.act_info(out)
    opt = op.builtinOptions
    act = int(getattr(opt, "fusedActivationFunction", 0) or 0)
    act_min, act_max = activation_range(act, y.scale, y.zero_point)

    if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D"):
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            wshape = g.shape(ins[1])
            kh, kw = wshape[1], wshape[2]
        else:
            kh, kw = int(opt.filterHeight), int(opt.filterWidth)
        axis = _time_axis(src, name, x.shape, kh, kw)
        _, h, w, c = x.shape
        in_w, k = (w, kw) if axis == "w" else (h, kh)
        stride = int(opt.strideW if axis == "w" else opt.strideH)
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            dil = int(opt.dilationWFactor if axis == "w" else opt.dilationHFactor)
            if dil != 1:
                raise SleepEdgeError(f"{src}: {name} with dilation {dil} is not supported")
        same = int(opt.padding) == 0
        out_w = _out_size(same, in_w, k, stride)
        pad = _pad_before(in_w, k, stride, out_w)
        yc = y.shape[-1]
        if len(y.shape) != 4 or y.size != out_w * yc:
            raise SleepEdgeError(f"{src}: {name} output shape {list(y.shape)} != expected width {out_w}")
        base = dict(in_w=in_w, out_w=out_w, kernel=k, stride=stride, pad=pad,
                    act_min=act_min, act_max=act_max, act=act)
        if name == "CONV_2D":
            wt = g.data(ins[1], np.int8).reshape(yc, k, c).reshape(yc, k * c)
            return _conv_op(g, name, op, x, y, wt, dict(base, in_c=c, out_c=yc), alias)
        if name == "DEPTHWISE_CONV_2D":
            if yc % c:
                raise SleepEdgeError(f"{src}: depthwise output channels {yc} not a multiple of {c}")
            wt = g.data(ins[1], np.int8).reshape(k, yc)
            mult, shift = _per_channel(g, x, ins[1], y, yc)
            bias = _bias(g, op, yc)
            p = PlanOp("dwconv", name, [alias[ins[0]]], out, macs=out_w * yc * k)
            p.params = dict(base, in_c=c, out_c=yc, depth_mult=yc // c,
                            in_offset=-x.zero_point, out_zp=y.zero_point)
            p.arrays = {"weights": ("int8_t", wt.reshape(-1).astype(np.int8)),
                        "bias": ("int32_t", _wrap32(bias)),
                        "mult": ("int32_t", mult), "shift": ("int8_t", shift)}
            return p
        if x.scale != y.scale or x.zero_point != y.zero_point:
            raise SleepEdgeError(f"{src}: {name} changes quantization (TFLM requires equal)")
        kind = "maxpool" if name == "MAX_POOL_2D" else "avgpool"
        p = PlanOp(kind, name, [alias[ins[0]]], out)
        p.params = dict(base, c=c)
        return p

    if name == "FULLY_CONNECTED":
        wshape = g.shape(ins[1])
        if len(wshape) != 2:
            raise SleepEdgeError(f"{src}: FULLY_CONNECTED weights of shape {list(wshape)}")
        n_out, n_in = wshape
        if x.size % n_in:
            raise SleepEdgeError(f"{src}: FULLY_CONNECTED input size {x.size} not a multiple of {n_in}")
        rows = x.size // n_in
        if y.size != rows * n_out:
            raise SleepEdgeError(f"{src}: FULLY_CONNECTED output shape {list(y.shape)} unexpected")
        wt = g.data(ins[1], np.int8).reshape(n_out, n_in)
        return _conv_op(g, name, op, x, y, wt,
                        dict(in_w=rows, out_w=rows, kernel=1, stride=1, pad=0, in_c=n_in,
                             out_c=n_out, act_min=act_min, act_max=act_max, act=act), alias)

    if name == "ADD":
        x2 = g.act_info(ins[1])
        if x.size != y.size or x2.size != y.size or (x.shape != x2.shape and x.size != x2.size):
            raise SleepEdgeError(f"{src}: ADD with broadcasting ({list(x.shape)} + {list(x2.shape)}) "
                                 "is not supported")
        left_shift = 20
        s1, s2, so = (float(np.float32(t.scale)) for t in (x, x2, y))
        twice_max = 2.0 * max(s1, s2)
        m1, sh1 = quantize_multiplier(s1 / twice_max)
        m2, sh2 = quantize_multiplier(s2 / twice_max)
        mo, sho = quantize_multiplier(twice_max / ((1 << left_shift) * so))
        p = PlanOp("add", name, [alias[ins[0]], alias[ins[1]]], out)
        p.params = dict(n=y.size, in1_offset=-x.zero_point, in2_offset=-x2.zero_point,
                        out_offset=y.zero_point, left_shift=left_shift,
                        in1_mult=m1, in1_shift=sh1, in2_mult=m2, in2_shift=sh2,
                        out_mult=mo, out_shift=sho, act_min=act_min, act_max=act_max)
        return p

    if name == "SOFTMAX":
        if y.zero_point != -128 or np.float32(y.scale) != np.float32(1.0 / 256):
            raise SleepEdgeError(f"{src}: SOFTMAX output must be int8 with scale 1/256, zero point -128")
        depth = x.shape[-1]
        mult, shift, diff_min = softmax_params(float(opt.beta), x.scale)
        p = PlanOp("softmax", name, [alias[ins[0]]], out)
        p.params = dict(rows=x.size // depth, depth=depth, in_mult=mult, in_left_shift=shift,
                        diff_min=diff_min)
        return p
    raise AssertionError(name)  # pragma: no cover - _SUPPORTED is checked first


def _conv_op(g: _Graph, name: str, op: Any, x: TensorInfo, y: TensorInfo, wt: np.ndarray,
             prm: dict[str, int], alias: dict[int, int]) -> PlanOp:
    out_c, k_flat = wt.shape
    mult, shift = _per_channel(g, x, int(op.inputs[1]), y, out_c)
    bias = _bias(g, op, out_c)
    # Fold the input offset: sum_t w*(x + off) = sum_t w*x + off*sum_t w, exact also for padding
    # positions because the kernels fill them with the input zero point (= -off).
    folded = bias + (-x.zero_point) * wt.astype(np.int64).sum(axis=1)
    in_c, stride, k = prm["in_c"], prm["stride"], prm["kernel"]
    # Rows of a chunk of output positions are expanded to int16 once. When a patch can start on
    # an odd element (stride * in_c odd), a second copy shifted by one element keeps every patch
    # word-aligned for SMLAD.
    two_phase = (stride * in_c) % 2 == 1

    def scratch_words(chunk: int) -> tuple[int, int]:
        n = ((chunk - 1) * stride + k) * in_c
        even = (n + 4) // 2 + ((n + 4) // 2) % 2  # + three zero elements; 8-byte multiples
        return even, (even + (n + 3) // 2 if two_phase else even)

    chunk = 1
    while chunk < min(MAX_CHUNK, prm["out_w"]) and scratch_words(chunk + 1)[1] * 4 <= MAX_SCRATCH_BYTES:
        chunk += 1
    odd_words, acc_words = scratch_words(chunk)
    total_words = acc_words + out_c
    # Fast requantization (requant_row in se_engine.c) is exact whenever every channel's shift
    # is a right shift 1 <= r <= 22 (no int64 overflow with the zero point folded in) and its
    # multiplier is positive.
    r = -shift.astype(np.int64)
    fast = bool(np.all(r >= 1) and np.all(r <= 22) and np.all(mult > 0))
    p = PlanOp("conv", name, [alias[int(op.inputs[0])]], int(op.outputs[0]))
    p.params = dict(prm, chunk=chunk, odd_words=odd_words, acc_words=acc_words, in_zp=x.zero_point,
                    out_zp=y.zero_point)
    scratch = total_words * 4
    p.scratch_bytes = scratch
    p.macs = prm["out_w"] * out_c * k_flat
    p.arrays = {"weights": ("uint32_t", _conv_weights(wt)), "bias": ("int32_t", _wrap32(folded)),
                "mult": ("int32_t", mult), "shift": ("int8_t", shift)}
    if fast:
        cst = (1 << 30) + (1 << (30 + r)) + y.zero_point * (1 << (31 + r))
        rq = np.stack([mult.astype(np.int64), cst & 0xFFFFFFFF, cst >> 32, r - 1], axis=1)  # floor >>
        p.arrays["rq"] = ("int32_t", _wrap32(rq.reshape(-1)))
    return p


def _allocate(ops: list[PlanOp], alias: dict[int, int], in_t: TensorInfo, out_t: TensorInfo,
              g: _Graph) -> Plan:
    sizes: dict[str, int] = {}
    life: dict[str, list[int]] = {}

    def use(key: str, size: int, t: int) -> None:
        sizes[key] = size
        lo, hi = life.get(key, [t, t])
        life[key] = [min(lo, t), max(hi, t)]

    use(f"t{in_t.index}", in_t.size, -1)
    for t, p in enumerate(ops):
        for b in p.inputs:
            use(f"t{b}", g.act_info(b).size, t)
        use(f"t{p.output}", g.act_info(p.output).size, t)
        if p.scratch_bytes:
            use(f"s{t}", p.scratch_bytes, t)
    out_key = f"t{alias[out_t.index]}"
    use(out_key, out_t.size, len(ops))

    # greedy: biggest first, lowest offset not overlapping any placed buffer alive at the same time
    placed: list[tuple[int, int, int, int]] = []  # offset, end, first, last
    offsets: dict[str, int] = {}
    for key in sorted(sizes, key=lambda k: (-sizes[k], k)):
        lo, hi = life[key]
        size = -(-sizes[key] // ARENA_ALIGN) * ARENA_ALIGN
        clashes = sorted((o, e) for o, e, a, b in placed if not (b < lo or a > hi))
        off = 0
        for o, e in clashes:
            if off + size <= o:
                break
            off = max(off, e)
        offsets[key] = off
        placed.append((off, off + size, lo, hi))
    arena = max((e for _, e, _, _ in placed), default=0)
    return Plan(ops=ops, offsets=offsets, arena_bytes=arena, macs=sum(p.macs for p in ops),
                input=in_t, output=TensorInfo(alias[out_t.index], out_t.shape, out_t.scale,
                                              out_t.zero_point),
                sizes=dict(sizes), lifetimes={k: (v[0], v[1]) for k, v in life.items()})


# --- C rendering ------------------------------------------------------------------------------

def _c_array(ctype: str, name: str, arr: np.ndarray) -> str:
    vals = [str(int(v)) + ("u" if ctype.startswith("uint") else "") for v in arr.reshape(-1)]
    if ctype == "int32_t":
        vals = [f"(int32_t){v}" if int(v) == -(1 << 31) else v for v in vals]
    lines = [", ".join(vals[i:i + 12]) for i in range(0, len(vals), 12)] or ["0"]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{max(len(vals), 1)}] = {{\n    {body}\n}};\n"


_FIELDS = {
    "conv": ["in_w", "in_c", "out_w", "out_c", "kernel", "stride", "pad", "chunk", "odd_words", "acc_words",
             "in_zp", "out_zp", "act_min", "act_max"],
    "dwconv": ["in_w", "in_c", "out_w", "out_c", "depth_mult", "kernel", "stride", "pad",
               "in_offset", "out_zp", "act_min", "act_max"],
    "maxpool": ["in_w", "c", "out_w", "kernel", "stride", "pad", "act_min", "act_max"],
    "avgpool": ["in_w", "c", "out_w", "kernel", "stride", "pad", "act_min", "act_max"],
    "add": ["n", "in1_offset", "in2_offset", "out_offset", "left_shift", "in1_mult", "in1_shift",
            "in2_mult", "in2_shift", "out_mult", "out_shift", "act_min", "act_max"],
    "softmax": ["rows", "depth", "in_mult", "in_left_shift", "diff_min"],
}
_KIND_ENUM = {"conv": "SE_OP_CONV", "dwconv": "SE_OP_DWCONV", "maxpool": "SE_OP_MAXPOOL",
              "avgpool": "SE_OP_AVGPOOL", "add": "SE_OP_ADD", "softmax": "SE_OP_SOFTMAX"}
_UNION = {"conv": "conv", "dwconv": "dw", "maxpool": "pool", "avgpool": "pool", "add": "add",
          "softmax": "softmax"}


def plan_to_c(plan: Plan, *, header_name: str = "model_plan.h", comment: str = "",
              symbol: str = "g_se_plan", macro: str = "SE_PLAN") -> tuple[str, str]:
    """Render a plan as ``(model_plan.h, model_plan.c)`` source text.

    Parameters
    ----------
    plan : Plan
        From :func:`build_plan`.
    header_name : str
        File name the .c includes.
    comment : str
        One line placed in both files' banner (e.g. the model hash).
    symbol, macro : str
        The plan's C symbol and its macros' prefix: a second model in the same image (the
        context head: ``g_se_context_plan``, ``SE_CONTEXT_PLAN``) needs its own.
    """
    guard = header_name.upper().replace(".", "_").replace("-", "_")
    guard = f"SE_{guard}" if not guard.startswith("SE_") else guard
    banner = "/* Generated by host_tools.deploy.plan. Do not edit." + (f"\n * {comment}" if comment else "") + " */\n"
    h = (f"{banner}#ifndef {guard}\n#define {guard}\n\n#include \"se_engine.h\"\n\n"
         f"#define {macro}_ARENA_BYTES {plan.arena_bytes}u\n"
         f"#define {macro}_MACS {plan.macs}u\n"
         f"#define {macro}_INPUT_BYTES {plan.input.size}u\n"
         f"#define {macro}_OUTPUT_BYTES {plan.output.size}u\n"
         f"#define {macro}_N_OPS {len(plan.ops)}u\n\n"
         "/** The model as the native engine runs it (se_engine_run). */\n"
         f"extern const se_plan_t {symbol};\n\n"
         f"#endif /* {guard} */\n")
    parts = [banner, f"#include \"{header_name}\"\n\n"]
    op_inits = []
    for t, p in enumerate(plan.ops):
        names = {}
        for key, (ctype, arr) in p.arrays.items():
            cname = f"s_op{t}_{key}"
            names[key] = cname
            parts.append(_c_array(ctype, cname, arr))
        fields = [f".{f} = {int(p.params[f])}" for f in _FIELDS[p.kind]]
        if p.kind == "add":
            fields = [f".in1 = {plan.offsets[f't{p.inputs[0]}']}u",
                      f".in2 = {plan.offsets[f't{p.inputs[1]}']}u"] + fields
        else:
            fields = [f".in = {plan.offsets[f't{p.inputs[0]}']}u"] + fields
        fields.append(f".out = {plan.offsets[f't{p.output}']}u")
        if p.scratch_bytes:
            fields.append(f".scratch = {plan.offsets[f's{t}']}u")
        fields += [f".{k} = {v}" for k, v in names.items()]
        body = ",\n            ".join(fields)
        op_inits.append(f"    {{ /* {t}: {p.tflite_op} */\n        .kind = {_KIND_ENUM[p.kind]},\n"
                        f"        .u.{_UNION[p.kind]} = {{\n            {body}\n        }}\n    }}")
    parts.append("\nstatic const se_op_t s_ops[] = {\n" + ",\n".join(op_inits) + "\n};\n\n")
    parts.append(
        f"const se_plan_t {symbol} = {{\n"
        "    .ops = s_ops,\n"
        f"    .n_ops = {len(plan.ops)}u,\n"
        f"    .arena_bytes = {plan.arena_bytes}u,\n"
        f"    .input = {plan.offsets[f't{plan.input.index}']}u,\n"
        f"    .input_bytes = {plan.input.size}u,\n"
        f"    .output = {plan.offsets[f't{plan.output.index}']}u,\n"
        f"    .output_bytes = {plan.output.size}u,\n"
        f"    .macs = {plan.macs}u,\n"
        "};\n")
    return h, "".join(parts)


def write_plan(tflite_path: str | Path, out_dir: str | Path) -> Plan:
    """Read ``tflite_path`` and write ``model_plan.{h,c}`` into ``out_dir``; return the plan."""
    path = Path(tflite_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SleepEdgeError(f"{path}: cannot read model ({exc.strerror})") from None
    plan = build_plan(data, str(path))
    h, c = plan_to_c(plan)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model_plan.h").write_text(h)
    (out / "model_plan.c").write_text(c)
    return plan
