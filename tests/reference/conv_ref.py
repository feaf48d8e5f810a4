#!/usr/bin/python3
"""conv_ref.py — writes tests/reference/conv_ref.txt, the fixture of tests/test_conv.c.

    cd /work/main && /usr/bin/python3 tests/reference/conv_ref.py [output]

Independent forward values of loom's convolution and spatial layers computed by PyTorch (float64),
from Keras's definitions, channels_last: inputs (batch, rows, cols, channels) are permuted to
torch's NCHW and back, Keras kernels are permuted to torch's layouts, and TensorFlow's SAME
padding (total = max((out - 1) * stride + dilated_k - in, 0), the extra element after) is applied
with an explicit F.pad. Shares no code with loom. Deterministic (torch.manual_seed(1234)); inputs
and weights are small dyadic rationals, exact in float32, so the C test feeds identical values.

Format (tests/fixture.h): per case <id>, arrays
    <id>.cfg        class code then the constructor's integer arguments (CLASSES below)
    <id>.in_shape   per-sample input shape        <id>.x  batch 2 of inputs, C order
    <id>.w          the layer's weights in Keras layout, kernel then bias (may be empty)
    <id>.out_shape  per-sample output shape       <id>.y  the expected outputs
"""
import sys

import torch
import torch.nn.functional as F

torch.manual_seed(1234)
torch.set_default_dtype(torch.float64)

# class code: the cfg arguments after it (act: loom_activation, 0 linear 1 relu 3 tanh;
# pad: 0 valid 1 same)
CLASSES = {
    "conv1d": 0,            # filters k stride pad dilation bias act
    "conv2d": 1,            # filters kh kw sh sw pad dh dw bias act
    "conv2d_transpose": 2,  # filters kh kw sh sw pad bias act
    "depthwise_conv2d": 3,  # kh kw sh sw pad multiplier bias act
    "max_pooling1d": 4,     # pool stride pad
    "average_pooling1d": 5,
    "max_pooling2d": 6,     # ph pw sh sw pad
    "average_pooling2d": 7,
    "global_average_pooling1d": 8,
    "global_max_pooling1d": 9,
    "global_average_pooling2d": 10,
    "global_max_pooling2d": 11,
    "up_sampling2d": 12,    # size_h size_w
    "zero_padding2d": 13,   # top bottom left right
    "cropping2d": 14,
}

BATCH = 2


def dyadic(shape, scale):
    """Integers in [-16, 16] / scale: exact in float32."""
    return torch.randint(-16, 17, shape).double() / scale


def tf_pads(size, k, stride, dil, same):
    """(out, before, after) along one axis, TensorFlow's rule."""
    ek = (k - 1) * dil + 1
    if not same:
        return (size - ek) // stride + 1, 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + ek - size, 0)
    return out, total // 2, total - total // 2


def act(y, a):
    return {0: y, 1: torch.relu(y), 3: torch.tanh(y)}[a]


def to_nchw(x):
    return x.permute(0, 3, 1, 2)


def to_nhwc(x):
    return x.permute(0, 2, 3, 1)


def conv2d(x, kernel, bias, sh, sw, same, dh, dw):
    kh, kw = kernel.shape[0], kernel.shape[1]
    _, t, b = tf_pads(x.shape[1], kh, sh, dh, same)
    _, l, r = tf_pads(x.shape[2], kw, sw, dw, same)
    xt = F.pad(to_nchw(x), (l, r, t, b))
    y = F.conv2d(xt, kernel.permute(3, 2, 0, 1), None, stride=(sh, sw), dilation=(dh, dw))
    y = to_nhwc(y)
    return y + bias if bias is not None else y


def conv2d_transpose(x, kernel, bias, sh, sw, same):
    """Keras: kernel (kh, kw, filters, in); out valid (in-1)*s + max(k, s), same in*s; the
    result is the input gradient of the SAME/VALID convolution from the output size."""
    kh, kw, f, c = kernel.shape
    h, w = x.shape[1], x.shape[2]
    oh = h * sh if same else (h - 1) * sh + max(kh, sh)
    ow = w * sw if same else (w - 1) * sw + max(kw, sw)
    _, t, _ = tf_pads(oh, kh, sh, 1, same)
    _, l, _ = tf_pads(ow, kw, sw, 1, same)
    full = F.conv_transpose2d(to_nchw(x), kernel.permute(3, 2, 0, 1), None, stride=(sh, sw))
    # room for outputs past the full result (stride > kernel), then the window at (t, l)
    full = F.pad(full, (0, max(0, l + ow - full.shape[3]), 0, max(0, t + oh - full.shape[2])))
    y = to_nhwc(full[:, :, t:t + oh, l:l + ow])
    return y + bias if bias is not None else y


