"""``sleepedge compress``: magnitude pruning, optional quantization-aware training, full-int8 TFLite.

Pipeline (all on the training subjects of a prepared cache; held-out subjects only score):

1. load the float edge model (``.keras``). tensorflow-model-optimization 0.8.1 works with
   tf_keras (Keras 2) only, so a Keras 3 file is rebuilt layer by layer in tf_keras with its
   weights (:func:`load_tf_keras`);
2. wrap every prunable layer with ``prune_low_magnitude`` (PolynomialDecay from 0 to the target
   sparsity over the first 70 % of the fine-tune steps), fine-tune a few passes, ``strip_pruning``;
3. optionally quantization-aware training (fake-quant on Conv1D / DepthwiseConv1D / Dense);
4. post-training full-int8 conversion: int8 input and output, ``TFLITE_BUILTINS_INT8`` only, and a
   representative dataset of training epochs clipped to +-``EDGE_INPUT_CLIP_UV`` exactly as the
   device saturates its int8 input;
5. check the operator set (:data:`ALLOWED_OPS`) and report float / pruned / int8 accuracy on the
   held-out subjects side by side (table + ``compress.json``) with the measured sparsity.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from host_tools import constants as C
from host_tools.errors import SleepEdgeError

#: Operators the firmware's native engine and the TFLM op resolver implement.
ALLOWED_OPS: frozenset[str] = frozenset({
    "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED",
    "ADD", "SOFTMAX", "EXPAND_DIMS", "RESHAPE", "SQUEEZE",
})
#: Representative epochs used to calibrate int8 ranges (more adds time, not accuracy).
N_REPRESENTATIVE: int = 400


# --------------------------------------------------------------------------------------------
# Keras 2 / Keras 3
# --------------------------------------------------------------------------------------------

def _tf_keras():
    import tf_keras

    return tf_keras


#: Layer config keys Keras 3 writes and tf_keras does not accept.
_KERAS3_ONLY_KEYS = frozenset({"optional", "synchronized", "quantization_config", "lora_rank",
                               "lora_alpha", "gamma_regularizer_config"})


def _from_config(cls: Any, cfg: dict) -> Any:
    """``cls.from_config`` dropping, one at a time, keys tf_keras rejects as unknown keywords."""
    cfg = dict(cfg)
    for _ in range(len(cfg) + 1):
        try:
            return cls.from_config(cfg)
        except TypeError as exc:
            found = re.findall(r"'(\w+)'", str(exc).split("Exception encountered:")[-1])
            drop = [k for k in found if k in cfg and k not in ("name",)]
            if not drop:
                raise
            for k in drop:
                cfg.pop(k)
    raise TypeError(f"cannot rebuild {cls.__name__} from {cfg}")


def _clean_config(cfg: dict) -> dict:
    """A Keras 3 layer config made acceptable to tf_keras (weights are copied afterwards, so
    initializers are left at their defaults)."""
    out = {}
    for key, value in cfg.items():
        if key in _KERAS3_ONLY_KEYS or key.endswith("_initializer"):
            continue
        if key == "batch_shape":
            key = "batch_input_shape"
        if key == "dtype" and isinstance(value, dict):  # DTypePolicy -> its name
            value = value.get("config", {}).get("name", "float32")
        if isinstance(value, dict) and "class_name" in value and "module" in value:
            # Keras 3 serialized regularizer / constraint: tf_keras knows the same class names.
            value = {"class_name": value["class_name"], "config": value.get("config", {})}
        out[key] = value
    return out


def _replacement_layers(layer: Any, tfk: Any) -> list[Any] | None:
    """tf_keras layers computing the same as ``layer`` with only firmware-supported ops, or None.

    GlobalAveragePooling1D converts to the MEAN operator, which the engine lacks; an
    AveragePooling1D over the whole time axis plus Flatten gives AVERAGE_POOL_2D + RESHAPE.
    """
    if type(layer).__name__ == "GlobalAveragePooling1D" and not layer.get_config().get("keepdims"):
        steps = int(layer.input.shape[1])
        return [tfk.layers.AveragePooling1D(pool_size=steps, name=layer.name + "_avg"),
                tfk.layers.Flatten(name=layer.name)]
    return None


def to_tf_keras(model: Any) -> Any:
    """Rebuild a Keras 3 (or tf_keras) functional / sequential model in tf_keras, weights included.

    Each layer must be called once (no shared layers), which holds for the SleepEdge CNNs.
    GlobalAveragePooling1D is replaced by an equivalent AveragePooling1D + Flatten.
    """
    tfk = _tf_keras()
    if len(model.inputs) != 1:
        raise SleepEdgeError(f"model {model.name}: expected one input, found {len(model.inputs)}")
    inp = tfk.Input(shape=tuple(model.inputs[0].shape[1:]), name="epoch_uv")
    tensors: dict[int, Any] = {id(model.inputs[0]): inp}
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        nodes = [n for n in layer._inbound_nodes if all(id(t) in tensors for t in _flat(n.input_tensors))]
        if len(nodes) != 1:
            raise SleepEdgeError(f"model {model.name}: layer {layer.name} is shared or disconnected")
        node = nodes[0]
        ins = [tensors[id(t)] for t in _flat(node.input_tensors)]
        arg = ins[0] if len(ins) == 1 else ins
        repl = _replacement_layers(layer, tfk)
        if repl is not None:
            y = arg
            for r in repl:
                y = r(y)
        else:
            cls = getattr(tfk.layers, type(layer).__name__, None)
            if cls is None:
                raise SleepEdgeError(f"model {model.name}: layer type {type(layer).__name__} has no tf_keras twin")
            new = _from_config(cls, _clean_config(layer.get_config()))
            y = new(arg)
            new.set_weights(layer.get_weights())
        outs = _flat(node.output_tensors)
        if len(outs) != 1:
            raise SleepEdgeError(f"model {model.name}: layer {layer.name} has {len(outs)} outputs")
        tensors[id(outs[0])] = y
    return tfk.Model(inp, tensors[id(model.outputs[0])], name=model.name)


def _flat(x: Any) -> list:
    if isinstance(x, (list, tuple)):
        return [t for item in x for t in _flat(item)]
    return [x]


def load_tf_keras(path: str | Path) -> Any:
    """Load a float edge model as a tf_keras model: a ``.keras`` file (tf_keras as written by
    host_tools.learn.models, or Keras 3) or a folder holding ``model.keras``."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise SleepEdgeError(f"{path}: model file not found")
    tfk = _tf_keras()
    try:
        model = tfk.models.load_model(path, compile=False)
    except Exception:  # noqa: BLE001 - not a Keras 2 file: try Keras 3 below
        model = None
    if model is None:
        try:
            import keras

            k3 = keras.models.load_model(path, compile=False)
        except Exception as exc:  # noqa: BLE001
            raise SleepEdgeError(f"{path}: not a readable Keras model ({type(exc).__name__}: {exc})") from exc
        return to_tf_keras(k3)
    # A tf_keras model may still contain GlobalAveragePooling1D: rebuild to drop it.
    if any(_replacement_layers(l, tfk) is not None for l in model.layers if hasattr(l, "input")):
        return to_tf_keras(model)
    return model


