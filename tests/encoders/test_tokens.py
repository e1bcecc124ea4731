"""Token features of the packaged MiniLM and of a random-initialised timm CNN: shapes, mask, bounds."""

import numpy as np
import pytest

from mlcil.data.dataset import Dataset, token_features
from mlcil.encoders import make_encoder
from mlcil.encoders.tokens import (add_tokens, attach_tokens, check_token_budget, embed_tokens, encode_tokens,
                                   token_bytes)
from mlcil.encoders.torch_models import SentenceTransformerEncoder
from mlcil.errors import MlcilError

TEXTS = ["a cat sat on the mat", "knives and sharpening stones for a kitchen",
         "elliptic curves over finite fields " * 20]


def test_budget_is_estimated_before_running(tmp_path, monkeypatch):
    assert token_bytes(10, 64, 384) == 10 * 64 * (2 * 384 + 1)
    assert check_token_budget(10, 64, 384, max_bytes=10**6) == 10 * 64 * 769
    with pytest.raises(MlcilError, match=r"1000 inputs × 64 tokens × 384 dims .* over the budget"):
        check_token_budget(1000, 64, 384, max_bytes=10**6)
    monkeypatch.setenv("MLCIL_TOKEN_BUDGET", "1MB")
    with pytest.raises(MlcilError, match="over the budget"):
        check_token_budget(1000, 64, 384)
    with pytest.raises(MlcilError, match="max_tokens"):
        check_token_budget(10, 0, 384)
    with pytest.raises(MlcilError, match="over the budget"):  # checked before the model loads
        encode_tokens(make_encoder("minilm", device="cpu"), TEXTS * 1000, max_tokens=64, max_bytes=10**5)


def test_any_minilm_runtime_gives_the_same_states(minilm):
    """`minilm` (whichever runtime the factory picks) yields sentence-transformers' token states."""
    _, T, mask = encode_tokens(make_encoder("minilm", device="cpu"), TEXTS[:2], max_tokens=12)
    _, T2, mask2 = encode_tokens(minilm, TEXTS[:2], max_tokens=12)
    np.testing.assert_array_equal(mask, mask2)
    np.testing.assert_allclose(T.astype(np.float32), T2.astype(np.float32), atol=1e-2)


@pytest.fixture(scope="module")
def minilm():
    return SentenceTransformerEncoder("all-MiniLM-L6-v2", device="cpu", precision="float32")


def test_minilm_tokens_mask_and_pooled(minilm):
    X, T, mask = encode_tokens(minilm, TEXTS, max_tokens=16, batch_size=2)
    assert X.shape == (3, 384) and T.shape == (3, 16, 384) and T.dtype == np.float16 and mask.dtype == bool
    tok = minilm._model.tokenizer
    lengths = [min(len(tok(t)["input_ids"]), 16) for t in TEXTS]
    assert mask.sum(1).tolist() == lengths and lengths[2] == 16  # the long text is truncated to 16
    assert (T[~mask] == 0).all()
    # MiniLM's pooled embedding is the normalised mean of its token states over the mask
    mean = (T.astype(np.float64) * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    np.testing.assert_allclose(mean / np.linalg.norm(mean, axis=1, keepdims=True), X, atol=2e-3)
    # the short texts' pooled vectors are the encoder's own embeddings (they fit in 16 tokens)
    np.testing.assert_allclose(X[:2], minilm.encode(TEXTS[:2]), atol=1e-5)


def test_embed_and_add_tokens(minilm):
    raw = Dataset(list(TEXTS), np.eye(3, 2, dtype=np.uint8), ["a", "b"], name="three")
    ds = embed_tokens(raw, minilm, max_tokens=8)
    assert ds.T.shape == (3, 8, 384) and ds.meta["tokens"]["max_tokens"] == 8
    np.testing.assert_array_equal(token_features(ds.X[[2]])[0], ds.T[[2]])
    embedded = Dataset(minilm.encode(TEXTS[1:]), raw.Y[1:], ["a", "b"], name="three@minilm",
                       meta={"ids": [1, 2]})
    both = add_tokens(embedded, raw, minilm, max_tokens=8)
    np.testing.assert_array_equal(both.T, ds.T[1:])
    np.testing.assert_array_equal(np.asarray(both.X), np.asarray(embedded.X))
    with pytest.raises(MlcilError, match="raw inputs"):
        embed_tokens(ds, minilm)


def test_attach_tokens_reloads_the_raw_rows(minilm, tmp_path):
    import json

    path = tmp_path / "three.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": t, "labels": ["a"] if i == 0 else ["b"]}) + "\n"
                            for i, t in enumerate(TEXTS)), encoding="utf-8")
    embedded = Dataset(minilm.encode(TEXTS), np.eye(3, 2, dtype=np.uint8), ["a", "b"], name="three@minilm")
    both = attach_tokens(embedded, str(path), minilm, 8, out_dir=tmp_path)
    np.testing.assert_array_equal(both.T, encode_tokens(minilm, TEXTS, 8)[1])


def test_image_patches_of_a_cnn(tmp_path):
    from PIL import Image

    paths = []
    for i in range(2):
        p = tmp_path / f"{i}.png"
        Image.fromarray((np.random.default_rng(i).random((40, 40, 3)) * 255).astype(np.uint8)).save(p)
        paths.append(str(p))
    enc = make_encoder("timm:resnet10t,pretrained=false", device="cpu", precision="float32")
    X, T, mask = encode_tokens(enc, paths, max_tokens=64)
    assert X.shape == (2, enc.dim) and T.shape[1:] == (64, enc.dim)
    h = mask.sum(1)
    assert (h == h[0]).all() and 1 <= h[0] <= 64  # one token per cell of the final feature map
    # a CNN's pooled embedding is the mean of its final map's cells (global average pooling)
    np.testing.assert_allclose(T[:, : h[0]].astype(np.float64).mean(1), X, rtol=2e-2, atol=2e-2)
