"""VOC 2007, COCO 2014 and image-folder readers on tiny annotation files written here."""

import json
from pathlib import Path

import numpy as np
import pytest

from mlcil.data.images import VOC_CLASSES, read_coco2014, read_image_folder, read_voc2007
from mlcil.data.raw import load_raw
from mlcil.errors import MlcilError
from mlcil.protocols import Protocol


def voc_xml(objects):
    body = "".join(f"<object><name>{n}</name><difficult>{int(d)}</difficult></object>" for n, d in objects)
    return f"<annotation><filename>x.jpg</filename>{body}</annotation>"


def make_voc(root: Path, annotations: dict, trainval: list, test: list) -> Path:
    folder = root / "VOCdevkit" / "VOC2007"
    (folder / "Annotations").mkdir(parents=True)
    (folder / "ImageSets" / "Main").mkdir(parents=True)
    (folder / "JPEGImages").mkdir()
    for image_id, objects in annotations.items():
        (folder / "Annotations" / f"{image_id}.xml").write_text(voc_xml(objects))
    (folder / "ImageSets" / "Main" / "trainval.txt").write_text("\n".join(trainval) + "\n")
    (folder / "ImageSets" / "Main" / "test.txt").write_text("\n".join(test) + "\n")
    return folder


def test_voc_drops_difficult_objects_and_keeps_the_official_split(tmp_path):
    make_voc(tmp_path, {
        "000001": [("dog", 0), ("person", 0), ("person", 1)],
        "000002": [("cat", 1)],                      # only difficult: no label
        "000003": [("aeroplane", 0), ("cat", 1), ("cat", 0)],
        "000004": [("tvmonitor", 0)],
    }, trainval=["000001", "000002", "000003"], test=["000004"])
    ds = read_voc2007(tmp_path)  # finds VOCdevkit/VOC2007
    assert ds.label_names == list(VOC_CLASSES) == sorted(VOC_CLASSES)
    col = {c: j for j, c in enumerate(ds.label_names)}
    assert ds.split.tolist() == ["train", "train", "train", "test"]
    assert sorted(np.flatnonzero(ds.Y[0])) == [col["dog"], col["person"]]
    assert ds.Y[1].sum() == 0
    assert sorted(np.flatnonzero(ds.Y[2])) == [col["aeroplane"], col["cat"]]
    assert ds.meta["n_difficult_only"] == 1 and ds.meta["ids"][3] == "000004"
    assert ds.X[3].endswith("VOC2007/JPEGImages/000004.jpg")


def test_voc_missing_or_bad_annotation_is_named(tmp_path):
    make_voc(tmp_path, {"000001": [("dog", 0)]}, trainval=["000001", "000002"], test=[])
    with pytest.raises(MlcilError, match="000002.xml: missing annotation file"):
        read_voc2007(tmp_path)
    other = tmp_path / "other"
    make_voc(other, {"000001": [("unicorn", 0)]}, trainval=["000001"], test=[])
    with pytest.raises(MlcilError, match="unknown VOC class 'unicorn'"):
        read_voc2007(other)
    with pytest.raises(MlcilError, match="no VOC 2007 folder"):
        read_voc2007(tmp_path / "nowhere")
    third = make_voc(tmp_path / "third", {"000001": [("dog", 0)]}, trainval=["000001"], test=[])
    (third / "ImageSets" / "Main" / "test.txt").unlink()
    with pytest.raises(MlcilError, match="test.txt: missing split file"):
        read_voc2007(third)


def coco(images, annotations, categories):
    return {"images": [{"id": i, "file_name": f} for i, f in images],
            "annotations": [{"image_id": i, "category_id": c, "iscrowd": 0} for i, c in annotations],
            "categories": [{"id": c, "name": n} for c, n in categories]}


CATS = [(1, "person"), (2, "bicycle"), (3, "car"), (18, "dog"), (44, "bottle"), (10, "traffic light")]


def make_coco(root: Path) -> Path:
    (root / "annotations").mkdir(parents=True)
    train = coco([(11, "COCO_train2014_11.jpg"), (12, "COCO_train2014_12.jpg"), (13, "COCO_train2014_13.jpg")],
                 [(11, 1), (11, 1), (11, 18), (12, 10), (12, 44)], CATS)  # 13 has no annotation
    val = coco([(21, "COCO_val2014_21.jpg"), (22, "COCO_val2014_22.jpg")], [(21, 3), (22, 2), (22, 1)], CATS)
    (root / "annotations" / "instances_train2014.json").write_text(json.dumps(train))
    (root / "annotations" / "instances_val2014.json").write_text(json.dumps(val))
    return root


def test_coco_alphabetical_classes_and_split(tmp_path):
    ds = read_coco2014(make_coco(tmp_path))
    assert ds.label_names == ["bicycle", "bottle", "car", "dog", "person", "traffic light"]
    assert ds.split.tolist() == ["train", "train", "test", "test"] and ds.meta["ids"] == [11, 12, 21, 22]
    Y = {ds.meta["ids"][i]: {ds.label_names[j] for j in np.flatnonzero(ds.Y[i])} for i in range(ds.n)}
    assert Y == {11: {"person", "dog"}, 12: {"traffic light", "bottle"}, 21: {"car"}, 22: {"bicycle", "person"}}
    assert ds.X[0] == str(tmp_path / "train2014" / "COCO_train2014_11.jpg")
    assert read_coco2014(tmp_path, keep_unlabeled=True).n == 5