def _check_io(model: Any, path: Any) -> None:
    shape = tuple(model.inputs[0].shape[1:])
    out = tuple(model.outputs[0].shape[1:])
    if shape != (C.EPOCH_SAMPLES, 1) or out != (C.N_CLASSES,):
        raise SleepEdgeError(
            f"{path}: edge model must map ({C.EPOCH_SAMPLES}, 1) -> ({C.N_CLASSES},), got {shape} -> {out}")


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------

def clip_input(x: np.ndarray) -> np.ndarray:
    """Filtered microvolts clipped like the device's int8 input saturates, as float32 (n, 3000, 1)."""
    x = np.clip(np.asarray(x, dtype=np.float32), -C.EDGE_INPUT_CLIP_UV, C.EDGE_INPUT_CLIP_UV)
    return x.reshape(len(x), C.EPOCH_SAMPLES, 1)


def split_cache(
    cache: Path, test_subjects: list[str] | None = None, train_subjects: list[str] | None = None
) -> dict[str, Any]:
    """Training / held-out epochs of a prepared cache.

    Training subjects default to every subject not held out; the pipeline passes the source
    model's training side so the validation subjects (used to pick the threshold) stay unseen.

    Held-out subjects default to fold 0 of ``prepare.subject_folds``, the test fold that
    ``train_source`` / ``distil`` also hold out (docs/training.md).
    """
    from host_tools.data import prepare

    cache = Path(cache)
    if not (cache / "index.json").is_file():
        raise SleepEdgeError(f"{cache}: not a prepared cache (no index.json); run `sleepedge data prepare`")
    index = prepare.load_index(cache)
    if test_subjects is None:
        if not index.get("folds"):
            raise SleepEdgeError(f"{cache}/index.json: no folds to pick held-out subjects from")
        test_subjects = list(prepare.subject_folds(index)[0][1])
    test_set = set(test_subjects)
    known = {n["subject"] for n in index["nights"]}
    if not test_set <= known:
        raise SleepEdgeError(f"{cache}: unknown test subjects {sorted(test_set - known)}")
    if train_subjects is not None:
        train_set = set(train_subjects)
        if train_set & test_set or not train_set <= known:
            raise SleepEdgeError(f"{cache}: training subjects must be known and disjoint from the held-out ones "
                                 f"(overlap {sorted(train_set & test_set)}, unknown {sorted(train_set - known)})")
    else:
        train_set = known - test_set
    train_ids = [n["id"] for n in index["nights"] if n["subject"] in train_set]
    test_ids = [n["id"] for n in index["nights"] if n["subject"] in test_set]
    if not train_ids or not test_ids:
        raise SleepEdgeError(f"{cache}: need training and held-out nights, got {len(train_ids)} and {len(test_ids)}")
    x_tr, y_tr, _, _ = prepare.load_epochs(cache, train_ids, filtered=True)
    x_te, y_te, _, _ = prepare.load_epochs(cache, test_ids, filtered=True)
    return {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te,
            "test_subjects": sorted(test_set), "train_nights": train_ids, "test_nights": test_ids}


