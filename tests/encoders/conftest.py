"""Fixtures for the encoder tests: an isolated cache, tiny images, tiny random-weight models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mlcil.encoders.base import Encoder


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("MLCIL_CACHE", str(tmp_path / "mlcil-cache"))


def write_images(folder: Path, n: int, size: int = 40, seed: int = 0) -> list[str]:
    """n small random RGB images (PNG and JPEG alternating); returns their paths."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        pixels = rng.integers(0, 256, (size, size + 8 * (i % 3), 3), dtype=np.uint8)
        path = folder / f"img{i:03d}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture
def images(tmp_path) -> list[str]:
    return write_images(tmp_path / "images", 10)


TINY_CLIP = "mlcil-test-tiny-clip"


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    """Registers a tiny open_clip config (random weights, 32 px, 2 layers per tower); returns its name."""
    import open_clip

    cfg = {"embed_dim": 24, "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8,
                                           "head_width": 16},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}
    path = tmp_path_factory.mktemp("clip") / f"{TINY_CLIP}.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    return TINY_CLIP


@pytest.fixture(scope="session")
def tiny_sentence_model(tmp_path_factory) -> str:
    """A tiny random BERT saved as a local sentence-transformers model folder; returns its path."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("st")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + "the a cat dog sat ran on mat and of".split()
    (root / "vocab.txt").write_text("\n".join(words) + "\n")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(root / "bert")
    BertTokenizerFast(vocab_file=str(root / "vocab.txt")).save_pretrained(root / "bert")
    transformer = models.Transformer(str(root / "bert"), max_seq_length=32)
    width = (getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension)()
    pooling = models.Pooling(width, pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(root / "model"))
    return os.fspath(root / "model")


class CountingEncoder(Encoder):
    """Deterministic toy text encoder that counts forward calls and rows; can fail after k calls."""

    kind = "counting"
    modality = "text"

    def __init__(self, dim: int = 3, tag: str = "a", fail_after: int | None = None) -> None:
        self.dim_, self.tag, self.fail_after = dim, tag, fail_after
        self.calls = 0
        self.rows = 0

    @property
    def id(self) -> str:
        return f"counting:{self.tag},dim={self.dim_}"

    @property
    def dim(self) -> int:
        return self.dim_

    def forward(self, batch):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        self.rows += len(batch)
        rows = [[len(t), sum(map(ord, t)) % 97, t.count("x")] for t in batch]  # depends on the text only
        return np.array(rows, dtype=np.float32)[:, :self.dim_] + (0.5 if self.tag == "b" else 0.0)


@pytest.fixture
def counting():
    return CountingEncoder