def test_coco_bad_files(tmp_path):
    with pytest.raises(MlcilError, match="instances_train2014.json: missing annotation file"):
        read_coco2014(tmp_path)
    make_coco(tmp_path)
    path = tmp_path / "annotations" / "instances_val2014.json"
    bad = json.loads(path.read_text())
    bad["annotations"].append({"image_id": 999, "category_id": 1})
    path.write_text(json.dumps(bad))
    with pytest.raises(MlcilError, match="annotation #3 refers to an unknown image"):
        read_coco2014(tmp_path)
    path.write_text("{not json")
    with pytest.raises(MlcilError, match="malformed annotation JSON"):
        read_coco2014(tmp_path)


def test_protocol_class_order_on_coco_is_alphabetical(tmp_path):
    ds = read_coco2014(make_coco(tmp_path))
    ds = type(ds)(np.eye(ds.n, 3, dtype=np.float32), ds.Y, ds.label_names, ds.split, ds.name)
    stream = Protocol("B0-C2").build(ds)
    assert [ds.label_names[c] for c in stream.class_order] == sorted(ds.label_names)


def test_image_folder_csv_and_jsonl(tmp_path):
    (tmp_path / "labels.csv").write_text("image,labels,split\na.jpg,cat;dog,train\nb.jpg,dog,train\nc.jpg,,test\n")
    ds = read_image_folder(tmp_path / "labels.csv")
    assert ds.label_names == ["cat", "dog"] and ds.Y.tolist() == [[1, 1], [0, 1], [0, 0]]
    assert ds.X == [str(tmp_path / f) for f in ("a.jpg", "b.jpg", "c.jpg")] and ds.split.tolist()[2] == "test"
    lines = [{"image": "sub/a.png", "labels": ["z", "a"]}, {"image": "b.png", "labels": []}]
    (tmp_path / "labels.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    ds = load_raw(str(tmp_path / "labels.jsonl"), root=tmp_path / "imgs")
    assert ds.label_names == ["a", "z"] and ds.X[0] == str(tmp_path / "imgs" / "sub" / "a.png") and ds.split is None
    (tmp_path / "bad.csv").write_text("file,tags\na.jpg,x\n")
    with pytest.raises(MlcilError, match="columns 'image' and 'labels'"):
        read_image_folder(tmp_path / "bad.csv")
    (tmp_path / "mixed.csv").write_text("image,labels,split\na.jpg,x,train\nb.jpg,y,\n")
    with pytest.raises(MlcilError, match="mixed.csv:3: field 'split'"):
        read_image_folder(tmp_path / "mixed.csv")


def test_load_raw_image_datasets_need_root():
    with pytest.raises(MlcilError, match="--root"):
        load_raw("voc2007")


def test_text_views_of_the_shared_raw_datasets(shared_data):
    reuters = load_raw("reuters21578", data_dir=shared_data)
    assert (reuters.n, reuters.L) == (10789, 90) and reuters.label_names == sorted(reuters.label_names)
    assert dict(zip(*np.unique(reuters.split, return_counts=True))) == {"test": 3019, "train": 7770}
    assert reuters.Y.sum(axis=1).min() >= 1 and reuters.Y[reuters.split == "train"].sum(axis=0).min() >= 1
    goemotions = load_raw("goemotions", data_dir=shared_data)
    assert (goemotions.n, goemotions.L) == (54263, 28)
    assert dict(zip(*np.unique(goemotions.split, return_counts=True))) == {"test": 5427, "train": 43410 + 5426}


@pytest.mark.parametrize("names, spec, sessions, first", [
    (VOC_CLASSES, "B0-C4", 5, ["aeroplane", "bicycle", "bird", "boat"]),
    (VOC_CLASSES, "B10-C2", 6, list(VOC_CLASSES[:10])),
    ("coco", "B0-C10", 8, None),
    ("coco", "B40-C10", 5, None),
])
def test_the_fields_protocols_on_voc_and_coco_shaped_data(names, spec, sessions, first):
    from mlcil.data import Dataset
    from mlcil.data.images import COCO_CLASSES

    names = sorted(COCO_CLASSES) if names == "coco" else list(names)
    assert len(names) == (80 if len(names) > 20 else 20) and len(set(names)) == len(names)
    rng = np.random.default_rng(0)
    n = 20 * len(names)
    Y = (rng.random((n, len(names))) < 0.08).astype(np.uint8)
    Y[np.arange(n), np.arange(n) % len(names)] = 1
    ds = Dataset(rng.normal(size=(n, 8)).astype(np.float32), Y, names, np.where(np.arange(n) % 4, "train", "test"))
    stream = Protocol(spec).build(ds)
    assert len(stream) == sessions
    order = [names[c] for c in stream.class_order]
    assert order == sorted(names)
    if first is not None:
        assert [names[c] for c in stream.sessions[0].classes] == first
    assert sum(len(s.classes) for s in stream.sessions) == len(names)