def representative_epochs(x_train: np.ndarray, n: int = N_REPRESENTATIVE, seed: int = 0) -> np.ndarray:
    """Calibration epochs: a random sample of clipped training epochs plus one ramp spanning
    +-EDGE_INPUT_CLIP_UV, so the int8 input scale is fixed by the clip, not by the sample."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(x_train), size=min(n, len(x_train)), replace=False)
    ramp = np.linspace(-C.EDGE_INPUT_CLIP_UV, C.EDGE_INPUT_CLIP_UV, C.EPOCH_SAMPLES, dtype=np.float32)
    return np.concatenate([clip_input(x_train[np.sort(pick)]), ramp.reshape(1, -1, 1)])


# --------------------------------------------------------------------------------------------
# pruning, QAT, conversion
# --------------------------------------------------------------------------------------------

def prune(
    model: Any, x: np.ndarray, y: np.ndarray, *, sparsity: float = 0.5, epochs: int = 3,
    batch_size: int = 128, lr: float = 5e-4, seed: int = 0, verbose: int = 0,
) -> Any:
    """Magnitude-prune while fine-tuning so that ``sparsity`` of all kernel weights end up zero.

    Returns the stripped (plain tf_keras) model whose pruned kernels hold exact zeros.
    """
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

    if not 0.0 < sparsity < 1.0:
        raise SleepEdgeError(f"--sparsity must be in (0, 1), got {sparsity}")
    tfk = _tf_keras()
    tf.keras.utils.set_random_seed(seed)
    steps_per_epoch = int(np.ceil(len(x) / batch_size))
    total = max(1, steps_per_epoch * epochs)

    def kernel_size(layer: Any) -> int:
        return sum(int(np.prod(w.shape)) for w in layer.weights if "kernel" in w.name)

    prunable = [l for l in model.layers if kernel_size(l) and PruneRegistry.supports(l)]
    if not prunable:
        raise SleepEdgeError(f"model {model.name}: no prunable layer (Conv1D / Dense)")
    # Layers tfmot cannot prune (DepthwiseConv1D) stay dense, so the prunable ones are pruned a
    # little harder to reach the target over all kernel weights.
    all_k = sum(kernel_size(l) for l in model.layers)
    # tfmot rounds each layer's count of pruned weights down: one weight of margin per layer.
    margin = 1.0 / min(kernel_size(l) for l in prunable)
    layer_target = min(0.95, sparsity * all_k / sum(kernel_size(l) for l in prunable) + margin)
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=layer_target, begin_step=0,
        end_step=max(1, int(0.7 * total)), frequency=max(1, total // 20))

    def wrap(layer: Any) -> Any:
        if layer in prunable:
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    pruned = tfk.models.clone_model(model, clone_function=wrap)
    pruned.compile(optimizer=tfk.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    pruned.fit(clip_input(x), np.asarray(y), batch_size=batch_size, epochs=epochs, shuffle=True,
               verbose=verbose, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(pruned)


def _conv_quantize_config():
    """tfmot QuantizeConfig for Conv1D / DepthwiseConv1D, which the default 8-bit registry lacks:
    per-tensor symmetric int8 kernel, asymmetric moving-average int8 activation."""
    import tensorflow_model_optimization as tfmot

    q = tfmot.quantization.keras.quantizers

    class ConvQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
        def get_weights_and_quantizers(self, layer):
            kernel = layer.depthwise_kernel if hasattr(layer, "depthwise_kernel") else layer.kernel
            return [(kernel, q.LastValueQuantizer(num_bits=8, symmetric=True, narrow_range=True, per_axis=False))]

        def get_activations_and_quantizers(self, layer):
            return [(layer.activation, q.MovingAverageQuantizer(num_bits=8, symmetric=False, narrow_range=False, per_axis=False))]

        def set_quantize_weights(self, layer, quantize_weights):
            if hasattr(layer, "depthwise_kernel"):
                layer.depthwise_kernel = quantize_weights[0]
            else:
                layer.kernel = quantize_weights[0]

        def set_quantize_activations(self, layer, quantize_activations):
            layer.activation = quantize_activations[0]

        def get_output_quantizers(self, layer):
            return []

        def get_config(self):
            return {}

    return ConvQuantizeConfig


def quantization_aware(
    model: Any, x: np.ndarray, y: np.ndarray, *, epochs: int = 2, batch_size: int = 128,
    lr: float = 2e-4, seed: int = 0, verbose: int = 0,
) -> Any:
    """Fine-tune with fake int8 quantization on the weighted layers; kernels that were pruned
    keep their zeros (the mask is re-applied afterwards). Returns the float model, updated in
    place, for the post-training converter."""
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot

    tfk = _tf_keras()
    tf.keras.utils.set_random_seed(seed)
    qk = tfmot.quantization.keras
    conv_cfg = _conv_quantize_config()

    def annotate(layer: Any) -> Any:
        name = type(layer).__name__
        if name in ("Conv1D", "DepthwiseConv1D"):
            return qk.quantize_annotate_layer(layer, quantize_config=conv_cfg())
        if name == "Dense":
            return qk.quantize_annotate_layer(layer)
        return layer

    annotated = tfk.models.clone_model(model, clone_function=annotate)
    with qk.quantize_scope({"ConvQuantizeConfig": conv_cfg}):
        qat = qk.quantize_apply(annotated)
    qat.compile(optimizer=tfk.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    qat.fit(clip_input(x), np.asarray(y), batch_size=batch_size, epochs=epochs, shuffle=True, verbose=verbose)
    # Copy the fine-tuned float weights back into the plain model (the converter then applies
    # post-training int8 to weights trained under fake quantization), keeping pruned zeros.
    qat_layers = {l.name: l for l in qat.layers}
    for layer in model.layers:
        q = qat_layers.get("quant_" + layer.name, qat_layers.get(layer.name))
        if q is None or not layer.weights:
            continue
        inner = getattr(q, "layer", q)
        new = inner.get_weights()
        old = layer.get_weights()
        if [w.shape for w in new] != [w.shape for w in old]:
            continue
        layer.set_weights([np.where(o == 0, 0, n) if "kernel" in v.name else n
                           for o, n, v in zip(old, new, layer.weights)])
    return model


def convert_int8(model: Any, representative: np.ndarray) -> bytes:
    """Full-integer TFLite flatbuffer: int8 input and output, builtin int8 kernels only."""
    import tensorflow as tf

    spec = tf.TensorSpec([1, C.EPOCH_SAMPLES, 1], tf.float32, name="epoch_uv")
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def rep():
        for epoch in representative:
            yield [epoch.reshape(1, C.EPOCH_SAMPLES, 1).astype(np.float32)]

    converter.representative_dataset = rep
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def tflite_ops(tflite: bytes) -> list[str]:
    """Builtin operator names used by a flatbuffer, in first-use order."""
    from tflite_micro.python.tflite_micro import runtime

    model = runtime.convert_bytearray_to_object(bytearray(tflite))
    names = {v: k for k, v in vars(runtime.schema_fb.BuiltinOperator).items() if not k.startswith("_")}
    codes = [runtime.get_builtin_code_from_operator_code(oc) for oc in model.operatorCodes]
    seen: list[str] = []
    for sg in model.subgraphs:
        for op in sg.operators:
            name = names.get(codes[op.opcodeIndex], str(codes[op.opcodeIndex]))
            if name not in seen:
                seen.append(name)
    return seen


def check_ops(tflite: bytes, where: str = "model") -> list[str]:
    """Raise :class:`SleepEdgeError` if the model uses an operator outside :data:`ALLOWED_OPS`."""
    ops = tflite_ops(tflite)
    bad = [o for o in ops if o not in ALLOWED_OPS]
    if bad:
        raise SleepEdgeError(f"{where}: operators {bad} are not supported by the firmware engine "
                             f"(allowed: {sorted(ALLOWED_OPS)})")
    return ops


def _tflite_interpreter(tflite: bytes, resolver: str = "BUILTIN_REF") -> Any:
    """The host TFLite interpreter (its deprecation warning is noise here: TFLM is the reference).

    ``resolver`` names a ``tf.lite.experimental.OpResolverType``. The default here, the reference
    kernels, agrees with TFLite Micro on nearly every epoch (rare 1-LSB rounding ties at
    FULLY_CONNECTED); TFLite's own default ``AUTO`` adds the XNNPACK delegate, whose int8
    requantization differs on most epochs by up to ~13 LSB at the softmax output.
    """
    import warnings

    import tensorflow as tf

    kind = getattr(tf.lite.experimental.OpResolverType, resolver)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_content=tflite, experimental_op_resolver_type=kind)


def io_quantization(tflite: bytes) -> dict[str, Any]:
    """Input / output tensor shapes, dtypes and (scale, zero point) of a TFLite model."""
    it = _tflite_interpreter(tflite)
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    return {"input_shape": [int(v) for v in i["shape"]], "input_dtype": np.dtype(i["dtype"]).name,
            "input_scale": float(i["quantization"][0]), "input_zero_point": int(i["quantization"][1]),
            "output_shape": [int(v) for v in o["shape"]], "output_dtype": np.dtype(o["dtype"]).name,
            "output_scale": float(o["quantization"][0]), "output_zero_point": int(o["quantization"][1])}


def tflite_predict_int8(tflite: bytes, x_filt: np.ndarray, resolver: str = "BUILTIN_REF") -> np.ndarray:
    """Raw int8 outputs (n, 5) of the TFLite (host) interpreter on filtered epochs, with the
    input quantized exactly as the device does it (``resolver``: see :func:`_tflite_interpreter`)."""
    from host_tools.data.filters import quantize_model_input

    it = _tflite_interpreter(tflite, resolver)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    scale, zp = i["quantization"]
    out = np.empty((len(x_filt), C.N_CLASSES), dtype=np.int8)
    for k, epoch in enumerate(np.asarray(x_filt, dtype=np.float32)):
        it.set_tensor(i["index"], quantize_model_input(epoch, scale, zp).reshape(i["shape"]))
        it.invoke()
        out[k] = it.get_tensor(o["index"]).reshape(-1)
    return out


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8 model output -> float32 probabilities, ``(q - zp) * scale`` as the device does."""
    return (np.asarray(q, dtype=np.int32) - int(zero_point)).astype(np.float32) * np.float32(scale)


