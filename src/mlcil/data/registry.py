"""Named datasets: where they come from, where a copy is found, and loading by name.

Lookup order of :func:`resolve` for ``name_or_path``:

1. an existing file or directory path ('explicit');
2. ``<data_dir>/<name>/``, ``data_dir`` defaulting to ``$MLCIL_DATA`` ('MLCIL_DATA');
3. the cache, ``$MLCIL_CACHE/data/<name>/`` or ``platformdirs.user_cache_dir('mlcil')/data/<name>/`` ('cache'),
   which also holds the embedded datasets ``mlcil embed`` writes (``<name>/<name>.npz``, any name);
4. a download of the dataset's canonical public files into the cache, converted there to
   ``<name>.npz`` (features) or ``<name>.jsonl.gz`` (raw text) and checked against the
   verified counts ('downloaded').

Provenance (repositories, commits, paths, verified counts, caveats) follows each dataset's
``SOURCE.md`` in the shared data folder. No source publishes checksums, so ``sha256`` is None
throughout; the download code checks one where given.
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import http.client
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mlcil.data.arff import read_arff
from mlcil.data.dataset import Dataset
from mlcil.data.jsonl import jsonl_summary, read_jsonl
from mlcil.data.npz import npz_summary, read_npz, write_npz
from mlcil.errors import MlcilError

DOWNLOAD_TIMEOUT_S = 60
_CHUNK = 1 << 16
_FEATURE_SUFFIXES = (".npz",)
_TEXT_SUFFIXES = (".jsonl.gz", ".jsonl")
_ARFF_SUFFIXES = (".arff", ".arff.gz", ".arff.bz2")
_PATH_SUFFIXES = (*_FEATURE_SUFFIXES, *_TEXT_SUFFIXES, *_ARFF_SUFFIXES, ".gz", ".bz2", ".xml")
_CONVERTIBLE = ("arff", "mat", "tsv")


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset: provenance, download URLs and the verified counts.

    Attributes:
        name: registry name (also the folder name under MLCIL_DATA).
        domain: short domain tag, e.g. 'image', 'text feats', 'raw text'.
        description: one line on what X and Y are.
        citation: authors, title, venue, year.
        source: repository @ commit and paths, as SOURCE.md gives them.
        urls: canonical public files for a download (raw.githubusercontent.com at the commit).
        n, d, L: verified rows, features (None for raw text) and labels.
        cardinality: verified mean number of labels per row.
        format: format of the files at ``urls``: 'arff' (Mulan/MEKA), 'mat' (MATLAB v5),
            'tsv' (GoEmotions), or 'rda' / 'sgml' / 'csv-zip' / 'txt-tree', which mlcil cannot convert.
        stored: format of the local copy mlcil reads: 'npz' or 'jsonl'.
        splits: verified rows per split, None where the source has no official split.
        sha256: file name -> hex digest where the source publishes one (none does).
        caveats: what to know before quoting a result.
        csr: store X as CSR (very wide, sparse features).
        drop: attributes of the source to leave out (e.g. an ID column).
        label_names: label names where the source file has none (image600).
    """

    name: str
    domain: str
    description: str
    citation: str
    source: str
    urls: tuple[str, ...]
    n: int
    d: int | None
    L: int
    cardinality: float
    format: str
    stored: str = "npz"
    splits: dict[str, int] | None = None
    sha256: dict[str, str] | None = None
    caveats: str = ""
    csr: bool = False
    drop: tuple[str, ...] = ()
    label_names: tuple[str, ...] | None = None

    def __hash__(self) -> int:  # the dict fields are not hashable; the name identifies an entry
        return hash(self.name)

    @property
    def downloadable(self) -> bool:
        """True when mlcil can download and convert the source files itself."""
        return self.format in _CONVERTIBLE


# --------------------------------------------------------------------------- registry

_GH = "https://raw.githubusercontent.com"
MULAN_COMMIT = "43f6389095ad71984264db4387a8074b22bc7d4a"
MLDR = "fcharte/mldr.datasets"


def _mulan(name: str, domain: str, description: str, citation: str, folder: str, files: tuple[str, ...],
           n: int, d: int, L: int, cardinality: float, splits: dict[str, int] | None, caveats: str = "",
           drop: tuple[str, ...] = ()) -> DatasetInfo:
    paths = [f"data/multi-label/{folder}/{f}" for f in files]
    return DatasetInfo(
        name, domain, description, citation, f"tsoumakas/mulan@{MULAN_COMMIT}: " + ", ".join(paths),
        tuple(f"{_GH}/tsoumakas/mulan/{MULAN_COMMIT}/{p}" for p in paths), n, d, L, cardinality, "arff",
        splits=splits, caveats=caveats, drop=drop,
    )


