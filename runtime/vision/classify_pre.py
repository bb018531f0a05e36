"""Pre-processing of arbitrary images for the 28x28 grey Fashion-MNIST classifier."""
import numpy as np

from ..errors import InputError


def to_classifier_input(image, size=28, invert="auto"):
    """Any grey/BGR uint8 image -> (size, size) uint8 like Fashion-MNIST (bright object on a dark
    background). invert='auto' inverts photos with a bright background (judged from the border)."""
    import cv2
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise InputError("expected a uint8 image (H, W) or (H, W, 3), got {}".format(
            getattr(image, "shape", type(image).__name__)))
    if image.ndim == 3:
        if image.shape[2] not in (3, 4):
            raise InputError("expected 1, 3 or 4 channels, got {}".format(image.shape[2]))
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2GRAY)
    h, w = image.shape
    side = max(h, w)
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    background = int(np.median(border))
    square = np.full((side, side), background, np.uint8)  # pad to a square, keep the aspect ratio
    square[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = image
    small = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)
    if invert is True or (invert == "auto" and background > 127):
        small = 255 - small
    return small