def depthwise(x, kernel, bias, sh, sw, same):
    kh, kw, c, m = kernel.shape
    _, t, b = tf_pads(x.shape[1], kh, sh, 1, same)
    _, l, r = tf_pads(x.shape[2], kw, sw, 1, same)
    wt = kernel.permute(2, 3, 0, 1).reshape(c * m, 1, kh, kw)  # output channel c*m + j
    y = F.conv2d(F.pad(to_nchw(x), (l, r, t, b)), wt, None, stride=(sh, sw), groups=c)
    y = to_nhwc(y)
    return y + bias if bias is not None else y


def pool2d(x, ph, pw, sh, sw, same, is_max):
    _, t, b = tf_pads(x.shape[1], ph, sh, 1, same)
    _, l, r = tf_pads(x.shape[2], pw, sw, 1, same)
    xt = to_nchw(x)
    if is_max:
        y = F.max_pool2d(F.pad(xt, (l, r, t, b), value=float("-inf")), (ph, pw), (sh, sw))
    else:
        # sum over the window / number of real entries in it
        s = F.avg_pool2d(F.pad(xt, (l, r, t, b)), (ph, pw), (sh, sw)) * (ph * pw)
        n = F.avg_pool2d(F.pad(torch.ones_like(xt), (l, r, t, b)), (ph, pw), (sh, sw)) * (ph * pw)
        y = s / n
    return to_nhwc(y)


def fmt(vals):
    vals = [float(v) for v in vals]
    lines = []
    for i in range(0, len(vals), 8):
        lines.append(" ".join("%.9e" % v for v in vals[i:i + 8]))
    return "\n".join(lines)


blocks = []


def emit(cid, cls, args, x, weights, y):
    def arr(name, vals):
        vals = list(vals)
        blocks.append("%s.%s %d\n%s" % (cid, name, len(vals), fmt(vals)) if vals else
                      "%s.%s 0" % (cid, name))
    arr("cfg", [CLASSES[cls]] + list(args))
    arr("in_shape", x.shape[1:])
    arr("x", x.flatten())
    arr("w", torch.cat([w.flatten() for w in weights]) if weights else [])
    arr("out_shape", y.shape[1:])
    arr("y", y.flatten())


def case_conv1d(cid, steps, c, filters, k, stride, same, dil, use_bias, a):
    x = dyadic((BATCH, steps, c), 8)
    kernel = dyadic((k, c, filters), 16)
    bias = dyadic((filters,), 16) if use_bias else None
    # as a one-row image
    y = conv2d(x[:, None], kernel[None], bias, 1, stride, same, 1, dil)[:, 0]
    # cross-check against torch's own conv1d
    _, l, r = tf_pads(steps, k, stride, dil, same)
    y1 = F.conv1d(F.pad(x.permute(0, 2, 1), (l, r)), kernel.permute(2, 1, 0), None, stride=stride,
                  dilation=dil).permute(0, 2, 1)
    if bias is not None:
        y1 = y1 + bias
    assert torch.allclose(y, y1)
    y = act(y, a)
    emit(cid, "conv1d", [filters, k, stride, int(same), dil, int(use_bias), a], x,
         [kernel] + ([bias] if use_bias else []), y)


def case_conv2d(cid, h, w, c, filters, kh, kw, sh, sw, same, dh, dw, use_bias, a):
    x = dyadic((BATCH, h, w, c), 8)
    kernel = dyadic((kh, kw, c, filters), 16)
    bias = dyadic((filters,), 16) if use_bias else None
    y = act(conv2d(x, kernel, bias, sh, sw, same, dh, dw), a)
    emit(cid, "conv2d", [filters, kh, kw, sh, sw, int(same), dh, dw, int(use_bias), a], x,
         [kernel] + ([bias] if use_bias else []), y)


