"""Tests for vidrestore.operators: adjointness over the registry, shapes, boundary
handling, kernels and kernel specs, conjugate gradients."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidrestore.errors import InputError, UsageError
from vidrestore.operators import (
    OPERATORS,
    BicubicDownsample,
    Blur,
    BoxDownsample,
    Compose,
    Identity,
    LinearOperator,
    Mask,
    TemporalBlur,
    TemporalSubsample,
    conjugate_gradient,
    gaussian_kernel,
    load_kernel,
    motion_kernel,
    parse_kernel_spec,
    solve_normal_equations,
    temporal_kernel,
    uniform_kernel,
)

NAMES = sorted(OPERATORS)


def _rand(shape, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype)


def _dot(a, b):
    return float((a * b).sum())


# --------------------------------------------------------------------------- registry


def test_registry_covers_every_operator_and_boundary():
    ops = [OPERATORS[n]()[0] for n in NAMES]
    flat = []
    for op in ops:
        flat.extend(op.ops if isinstance(op, Compose) else [op])
    kinds = {type(op) for op in flat}
    assert {Identity, BoxDownsample, BicubicDownsample, Blur, Mask, TemporalBlur, TemporalSubsample} <= kinds
    for cls in (BicubicDownsample, Blur, TemporalBlur):
        assert {op.boundary for op in flat if isinstance(op, cls)} == {"reflect", "replicate", "symmetric"}
    assert {op.scale for op in flat if isinstance(op, BoxDownsample)} >= {2, 3, 4, 8}
    assert {op.scale for op in flat if isinstance(op, BicubicDownsample)} >= {2, 3, 4, 8}
    assert any(isinstance(op, Mask) and op.frames > 1 for op in flat)
    assert sum(isinstance(op, Compose) for op in ops) >= 5


@pytest.mark.parametrize("name", NAMES)
def test_adjointness_float64(name):
    op, shape = OPERATORS[name]()
    for seed in range(3):
        x = _rand(shape, 10 + seed)
        ax = op.A(x)
        y = _rand(ax.shape, 20 + seed)
        aty = op.A_adjoint(y)
        lhs, rhs = _dot(ax, y), _dot(x, aty)
        assert abs(lhs - rhs) / (ax.norm().item() * y.norm().item()) < 1e-5, (lhs, rhs)
        # tighter than required: these adjoints are exact up to rounding
        assert abs(lhs - rhs) / (ax.norm().item() * y.norm().item()) < 1e-12


@pytest.mark.parametrize("name", NAMES)
def test_shapes_consistent(name):
    op, shape = OPERATORS[name]()
    x = _rand(shape, 1)
    ax = op.A(x)
    assert tuple(ax.shape) == op.output_shape(shape)
    assert op.input_shape(tuple(ax.shape)) == tuple(shape)
    y = _rand(ax.shape, 2)
    assert tuple(op.A_adjoint(y).shape) == tuple(shape)
    assert tuple(op.normal(x).shape) == tuple(shape)
    est = op.initial_estimate(ax)
    assert tuple(est.shape) == tuple(shape) and torch.isfinite(est).all()
    assert isinstance(op.name, str) and op.name
    assert isinstance(op.temporal_radius, int) and op.temporal_radius >= 0


@pytest.mark.parametrize("name", NAMES)
def test_linearity(name):
    op, shape = OPERATORS[name]()
    x1, x2 = _rand(shape, 3), _rand(shape, 4)
    a, b = 0.7, -1.9
    lhs = op.A(a * x1 + b * x2)
    rhs = a * op.A(x1) + b * op.A(x2)
    assert torch.allclose(lhs, rhs, atol=1e-12, rtol=1e-12)
    y1, y2 = _rand(lhs.shape, 5), _rand(lhs.shape, 6)
    assert torch.allclose(op.A_adjoint(a * y1 + b * y2), a * op.A_adjoint(y1) + b * op.A_adjoint(y2),
                          atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_normal_and_float32(name):
    op, shape = OPERATORS[name]()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert torch.allclose(op.normal(x), op.A_adjoint(op.A(x)), atol=1e-12)
    x32 = x.float()
    ax32 = op.A(x32)
    assert ax32.dtype == torch.float32
    assert torch.allclose(ax32.double(), op.A(x), atol=1e-5)
    aty32 = op.A_adjoint(ax32)
    assert aty32.dtype == torch.float32
    assert op.initial_estimate(ax32).dtype == torch.float32


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_normal_scale_is_the_gain_of_the_normal_operator_on_a_constant(scale):
    """Away from the boundary AᵀA maps a constant clip to normal_scale times itself (the noise-aware data
    weight scales with it): 1/s² for s× downsampling, 1 for a normalised blur, products for compositions."""
    blur = Blur(gaussian_kernel(1.0))
    ops = [BoxDownsample(scale), BicubicDownsample(scale), blur, Identity(), Compose(BoxDownsample(scale), blur)]
    expected = [1 / scale ** 2, 1 / scale ** 2, 1.0, 1.0, 1 / scale ** 2]
    margin = 4 * scale
    for op, value in zip(ops, expected):
        gain = op.normal(torch.ones(1, 1, 24 * scale, 24 * scale, dtype=torch.float64))
        interior = gain[..., margin:-margin, margin:-margin]
        assert op.normal_scale == pytest.approx(value, rel=1e-12)
        assert torch.allclose(interior, torch.full_like(interior, value), rtol=1e-9, atol=0), op.name


def _chunks(op, frames):
    k = op.temporal_stride
    chunks = []
    for start, stop in ((0, frames - k), (k, frames), (0, frames)):
        if 0 <= start < stop <= frames and start % k == 0 and (stop - 1) % k == 0:
            chunks.append((start, stop))
    return chunks


@pytest.mark.parametrize("name", NAMES)
def test_restrict_frames_consistent(name):
    op, shape = OPERATORS[name]()
    frames = shape[0]
    x = _rand(shape, 8)
    full = op.A(x)
    r, k = op.temporal_radius, op.temporal_stride
    chunks = _chunks(op, frames)
    assert chunks
    for start, stop in chunks:
        sub = op.restrict_frames(start, stop)
        assert isinstance(sub, LinearOperator)
        a, b = op.output_frames(start, stop)
        part = sub.A(x[start:stop])
        assert part.shape[0] == b - a
        for j in range(a, b):
            centre = j * k  # input frame of output frame j
            inside = (start == 0 or centre - r >= start) and (stop == frames or centre + r < stop)
            if r == 0 or inside:
                assert torch.allclose(part[j - a], full[j], atol=1e-12), (start, stop, j)
        # adjointness survives restriction
        y = _rand(part.shape, 9)
        xs = x[start:stop]
        assert abs(_dot(part, y) - _dot(xs, sub.A_adjoint(y))) <= 1e-10 * part.norm() * y.norm()


def test_restrict_frames_slices_per_frame_masks():
    known = (torch.arange(5 * 4 * 4).reshape(5, 1, 4, 4) % 3 != 0).double()
    op = Mask(known)
    sub = op.restrict_frames(1, 4)
    assert torch.equal(sub.known, known[1:4])
    static = Mask(known[:1])
    assert static.restrict_frames(2, 5) is static
    with pytest.raises(ValueError):
        op.restrict_frames(3, 6)
    with pytest.raises(ValueError):
        op.restrict_frames(3, 3)


# --------------------------------------------------------------------------- spatial


@pytest.mark.parametrize("scale", [1, 2, 3, 4, 8])
def test_box_downsample_of_constant_and_average(scale):
    x = torch.full((2, 3, 8 * scale, 16), 0.37, dtype=torch.float64)
    if 16 % scale:
        x = torch.full((2, 3, 8 * scale, 8 * scale), 0.37, dtype=torch.float64)
    y = BoxDownsample(scale).A(x)
    assert torch.allclose(y, torch.full_like(y, 0.37), atol=1e-14)
    x = _rand((1, 2, 3 * scale, 2 * scale), 11)
    ref = x.reshape(1, 2, 3, scale, 2, scale).mean(dim=(3, 5))
    assert torch.allclose(BoxDownsample(scale).A(x), ref, atol=1e-14)


def test_box_adjoint_is_replication_over_scale_squared():
    y = _rand((1, 1, 2, 3), 12)
    up = BoxDownsample(4).A_adjoint(y)
    assert torch.allclose(up[0, 0, 4:8, 8:12], torch.full((4, 4), float(y[0, 0, 1, 2]) / 16, dtype=torch.float64))
    assert torch.allclose(BoxDownsample(2).initial_estimate(torch.full((1, 3, 4, 4), 0.5)), torch.full((1, 3, 8, 8), 0.5))


def test_downsample_shape_errors():
    with pytest.raises(ValueError):
        BoxDownsample(3).A(torch.zeros(1, 1, 8, 9))
    with pytest.raises(ValueError):
        BicubicDownsample(2).output_shape((1, 1, 7, 8))
    with pytest.raises(ValueError):
        BoxDownsample(0)
    with pytest.raises(ValueError):
        BicubicDownsample(2, boundary="circular")
    with pytest.raises(ValueError):
        BoxDownsample(2).A(torch.zeros(3, 8, 8))


@pytest.mark.parametrize("boundary", ["symmetric", "reflect", "replicate"])
@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_bicubic_preserves_constant(scale, boundary):
    x = torch.full((1, 2, 2 * scale, 3 * scale), 0.6, dtype=torch.float64)
    y = BicubicDownsample(scale, boundary).A(x)
    assert torch.allclose(y, torch.full_like(y, 0.6), atol=1e-14)


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_bicubic_interior_matches_torch_antialias(scale):
    x = torch.rand(1, 1, 12 * scale, 10 * scale, generator=torch.Generator().manual_seed(scale), dtype=torch.float64)
    ours = BicubicDownsample(scale).A(x)
    ref = F.interpolate(x, scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False)
    m = 3  # torch renormalises truncated weights at the border instead of mirroring
    assert torch.allclose(ours[..., m:-m, m:-m], ref[..., m:-m, m:-m], atol=1e-12)


def _matlab_imresize_matrix(n_in, scale):
    """Port of MATLAB imresize's `contributions` (bicubic, antialiasing, downscale by `scale`)."""
    def cubic(t):
        a = np.abs(t)
        return ((1.5 * a**3 - 2.5 * a**2 + 1) * (a <= 1)
                + (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) * ((a > 1) & (a <= 2)))

    sc = 1.0 / scale
    n_out = n_in // scale
    width = 4.0 / sc
    x = np.arange(1, n_out + 1, dtype=np.float64)
    u = x / sc + 0.5 * (1 - 1 / sc)
    left = np.floor(u - width / 2)
    p = int(math.ceil(width)) + 2
    ind = left[:, None] + np.arange(p)[None, :]
    w = sc * cubic(sc * (u[:, None] - ind))
    w = w / w.sum(axis=1, keepdims=True)
    aux = np.concatenate([np.arange(1, n_in + 1), np.arange(n_in, 0, -1)])
    ind = aux[np.mod(ind - 1, len(aux)).astype(int)] - 1
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        for j in range(p):
            m[i, ind[i, j]] += w[i, j]
    return m


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_bicubic_matches_matlab_imresize_with_symmetric_boundary(scale):
    h, w = 3 * scale, 5 * scale
    x = torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mh, mw = _matlab_imresize_matrix(h, scale), _matlab_imresize_matrix(w, scale)
    ref = mh @ x[0, 0].numpy() @ mw.T
    ours = BicubicDownsample(scale, "symmetric").A(x)[0, 0].numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-12)