def sparsity_report(model: Any) -> dict[str, Any]:
    """Measured share of exact zeros per weighted layer's kernel and overall."""
    per_layer, zeros, total = {}, 0, 0
    for layer in model.layers:
        for w in layer.weights:
            if "kernel" not in w.name:
                continue
            v = np.asarray(w.numpy())
            z = int((v == 0).sum())
            per_layer[layer.name] = round(z / v.size, 4)
            zeros, total = zeros + z, total + v.size
    return {"kernels": per_layer, "overall_kernel_sparsity": zeros / max(total, 1),
            "n_kernel_weights": int(total)}


# --------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------

def compress(
    model_path: Path, cache: Path, out: Path, *, sparsity: float = 0.5, qat: bool = False,
    epochs: int = 3, test_subjects: list[str] | None = None, train_subjects: list[str] | None = None,
    seed: int = 0, progress: bool = True, randomized_cache: Path | None = None,
) -> dict[str, Any]:
    """Prune, optionally QAT, and int8-quantize an edge model; write artifacts and a report.

    ``randomized_cache`` (a ``synth --randomize`` cache of the same subjects) adds its training
    subjects' epochs to the pruning fine-tune, so pruning keeps what distillation learnt on
    them, and its held-out subjects are scored too (``int8_randomized``). The int8 calibration
    stays on the plain epochs.

    Writes ``out/edge_pruned.keras`` (tf_keras), ``out/model.tflite`` and ``out/compress.json``.

    Returns
    -------
    dict
        The JSON report: accuracy of float / pruned / int8 on the held-out subjects, sparsity,
        sizes, operators, input/output quantization.
    """
    from rich.console import Console
    from rich.progress import Progress

    from host_tools import evaluation

    console = Console(quiet=not progress)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data = split_cache(cache, test_subjects, train_subjects)
    rand = split_cache(randomized_cache, data["test_subjects"], train_subjects) if randomized_cache else None
    x_fit = data["x_train"] if rand is None else np.concatenate([data["x_train"], rand["x_train"]])
    y_fit = data["y_train"] if rand is None else np.concatenate([data["y_train"], rand["y_train"]])
    model = load_tf_keras(model_path)
    _check_io(model, model_path)
    steps = ["float", "prune"] + (["qat"] if qat else []) + ["int8", "score"]
    report: dict[str, Any] = {"model": str(model_path), "cache": str(cache), "sparsity_target": sparsity,
                              "qat": qat, "test_subjects": data["test_subjects"],
                              "train_nights": data["train_nights"]}
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("compress", total=len(steps))
        x_te = clip_input(data["x_test"])
        p_float = model.predict(x_te, batch_size=512, verbose=0)
        bar.advance(task)
        pruned = prune(model, x_fit, y_fit, sparsity=sparsity, epochs=epochs, seed=seed)
        bar.advance(task)
        if qat:
            pruned = quantization_aware(pruned, x_fit, y_fit, seed=seed)
            bar.advance(task)
        p_pruned = pruned.predict(x_te, batch_size=512, verbose=0)
        tflite = convert_int8(pruned, representative_epochs(data["x_train"], seed=seed))
        ops = check_ops(tflite, f"{out / 'model.tflite'}")
        bar.advance(task)
        io = io_quantization(tflite)
        q = tflite_predict_int8(tflite, data["x_test"])
        bar.advance(task)
    p_int8 = dequantize(q, io["output_scale"], io["output_zero_point"])
    y = data["y_test"]
    for name, p in (("float", p_float), ("pruned", p_pruned), ("int8", p_int8)):
        s = evaluation.scores(y, np.asarray(p).argmax(axis=1))
        report[name] = {k: s[k] for k in ("acc", "mf1", "kappa", "f1")}
    if rand is not None:
        s = evaluation.scores(rand["y_test"], tflite_predict_int8(tflite, rand["x_test"]).argmax(axis=1))
        report["randomized_cache"] = str(randomized_cache)
        report["int8_randomized"] = {k: s[k] for k in ("acc", "mf1", "kappa", "f1")}
    report["int8_vs_pruned_agreement"] = float((p_int8.argmax(1) == np.asarray(p_pruned).argmax(1)).mean())
    report["sparsity"] = sparsity_report(pruned)
    report["ops"] = ops
    report["io"] = io
    report["tflite_bytes"] = len(tflite)
    report["n_params"] = int(pruned.count_params())
    report["n_test_epochs"] = int(len(y))
    report["seconds"] = round(time.time() - t0, 1)
    pruned.save(out / "edge_pruned.keras")
    (out / "model.tflite").write_bytes(tflite)
    (out / "compress.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def format_table(report: dict[str, Any]) -> str:
    """Float vs pruned vs int8 side by side, as plain text."""
    rows = [f"{'model':<8}{'acc':>8}{'mf1':>8}{'kappa':>8}"]
    for name in ("float", "pruned", "int8"):
        r = report[name]
        rows.append(f"{name:<8}{r['acc']:>8.3f}{r['mf1']:>8.3f}{r['kappa']:>8.3f}")
    sp = report["sparsity"]["overall_kernel_sparsity"]
    rows.append(f"kernel sparsity {sp:.1%}, int8 model {report['tflite_bytes']} bytes, ops {', '.join(report['ops'])}")
    return "\n".join(rows)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="float edge model (.keras)")
    parser.add_argument("--cache", type=Path, required=True, help="prepared epoch cache (sleepedge data prepare)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--sparsity", type=float, default=0.5, help="final kernel sparsity (default: %(default)s)")
    parser.add_argument("--qat", action="store_true", help="add quantization-aware fine-tuning")
    parser.add_argument("--epochs", type=int, default=3, help="pruning fine-tune passes (default: %(default)s)")
    parser.add_argument("--test-subjects", nargs="+", default=None,
                        help="held-out subject ids (default: fold 0 of the cache index)")
    parser.add_argument("--train-subjects", nargs="+", default=None,
                        help="fine-tune on these subjects only (default: all not held out)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    report = compress(args.model, args.cache, args.out, sparsity=args.sparsity, qat=args.qat,
                      epochs=args.epochs, test_subjects=args.test_subjects,
                      train_subjects=args.train_subjects, seed=args.seed)
    print(f"held-out subjects {', '.join(report['test_subjects'])} ({report['n_test_epochs']} epochs), "
          f"corpus in {args.cache}")
    print(format_table(report))
    print(f"wrote {args.out / 'model.tflite'} and {args.out / 'compress.json'}")
    return 0
