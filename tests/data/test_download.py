"""Download path, with a fake ``urllib.request.urlopen`` serving bytes the tests write (no network)."""

from __future__ import annotations

import bz2
import dataclasses
import hashlib
import io
import urllib.error
import urllib.request

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from mlcil.data import DATASETS, DatasetInfo, load_dataset, read_npz, resolve
from mlcil.data import registry
from mlcil.errors import MlcilError

BASE = "https://example.invalid/toy"
TOY_HEAD = ("@relation toy\n@attribute x1 numeric\n@attribute x2 numeric\n"
            "@attribute A {0,1}\n@attribute B {0,1}\n@data\n")
TOY_FILES = {
    f"{BASE}/toy-train.arff": (TOY_HEAD + "0.5,1,1,0\n1.5,2,0,1\n2.5,3,1,1\n").encode(),
    f"{BASE}/toy-test.arff": (TOY_HEAD + "{0 9,3 1}\n").encode(),
    f"{BASE}/toy.xml": b'<labels xmlns="http://mulan.sourceforge.net/labels">'
                       b'<label name="A"/><label name="B"/></labels>',
}
TOY = DatasetInfo("toy", "test", "toy data", "Nobody. Toy. Nowhere, 2024.", "example/toy@0: toy-*.arff",
                  tuple(TOY_FILES), 4, 2, 2, 1.25, "arff", splits={"train": 3, "test": 1})


class FakeResponse(io.BytesIO):
    """What urlopen returns: readable in chunks, with headers; can drop the connection."""

    def __init__(self, data: bytes, length: int | None = None, fail_after: int | None = None):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data) if length is None else length)}
        self.fail_after = fail_after

    def read(self, n: int = -1) -> bytes:
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise ConnectionResetError("connection reset by peer")
        limit = 7 if n is None or n < 0 else min(n, 7)  # small chunks: several progress updates
        return super().read(limit)


class Opener:
    """Fake ``urlopen``: serves a dict of url -> bytes, 404 for anything else; records calls."""

    def __init__(self, files: dict[str, bytes], **response_kwargs):
        self.files, self.kwargs, self.calls = files, response_kwargs, []

    def __call__(self, url, timeout=None):
        self.calls.append(url)
        if url not in self.files:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        return FakeResponse(self.files[url], **self.kwargs)


class Bar:
    """Fake tqdm recording the progress it is given."""

    instances: list["Bar"] = []

    def __init__(self, total=None, **kwargs):
        self.total, self.n, self.desc = total, 0, kwargs.get("desc")
        Bar.instances.append(self)

    def update(self, n):
        self.n += n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def serve(monkeypatch):
    def install(files, **kwargs) -> Opener:
        opener = Opener(files, **kwargs)
        monkeypatch.setattr(urllib.request, "urlopen", opener)
        return opener

    Bar.instances = []
    monkeypatch.setattr(registry, "tqdm", Bar)
    return install


def register(monkeypatch, info: DatasetInfo) -> DatasetInfo:
    monkeypatch.setitem(DATASETS, info.name, info)
    return info


def cache_folder(tmp_path, name):
    return tmp_path / "cache" / "data" / name


def test_download_convert_then_cache(monkeypatch, tmp_path, serve):
    register(monkeypatch, TOY)
    opener = serve(TOY_FILES)
    ds = load_dataset("toy")
    assert ds.meta["where"] == "downloaded" and ds.meta["citation"] == TOY.citation
    np.testing.assert_array_equal(ds.X, [[0.5, 1], [1.5, 2], [2.5, 3], [9, 0]])
    np.testing.assert_array_equal(ds.Y, [[1, 0], [0, 1], [1, 1], [0, 1]])
    assert ds.split.tolist() == ["train"] * 3 + ["test"]
    folder = cache_folder(tmp_path, "toy")
    assert sorted(p.name for p in folder.iterdir()) == ["toy.npz"]  # sources removed after conversion
    assert sorted(opener.calls) == sorted(TOY_FILES)
    # progress: one bar per file, each advanced by exactly the bytes served
    assert sorted((b.desc, b.n, b.total) for b in Bar.instances) == sorted(
        (f"toy: {u.rsplit('/', 1)[1]}", len(d), len(d)) for u, d in TOY_FILES.items())
    serve({})  # second time: from the cache, no request
    again = load_dataset("toy")
    assert again.meta["where"] == "cache" and again.meta["path"] == str(folder / "toy.npz")
    np.testing.assert_array_equal(again.X, ds.X)


