"""CoDeNet torch network, its ONNX export (float + QONNX) and the committed sample frames.

Uses only the committed demos/data sample (no opencv-doc / scikit-image install needed).
Kept small for a 2-core CPU: most checks run at 64x64 / 128x128 inputs or on single blocks.
"""
import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper

from runtime.vision.samples import sample_clip_path, sample_frames
from training.codenet.export import (QONNX_DOMAIN, check_against_torch, offset_constants, ort_session,
                                     qonnx_to_reference, to_float_onnx, to_qonnx)
from training.codenet.network import (MAX_DIL, CoDeNet, DecoderBlock, align_to_data, build, calibrate,
                                      deform_dw3x3, dilation_ste)
from training.data import calibration_frames, to_nchw

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def frames128():
    return calibration_frames(4, 128, source="samples")


@pytest.fixture(scope="module")
def calibrated128(frames128):
    m = build(num_classes=3, input_size=128, seed=1)
    calibrate(m, frames128, batch=2)
    return m


# --- sample data -----------------------------------------------------------------------------

def test_sample_frames_load():
    imgs = sample_frames()
    assert len(imgs) >= 6
    for im in imgs:
        assert im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3
        assert im.std() > 10                      # real pictures, not blank
    assert imgs[0].shape == (576, 768, 3)          # vtest frames at the original size
    small = sample_frames(size=96)
    assert all(s.shape == (96, 96, 3) for s in small)
    assert sample_frames(size=(48, 64))[0].shape == (48, 64, 3)


def test_sample_clip_decodes():
    import cv2
    cap = cv2.VideoCapture(str(sample_clip_path()))
    n = 0
    while True:
        ok, fr = cap.read()
        if not ok:
            break
        assert fr.shape == (576, 768, 3)
        n += 1
    cap.release()
    assert n == 30


def test_calibration_frames_from_samples():
    x = calibration_frames(9, 64, source="samples")
    assert x.shape == (9, 3, 64, 64) and x.dtype == np.float32
    assert 0 <= x.min() and x.max() <= 255 and x.max() > 100
    assert np.array_equal(x[0], to_nchw(sample_frames()[:1], 64)[0])


# --- deformable conv -------------------------------------------------------------------------

def _rand(c=5, h=9, w=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, c, h, w, generator=g), torch.randn(c, 1, 3, 3, generator=g)


def test_deform_d1_is_depthwise_conv():
    x, w = _rand()
    d = torch.ones(1, 1, 9, 11)
    ref = F.conv2d(x, w, padding=1, groups=5)
    assert torch.allclose(deform_dw3x3(x, d, w), ref, atol=1e-5)


def test_deform_d0_is_nine_times_centre():
    x, w = _rand()
    d = torch.zeros(1, 1, 9, 11)
    ref = x * w.sum(dim=(2, 3)).view(1, 5, 1, 1)
    assert torch.allclose(deform_dw3x3(x, d, w), ref, atol=1e-5)


def test_deform_per_pixel_dilation_and_zero_outside():
    x, w = _rand(c=2, h=10, w=10, seed=3)
    g = torch.Generator().manual_seed(4)
    d = torch.randint(0, MAX_DIL + 1, (1, 1, 10, 10), generator=g).float()
    d[0, 0, 0, 0] = 7                               # all off-centre taps outside except none
    out = deform_dw3x3(x, d, w)
    xn, wn, dn = x.numpy(), w.numpy(), d.numpy().astype(int)
    ref = np.zeros_like(xn)
    for c in range(2):
        for r in range(10):
            for q in range(10):
                k = dn[0, 0, r, q]
                s = 0.0
                for i in range(3):
                    for j in range(3):
                        y, z = r + (i - 1) * k, q + (j - 1) * k
                        if 0 <= y < 10 and 0 <= z < 10:
                            s += wn[c, 0, i, j] * xn[0, c, y, z]
                ref[0, c, r, q] = s
    assert np.allclose(out.numpy(), ref, atol=1e-5)
    # pixel (0, 0) with d = 7: only the centre, the (+7, 0), (0, +7) and (+7, +7) taps are inside
    taps = [(1, 1, 0, 0), (2, 1, 7, 0), (1, 2, 0, 7), (2, 2, 7, 7)]
    v = sum(wn[0, 0, i, j] * xn[0, 0, y, z] for i, j, y, z in taps)
    assert abs(out[0, 0, 0, 0].item() - v) < 1e-5


def test_dilation_ste_and_gradients():
    z = torch.tensor([-1.2, 0.4, 0.6, 2.5, 3.5, 9.0], requires_grad=True)
    d = dilation_ste(z)
    assert d.tolist() == [0.0, 0.0, 1.0, 2.0, 4.0, 7.0]      # round half to even, clamp 0..7
    d.sum().backward()
    assert z.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    blk = DecoderBlock(4, 6)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    blk(x).square().sum().backward()
    assert blk.dil.weight.grad.abs().sum() > 0 and x.grad.abs().sum() > 0