_CV2_BORDER = {"reflect": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE, "symmetric": cv2.BORDER_REFLECT}


@pytest.mark.parametrize("boundary", ["reflect", "replicate", "symmetric"])
@pytest.mark.parametrize("kernel", ["gaussian", "motion", "asymmetric_even"])
def test_blur_matches_cv2_convolution(kernel, boundary):
    if kernel == "gaussian":
        k = gaussian_kernel(1.2)
    elif kernel == "motion":
        k = motion_kernel(6, 35)
    else:
        k = torch.rand(4, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    img = torch.rand(1, 1, 11, 13, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    ours = Blur(k, boundary).A(img)[0, 0].numpy()
    kh, kw = k.shape
    flipped = np.ascontiguousarray(k.numpy()[::-1, ::-1])
    anchor = (kw - 1 - kw // 2, kh - 1 - kh // 2)
    ref = cv2.filter2D(img[0, 0].numpy(), cv2.CV_64F, flipped, anchor=anchor, borderType=_CV2_BORDER[boundary])
    np.testing.assert_allclose(ours, ref, atol=1e-12)


@pytest.mark.parametrize("boundary", ["reflect", "replicate", "symmetric"])
@pytest.mark.parametrize("spec", ["gaussian:2", "uniform:5", "motion:9,20", "uniform:4"])
def test_blur_preserves_constant(spec, boundary):
    x = torch.full((2, 3, 9, 10), 0.42, dtype=torch.float64)
    y = Blur(parse_kernel_spec(spec), boundary).A(x)
    assert torch.allclose(y, x, atol=1e-13)


def test_blur_separable_detection_and_delta():
    assert Blur(gaussian_kernel(1.0)).separable
    assert Blur(uniform_kernel(3)).separable
    assert not Blur(motion_kernel(7, 30)).separable
    x = _rand((1, 2, 5, 6), 5)
    assert torch.allclose(Blur(torch.ones(1, 1, dtype=torch.float64)).A(x), x)
    with pytest.raises(ValueError):
        Blur(torch.ones(3))
    with pytest.raises(ValueError):
        Blur(torch.tensor([[float("nan")]]))


def test_mask_applies_and_broadcasts():
    known = torch.zeros(1, 1, 4, 4)
    known[..., :2, :] = 1
    op = Mask(known)
    x = torch.rand(3, 3, 4, 4)
    y = op.A(x)
    assert torch.equal(y[..., :2, :], x[..., :2, :]) and (y[..., 2:, :] == 0).all()
    assert torch.equal(op.A_adjoint(y), y)
    est = op.initial_estimate(y)
    assert torch.equal(est[..., :2, :], y[..., :2, :])
    fill = y[..., :2, :].mean(dim=(2, 3), keepdim=True)
    assert torch.allclose(est[..., 2:, :], fill.expand(3, 3, 2, 4))
    with pytest.raises(ValueError):
        Mask(torch.ones(2, 1, 4, 4)).A(x)  # 2 mask frames, 3 clip frames
    with pytest.raises(ValueError):
        op.A(torch.rand(3, 3, 4, 5))
    with pytest.raises(ValueError):
        Mask(torch.full((1, 1, 2, 2), 2.0))
    assert Mask(torch.ones(1, 1, 4, 4, dtype=torch.bool)).A(x).dtype == torch.float32


# --------------------------------------------------------------------------- temporal


def test_temporal_blur_of_static_clip_is_identity():
    frame = torch.rand(1, 3, 5, 6, dtype=torch.float64)
    clip = frame.expand(7, 3, 5, 6).clone()
    for spec in ("uniform:3", "uniform:4", "gaussian:1.5", "uniform:9"):
        for boundary in ("reflect", "replicate", "symmetric"):
            assert torch.allclose(TemporalBlur(temporal_kernel(spec), boundary).A(clip), clip, atol=1e-14)


@pytest.mark.parametrize("boundary,np_mode", [("reflect", "reflect"), ("replicate", "edge"),
                                              ("symmetric", "symmetric")])
def test_temporal_blur_matches_explicit_reference(boundary, np_mode):
    k = np.array([0.1, 0.5, 0.2, 0.15, 0.05])
    x = _rand((6, 2, 3, 3), 13)
    ours = TemporalBlur(torch.from_numpy(k), boundary).A(x).numpy()
    xp = np.pad(x.numpy(), ((2, 2), (0, 0), (0, 0), (0, 0)), mode=np_mode)
    ref = np.stack([sum(k[m] * xp[f - m + 2 + 2] for m in range(5)) for f in range(6)])
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_temporal_blur_is_not_circular():
    x = torch.zeros(6, 1, 1, 1, dtype=torch.float64)
    x[-1] = 1.0
    y = TemporalBlur("uniform:3").A(x)
    assert y[0].item() == 0.0  # a circular boundary would leak the last frame into the first
    assert TemporalBlur("uniform:5").temporal_radius == 2
    with pytest.raises(ValueError):
        TemporalBlur(torch.ones(4) / 4)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_temporal_subsample_keeps_every_kth_frame(k):
    n = 4
    x = torch.arange((n - 1) * k + 1, dtype=torch.float64).reshape(-1, 1, 1, 1).expand(-1, 2, 3, 3).clone()
    op = TemporalSubsample(k)
    y = op.A(x)
    assert y[:, 0, 0, 0].tolist() == [float(i * k) for i in range(n)]
    back = op.A_adjoint(y)
    kept = torch.zeros(x.shape[0], dtype=torch.bool)
    kept[::k] = True
    assert torch.equal(back[kept], x[kept]) and (back[~kept] == 0).all()
    est = op.initial_estimate(y)
    assert torch.allclose(est, x)  # linear interpolation of a linear ramp is exact


def test_temporal_subsample_errors_and_chunks():
    op = TemporalSubsample(2)
    with pytest.raises(ValueError):
        op.A(torch.zeros(6, 1, 2, 2))
    with pytest.raises(ValueError):
        op.restrict_frames(1, 5)
    with pytest.raises(ValueError):
        op.restrict_frames(2, 6)
    assert op.output_frames(2, 7) == (1, 4)
    assert op.restrict_frames(2, 7) is op
    assert op.temporal_radius == 0 and op.temporal_stride == 2


# --------------------------------------------------------------------------- composition


def test_compose_order_adjoint_and_radius():
    tb, box = TemporalBlur("uniform:5"), BoxDownsample(2)
    op = Compose(tb, box)
    x = _rand((6, 3, 8, 8), 14)
    assert torch.allclose(op.A(x), tb.A(box.A(x)))
    y = _rand((6, 3, 4, 4), 15)
    assert torch.allclose(op.A_adjoint(y), box.A_adjoint(tb.A_adjoint(y)))
    assert op.temporal_radius == 2
    nested = Compose(Compose(tb, Blur(gaussian_kernel(1.0))), box)
    assert len(nested.ops) == 3 and nested.temporal_radius == 2
    assert (tb @ box).ops == (tb, box)
    assert Compose(TemporalBlur("uniform:3"), TemporalSubsample(4)).temporal_radius == 4
    assert Compose(TemporalSubsample(4), TemporalBlur("uniform:3")).temporal_radius == 1
    with pytest.raises(ValueError):
        Compose()
    with pytest.raises(TypeError):
        Compose(tb, "box")
    est = op.initial_estimate(op.A(torch.full((6, 3, 8, 8), 0.5, dtype=torch.float64)))
    assert est.shape == (6, 3, 8, 8) and torch.allclose(est, torch.full_like(est, 0.5))


def test_identity():
    x = _rand((2, 3, 4, 4), 16)
    op = Identity()
    assert op.A(x) is x and op.A_adjoint(x) is x and op.normal(x) is x
    assert op.restrict_frames(0, 1) is op


# --------------------------------------------------------------------------- kernels


def test_kernel_factories():
    g = gaussian_kernel(1.5)
    assert g.shape == (11, 11) and math.isclose(float(g.sum()), 1.0)
    assert torch.allclose(g, g.T) and torch.allclose(g, torch.flip(g, (0, 1)))
    assert gaussian_kernel(0).shape == (1, 1)
    u = uniform_kernel(3)
    assert torch.allclose(u, torch.full((3, 3), 1 / 9, dtype=torch.float64))
    for length, angle in ((9, 0), (9, 90), (7.5, 33), (1, 0), (15, -120)):
        m = motion_kernel(length, angle)
        assert math.isclose(float(m.sum()), 1.0) and (m >= 0).all()
        assert m.shape[0] % 2 == 1 and m.shape[1] % 2 == 1
        assert torch.allclose(m, torch.flip(m, (0, 1)))
    assert motion_kernel(9, 0).shape == (1, 9)
    assert motion_kernel(9, 90).shape == (9, 1)
    assert motion_kernel(1, 0).shape == (1, 1)
    d45 = motion_kernel(5, 45)  # counter-clockwise: up and to the right
    assert d45[0, -1] > 0 and d45[0, 0] == 0
    for bad in (lambda: gaussian_kernel(-1), lambda: uniform_kernel(0), lambda: motion_kernel(0, 0)):
        with pytest.raises(ValueError):
            bad()


@pytest.mark.parametrize("spec,shape", [
    ("gaussian:1", (7, 7)), ("gaussian: 0.5", (5, 5)), ("GAUSSIAN:2", (13, 13)),
    ("uniform:5", (5, 5)), ("uniform:1", (1, 1)), ("motion:9,0", (1, 9)), ("motion:5, 90", (5, 1)),
    ("motion:12,30", None),
])
def test_parse_kernel_spec_valid(spec, shape):
    k = parse_kernel_spec(spec)
    assert k.dim() == 2 and k.dtype == torch.float64
    assert math.isclose(float(k.sum()), 1.0, rel_tol=1e-12)
    if shape is not None:
        assert tuple(k.shape) == shape


@pytest.mark.parametrize("spec", [
    "", "gaussian", "gaussian:", "gaussian:abc", "gaussian:-1", "gaussian:0", "gaussian:nan", "gaussian:1,2",
    "uniform:0", "uniform:2.5", "uniform:x", "uniform:100000", "motion:5", "motion:0,10", "motion:a,b",
    "motion:5,10,3", "box:3", "blur", "gaussian:1000",
])
def test_parse_kernel_spec_invalid_raises_usage_error(spec):
    with pytest.raises(UsageError) as info:
        parse_kernel_spec(spec)
    msg = str(info.value)
    assert "\n" not in msg
    assert repr(spec.strip()) in msg
    assert "gaussian:SIGMA" in msg and "uniform:SIZE" in msg and "motion:LENGTH,ANGLE" in msg


def test_load_kernel_npy_and_image(tmp_path):
    arr = np.array([[0.0, 2.0, 0.0], [2.0, 4.0, 2.0], [0.0, 2.0, 0.0]], dtype=np.float32)
    np.save(tmp_path / "k.npy", arr)
    k = load_kernel(tmp_path / "k.npy")
    assert k.dtype == torch.float64 and math.isclose(float(k.sum()), 1.0)
    np.testing.assert_allclose(k.numpy(), arr / arr.sum())
    assert torch.equal(parse_kernel_spec(str(tmp_path / "k.npy")), k)

    img = np.zeros((5, 7), dtype=np.uint8)
    img[2, 1:6] = 255
    img[1, 3] = 51
    cv2.imwrite(str(tmp_path / "k.png"), img)
    k = parse_kernel_spec(str(tmp_path / "k.png"))
    assert k.shape == (5, 7) and math.isclose(float(k.sum()), 1.0)
    np.testing.assert_allclose(k.numpy(), img / img.sum(), atol=1e-12)

    colour = np.zeros((3, 3, 3), dtype=np.uint8)
    colour[1, 1] = (200, 200, 200)
    cv2.imwrite(str(tmp_path / "c.png"), colour)
    k = load_kernel(tmp_path / "c.png")
    assert k.shape == (3, 3) and float(k[1, 1]) == 1.0


def test_load_kernel_errors(tmp_path):
    with pytest.raises(InputError):
        load_kernel(tmp_path / "missing.npy")
    with pytest.raises(InputError):
        parse_kernel_spec(str(tmp_path / "missing.png"))
    with pytest.raises(InputError):
        parse_kernel_spec("missing_kernel.npy")
    (tmp_path / "bad.npy").write_bytes(b"not an npy file")
    with pytest.raises(InputError):
        load_kernel(tmp_path / "bad.npy")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(InputError):
        load_kernel(tmp_path / "bad.png")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError):
        load_kernel(tmp_path / "obj.npy")
    np.save(tmp_path / "zero.npy", np.zeros((3, 3)))
    with pytest.raises(InputError):
        load_kernel(tmp_path / "zero.npy")
    np.save(tmp_path / "three_d.npy", np.ones((2, 3, 3)))
    with pytest.raises(InputError):
        load_kernel(tmp_path / "three_d.npy")
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    with pytest.raises(InputError) as info:
        load_kernel(tmp_path / "nan.npy")
    assert "nan.npy" in str(info.value) and "\n" not in str(info.value)


def test_temporal_kernel_specs():
    k = temporal_kernel("uniform:3")
    assert torch.allclose(k, torch.full((3,), 1 / 3, dtype=torch.float64))
    k = temporal_kernel("uniform:4")
    assert k.numel() == 5 and math.isclose(float(k.sum()), 1.0) and torch.allclose(k, torch.flip(k, (0,)))
    k = temporal_kernel("gaussian:1.0")
    assert k.numel() == 7 and math.isclose(float(k.sum()), 1.0) and int(torch.argmax(k)) == 3
    for bad in ("", "uniform", "uniform:0", "uniform:2.5", "gaussian:0", "gaussian:-1", "motion:3,4",
                "uniform:3,4", "gaussian:x", "uniform:1000"):
        with pytest.raises(UsageError) as info:
            temporal_kernel(bad)
        assert "uniform:K" in str(info.value) and "gaussian:SIGMA" in str(info.value)


# --------------------------------------------------------------------------- conjugate gradients


def _spd(n, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, n, generator=g, dtype=torch.float64)
    return q @ q.T / n + 0.5 * torch.eye(n, dtype=torch.float64)


def test_cg_matches_dense_solve():
    shape = (2, 3, 2, 2)  # 24 unknowns across frames: one coupled system
    n = 24
    m = _spd(n, 0)
    b = _rand(shape, 1)

    def apply(v):
        return (m @ v.reshape(-1)).reshape(shape)

    x = conjugate_gradient(apply, b, torch.zeros(shape, dtype=torch.float64), iterations=200, tol=1e-12)
    ref = torch.linalg.solve(m, b.reshape(-1)).reshape(shape)
    assert torch.allclose(x, ref, atol=1e-9)
    # gamma: solves (M + γI) x = b
    x = conjugate_gradient(apply, b, _rand(shape, 2), iterations=200, tol=1e-12, gamma=0.7)
    ref = torch.linalg.solve(m + 0.7 * torch.eye(n, dtype=torch.float64), b.reshape(-1)).reshape(shape)
    assert torch.allclose(x, ref, atol=1e-9)
    # float32
    x = conjugate_gradient(lambda v: apply(v.double()).float(), b.float(), torch.zeros(shape), iterations=60)
    assert x.dtype == torch.float32
    assert torch.allclose(x.double(), torch.linalg.solve(m, b.reshape(-1)).reshape(shape), atol=1e-3)


def test_cg_uses_global_inner_products():
    # frames scaled differently: one global CG step uses a single step length for all frames
    scale = torch.tensor([1.0, 10.0], dtype=torch.float64).reshape(2, 1, 1, 1)
    b = torch.ones(2, 1, 2, 2, dtype=torch.float64)
    x = conjugate_gradient(lambda v: scale * v, b, torch.zeros_like(b), iterations=1)
    assert torch.allclose(x[0], x[1])
    x = conjugate_gradient(lambda v: scale * v, b, torch.zeros_like(b), iterations=2)
    assert torch.allclose(x, b / scale)


def test_cg_starting_at_solution_and_zero_rhs():
    n = 12
    m = _spd(n, 3)
    shape = (3, 1, 2, 2)
    sol = _rand(shape, 4)

    def apply(v):
        return (m @ v.reshape(-1)).reshape(shape)

    b = apply(sol)
    x = conjugate_gradient(apply, b, sol, iterations=10, tol=1e-10)
    assert torch.equal(x, sol)
    x = conjugate_gradient(lambda v: 2 * v, 2 * sol, sol, iterations=10)  # exact residual 0
    assert torch.equal(x, sol)
    zeros = torch.zeros(shape, dtype=torch.float64)
    for tol in (0.0, 1e-6):
        x = conjugate_gradient(apply, zeros, zeros, iterations=10, tol=tol)
        assert torch.isfinite(x).all() and (x == 0).all()
    x = conjugate_gradient(apply, zeros, sol, iterations=50)
    assert torch.isfinite(x).all() and x.abs().max() < 1e-8
    # residual that vanishes mid-way (identity converges in one step)
    x = conjugate_gradient(lambda v: v, b, zeros, iterations=20)
    assert torch.isfinite(x).all() and torch.allclose(x, b)
    # inputs are not modified; iterations=0 returns a copy of x0
    b0, s0 = b.clone(), sol.clone()
    x = conjugate_gradient(apply, b, sol, iterations=0)
    assert torch.equal(x, sol) and x is not sol
    assert torch.equal(b, b0) and torch.equal(sol, s0)
    with pytest.raises(ValueError):
        conjugate_gradient(apply, b, torch.zeros(2, 2), iterations=3)


def test_cg_stops_early_on_tolerance():
    calls = []

    def apply(v):
        calls.append(1)
        return 3.0 * v

    b = torch.ones(2, 1, 3, 3, dtype=torch.float64)
    x = conjugate_gradient(apply, b, torch.zeros_like(b), iterations=50, tol=1e-8)
    assert torch.allclose(x, b / 3) and len(calls) <= 3


def _residuals(op, y, x_init, steps, gamma=0.0):
    res = []
    for it in steps:
        x = solve_normal_equations(op, y, x_init, it, gamma=gamma)
        res.append(float((op.A(x) - y).norm() / y.norm()))
    return res


@pytest.mark.parametrize("name", ["box_x4", "temporal_blur_o_box"])
def test_normal_equations_super_resolution_converges(name):
    op, shape = OPERATORS[name]()
    x_true = torch.rand(shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    y = op.A(x_true)
    res = _residuals(op, y, torch.zeros(shape, dtype=torch.float64), [0, 1, 2, 5, 10, 30])
    assert res[0] == pytest.approx(1.0)
    assert all(b <= a * 1.05 + 1e-12 for a, b in zip(res, res[1:])), res
    assert res[-1] < 1e-3, res


def test_normal_equations_bicubic_and_blur_reduce_residual():
    for name in ("bicubic_x2_symmetric", "blur_motion_reflect", "temporal_blur_o_blur"):
        op, shape = OPERATORS[name]()
        x_true = torch.rand(shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
        y = op.A(x_true)
        x_init = op.initial_estimate(y)
        res = _residuals(op, y, x_init, [0, 5, 20])
        assert res[2] < res[1] <= res[0] and res[2] < 1e-2, (name, res)


def test_normal_equations_with_gamma_and_prior():
    op, shape = OPERATORS["box_x2"]()
    y = op.A(torch.rand(shape, dtype=torch.float64))
    x_init = torch.rand(shape, dtype=torch.float64)
    prior = torch.rand(shape, dtype=torch.float64)
    gamma = 0.5
    x = solve_normal_equations(op, y, x_init, 50, gamma=gamma, x_prior=prior)
    lhs = op.normal(x) + gamma * x
    rhs = op.A_adjoint(y) + gamma * prior
    assert torch.allclose(lhs, rhs, atol=1e-10)
    # x_prior defaults to x_init
    x = solve_normal_equations(op, y, x_init, 50, gamma=gamma)
    assert torch.allclose(op.normal(x) + gamma * x, op.A_adjoint(y) + gamma * x_init, atol=1e-10)
    # a mask leaves unobserved pixels at the initial value with gamma = 0
    mop, mshape = OPERATORS["mask_static"]()
    x_init = torch.rand(mshape, dtype=torch.float64)
    y = mop.A(torch.rand(mshape, dtype=torch.float64))
    x = solve_normal_equations(mop, y, x_init, 5)
    known = mop.known.expand(mshape).bool()
    assert torch.allclose(x[known], y[known]) and torch.allclose(x[~known], x_init[~known])


# --------------------------------------------------------------------------- devices


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(name):
    op, shape = OPERATORS[name]()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    y_cpu = op.A(x)
    for dtype, atol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        xc = x.to("cuda", dtype)
        yc = op.A(xc)
        assert yc.device.type == "cuda" and yc.dtype == dtype
        assert torch.allclose(yc.double().cpu(), y_cpu, atol=atol)
        back = op.A_adjoint(yc)
        assert back.device.type == "cuda"
        assert torch.allclose(back.double().cpu(), op.A_adjoint(y_cpu), atol=atol * 10)
    yc = _rand(y_cpu.shape, 10).cuda()
    xc = x.cuda()
    lhs, rhs = _dot(op.A(xc), yc), _dot(xc, op.A_adjoint(yc))
    assert abs(lhs - rhs) < 1e-10 * (op.A(xc).norm().item() * yc.norm().item())