def case_convt(cid, h, w, c, filters, kh, kw, sh, sw, same, use_bias, a):
    x = dyadic((BATCH, h, w, c), 8)
    kernel = dyadic((kh, kw, filters, c), 16)
    bias = dyadic((filters,), 16) if use_bias else None
    y0 = conv2d_transpose(x, kernel, None, sh, sw, same)
    # TF defines it as the input gradient of conv2d(output image -> input positions), the kernel
    # read as (kh, kw, filters -> in): check the adjoint identity <conv(z), x> = <z, convt(x)>
    z = torch.randn(y0.shape)
    cz = conv2d(z, kernel, None, sh, sw, same, 1, 1)
    assert cz.shape == x.shape, (cz.shape, x.shape)
    assert torch.allclose((cz * x).sum(), (z * y0).sum())
    y = act(y0 + bias if bias is not None else y0, a)
    emit(cid, "conv2d_transpose", [filters, kh, kw, sh, sw, int(same), int(use_bias), a], x,
         [kernel] + ([bias] if use_bias else []), y)


def case_depthwise(cid, h, w, c, kh, kw, sh, sw, same, mult, use_bias, a):
    x = dyadic((BATCH, h, w, c), 8)
    kernel = dyadic((kh, kw, c, mult), 16)
    bias = dyadic((c * mult,), 16) if use_bias else None
    y = act(depthwise(x, kernel, bias, sh, sw, same), a)
    emit(cid, "depthwise_conv2d", [kh, kw, sh, sw, int(same), mult, int(use_bias), a], x,
         [kernel] + ([bias] if use_bias else []), y)


def case_pool2d(cid, h, w, c, ph, pw, sh, sw, same, is_max):
    x = dyadic((BATCH, h, w, c), 8)  # few distinct values: many ties
    y = pool2d(x, ph, pw, sh, sw, same, is_max)
    emit(cid, "max_pooling2d" if is_max else "average_pooling2d", [ph, pw, sh, sw, int(same)], x, [], y)


def case_pool1d(cid, steps, c, pool, stride, same, is_max):
    x = dyadic((BATCH, steps, c), 8)
    y = pool2d(x[:, None], 1, pool, 1, stride, same, is_max)[:, 0]
    emit(cid, "max_pooling1d" if is_max else "average_pooling1d", [pool, stride, int(same)], x, [], y)


