"""Smoke test of benchmarks/embed_throughput.py on a few tiny synthetic images."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "embed_throughput.py"


def test_throughput_script_writes_its_table(tmp_path):
    spec = importlib.util.spec_from_file_location("embed_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--images", "6", "--encoder", "timm:vit_tiny_patch16_224,pretrained=false,img_size=32",
                          "--repeats", "1", "--batch-size", "4", "--workers", "0", "--out", str(tmp_path)])
    assert result["n"] == 6 and result["forward_ex_per_s"] > 0 and result["pipeline_ex_per_s"] > 0
    assert 0 < result["forward_share"] <= 1
    assert result["pipeline_stats"][0]["encoded_rows"] == 6
    (md,) = tmp_path.glob("*.md")
    assert "pipeline / forward" in md.read_text()
    assert json.loads(next(tmp_path.glob("*.json")).read_text())["encoder"].startswith("timm:")


def test_throughput_script_compares_sorted_and_unsorted_text_batches(tmp_path):
    spec = importlib.util.spec_from_file_location("embed_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = [{"id": i, "text": " ".join(f"w{j}" for j in range(1 + (i * 7) % 13)), "labels": ["a" if i % 2 else "b"],
             "split": "train" if i < 30 else "test"} for i in range(40)]
    data = tmp_path / "texts.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows))
    result = module.main(["--dataset", str(data), "--encoder", "tfidf-svd:dim=2,min_df=1", "--limit", "25",
                          "--repeats", "1", "--batch-size", "4", "--compare-sort", "--out", str(tmp_path / "out")])
    assert result["n"] == 25 and result["unsorted_pipeline_ex_per_s"] > 0
    (md,) = (tmp_path / "out").glob("*.md")
    assert "gain of sorting" in md.read_text() and "(25 of 40 texts" in md.read_text()
