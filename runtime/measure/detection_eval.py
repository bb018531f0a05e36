"""AP50 per class with pycocotools (the COCO evaluation, not a hand-written AP).

    evaluate_ap50(ground_truth, detections, class_names) -> {"frames", "ap50": {class: AP},
        "map50", "ground_truth": {class: count}, "detections"}

ground_truth: per image a dict(boxes (n, 4) xyxy, classes (n,), optional ignore (n,) bool: such
boxes are COCO "iscrowd" regions, matched detections neither count nor hurt);
detections: per image a tuple (boxes (m, 4) xyxy, scores (m,), classes (m,)).
AP is computed for the classes that have at least one ground-truth box; map50 is their mean.
pycocotools is an evaluation extra (`pip install pycocotools`), imported only here.
"""
import contextlib
import io

import numpy as np

from ..errors import PynqDeployError


def _coco():
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as e:
        raise PynqDeployError("detector evaluation needs pycocotools: pip install pycocotools") from e
    return COCO, COCOeval


def evaluate_ap50(ground_truth, detections, class_names):
    COCO, COCOeval = _coco()
    if len(ground_truth) != len(detections):
        raise ValueError("{} ground-truth images but {} detection lists".format(len(ground_truth), len(detections)))
    images, anns, dets = [], [], []
    counts = np.zeros(len(class_names), np.int64)
    for i, (gt, det) in enumerate(zip(ground_truth, detections)):
        images.append({"id": i, "width": 1, "height": 1})
        b = np.asarray(gt["boxes"], np.float64).reshape(-1, 4)
        c = np.asarray(gt["classes"], np.int64).reshape(-1)
        ig = np.asarray(gt.get("ignore", np.zeros(len(b), bool)), bool).reshape(-1)
        for bb, cc, ii in zip(b, c, ig):
            w, h = bb[2] - bb[0], bb[3] - bb[1]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(cc), "bbox": [bb[0], bb[1], w, h],
                         "area": float(w * h), "iscrowd": int(ii), "ignore": int(ii)})
            if not ii:
                counts[cc] += 1
        db, ds, dc = det
        for bb, ss, cc in zip(np.asarray(db, np.float64).reshape(-1, 4), np.asarray(ds).reshape(-1),
                              np.asarray(dc).reshape(-1)):
            dets.append({"image_id": i, "category_id": int(cc), "score": float(ss),
                         "bbox": [bb[0], bb[1], bb[2] - bb[0], bb[3] - bb[1]]})
    present = [k for k in range(len(class_names)) if counts[k] > 0]
    result = {"frames": len(ground_truth), "ap50": {}, "map50": None,
              "ground_truth": {class_names[k]: int(counts[k]) for k in present}, "detections": len(dets)}
    if not present:
        return result
    gt_api = COCO()
    gt_api.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": k, "name": n} for k, n in enumerate(class_names)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt_api.createIndex()
        dt_api = gt_api.loadRes(dets) if dets else None
    for k in present:
        if dt_api is None:
            result["ap50"][class_names[k]] = 0.0
            continue
        ev = COCOeval(gt_api, dt_api, "bbox")
        ev.params.catIds = [k]
        ev.params.iouThrs = np.array([0.5])
        ev.params.maxDets = [100, 100, 100]
        with contextlib.redirect_stdout(io.StringIO()):
            ev.evaluate()
            ev.accumulate()
        prec = ev.eval["precision"][0, :, 0, 0, -1]           # (recall thresholds,) at IoU 0.5, all areas
        valid = prec[prec > -1]
        result["ap50"][class_names[k]] = float(valid.mean()) if valid.size else 0.0
    result["map50"] = float(np.mean([result["ap50"][class_names[k]] for k in present]))
    return result
