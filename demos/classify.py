#!/usr/bin/env python3
"""Classify images with the multiplier-free BNN overlay (board if present, else the simulated PL).

    python demos/classify.py shoe.jpg shirt.png          # image files (any size; converted to 28x28 grey)
    python demos/classify.py --idx /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz --limit 8
"""
import argparse
import os
import sys
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

import numpy as np  # noqa: E402


def main(argv=None):
    from runtime.cli import positive_int
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*", help="image files")
    p.add_argument("--idx", help="an IDX image file (e.g. Fashion-MNIST t10k-images-idx3-ubyte.gz)")
    p.add_argument("--labels", help="the matching IDX label file (prints accuracy)")
    p.add_argument("--limit", type=positive_int, default=10)
    p.add_argument("--top", type=positive_int, default=3)
    p.add_argument("--engine", choices=["numpy", "csim"], default="numpy")
    p.add_argument("--pl", choices=["auto", "board", "sim"], default="auto")
    p.add_argument("--invert", choices=["auto", "yes", "no"], default="auto",
                   help="photos with a bright background are inverted to look like Fashion-MNIST")
    args = p.parse_args(argv)
    if not args.images and not args.idx:
        p.error("give image files or --idx FILE")

    import cv2
    from runtime import Classifier
    from runtime.classifier import check_labels
    from runtime.datasets import read_idx
    from runtime.errors import PynqDeployError
    from runtime.image_io import read_image
    from runtime.vision.classify_pre import to_classifier_input

    names, batch = [], []
    try:
        if args.idx:
            data = read_idx(args.idx)[:args.limit]
            batch.extend(data)
            names.extend("{}[{}]".format(os.path.basename(args.idx), i) for i in range(len(data)))
        invert = {"auto": "auto", "yes": True, "no": False}[args.invert]
        for path in args.images:
            img = read_image(path)      # header checked (format, truncation, pixel cap) first
            if img.dtype != np.uint8:
                img = cv2.convertScaleAbs(img, alpha=255.0 / max(int(img.max()), 1))
            batch.append(to_classifier_input(img, invert=invert))
            names.append(path)
        with Classifier(pl=args.pl, engine=args.engine) as clf:
            scores = clf.scores(np.stack(batch))
            print("BNN on the {} PL ({} engine), model {}".format(
                "simulated" if clf.pl == "sim" else "board", clf.engine, clf.model.name))
            for name, s in zip(names, scores):
                order = np.argsort(-s, kind="stable")[:min(args.top, len(clf.classes))]
                print("{}: {}".format(name, ", ".join("{} ({})".format(clf.classes[i], int(s[i])) for i in order)))
            if args.labels:
                labels = check_labels(read_idx(args.labels)[:len(scores)], len(scores), len(clf.classes))
                print("accuracy {:.4f} on {} images".format(float(np.mean(np.argmax(scores, 1) == labels)), len(labels)))
    except PynqDeployError as e:
        print("error: {}".format(e), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
