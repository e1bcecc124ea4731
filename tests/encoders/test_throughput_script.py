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
