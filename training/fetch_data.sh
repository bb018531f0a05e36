#!/usr/bin/env bash
# Install the real detector inputs (vtest.avi and photos from opencv-doc, the scikit-image photos, bikes.mp4)
# into a cache folder outside git (idempotent).
#
#   bash training/fetch_data.sh            # -> ~/.cache/pynq-deploy/data (or $PYNQ_DEPLOY_DATA)
#
# - Debian opencv-doc (unpacked with dpkg-deb, NOT installed): vtest.avi + photos
# - scikit-image 0.26.0 wheel (unzipped, NOT installed): skimage/data/*.png
# Needs: apt-get (download only), dpkg-deb, pip, unzip or python3.
set -euo pipefail

DATA="${PYNQ_DEPLOY_DATA:-$HOME/.cache/pynq-deploy/data}"
PY="${PYTHON:-python3}"
mkdir -p "$DATA"
cd "$DATA"

# --- opencv-doc -------------------------------------------------------------
OCV="$DATA/opencv-doc"
if [ ! -f "$OCV/usr/share/doc/opencv-doc/examples/data/vtest.avi" ]; then
    mkdir -p "$DATA/debs"
    if ! ls "$DATA"/debs/opencv-doc_*.deb >/dev/null 2>&1; then
        ( cd "$DATA/debs" && { apt-get download opencv-doc || { apt-get update && apt-get download opencv-doc; }; } )
    fi
    rm -rf "$OCV.tmp"
    dpkg-deb -x "$(ls "$DATA"/debs/opencv-doc_*.deb | head -n1)" "$OCV.tmp"
    rm -rf "$OCV"
    mv "$OCV.tmp" "$OCV"
fi

# --- scikit-image wheel -----------------------------------------------------
SKI="$DATA/skimage"
if [ ! -f "$SKI/skimage/data/astronaut.png" ]; then
    mkdir -p "$DATA/wheels"
    if ! ls "$DATA"/wheels/scikit_image-0.26.0-*.whl >/dev/null 2>&1; then
        "$PY" -m pip download --no-deps --only-binary=:all: -d "$DATA/wheels" scikit-image==0.26.0
    fi
    rm -rf "$SKI.tmp"
    mkdir -p "$SKI.tmp"
    "$PY" - "$(ls "$DATA"/wheels/scikit_image-0.26.0-*.whl | head -n1)" "$SKI.tmp" <<'PYEOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    names = [n for n in z.namelist() if n.startswith("skimage/data/") or n.endswith((".dist-info/LICENSE.txt", ".dist-info/METADATA")) or "/licenses/" in n]
    z.extractall(sys.argv[2], names)
PYEOF
    rm -rf "$SKI"
    mv "$SKI.tmp" "$SKI"
fi

echo "data ready in $DATA"
ls "$OCV/usr/share/doc/opencv-doc/examples/data/vtest.avi" "$SKI/skimage/data/astronaut.png"