# Conv1D
case_conv1d("conv1d_same_s2", 9, 2, 3, 3, 2, True, 1, True, 0)
case_conv1d("conv1d_same_d2", 9, 2, 3, 3, 1, True, 2, True, 0)
case_conv1d("conv1d_valid_k4", 8, 3, 2, 4, 1, False, 1, False, 0)
case_conv1d("conv1d_valid_s3", 10, 2, 2, 2, 3, False, 1, True, 1)
case_conv1d("conv1d_same_k4_s3", 10, 2, 2, 4, 3, True, 1, True, 0)
# Conv2D
case_conv2d("conv2d_valid", 6, 7, 2, 3, 3, 2, 1, 1, False, 1, 1, True, 0)
case_conv2d("conv2d_same", 5, 6, 2, 3, 3, 3, 1, 1, True, 1, 1, True, 0)
case_conv2d("conv2d_same_s2", 7, 6, 2, 3, 3, 3, 2, 2, True, 1, 1, True, 0)
case_conv2d("conv2d_same_k4_s23", 7, 8, 2, 2, 4, 4, 2, 3, True, 1, 1, True, 0)
case_conv2d("conv2d_valid_s2", 7, 8, 3, 2, 3, 3, 2, 2, False, 1, 1, False, 0)
case_conv2d("conv2d_same_d2", 6, 7, 2, 3, 3, 3, 1, 1, True, 2, 2, True, 0)
case_conv2d("conv2d_valid_d2", 7, 7, 2, 2, 3, 2, 1, 1, False, 2, 3, True, 0)
case_conv2d("conv2d_relu", 5, 5, 3, 4, 3, 3, 1, 1, True, 1, 1, True, 1)
case_conv2d("conv2d_tanh_1x1", 4, 3, 3, 2, 1, 1, 1, 1, False, 1, 1, True, 3)
# Conv2DTranspose
case_convt("convt_valid_s2", 3, 4, 2, 3, 3, 3, 2, 2, False, True, 0)
case_convt("convt_same_s2", 3, 4, 2, 3, 3, 3, 2, 2, True, True, 0)
case_convt("convt_same_k4_s2", 3, 3, 2, 2, 4, 4, 2, 2, True, True, 0)
case_convt("convt_valid_k2_s3", 2, 3, 2, 2, 2, 2, 3, 3, False, True, 0)
case_convt("convt_same_s1", 4, 3, 3, 2, 3, 2, 1, 1, True, False, 0)
case_convt("convt_same_k2_s3_relu", 3, 2, 2, 2, 2, 3, 3, 2, True, True, 1)
# DepthwiseConv2D
case_depthwise("depthwise_m2_valid", 5, 6, 3, 3, 3, 1, 1, False, 2, True, 0)
case_depthwise("depthwise_m2_same_s2", 5, 6, 3, 3, 2, 2, 2, True, 2, True, 0)
case_depthwise("depthwise_m1_same", 4, 5, 2, 2, 2, 1, 1, True, 1, False, 1)
# Pooling (random dyadic inputs hold many ties, harmless for the forward values)
case_pool2d("maxpool2d_valid", 4, 6, 2, 2, 2, 2, 2, False, True)
case_pool2d("maxpool2d_same_3s2", 5, 6, 2, 3, 3, 2, 2, True, True)
case_pool2d("maxpool2d_valid_overlap", 5, 5, 1, 3, 2, 1, 2, False, True)
case_pool2d("avgpool2d_valid", 4, 6, 2, 2, 3, 1, 2, False, False)
case_pool2d("avgpool2d_same_3s2", 5, 6, 2, 3, 3, 2, 2, True, False)
case_pool2d("avgpool2d_same_2s1", 3, 4, 2, 2, 2, 1, 1, True, False)
case_pool1d("maxpool1d_valid", 7, 2, 2, 2, False, True)
case_pool1d("maxpool1d_same_3s2", 8, 2, 3, 2, True, True)
case_pool1d("avgpool1d_same_3s2", 7, 3, 3, 2, True, False)
case_pool1d("avgpool1d_valid_3s1", 6, 2, 3, 1, False, False)

# Global pooling
x = dyadic((BATCH, 5, 3), 8)
emit("gap1d", "global_average_pooling1d", [], x, [], x.mean(dim=1))
emit("gmp1d", "global_max_pooling1d", [], x, [], x.amax(dim=1))
x = dyadic((BATCH, 3, 4, 2), 8)
emit("gap2d", "global_average_pooling2d", [], x, [], x.mean(dim=(1, 2)))
emit("gmp2d", "global_max_pooling2d", [], x, [], x.amax(dim=(1, 2)))

# UpSampling2D, ZeroPadding2D, Cropping2D
x = dyadic((BATCH, 2, 3, 2), 8)
emit("upsampling_2x3", "up_sampling2d", [2, 3], x, [],
     x.repeat_interleave(2, dim=1).repeat_interleave(3, dim=2))
x = dyadic((BATCH, 3, 2, 2), 8)
emit("zeropad_1203", "zero_padding2d", [1, 2, 0, 3], x, [],
     to_nhwc(F.pad(to_nchw(x), (0, 3, 1, 2))))
x = dyadic((BATCH, 5, 6, 2), 8)
emit("crop_1021", "cropping2d", [1, 0, 2, 1], x, [], x[:, 1:5, 2:5, :])

out = sys.argv[1] if len(sys.argv) > 1 else "tests/reference/conv_ref.txt"
with open(out, "w") as fp:
    fp.write("# loom convolution / spatial reference, generated by tests/reference/conv_ref.py "
             "(do not edit).\n")
    fp.write("# PyTorch %s, float64, seed 1234, batch %d; class codes: %s\n" %
             (torch.__version__.split("+")[0], BATCH,
              ", ".join("%d %s" % (v, k) for k, v in CLASSES.items())))
    fp.write("\n".join(blocks) + "\n")
print("wrote", out, len(blocks) // 6, "cases")