def test_sha256_checked(monkeypatch, tmp_path, serve):
    good = {u.rsplit("/", 1)[1]: hashlib.sha256(d).hexdigest() for u, d in TOY_FILES.items()}
    register(monkeypatch, dataclasses.replace(TOY, sha256=good))
    serve(TOY_FILES)
    assert load_dataset("toy").n == 4

    bad = dict(good, **{"toy-test.arff": "0" * 64})
    register(monkeypatch, dataclasses.replace(TOY, name="toy2", sha256=bad))
    with pytest.raises(MlcilError, match=r"sha256 mismatch for .*toy-test\.arff: expected 0{64}, got [0-9a-f]{64}"):
        load_dataset("toy2")
    source = cache_folder(tmp_path, "toy2") / "source"
    assert not (source / "toy-test.arff").exists()  # the bad file is discarded
    assert not list(source.glob("*.part")) and not (cache_folder(tmp_path, "toy2") / "toy2.npz").exists()


def test_offline_error_says_what_to_do(monkeypatch):
    register(monkeypatch, TOY)  # the autouse fixture leaves urlopen offline
    with pytest.raises(MlcilError) as err:
        load_dataset("toy")
    assert str(err.value) == (
        f"could not download toy from {BASE}/toy-train.arff: network disabled in tests; "
        "set MLCIL_DATA to a folder holding toy/ or pass a path"
    )


def test_http_error(monkeypatch, serve):
    register(monkeypatch, TOY)
    serve({k: v for k, v in TOY_FILES.items() if not k.endswith(".xml")})
    with pytest.raises(MlcilError, match=r"could not download toy from .*toy\.xml: HTTP 404 Not Found; set MLCIL_DATA"):
        load_dataset("toy")


@pytest.mark.parametrize("kwargs, needle", [
    ({"fail_after": 20}, "connection lost after 21 bytes"),
    ({"length": 10_000}, "incomplete download"),
])
def test_interrupted_download_leaves_no_partial_file(monkeypatch, tmp_path, serve, kwargs, needle):
    register(monkeypatch, TOY)
    serve(TOY_FILES, **kwargs)
    with pytest.raises(MlcilError, match=needle):
        load_dataset("toy")
    source = cache_folder(tmp_path, "toy") / "source"
    assert list(source.iterdir()) == []  # neither toy-train.arff nor a .part file
    with pytest.raises(MlcilError):
        resolve("toy")  # nothing was cached: still tries (and fails) to download


def test_counts_checked_after_download(monkeypatch, tmp_path, serve):
    register(monkeypatch, dataclasses.replace(TOY, n=5))
    serve(TOY_FILES)
    with pytest.raises(MlcilError, match=r"toy: downloaded data do not match the verified counts: n=4 \(expected 5\)"):
        load_dataset("toy")
    assert not (cache_folder(tmp_path, "toy") / "toy.npz").exists()


def test_meka_bz2_single_file_to_csr(monkeypatch, tmp_path, serve):
    text = ("@relation 'M: -C 2'\n@attribute a {0,1}\n@attribute b {0,1}\n@attribute w1 numeric\n"
            "@attribute w2 numeric\n@data\n{0 1,3 1}\n{1 1,2 1}\n{0 1,1 1,2 1,3 1}\n")
    url = "https://example.invalid/meka/M.arff.bz2"
    register(monkeypatch, DatasetInfo("meka_toy", "text feats", "d", "c", "s", (url,), 3, 2, 2, 4 / 3, "arff",
                                      csr=True))
    serve({url: bz2.compress(text.encode())})
    ds = load_dataset("meka_toy")
    assert sp.issparse(ds.X) and ds.label_names == ["a", "b"] and ds.split is None
    np.testing.assert_array_equal(ds.X.toarray(), [[0, 1], [1, 0], [1, 1]])
    assert sp.issparse(read_npz(cache_folder(tmp_path, "meka_toy") / "meka_toy.npz").X)