def _mldr(name: str, description: str, citation: str, path: str, commit: str, n: int, d: int, L: int,
          cardinality: float, caveats: str = "No official train/test split.", csr: bool = False) -> DatasetInfo:
    return DatasetInfo(
        name, "text feats", description, citation, f"{MLDR}@{commit}: {path}",
        (f"{_GH}/{MLDR}/{commit}/{path}",), n, d, L, cardinality, "rda", caveats=caveats, csr=csr,
    )


_READ_2010 = "Read, J. Scalable multi-label classification. PhD thesis, University of Waikato, 2010."
_QUINTA = ("Charte, F., Rivera, A.J., del Jesus, M.J., Herrera, F. QUINTA: A question tagging assistant to "
           "improve the answering ratio in electronic forums. EUROCON 2015, IEEE, pp. 1-6.")
_RCV1 = ("Lewis, D.D., Yang, Y., Rose, T.G., Li, F. RCV1: A new benchmark collection for text categorization "
         "research. JMLR 5:361-397, 2004.")
_RCV1_CAVEATS = ("No split (Mulan's 3000/3000 split is not recoverable from this source). "
                 "Features are RCV1-v2 tf-idf vectors, not raw text.")
_SE_COMMIT = "c6043b40e13710fd754b436f5516e27747b3b69e"
_STACKEX = ("chemistry", "chess", "coffee", "cooking", "cs", "philosophy")

