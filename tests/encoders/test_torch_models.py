"""timm, open_clip and sentence-transformers encoders on random-initialised small models (no downloads)."""

import numpy as np
import pytest

from mlcil.encoders import embed_inputs, make_encoder, select_device
from mlcil.errors import MlcilError

TIMM = "timm:vit_tiny_patch16_224,pretrained=false,img_size=32"


def test_device_auto_is_cpu_here_and_bad_devices_fail():
    import torch

    assert select_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert select_device("cpu") == "cpu"
    with pytest.raises(MlcilError, match="not a torch device"):
        select_device("gpu0")


def test_timm_shapes_determinism_and_seed(images):
    a, b = make_encoder(TIMM), make_encoder(TIMM)
    Za = a.encode(images[:4])
    assert Za.shape == (4, 192) and Za.dtype == np.float32 and a.dim == 192
    assert np.isfinite(Za).all() and np.abs(Za).sum() > 0
    np.testing.assert_array_equal(Za, b.encode(images[:4]))
    assert a.id == b.id and "random(seed=0)" in a.id and "CenterCrop(size=(32, 32))" in a.id
    c = make_encoder(TIMM + ",seed=1")
    assert c.id != a.id and not np.allclose(c.encode(images[:4]), Za)


def test_timm_dataloader_workers_match_in_process(images, tmp_path):
    enc = make_encoder(TIMM)
    Z0, _ = embed_inputs(images, enc, batch_size=3, workers=0, progress=False)
    Z2, _ = embed_inputs(images, enc, batch_size=3, workers=2, progress=False)
    np.testing.assert_allclose(Z0, Z2, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(Z0[:4], enc.encode(images[:4]), rtol=1e-4, atol=1e-5)


def test_timm_cache_hit_and_resume(images, tmp_path, monkeypatch):
    enc = make_encoder(TIMM)
    calls = []
    real = enc.forward
    monkeypatch.setattr(enc, "forward", lambda batch: calls.append(len(batch)) or real(batch))
    Z1, _ = embed_inputs(images, enc, cache_dir=tmp_path, batch_size=2, chunk_size=4, progress=False)
    assert sum(calls) == 10
    calls.clear()
    Z2, _ = embed_inputs(images, enc, cache_dir=tmp_path, batch_size=2, chunk_size=4, workers=2, progress=False)
    assert calls == [] and np.array_equal(Z1, Z2)
    # a different model on the same images gets its own entry
    other = make_encoder(TIMM + ",seed=7")
    Z3, _ = embed_inputs(images, other, cache_dir=tmp_path, batch_size=2, chunk_size=4, progress=False)
    assert not np.allclose(Z1, Z3)


def test_unreadable_and_truncated_images(images, tmp_path):
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(open(images[0], "rb").read()[:200])
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    inputs = images[:3] + [str(truncated), str(tmp_path / "missing.jpg"), str(not_image)]
    enc = make_encoder(TIMM)
    with pytest.raises(MlcilError, match="truncated.jpg: unreadable or truncated image"):
        embed_inputs(inputs, enc, batch_size=8, progress=False)
    Z, bad = embed_inputs(inputs, enc, batch_size=2, workers=2, on_error="skip", progress=False)
    assert bad.tolist() == [3, 4, 5] and np.all(Z[3:] == 0)
    np.testing.assert_allclose(Z[:3], enc.encode(images[:3]), rtol=1e-4, atol=1e-5)


def test_timm_unknown_model_and_offline_pretrained_fail_clearly(monkeypatch):
    with pytest.raises(MlcilError, match="unknown model"):
        make_encoder("timm:no_such_model_xyz,pretrained=false").dim
    with pytest.raises(MlcilError, match="no such file"):
        make_encoder("timm:vit_tiny_patch16_224,checkpoint=/nonexistent.safetensors").dim


def test_timm_local_checkpoint_loads_real_weights(tmp_path, images):
    import timm
    import torch

    torch.manual_seed(123)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32)
    path = tmp_path / "weights.pth"
    torch.save(model.state_dict(), path)
    enc = make_encoder(f"timm:vit_tiny_patch16_224,checkpoint={path},img_size=32")
    x = torch.stack([enc.load(p) for p in images[:2]])
    with torch.inference_mode():
        want = model.eval()(x).numpy()
    np.testing.assert_allclose(enc.encode(images[:2]), want, rtol=1e-4, atol=1e-5)
    assert "file-sha256=" in enc.id


def test_open_clip_image_and_text_towers(tiny_clip, images):
    img = make_encoder(f"open_clip:{tiny_clip}")
    Z = img.encode(images[:3])
    assert Z.shape == (3, 24) and img.modality == "image"
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(Z, make_encoder(f"open_clip:{tiny_clip}").encode(images[:3]))
    txt = make_encoder(f"open_clip:{tiny_clip},tower=text")
    T = txt.encode(["a cat on a mat", "a dog", "a cat on a mat"])
    assert T.shape == (3, 24) and txt.modality == "text" and txt.id != img.id
    np.testing.assert_array_equal(T[0], T[2])
    assert not np.allclose(T[0], T[1])
    raw = make_encoder(f"open_clip:{tiny_clip},tower=text,normalize=false")
    assert not np.allclose(np.linalg.norm(raw.encode(["a dog"]), axis=1), 1.0)
    with pytest.raises(MlcilError, match="unknown model"):
        make_encoder("open_clip:No-Such-Model").dim


def test_sentence_transformers_local_folder(tiny_sentence_model, tmp_path):
    enc = make_encoder(f"sentence-transformers:{tiny_sentence_model}")
    texts = ["the cat sat on the mat", "a dog ran", "the cat sat on the mat"]
    Z = enc.encode(texts)
    assert Z.shape == (3, 32) and Z.dtype == np.float32 and enc.dim == 32
    np.testing.assert_array_equal(Z[0], Z[2])
    again = make_encoder(f"sentence-transformers:{tiny_sentence_model}")
    assert again.id == enc.id and "folder-sha256=" in enc.id
    Zc, _ = embed_inputs(texts * 4, enc, cache_dir=tmp_path, batch_size=5, progress=False)
    np.testing.assert_allclose(Zc[:3], Z, rtol=1e-4, atol=1e-5)
    normed = make_encoder(f"sentence-transformers:{tiny_sentence_model},normalize=true")
    np.testing.assert_allclose(np.linalg.norm(normed.encode(texts), axis=1), 1.0, rtol=1e-5)