# --- network ---------------------------------------------------------------------------------

def test_shapes_256():
    m = CoDeNet(num_classes=80, input_size=256).eval()
    with torch.no_grad():
        hm, wh, reg = m(torch.zeros(1, 3, 256, 256))
    assert hm.shape == (1, 80, 64, 64) and wh.shape == (1, 2, 64, 64) and reg.shape == (1, 2, 64, 64)
    assert [blk.last_d.shape[-1] for blk in m.decoder] == [8, 16, 32]   # backbone ends at stride 32
    n = sum(p.numel() for p in m.parameters())
    assert 1.3e6 < n < 1.8e6


def test_channels_and_units():
    m = CoDeNet(num_classes=1)
    assert [len(s) for s in m.stages] == [4, 8, 4]
    assert m.conv1.conv.stride == (4, 4) and m.conv1.conv.out_channels == 24
    assert [s[0].branch2[2].conv.out_channels * 2 for s in m.stages] == [116, 232, 464]
    assert m.conv5.conv.out_channels == 1024
    assert [b.pw.conv.out_channels for b in m.decoder] == [256, 128, 64]
    assert m.hm.out.out_channels == 1


def test_align_to_data_then_calibrate(frames128):
    """The export's default conditioning (w = a C^0.5 per conv, a the random init): deterministic,
    changes every conv but the dilation predictors, keeps BN-calibrated activations and d in 0..7,
    and the ONNX export still matches torch."""
    f = frames128[:2, :, ::2, ::2].copy()                       # 64 x 64
    models = []
    for _ in range(2):
        m = build(num_classes=3, input_size=64, seed=3)
        a = {k: v.clone() for k, v in m.state_dict().items()}
        align_to_data(m, f, 0.5)
        aligned = {k: v.clone() for k, v in m.state_dict().items()}
        calibrate(m, f, batch=2)
        models.append(m)
    m = models[0]
    sd = m.state_dict()
    assert all(torch.equal(sd[k], models[1].state_dict()[k]) for k in sd)
    convs = [k for k in sd if k.endswith("weight") and sd[k].dim() == 4]
    moved = {k for k in convs if not torch.allclose(aligned[k], a[k])}
    assert moved == {k for k in convs if ".dil." not in k}
    with torch.no_grad():
        feats = m.features(torch.as_tensor(f))
    assert torch.isfinite(feats).all() and (feats > 0).float().mean() > 0.2
    ds = torch.cat([b.last_d.flatten() for b in m.decoder])
    assert ds.min() >= 0 and ds.max() <= MAX_DIL
    onx, _ = to_float_onnx(m)
    assert max(check_against_torch(m, onx, f).values()) < 1e-3
    w = build(num_classes=3, input_size=64, seed=3)
    assert align_to_data(w, f, 0) is w and all(torch.equal(v, a[k]) for k, v in w.state_dict().items())


def test_calibration_gives_real_statistics(calibrated128):
    m = calibrated128
    assert not torch.allclose(m.conv1.bn.running_mean, torch.zeros(24))
    ds = torch.cat([b.last_d.flatten() for b in m.decoder])
    assert ds.min() >= 0 and ds.max() <= MAX_DIL and len(torch.unique(ds)) >= 3


# --- ONNX export -----------------------------------------------------------------------------

def test_float_onnx_matches_torch(calibrated128, frames128):
    onx, _ = to_float_onnx(calibrated128)
    ops = {n.op_type for n in onx.graph.node}
    assert {"DeformConv", "Round", "Clip", "Mul", "Add", "Resize", "Split", "Concat", "Transpose",
            "Reshape", "Relu", "Conv"} <= ops
    assert "BatchNormalization" not in ops
    assert onx.opset_import[0].version >= 19
    worst = check_against_torch(calibrated128, onx, frames128)
    for k, v in worst.items():
        assert v < 1e-3, (k, v)


def test_no_deformable_export_matches_torch(frames128):
    m = build(num_classes=2, input_size=128, deformable=False, seed=2)
    calibrate(m, frames128[:2], batch=2)
    onx, _ = to_float_onnx(m)
    ops = [n.op_type for n in onx.graph.node]
    assert "DeformConv" not in ops and "Round" not in ops
    assert max(check_against_torch(m, onx, frames128[:2]).values()) < 1e-3