def test_mat_source(monkeypatch, serve):
    buf = io.BytesIO()
    scipy.io.savemat(buf, {
        "train_data": np.arange(6, dtype=float).reshape(3, 2), "train_target": np.array([[1, -1, 1], [-1, -1, 1]]),
        "test_data": np.ones((1, 2)), "test_target": np.array([[-1], [1]]),
    })
    url = "https://example.invalid/m/image.mat"
    register(monkeypatch, DatasetInfo("mat_toy", "image", "d", "c", "s", (url,), 4, 2, 2, 1.0, "mat",
                                      splits={"train": 3, "test": 1}, label_names=("p", "q")))
    serve({url: buf.getvalue()})
    ds = load_dataset("mat_toy")
    assert ds.label_names == ["p", "q"] and ds.split.tolist() == ["train"] * 3 + ["test"]
    np.testing.assert_array_equal(ds.Y, [[1, 0], [0, 0], [1, 1], [0, 1]])


def test_goemotions_style_tsv_source(monkeypatch, tmp_path, serve):
    base = "https://example.invalid/go"
    files = {
        f"{base}/train.tsv": "I love it\t0,2\tc1\nmeh\t2\tc2\n".encode(),
        f"{base}/dev.tsv": b"wow\t1\tc3\n",
        f"{base}/test.tsv": "so sad \u2014 really\t1,0\tc4\n".encode("utf-8"),
        f"{base}/labels.txt": b"joy\nsurprise\nneutral\n",
    }
    register(monkeypatch, DatasetInfo("go_toy", "raw text", "d", "c", "s", tuple(files), 4, None, 3, 1.5, "tsv",
                                      stored="jsonl", splits={"train": 2, "dev": 1, "test": 1}))
    serve(files)
    ds = load_dataset("go_toy")
    assert ds.is_raw and ds.label_names == ["joy", "surprise", "neutral"]
    assert ds.X[0] == "I love it" and ds.X[3] == "so sad \u2014 really" and ds.meta["ids"] == ["c1", "c2", "c3", "c4"]
    np.testing.assert_array_equal(ds.Y, [[1, 0, 1], [0, 0, 1], [0, 1, 0], [1, 1, 0]])
    assert ds.split.tolist() == ["train", "train", "dev", "test"]
    folder = cache_folder(tmp_path, "go_toy")
    assert sorted(p.name for p in folder.iterdir()) == ["go_toy.jsonl.gz", "label_names.json"]


def test_real_scene_entry_end_to_end(monkeypatch, tmp_path, serve, shared_data, make_arff, make_xml):
    """The registered scene URLs, served with Mulan-style files rebuilt from the shared copy."""
    ref = read_npz(shared_data / "scene" / "scene.npz")
    info = DATASETS["scene"]
    train_url, test_url, xml_url = info.urls
    assert train_url.endswith("/tsoumakas/mulan/43f6389095ad71984264db4387a8074b22bc7d4a/"
                              "data/multi-label/scene/scene-train.arff")
    files = {xml_url: make_xml(ref.label_names).encode()}
    for url, part in ((train_url, "train"), (test_url, "test")):
        rows = ref.split == part
        files[url] = make_arff(f"scene-{part}", ref.X[rows], ref.Y[rows], ref.meta["feature_names"],
                               ref.label_names).encode()
    serve(files)
    ds = load_dataset("scene")
    assert ds.meta["where"] == "downloaded" and (ds.n, ds.d, ds.L) == (2407, 294, 6)
    np.testing.assert_array_equal(ds.X, ref.X)  # the shared copy is train rows first, then test rows
    np.testing.assert_array_equal(ds.Y, ref.Y)
    assert ds.meta["feature_names"] == ref.meta["feature_names"]
