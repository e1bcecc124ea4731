"""`mlcil bench` runs the field's methods (l3a, krt, csc) beside analytic on a token dataset, end to end:
found by name under --data-dir (as the prepared ``<set>@minilm-t32-n1000`` sets are) and by path, with the
token learners reading the tokens (not the pooled fallback)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mlcil.cli import main
from mlcil.data.npz import write_npz
from mlcil.learners import attention as A
from tests.learners.conftest import token_dataset

LEARNERS = "l3a:hidden=32,krt:dim=8,heads=2,epochs=1,csc:dim=8,heads=2,epochs=1,analytic"
NAMES = ["l3a:hidden=32", "krt:dim=8,heads=2,epochs=1", "csc:dim=8,heads=2,epochs=1", "analytic"]


@pytest.fixture
def token_folder(tmp_path):
    """<tmp>/data/tok@t5/tok@t5.npz with its tokens beside it (n=80, t=5, d=6, 4 classes)."""
    ds = token_dataset(80, 60, "tok@t5")
    write_npz(ds, tmp_path / "data" / "tok@t5" / "tok@t5.npz")
    return tmp_path / "data"


@pytest.fixture
def token_widths(monkeypatch):
    """The token count (t) every krt/csc session was trained on."""
    seen: list[tuple[str, int]] = []
    real = A.TokenLearner._learn

    def spy(self, X, Y, classes):
        seen.append((self.name, 1 if self._tokens_in is None else int(self._tokens_in[0].shape[1])))
        return real(self, X, Y, classes)

    monkeypatch.setattr(A.TokenLearner, "_learn", spy)
    return seen


@pytest.mark.parametrize("by", ["name", "path"])
def test_bench_runs_the_field_methods_on_tokens(token_folder, token_widths, tmp_path, by):
    out = tmp_path / "out"
    target = ["tok@t5", "--data-dir", str(token_folder)] if by == "name" else [str(token_folder / "tok@t5" / "tok@t5.npz")]
    result = CliRunner().invoke(main, ["bench", *target, "-p", "B0-C2", "-l", LEARNERS, "-s", "1", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert [r["learner"] for r in report["runs"]] == NAMES
    for name in NAMES:
        assert f"| `{name}` |" in result.output
        assert 0 <= report["summary"][name]["last_mAP"]["mean"] <= 1
    # two sessions each for krt and csc, every one on the 5 tokens
    assert sorted(token_widths) == [("csc", 5), ("csc", 5), ("krt", 5), ("krt", 5)]


def test_bench_token_learner_without_tokens_falls_back_to_pooled(token_widths, tmp_path):
    """A dataset without tokens: krt reads the pooled vector as one token (documented), so bench still runs it."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 6)).astype(np.float32)
    Y = (X[:, :4] > 0.2).astype(np.uint8)
    Y[Y.sum(1) == 0, 0] = 1
    path = tmp_path / "plain.npz"
    np.savez(path, X=X, Y=Y, label_names=np.array([f"c{i}" for i in range(4)]),
             split=np.array(["train"] * 45 + ["test"] * 15))
    result = CliRunner().invoke(main, ["bench", str(path), "-p", "B0-C2", "-l", "krt:dim=8,heads=2,epochs=1", "-s", "1",
                                       "-o", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 0, result.output
    assert token_widths == [("krt", 1), ("krt", 1)]
