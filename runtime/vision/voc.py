"""Pascal VOC annotations (a VOCdevkit folder): true labels for training and evaluation."""
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from .classes import VOC_CLASSES

SPLIT_FILES = {"train": "train", "heldout": "val", "val": "val", "all": "trainval", "trainval": "trainval",
               "test": "test"}


def voc_years(root, year=None):
    """The VOC20xx folders under a VOCdevkit (or the folder itself if it is one)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError("VOC folder not found: {}".format(root))
    years = [root] if (root / "Annotations").is_dir() else sorted(p for p in root.glob("VOC*") if p.is_dir())
    if year:
        years = [p for p in years if p.name.endswith(str(year))]
    if not years:
        raise FileNotFoundError("no VOC20xx folder with Annotations/ under {}".format(root))
    return years


def parse_annotation(xml_path):
    """-> (boxes float32 (n, 4) xyxy in 0-based pixels, classes int64 (n,), difficult bool (n,))."""
    tree = ET.parse(str(xml_path))
    boxes, cls, diff = [], [], []
    for obj in tree.findall("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in VOC_CLASSES:
            continue
        bb = obj.find("bndbox")
        x0, y0, x1, y1 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append([x0 - 1, y0 - 1, x1 - 1, y1 - 1])        # VOC pixels are 1-based
        cls.append(VOC_CLASSES.index(name))
        diff.append((obj.findtext("difficult") or "0").strip() == "1")
    return (np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(cls, np.int64),
            np.asarray(diff, bool))


def voc_items(root, split="heldout", year=None):
    """[(image path, boxes, classes, difficult)] of a VOC split (train / heldout = val / all)."""
    name = SPLIT_FILES.get(split)
    if name is None:
        raise ValueError("unknown VOC split {!r} (one of {})".format(split, sorted(SPLIT_FILES)))
    items = []
    for y in voc_years(root, year):
        ids_file = y / "ImageSets" / "Main" / (name + ".txt")
        if not ids_file.is_file():
            raise FileNotFoundError("VOC split file missing: {}".format(ids_file))
        for iid in ids_file.read_text().split():
            b, c, d = parse_annotation(y / "Annotations" / (iid + ".xml"))
            items.append((y / "JPEGImages" / (iid + ".jpg"), b, c, d))
    return items