_ENTRIES: list[DatasetInfo] = [
    _mulan("scene", "image", "scene photos; 294 spatial colour-moment features (LUV, in [0,1]); 6 scene labels",
           "Boutell, M., Luo, J., Shen, X., Brown, C. Learning multi-label scene classification. "
           "Pattern Recognition 37(9):1757-1771, 2004.",
           "scene", ("scene-train.arff", "scene-test.arff", "scene.xml"),
           2407, 294, 6, 1.074, {"train": 1211, "test": 1196}),
    _mulan("corel5k", "image", "Corel photos; 499 binary bag-of-visual-words features; 374 keywords",
           "Duygulu, P., Barnard, K., de Freitas, J.F.G., Forsyth, D.A. Object Recognition as Machine Translation: "
           "Learning a Lexicon for a Fixed Image Vocabulary. ECCV 2002, LNCS 2353, pp. 97-112.",
           "corel5k", ("Corel5k-train-sparse.arff", "Corel5k-test-sparse.arff", "Corel5k.xml"),
           5000, 499, 374, 3.522, {"train": 4500, "test": 500},
           "Built from Mulan's sparse ARFF variants (same content as the dense ones)."),
    _mulan("yeast", "biology", "gene expression / phylogenetic profiles; 103 numeric features; 14 functional classes",
           "Elisseeff, A., Weston, J. A Kernel Method for Multi-Labelled Classification. NIPS 14, pp. 681-687, 2001.",
           "yeast", ("yeast-train.arff", "yeast-test.arff", "yeast.xml"),
           2417, 103, 14, 4.237, {"train": 1500, "test": 917}),
    _mulan("genbase", "biology", "protein motif presence; 1185 binary features; 27 protein classes",
           "Diplaris, S., Tsoumakas, G., Mitkas, P., Vlahavas, I. Protein Classification with Multiple Algorithms. "
           "Proc. 10th Panhellenic Conference on Informatics (PCI 2005), pp. 448-456, 2005.",
           "genbase", ("genbase-train.arff", "genbase-test.arff", "genbase.xml"),
           662, 1185, 27, 1.252, {"train": 463, "test": 199},
           "The protein accession ID attribute is dropped (Mulan's table counts 1186 features).", drop=("protein",)),
    _mulan("emotions", "music", "72 rhythmic/timbre audio features; 6 emotion labels",
           "Trohidis, K., Tsoumakas, G., Kalliris, G., Vlahavas, I. Multilabel Classification of Music into "
           "Emotions. ISMIR 2008, pp. 325-330.",
           "emotions", ("emotions-train.arff", "emotions-test.arff", "emotions.xml"),
           593, 72, 6, 1.868, {"train": 391, "test": 202}),
    _mulan("cal500", "music", "68 audio features; 174 song annotation labels (incl. NOT-* labels)",
           "Turnbull, D., Barrington, L., Torres, D., Lanckriet, G. Semantic Annotation and Retrieval of Music and "
           "Sound Effects. IEEE Trans. Audio, Speech and Language Processing 16(2):467-476, 2008.",
           "cal500", ("cal500.arff", "cal500.xml"), 502, 68, 174, 26.044, None, "No official split."),
    _mulan("birds", "audio", "bird song recordings; 260 audio/segment features; 19 species",
           "Briggs, F. et al. The 9th annual MLSP competition: New methods for acoustic classification of multiple "
           "simultaneous bird species in a noisy environment. IEEE MLSP 2013.",
           "birds", ("birds-train.arff", "birds-test.arff", "birds.xml"),
           645, 260, 19, 1.014, {"train": 322, "test": 323},
           "294 of 645 rows have no label; nominal 'location' kept as its numeric code."),
    _mulan("enron", "text feats", "e-mails; 1001 binary bag-of-words features; 53 Berkeley annotation labels",
           "Klimt, B., Yang, Y. The Enron Corpus: A New Dataset for Email Classification Research. "
           "ECML 2004, pp. 217-226.",
           "enron", ("enron-train.arff", "enron-test.arff", "enron.xml"),
           1702, 1001, 53, 3.378, {"train": 1123, "test": 579},
           "Label codes A.A1 ... D.D19 follow Mulan's categories.txt."),
    _mulan("medical", "text feats", "radiology reports; 1449 binary word features; 45 ICD-9-CM codes",
           "Crammer, K., Dredze, M., Ganchev, K., Talukdar, P.P., Carroll, S. Automatic Code Assignment to "
           "Medical Text. BioNLP 2007, pp. 129-136.",
           "medical", ("medical-train.arff", "medical-test.arff", "medical.xml"),
           978, 1449, 45, 1.245, {"train": 333, "test": 645}, "Official split has fewer train than test rows."),
    _mulan("bibtex", "text feats", "BibSonomy BibTeX entries; 1836 binary word features; 159 tags",
           "Katakis, I., Tsoumakas, G., Vlahavas, I. Multilabel Text Classification for Automated Tag Suggestion. "
           "ECML/PKDD 2008 Discovery Challenge, pp. 75-83.",
           "bibtex", ("bibtex-train.arff", "bibtex-test.arff", "bibtex.xml"),
           7395, 1836, 159, 2.402, {"train": 4880, "test": 2515}),
    _mulan("delicious", "web/text feats", "del.icio.us bookmarks; 500 binary word features; 983 tags",
           "Tsoumakas, G., Katakis, I., Vlahavas, I. Effective and Efficient Multilabel Classification in Domains "
           "with Large Number of Labels. ECML/PKDD 2008 Workshop on Mining Multidimensional Data, pp. 30-44.",
           "delicious", ("delicious-train.arff", "delicious-test.arff", "delicious.xml"),
           16105, 500, 983, 19.02, {"train": 12920, "test": 3185},
           "14 rows have no label; label names kept as in Mulan's XML (some 'TAG_??', one with a backslash)."),
    _mulan("tmc2007-500", "text feats", "aviation safety reports (SIAM TM 2007); 500 binary word features; "
           "22 problem types",
           "Srivastava, A.N., Zane-Ulman, B. Discovering recurring anomalies in text reports regarding complex "
           "space systems. IEEE Aerospace Conference 2005, pp. 3853-3862.",
           "tmc2007", ("tmc2007-500-train.arff", "tmc2007-500-test.arff", "tmc2007-500.xml"),
           28596, 500, 22, 2.158, {"train": 21519, "test": 7077},
           "Two tmc2007-500 variants circulate; this is Mulan's (cardinality 2.158), not mldr.datasets' (2.220)."),
    DatasetInfo(
        "imdb", "text feats", "IMDB plot summaries; 1001 binary word-presence features; 28 genres",
        _READ_2010 + " Also Read, J., Pfahringer, B., Holmes, G., Frank, E. Classifier chains for multi-label "
        "classification. Machine Learning 85(3), 2011.",
        "Waikato/meka@f9ffe231e06ebaa75b4a95c5cdeb737419731621: src/main/data/Imdb.arff.bz2",
        (f"{_GH}/Waikato/meka/f9ffe231e06ebaa75b4a95c5cdeb737419731621/src/main/data/Imdb.arff.bz2",),
        120919, 1001, 28, 2.0, "arff", caveats="No official split.", csr=True,
    ),
    DatasetInfo(
        "image600", "image (partial)", "600-row subset of the 'image' natural-scene set; 294 features; 5 labels",
        "Zhang, M.-L., Zhou, Z.-H. ML-KNN: A lazy learning approach to multi-label learning. "
        "Pattern Recognition 40(7), 2007.",
        "KKimura360/MLC_toolbox@e7987792cc26a81028395a0761b65b2bc89364bd: dataset/matfile/image.mat",
        (f"{_GH}/KKimura360/MLC_toolbox/e7987792cc26a81028395a0761b65b2bc89364bd/dataset/matfile/image.mat",),
        600, 294, 5, 1.235, "mat", splits={"train": 400, "test": 200},
        caveats="NOT the full 2000-row 'image' set; sampling unknown; label order assumed "
                "(desert, mountains, sea, sunset, trees).",
        label_names=("desert", "mountains", "sea", "sunset", "trees"),
    ),
    _mldr("ohsumed", "OHSUMED medical abstracts; 1002 binary word features; 23 MeSH disease categories",
          "Joachims, T. Text Categorization with Support Vector Machines: Learning with Many Relevant Features. "
          "ECML 1998, pp. 137-142.",
          "additional-data/ohsumed.rda", "858db5acfc273ba8c7065fbe192802e278a82b66", 13929, 1002, 23, 1.663),
    _mldr("reutersk500", "Reuters news; 500 selected features; 103 labels", _READ_2010,
          "additional-data/reutersk500.rda", "79459b078c40eea2510700fba4ed3323e8b3f5b7", 6000, 500, 103, 1.462,
          "No official split; 4 labels never occur."),
    _mldr("slashdot", "Slashdot articles; 1079 binary word features; 22 labels",
          "Read, J., Pfahringer, B., Holmes, G., Frank, E. Classifier chains for multi-label classification. "
          "Machine Learning 85(3):333-359, 2011.",
          "data/slashdot.rda", "e65c9f8935ea8ad2683a678340000c8fb42e14c7", 3782, 1079, 22, 1.181,
          "No official split; 2 labels never occur."),
    _mldr("langlog", "Language Log blog posts; 1004 binary word features; 75 labels", _READ_2010,
          "data/langlog.rda", "e65c9f8935ea8ad2683a678340000c8fb42e14c7", 1460, 1004, 75, 1.18,
          "No official split; 207 rows have no label."),
    _mldr("ng20", "20 Newsgroups (multi-label version); 1006 binary word features; 20 labels",
          "Lang, K. NewsWeeder: Learning to filter netnews. ICML 1995, pp. 331-339.",
          "data/ng20.rda", "e65c9f8935ea8ad2683a678340000c8fb42e14c7", 19300, 1006, 20, 1.029),
    *(
        _mldr(f"rcv1sub{i}", f"Reuters RCV1-v2 subset {i}; sparse tf-idf features; 101 topics", _RCV1,
              f"additional-data/rcv1sub{i}.rda", commit, 6000, d, 101, card, _RCV1_CAVEATS, csr=True)
        for i, commit, d, card in (
            (1, "23d103ab63a2afbcc32a2a0b9924f4cce236f3f5", 47236, 2.88),
            (2, "69df423b563597b8df9d41ecbfd234c8bed7875b", 47236, 2.634),
            (3, "010268ae3a4dfe3593ac3e867229c2e8bf239913", 47236, 2.614),
            (4, "225e64d926a69a07bf78f647b2a0f981a81b9d48", 47229, 2.484),
            (5, "a796d66ae4f878132fba50d76af210f79d19ebb6", 47235, 2.642),
        )
    ),
    *(
        _mldr(f"stackex_{topic}", f"Stack Exchange {topic} questions; word-count features; {L} tags", _QUINTA,
              f"{folder}/stackex_{topic}.rda", commit, n, d, L, card, "No official split; a few rows have no label.")
        for topic, folder, commit, n, d, L, card in (
            ("chemistry", "additional-data", "1e86ac7743fbc3aded74d99372b529b79bac01e3", 6961, 540, 175, 2.109),
            ("chess", "data", "e65c9f8935ea8ad2683a678340000c8fb42e14c7", 1675, 585, 227, 2.411),
            ("coffee", "additional-data", "f956c4b028268db2a27e0531f4e57c31670f5239", 225, 1763, 123, 1.987),
            ("cooking", "additional-data", "83d4b9614ebd95d3d61ff552f47f765c04aa4582", 10491, 577, 400, 2.225),
            ("cs", "additional-data", "fdbbb7e4d054ea40ce4c0bbf8ef4e9446a0fc536", 9270, 635, 274, 2.556),
            ("philosophy", "additional-data", "7055cd388a26ea252b366d87e604373b52210818", 3971, 842, 233, 2.272),
        )
    ),
    DatasetInfo(
        "reuters21578", "raw text (news)", "Reuters-21578 news-wire texts (1987); TOPICS labels; ModApte split",
        "Lewis, D.D. Reuters-21578 text categorization test collection, Distribution 1.0, 1997.",
        "colibri17/TextCategorization@b6c2ca3d46a2540843400890792e5165448b4516: reuters21578/reut2-000.sgm ... "
        "reut2-021.sgm",
        tuple(f"{_GH}/colibri17/TextCategorization/b6c2ca3d46a2540843400890792e5165448b4516/reuters21578/"
              f"reut2-{i:03d}.sgm" for i in range(22)),
        21578, None, 120, 0.663, "sgml", stored="jsonl",
        splits={"train": 9603, "test": 3299, "unused": 8676},
        caveats="Research use only. L counts the 120 topics used in documents (cardinality over all 21,578 docs, "
                "'unused' included); the usual benchmark is ModApte R90: rows with in_modapte_r90 (meta['extra']) "
                "and the 90 'modapte_r90' labels of label_names.json.",
    ),
    DatasetInfo(
        "goemotions", "raw text (Reddit)", "Reddit comments; 27 emotions + neutral; official train/dev/test split",
        "Demszky, D., Movshovitz-Attias, D., Ko, J., Cowen, A., Nemade, G., Ravi, S. GoEmotions: A Dataset of "
        "Fine-Grained Emotions. ACL 2020.",
        "monologg/GoEmotions-pytorch@b75f9d3a8b76bc1060687925b04ca98a1b8ea66b: data/original/train.tsv, dev.tsv, "
        "test.tsv, labels.txt (= google-research/google-research goemotions/data)",
        tuple(f"{_GH}/monologg/GoEmotions-pytorch/b75f9d3a8b76bc1060687925b04ca98a1b8ea66b/data/original/{f}"
              for f in ("train.tsv", "dev.tsv", "test.tsv", "labels.txt")),
        54263, None, 28, 1.176, "tsv", stored="jsonl", splits={"train": 43410, "dev": 5426, "test": 5427},
        caveats="'dev' is the official validation split; CC BY 4.0 licence widely stated but not verified.",
    ),
    *(
        DatasetInfo(
            f"se_{site}", "raw text (Stack Exchange)",
            f"{site}.stackexchange.com questions (title + body, HTML stripped); user-assigned tags; Kaggle 2016 snapshot",
            "Kaggle. Transfer Learning on Stack Exchange Tags (competition training files), 2016; "
            "text CC BY-SA 3.0, attribute Stack Exchange.",
            f"Anurags2111/Kaggle-Transfer-Learning-on-Stack-Exchange-Tags@{_SE_COMMIT}: data/{site}.csv.zip",
            (f"{_GH}/Anurags2111/Kaggle-Transfer-Learning-on-Stack-Exchange-Tags/{_SE_COMMIT}/data/{site}.csv.zip",),
            n, None, L, card, "csv-zip", stored="jsonl",
            caveats="No official split; long tail of tags (many with < 5 questions); at most 5 tags per question.",
        )
        for site, n, L, card in (("cooking", 15404, 736, 2.3073), ("crypto", 10432, 392, 2.4429))
    ),
    DatasetInfo(
        "hoc", "raw text (PubMed abstracts)",
        "Hallmarks of Cancer: PubMed abstracts labelled with the 10 top-level cancer hallmarks (document level)",
        "Baker, S., Silins, I., Guo, Y., Ali, I., Högberg, J., Stenius, U., Korhonen, A. Automatic semantic "
        "classification of scientific literature according to the hallmarks of cancer. Bioinformatics 32(3), 2016.",
        "sb895/Hallmarks-of-Cancer@3bc6e6deb90cf5bc4f9988c493fe2c32e9b3cf2a: text/<PMID>.txt, labels/<PMID>.txt",
        (), 1852, None, 10, 1.3315, "txt-tree", stored="jsonl",
        caveats="GPL-3.0. No official split; 272 abstracts carry no hallmark (kept, no label); text is pre-tokenised.",
    ),
]