def test_deformconv_offset_pattern_round_trips(calibrated128, frames128):
    """The offsets the ONNX graph computes from d equal dy = (ky-1)(d-1), dx = (kx-1)(d-1)."""
    onx, _ = to_float_onnx(calibrated128)
    deform = [n for n in onx.graph.node if n.op_type == "DeformConv"]
    assert len(deform) == 3
    prod = {o: n for n in onx.graph.node for o in n.output}
    for dn in deform:
        a = {x.name: helper.get_attribute_value(x) for x in dn.attribute}
        wshape = [t.dims for t in onx.graph.initializer if t.name == dn.input[1]][0]
        assert list(wshape[1:]) == [1, 3, 3] and a["group"] == wshape[0]
        assert list(a["kernel_shape"]) == [3, 3] and list(a["pads"]) == [1, 1, 1, 1]
        add = prod[dn.input[2]]
        mul = prod[add.input[0]]
        clip = prod[mul.input[0]]
        rnd = prod[clip.input[0]]
        conv = prod[rnd.input[0]]
        assert [add.op_type, mul.op_type, clip.op_type, rnd.op_type, conv.op_type] == \
            ["Add", "Mul", "Clip", "Round", "Conv"]
        assert conv.input[0] == dn.input[0]               # dilation predicted from the same input
    names = [n.output[0] for n in onx.graph.node if n.op_type in ("Clip", "Add")
             and n.name.startswith("dec")]
    for t in names:
        onx.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    res = dict(zip(names, ort_session(onx).run(names, {"image": frames128[:2]})))
    for blk_i in range(3):
        d = res[[t for t in names if t.startswith("dec{}_dil_clip".format(blk_i))][0]]
        off = res[[t for t in names if t.startswith("dec{}_off_add".format(blk_i))][0]]
        assert np.array_equal(d, np.round(d)) and d.min() >= 0 and d.max() <= 7
        for ky in range(3):
            for kx in range(3):
                t = 3 * ky + kx
                assert np.array_equal(off[:, 2 * t], (ky - 1) * (d[:, 0] - 1))
                assert np.array_equal(off[:, 2 * t + 1], (kx - 1) * (d[:, 0] - 1))
    a, b = offset_constants()
    assert a.shape == b.shape == (1, 18, 1, 1)


def test_deformconv_in_onnxruntime_equals_gather_impl():
    """ONNX DeformConv with the offset pattern == the torch gather implementation, per-pixel d."""
    c, h, w = 3, 12, 12
    x, wt = _rand(c, h, w, seed=7)
    d = torch.randint(0, 8, (1, 1, h, w), generator=torch.Generator().manual_seed(8)).float()
    a, b = offset_constants()
    nodes = [helper.make_node("Mul", ["d", "A"], ["m"]), helper.make_node("Add", ["m", "B"], ["off"]),
             helper.make_node("DeformConv", ["x", "W", "off"], ["y"], group=c, kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1])]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w]),
                                       helper.make_tensor_value_info("d", TensorProto.FLOAT, [1, 1, h, w])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, h, w])],
                          [onnx.numpy_helper.from_array(a, "A"), onnx.numpy_helper.from_array(b, "B"),
                           onnx.numpy_helper.from_array(wt.numpy(), "W")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
    y = ort_session(m).run(None, {"x": x.numpy(), "d": d.numpy()})[0]
    assert np.allclose(y, deform_dw3x3(x, d, wt).numpy(), atol=1e-5)


def test_qonnx_export(calibrated128, frames128):
    onx, qpoints = to_float_onnx(calibrated128)
    q, ranges = to_qonnx(calibrated128, onx, qpoints, frames128)
    quants = [n for n in q.graph.node if n.op_type == "Quant"]
    assert quants and all(n.domain == QONNX_DOMAIN for n in quants)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in q.graph.initializer}
    bits = sorted({int(inits[n.input[3]]) for n in quants})
    assert bits == [4, 8]
    for n in quants:
        a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        assert a["narrow"] == 0 and a["rounding_mode"] in ("ROUND", b"ROUND")
        assert not inits[n.input[2]].any()                   # zero points 0
    wq = [n for n in quants if n.input[0] in inits]          # weight quantizers
    convs = [n for n in q.graph.node if n.op_type in ("Conv", "DeformConv")]
    assert len(wq) == len(convs)
    # concat inputs share one scale
    prod = {o: n for n in q.graph.node for o in n.output}
    # (with any_size the shuffle's shape Concats join a constant with Shape(x): not activations)
    for cat in (n for n in q.graph.node if n.op_type == "Concat" and not any(i in inits for i in n.input)):
        scales = set()
        for i in cat.input:
            p = prod[i]
            while p.op_type != "Quant":
                p = prod[p.input[0]]
            scales.add(float(inits[p.input[1]]))
        assert len(scales) == 1, cat.name
    ref = ort_session(qonnx_to_reference(q))
    out = ref.run(["heatmap"], {"image": frames128[:1]})[0]
    assert out.shape == (1, 3, 32, 32) and np.isfinite(out).all()
