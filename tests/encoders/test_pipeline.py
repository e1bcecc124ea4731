import json

import numpy as np
import pytest

from mlcil.encoders import EmbeddingCache, embed_inputs
from mlcil.errors import MlcilError

TEXTS = [f"text number {i} " + "x" * (i % 7) for i in range(23)]


def test_batches_and_order(counting):
    enc = counting()
    Z, bad = embed_inputs(TEXTS, enc, batch_size=4, progress=False)
    assert Z.shape == (23, 3) and Z.dtype == np.float32 and len(bad) == 0
    assert enc.calls == 6 and enc.rows == 23  # ceil(23 / 4) batches
    np.testing.assert_array_equal(Z, counting().encode(TEXTS))


def test_cache_hit_never_calls_forward(counting, tmp_path):
    first = counting()
    Z1, _ = embed_inputs(TEXTS, first, cache_dir=tmp_path, batch_size=4, chunk_size=8, progress=False)
    assert first.rows == 23
    again = counting()
    stats = {}
    Z2, _ = embed_inputs(TEXTS, again, cache_dir=tmp_path, batch_size=4, chunk_size=8, progress=False, stats=stats)
    assert again.calls == 0 and stats["cached_rows"] == 23 and stats["encoded_rows"] == 0
    np.testing.assert_array_equal(Z1, Z2)


def test_interrupted_run_resumes_after_k_chunks(counting, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        embed_inputs(TEXTS, counting(fail_after=5), cache_dir=tmp_path, batch_size=2, chunk_size=4, progress=False)
    chunks = sorted(tmp_path.rglob("chunk-*.npy"))
    assert [p.name for p in chunks] == ["chunk-000000.npy", "chunk-000001.npy"]  # 5 batches of 2 = 2 whole chunks
    assert not list(tmp_path.rglob("*.part"))
    resumed = counting()
    stats = {}
    Z, _ = embed_inputs(TEXTS, resumed, cache_dir=tmp_path, batch_size=2, chunk_size=4, progress=False, stats=stats)
    assert resumed.rows == 23 - 8 and stats["cached_rows"] == 8
    np.testing.assert_array_equal(Z, embed_inputs(TEXTS, counting(), progress=False)[0])


def test_different_encoder_or_inputs_get_their_own_entry(counting, tmp_path):
    embed_inputs(TEXTS, counting(tag="a"), cache_dir=tmp_path, progress=False)
    other = counting(tag="b")
    Zb, _ = embed_inputs(TEXTS, other, cache_dir=tmp_path, progress=False)
    assert other.rows == 23 and np.all(Zb % 1 == 0.5)  # encoded afresh, not a's vectors
    changed = counting(tag="a")
    embed_inputs(TEXTS[:-1] + ["changed"], changed, cache_dir=tmp_path, progress=False)
    assert changed.rows == 23


def test_a_cache_folder_of_another_encoder_is_refused(counting, tmp_path):
    embed_inputs(TEXTS, counting(tag="a"), cache_dir=tmp_path, progress=False)
    meta = next(tmp_path.rglob("meta.json"))
    found = json.loads(meta.read_text())
    found["encoder_id"] = "counting:something-else"
    meta.write_text(json.dumps(found))
    with pytest.raises(MlcilError, match="different encoder"):
        embed_inputs(TEXTS, counting(tag="a"), cache_dir=tmp_path, progress=False)


def test_corrupt_or_wrong_shaped_chunk_is_an_error(counting, tmp_path):
    embed_inputs(TEXTS, counting(), cache_dir=tmp_path, chunk_size=8, progress=False)
    chunk = next(tmp_path.rglob("chunk-000000.npy"))
    np.save(chunk, np.zeros((8, 2), np.float32))
    with pytest.raises(MlcilError, match="expected \\(8, 3\\) float32"):
        embed_inputs(TEXTS, counting(), cache_dir=tmp_path, chunk_size=8, progress=False)
    chunk.write_bytes(b"garbage")
    with pytest.raises(MlcilError, match="corrupt"):
        embed_inputs(TEXTS, counting(), cache_dir=tmp_path, chunk_size=8, progress=False)


def test_bad_text_input_raises_or_is_skipped(counting, tmp_path):
    inputs = TEXTS[:5] + [None] + TEXTS[5:]
    with pytest.raises(MlcilError, match="input 5: expected a text"):
        embed_inputs(inputs, counting(), progress=False)
    Z, bad = embed_inputs(inputs, counting(), on_error="skip", cache_dir=tmp_path, chunk_size=4, progress=False)
    assert bad.tolist() == [5] and np.all(Z[5] == 0)
    again = counting()
    _, bad2 = embed_inputs(inputs, again, on_error="skip", cache_dir=tmp_path, chunk_size=4, progress=False)
    assert bad2.tolist() == [5] and again.calls == 0  # the bad row is remembered by the cache


def test_cache_meta_records_everything(tmp_path):
    cache = EmbeddingCache(tmp_path, "enc-id", "f" * 64, n=10, dim=4, chunk_size=3)
    assert cache.n_chunks == 4 and list(cache.rows(3)) == [9]
    with pytest.raises(MlcilError, match="chunk_size"):
        EmbeddingCache(tmp_path, "enc-id", "f" * 64, n=10, dim=4, chunk_size=5)


def test_progress_bar_names_the_encoder_and_counts_texts(counting, monkeypatch):
    """The bar reads 'embed <short name>' (e.g. minilm), counts texts, and shows tqdm's rate and ETA."""
    import tqdm.auto

    seen = {}

    class Bar:
        def __init__(self, **kwargs):
            seen.update(kwargs)
            seen["updates"] = []

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, k):
            seen["updates"].append(k)

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    enc = counting(dim=3)
    enc.short_name = "minilm"
    embed_inputs(TEXTS, enc, batch_size=2, progress=True)
    assert seen["desc"] == "embed minilm" and seen["unit"] == "text" and seen["total"] == len(TEXTS)
    assert sum(seen["updates"]) == len(TEXTS) and "bar_format" not in seen  # tqdm's default: n/total, rate, ETA
