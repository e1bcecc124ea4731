import pytest

from mlcil.encoders import KINDS, TfidfSvdEncoder, make_encoder, parse_encoder_spec
from mlcil.encoders.torch_models import OpenClipEncoder, SentenceTransformerEncoder, TimmEncoder
from mlcil.errors import MlcilError


@pytest.mark.parametrize("spec, expected", [
    ("tfidf-svd:dim=256", ("tfidf-svd", None, {"dim": 256})),
    ("tfidf-svd", ("tfidf-svd", None, {})),
    ("timm:vit_base_patch16_224.augreg_in21k", ("timm", "vit_base_patch16_224.augreg_in21k", {})),
    ("timm:vit_tiny_patch16_224,pretrained=false,img_size=32",
     ("timm", "vit_tiny_patch16_224", {"pretrained": False, "img_size": 32})),
    ("open_clip:ViT-B-32/laion2b_s34b_b79k,tower=text", ("open_clip", "ViT-B-32/laion2b_s34b_b79k", {"tower": "text"})),
    ("sentence-transformers:all-MiniLM-L6-v2", ("sentence-transformers", "all-MiniLM-L6-v2", {})),
    ("ST:all-MiniLM-L6-v2,normalize=true", ("sentence-transformers", "all-MiniLM-L6-v2", {"normalize": True})),
])
def test_parse(spec, expected):
    assert parse_encoder_spec(spec) == expected


def test_make_builds_the_right_class_without_loading():
    assert isinstance(make_encoder("tfidf-svd:dim=8"), TfidfSvdEncoder)
    t = make_encoder("timm:vit_base_patch16_224.augreg_in21k")
    assert isinstance(t, TimmEncoder) and t.pretrained and t._model is None
    c = make_encoder("open_clip:ViT-B-32/laion2b_s34b_b79k,tower=text")
    assert isinstance(c, OpenClipEncoder) and (c.model, c.pretrained, c.modality) == ("ViT-B-32", "laion2b_s34b_b79k", "text")
    assert isinstance(make_encoder("sentence-transformers:all-MiniLM-L6-v2"), SentenceTransformerEncoder)


def test_unknown_kind_lists_known_kinds():
    with pytest.raises(MlcilError) as err:
        make_encoder("resnet:50")
    for kind in KINDS:
        assert kind in str(err.value)


@pytest.mark.parametrize("spec, match", [
    ("", "known kinds"),
    ("timm", "needs a model name"),
    ("tfidf-svd:foo", "options only"),
    ("tfidf-svd:bogus=1", "bad option"),
    ("timm:a,b", "two model names"),
    ("tfidf-svd:dim=0", "dim must be >= 1"),
    ("open_clip:ViT-B-32,tower=audio", "tower"),
])
def test_bad_specs(spec, match):
    with pytest.raises(MlcilError, match=match):
        make_encoder(spec)