DATASETS: dict[str, DatasetInfo] = {info.name: info for info in _ENTRIES}
"""Registered datasets by name."""


# --------------------------------------------------------------------------- locations

def cache_dir() -> Path:
    """Root of mlcil's cache: ``$MLCIL_CACHE`` or ``platformdirs.user_cache_dir('mlcil')``."""
    env = os.environ.get("MLCIL_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mlcil"))


def data_cache_dir() -> Path:
    """Where downloaded datasets live: ``<cache_dir()>/data``."""
    return cache_dir() / "data"


def _data_root(data_dir: str | os.PathLike | None) -> Path | None:
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("MLCIL_DATA")
    return Path(env).expanduser() if env else None


def _strip_suffixes(filename: str) -> str:
    for suffix in (*_TEXT_SUFFIXES, *_ARFF_SUFFIXES, *_FEATURE_SUFFIXES):
        if filename.lower().endswith(suffix):
            return filename[: -len(suffix)]
    return Path(filename).stem


def _name_of(path: Path) -> str:
    """Dataset name implied by a path: folder name, or file stem without -train/-test."""
    if path.is_dir():
        return path.name
    stem = _strip_suffixes(path.name)
    for suffix in ("-sparse", "-train", "-test", "_train", "_test"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem


def _lookup(name: str) -> DatasetInfo | None:
    return DATASETS.get(name) or DATASETS.get(name.lower())


def _looks_like_path(text: str) -> bool:
    return "/" in text or os.sep in text or text.lower().endswith(_PATH_SUFFIXES) or text.startswith("~")


def _locate(folder: Path, name: str) -> Path | list[Path]:
    """The data file(s) inside a dataset folder: <name>.npz, <name>.jsonl[.gz], or ARFF files."""
    for suffix in (*_FEATURE_SUFFIXES, *_TEXT_SUFFIXES):
        if (folder / f"{name}{suffix}").is_file():
            return folder / f"{name}{suffix}"
    try:
        files = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError as exc:
        raise MlcilError(f"{folder}: cannot list folder ({exc})") from None
    for suffixes in (_FEATURE_SUFFIXES, _TEXT_SUFFIXES):
        found = [p for p in files if p.name.lower().endswith(suffixes)]
        if len(found) == 1:
            return found[0]
    arffs = [p for p in files if p.name.lower().endswith(_ARFF_SUFFIXES)]
    train = [p for p in arffs if "train" in p.name.lower() and "test" not in p.name.lower()]
    test = [p for p in arffs if "test" in p.name.lower() and "train" not in p.name.lower()]
    whole = [p for p in arffs if p not in train and p not in test]
    if len(train) == 1 and len(test) == 1:
        return [train[0], test[0]]
    if len(whole) == 1 and not (train or test):
        return whole[0]
    if arffs:
        raise MlcilError(
            f"{folder}: ambiguous ARFF files ({', '.join(p.name for p in arffs)}); pass the file(s) explicitly"
        )
    raise MlcilError(f"{folder}: no dataset file found (expected {name}.npz, {name}.jsonl.gz or .arff files)")


def _cached(name: str) -> Path | None:
    """The converted copy of a registered dataset in the cache, if complete."""
    info = DATASETS[name]
    suffixes = (".npz",) if info.stored == "npz" else (".jsonl.gz", ".jsonl")
    folder = data_cache_dir() / name
    return folder if any((folder / f"{name}{s}").is_file() for s in suffixes) else None


def _old_embedded_name(text: str) -> str | None:
    """The new name of an embedded dataset asked for by its old name: 'goemotions-tfidf-svd-dim-256' -> 'goemotions@tfidf-svd-dim-256'."""
    base = max((n for n in DATASETS if text.lower().startswith(n + "-")), key=len, default=None)
    if base is None:
        return None
    rest = text[len(base) + 1:]
    return f"{base}@{'minilm' if 'minilm' in rest.lower() else rest}"


def _not_found(text: str) -> MlcilError:
    new = _old_embedded_name(text)
    if new is not None:
        where = data_cache_dir() / new / f"{new}.npz"
        return MlcilError(
            f"unknown dataset {text!r}: embedded datasets are now named <dataset>@<encoder>: use {new!r}"
            + (f" (found in {where.parent})" if where.is_file() else
               f" (`mlcil embed {new.split('@')[0]} -e <encoder>` writes it)")
        )
    close = difflib.get_close_matches(text.lower(), list(DATASETS), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return MlcilError(
        f"unknown dataset {text!r}: not a registered name nor an existing path{hint} (`mlcil datasets` lists them)"
    )


def resolve(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None
            ) -> tuple[Path, DatasetInfo | None, str]:
    """Find a dataset: (file or folder, its registry entry or None, where) — see the module docstring.

    ``where`` is one of 'explicit', 'MLCIL_DATA', 'cache', 'downloaded'. A registered dataset that
    is nowhere local is downloaded into the cache (network needed).
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if text and path.exists():
        return path, _lookup(_name_of(path)), "explicit"
    if not text or _looks_like_path(text):
        raise MlcilError(f"{text}: no such file or directory")
    info = _lookup(text)
    name = info.name if info else text
    root = _data_root(data_dir)
    if root is not None and (root / name).is_dir():
        return root / name, info, "MLCIL_DATA"
    if info is None:
        if (data_cache_dir() / name / f"{name}.npz").is_file():  # written by `mlcil embed`
            return data_cache_dir() / name, None, "cache"
        raise _not_found(text)
    cached = _cached(name)
    if cached is not None:
        return cached, info, "cache"
    return download(info), info, "downloaded"


def _read(target: Path | list[Path], info: DatasetInfo | None, name: str) -> Dataset:
    """Dispatch on the file type."""
    drop = info.drop if info else ()
    if isinstance(target, list):
        return read_arff(target, name=name, drop=drop, sparse=info.csr if info else None)
    lower = target.name.lower()
    if lower.endswith(_FEATURE_SUFFIXES):
        return read_npz(target, name=name)
    if lower.endswith(_TEXT_SUFFIXES):
        return read_jsonl(target, name=name)
    if lower.endswith(_ARFF_SUFFIXES):
        return read_arff(target, name=name, drop=drop, sparse=info.csr if info else None)
    raise MlcilError(f"{target}: unsupported file type (expected .npz, .jsonl, .jsonl.gz or .arff)")


def load_dataset(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load a dataset by registry name or path (see :func:`resolve` for the lookup order).

    Sets ``Dataset.name`` (registry name, else folder name / file stem) and
    ``meta['path']``, ``meta['where']`` and ``meta['citation']`` (None for unregistered data).
    """
    path, info, where = resolve(name_or_path, data_dir)
    name = info.name if info else _name_of(path)
    target = _locate(path, name) if path.is_dir() else path
    ds = _read(target, info, name)
    ds.meta.update(
        path=str(target) if isinstance(target, Path) else [str(p) for p in target],
        where=where,
        citation=info.citation if info else None,
    )
    return ds


def _summary(target: Path | list[Path], info: DatasetInfo) -> dict[str, Any]:
    """n, d, L, cardinality and split counts of a local copy, reading as little as possible."""
    if isinstance(target, Path) and target.name.lower().endswith(_FEATURE_SUFFIXES):
        return npz_summary(target)
    if isinstance(target, Path) and target.name.lower().endswith(_TEXT_SUFFIXES):
        return jsonl_summary(target)
    ds = _read(target, info, info.name)  # ARFF: no shortcut, parse it
    counts = None if ds.split is None else dict(zip(*(a.tolist() for a in np.unique(ds.split, return_counts=True))))
    return {"n": ds.n, "d": ds.d, "L": ds.L, "cardinality": ds.cardinality, "split": counts}


def list_datasets(data_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """One row per registered dataset for ``mlcil datasets``.

    Keys: name, domain, n, d ('raw' for text), L, cardinality, split (e.g. 'train=1211 test=1196'
    or '-'), where (path of the local copy, 'not found locally (downloadable)' or 'not found').
    Counts come from the local copy when there is one, else from the registry's verified counts.
    """
    root = _data_root(data_dir)
    rows = []
    for name, info in DATASETS.items():
        folder = root / name if root is not None and (root / name).is_dir() else _cached(name)
        stats: dict[str, Any] = {"n": info.n, "d": info.d, "L": info.L, "cardinality": info.cardinality,
                                 "split": info.splits}
        if folder is None:
            where = "not found locally (downloadable)" if info.downloadable else "not found"
        else:
            try:
                target = _locate(folder, name)
                stats = _summary(target, info)
                where = str(target if isinstance(target, Path) else folder)
            except MlcilError as exc:
                where = f"{folder} (unreadable: {exc})"
        split = stats.get("split")
        rows.append({
            "name": name, "domain": info.domain, "n": stats["n"],
            "d": "raw" if stats["d"] is None else stats["d"], "L": stats["L"],
            "cardinality": round(float(stats["cardinality"]), 3),
            "split": " ".join(f"{k}={v}" for k, v in split.items()) if split else "-",
            "where": where,
        })
    return rows + embedded_datasets()


def embedded_datasets() -> list[dict[str, Any]]:
    """Rows (as :func:`list_datasets`) for the embedded datasets ``mlcil embed`` cached, named ``<dataset>@<encoder>``.

    They live in ``data_cache_dir()/<name>/<name>.npz``; ``mlcil bench <name>`` finds them by name.
    """
    root = data_cache_dir()
    rows = []
    for folder in sorted(root.glob("*@*")) if root.is_dir() else ():
        path = folder / f"{folder.name}.npz"
        if not path.is_file():
            continue
        try:
            stats = npz_summary(path)
            where = str(path)
        except MlcilError as exc:
            stats, where = {"n": None, "d": None, "L": None, "cardinality": 0.0, "split": None}, \
                f"{path} (unreadable: {exc})"
        encoder = folder.name.split("@", 1)[1]
        split = stats.get("split")
        rows.append({"name": folder.name, "domain": f"embedded ({encoder})", "n": stats["n"], "d": stats["d"],
                     "L": stats["L"], "cardinality": round(float(stats["cardinality"]), 3),
                     "split": " ".join(f"{k}={v}" for k, v in split.items()) if split else "-", "where": where})
    return rows


# --------------------------------------------------------------------------- download

def _download_error(info: DatasetInfo, url: str, reason: object) -> MlcilError:
    return MlcilError(
        f"could not download {info.name} from {url}: {reason}; "
        f"set MLCIL_DATA to a folder holding {info.name}/ or pass a path"
    )


def download_file(url: str, dest: Path, sha256: str | None = None, desc: str | None = None,
                  error: Callable[[object], MlcilError] | None = None) -> Path:
    """Fetch ``url`` to ``dest`` with a progress bar; atomic (temp file + rename), sha256-checked when given.

    Network and HTTP failures raise ``error(reason)`` (default: a plain MlcilError); a partial file
    never remains at ``dest``.
    """
    error = error or (lambda reason: MlcilError(f"could not download {url}: {reason}"))
    try:
        response = urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        raise error(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise error(exc.reason) from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise error(exc) from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        out = os.fdopen(fd, "wb")
        digest, size = hashlib.sha256(), 0
        with response, out:
            length = response.headers.get("Content-Length") if response.headers is not None else None
            total = int(length) if length and str(length).isdigit() else None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc or dest.name,
                      disable=None, leave=False) as bar:
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except (OSError, http.client.HTTPException) as exc:
                        raise error(f"connection lost after {size} bytes ({exc})") from None
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
        if total is not None and size != total:
            raise error(f"incomplete download ({size} of {total} bytes)")
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise MlcilError(
                f"sha256 mismatch for {url}: expected {sha256}, got {digest.hexdigest()} (file discarded)"
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def download(info: DatasetInfo) -> Path:
    """Download a registered dataset into the cache and convert it; returns its cache folder.

    Raises :class:`MlcilError` when the source format cannot be converted (R .rda, SGML), the
    network fails, a checksum differs, or the converted data do not match the verified counts.
    """
    if not info.downloadable:
        raise MlcilError(
            f"{info.name} cannot be downloaded automatically: its source ({(info.urls or (info.source,))[0]}"
            f"{' ...' if len(info.urls) > 1 else ''}) is {info.format.upper()}, which mlcil does not convert; "
            f"put a converted copy ({info.name}/{info.name}.{'npz' if info.stored == 'npz' else 'jsonl.gz'}) "
            f"in the folder MLCIL_DATA points to, or pass its path"
        )
    folder = data_cache_dir() / info.name
    raw = folder / "source"
    files = []
    for url in info.urls:
        filename = url.rsplit("/", 1)[-1]
        sha = (info.sha256 or {}).get(filename)
        files.append(download_file(url, raw / filename, sha, desc=f"{info.name}: {filename}",
                                   error=lambda reason, url=url: _download_error(info, url, reason)))
    convert = {"arff": _convert_arff, "mat": _convert_mat, "tsv": _convert_tsv}[info.format]
    convert(info, files, folder)
    shutil.rmtree(raw, ignore_errors=True)
    return folder


def _verify(info: DatasetInfo, ds: Dataset, origin: Path) -> None:
    """Compare a converted dataset with the registry's verified counts."""
    got = {"n": ds.n, "d": ds.d, "L": ds.L}
    want = {"n": info.n, "d": info.d, "L": info.L}
    if info.splits is not None:
        got["split"] = dict(zip(*(a.tolist() for a in np.unique(ds.split, return_counts=True)))) \
            if ds.split is not None else None
        want["split"] = info.splits
    diff = [f"{k}={got[k]} (expected {want[k]})" for k in want if got[k] != want[k]]
    if diff:
        raise MlcilError(
            f"{info.name}: downloaded data do not match the verified counts: {', '.join(diff)}; "
            f"the source may have changed (files kept in {origin})"
        )


def _convert_arff(info: DatasetInfo, files: list[Path], folder: Path) -> None:
    arffs = [p for p in files if p.name.lower().endswith(_ARFF_SUFFIXES)]
    xml = next((p for p in files if p.suffix.lower() == ".xml"), None)
    ds = read_arff(arffs if len(arffs) > 1 else arffs[0], labels=xml, name=info.name, drop=info.drop,
                   sparse=info.csr)
    _verify(info, ds, files[0].parent)
    write_npz(ds, folder / f"{info.name}.npz")


def _convert_mat(info: DatasetInfo, files: list[Path], folder: Path) -> None:
    """MATLAB v5 file with train_data (n x d), train_target (L x n, -1/+1), test_data, test_target."""
    import scipy.io

    path = files[0]
    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises several types for bad files
        raise MlcilError(f"{path}: cannot read MATLAB file ({exc})") from None
    parts = []
    for split in ("train", "test"):
        try:
            X, T = np.asarray(mat[f"{split}_data"], np.float32), np.asarray(mat[f"{split}_target"])
        except KeyError as exc:
            raise MlcilError(f"{path}: missing variable {exc}") from None
        if not np.isin(T, (-1, 0, 1)).all():
            raise MlcilError(f"{path}: {split}_target must hold -1/+1 (or 0/1) values")
        parts.append((X, (T.T > 0).astype(np.uint8), np.full(len(X), split)))
    ds = Dataset(np.vstack([p[0] for p in parts]), np.vstack([p[1] for p in parts]),
                 list(info.label_names or ()), np.concatenate([p[2] for p in parts]), info.name,
                 {"path": str(path)})
    _verify(info, ds, path.parent)
    write_npz(ds, folder / f"{info.name}.npz")


def _convert_tsv(info: DatasetInfo, files: list[Path], folder: Path) -> None:
    """GoEmotions TSVs (text, comma-separated label ids, comment id) + labels.txt -> jsonl.gz."""
    by_name = {p.name: p for p in files}
    names = [s.strip() for s in by_name["labels.txt"].read_text(encoding="utf-8").splitlines() if s.strip()]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "label_names.json").write_text(json.dumps(names), encoding="utf-8")
    out = folder / f"{info.name}.jsonl.gz"
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as raw_out, gzip.open(raw_out, "wt", encoding="utf-8") as fh:
            for split in ("train", "dev", "test"):
                path = by_name[f"{split}.tsv"]
                with open(path, encoding="utf-8") as src:
                    for lineno, line in enumerate(src, start=1):
                        cells = line.rstrip("\n").split("\t")
                        if len(cells) != 3:
                            raise MlcilError(f"{path}:{lineno}: expected 3 tab-separated fields, got {len(cells)}")
                        text, ids, comment_id = cells
                        try:
                            labels = [names[int(i)] for i in ids.split(",")]
                        except (ValueError, IndexError):
                            raise MlcilError(f"{path}:{lineno}: bad label ids {ids!r}") from None
                        row = {"id": comment_id, "text": text, "labels": labels, "split": split}
                        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        ds = read_jsonl(tmp, name=info.name)
        _verify(info, ds, files[0].parent)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
