"""DynOPool reference implementation (PyTorch), following docs/dynopool.md exactly.

What is here:
  straight_through_size(size_in, alpha)  Hs = H' + (s - stop_grad(s)), s = size_in / alpha
  resample(x, size_out, size_in)         the sampling op: 4 bilinear queries per output cell, max or mean,
                                         or (mode 'centre') one at the cell's centre: a bilinear resize
  DynOPool                               nn.Module with a learned alpha (2 values), or target_size mode
  gmacs_loss(terms, lam, budget)         the complexity loss of the spec

Conventions a port must reproduce (all follow from the spec and torch.grid_sample):
  * H' = max(min_out, round_half_even(H / alpha)).
  * Hs is written H' + (s - s.detach()) rather than H' + s - s.detach(): the value is then exactly H'
    in floating point, the gradient is that of s.
  * Query rows of output row i: q = (i + 0.25) * (Hin/Hs) and (i + 0.75) * (Hin/Hs) (= p_i -+ d_h),
    index coordinate u = q - 0.5 clamped to [0, H-1]: grid_sample(bilinear, border, align_corners=False)
    semantics, computed directly in index space in the dtype of x, then interpolated separably, rows
    then columns, each as torch.lerp(x[i0], x[i1], t) (see resample). The coordinate
    gradient is zero when u <= 0 or u >= H-1 (borders inclusive, as PyTorch); at an interior integer u
    (a query on a pixel centre, e.g. alpha=2 on even sizes) t = 0 and the slope is X[u+1] - X[u] (floor).
  * The 4 queries of a cell are ordered (row-,col-), (row-,col+), (row+,col-), (row+,col+); max picks
    the first maximal one and sends the whole gradient there; mean sends a quarter to each.
  * size_in may itself be a straight-through size (HRNet chains them): positions then scale with
    Hin_s / Hout_s, so gradient reaches both the source's and the target's alphas.

Run the self-checks:  /usr/bin/python3 dynopool.py
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

QUERY_OFFSETS = (0.25, 0.75)  # query positions inside a cell, in cell units (centre 0.5 -+ 0.25)
CENTRE_OFFSETS = (0.5,)  # mode 'centre': one query at the cell's centre


def straight_through_size(size_in, alpha, min_out=1, max_out=None):
    """Straight-through output size for one axis: value round(size_in/alpha) clamped, grad of size_in/alpha."""
    s = size_in / alpha
    n = torch.round(s.detach())
    if min_out:
        n = n.clamp(min=min_out)
    if max_out is not None:
        n = n.clamp(max=max_out)
    return n + (s - s.detach())


def _axis_taps(n_in, size_in, size_out, dtype, offsets=QUERY_OFFSETS):
    """Bilinear taps (i0, i1, t) of the len(offsets)*n_out query positions along one axis.

    u = (i + offset) * (size_in / size_out) - 0.5 in index space; a u on or beyond a border is clamped and
    detached (no position gradient), exactly like grid_sample(padding_mode='border').
    """
    n_out = int(round(float(size_out)))
    cell = torch.arange(n_out, dtype=dtype).repeat_interleave(len(offsets))
    cell = cell + torch.tensor(offsets, dtype=dtype).repeat(n_out)
    u = cell * (size_in / size_out) - 0.5
    free = (u.detach() > 0) & (u.detach() < n_in - 1)
    u = torch.where(free, u, u.detach().clamp(0, n_in - 1))
    i0 = u.detach().floor().long()
    return i0, (i0 + 1).clamp(max=n_in - 1), u - i0


def _lerp_along(x, dim, taps):
    """Linear interpolation along dim: torch.lerp(x[i0], x[i1], t) (exact when t = 0)."""
    i0, i1, t = taps
    shape = [1] * x.dim()
    shape[dim] = -1
    return torch.lerp(x.index_select(dim, i0), x.index_select(dim, i1), t.view(shape))


def resample(x, size_out, size_in=None, mode="max"):
    """Resize x (N,C,H,W) to size_out=(Hs,Ws) with the DynOPool sampling op.

    size_out / size_in are pairs of numbers or 0-dim tensors whose values are integers (straight-through
    sizes); size_in defaults to x's own size (no gradient). Bilinear sampling is done separably in index
    space (rows, then columns). It equals grid_sample(bilinear, border, align_corners=False) at
    g = 2q/W - 1 (checked below), but grid_sample's normalise/unnormalise round trip is inexact in float32
    for sizes that are not powers of two (e.g. W=12), which breaks the exact max_pool2d equivalence.
    """
    n, c, h, w = x.shape
    if size_in is None:
        size_in = (h, w)
    if mode == "centre":  # a bilinear resize whose sizes carry gradients (identity at equal sizes)
        rows = _axis_taps(h, size_in[0], size_out[0], x.dtype, CENTRE_OFFSETS)
        cols = _axis_taps(w, size_in[1], size_out[1], x.dtype, CENTRE_OFFSETS)
        return _lerp_along(_lerp_along(x, 2, rows), 3, cols)
    rows = _axis_taps(h, size_in[0], size_out[0], x.dtype)
    cols = _axis_taps(w, size_in[1], size_out[1], x.dtype)
    v = _lerp_along(_lerp_along(x, 2, rows), 3, cols)  # (N, C, 2H', 2W'): cell (i,j) = rows 2i..2i+1, cols 2j..2j+1
    if mode == "max":  # first maximum in the order (-,-), (-,+), (+,-), (+,+) gets the gradient
        return F.max_pool2d(v, 2, 2)
    if mode == "mean":
        return F.avg_pool2d(v, 2, 2)
    raise ValueError(f"unknown aggregation {mode!r}")


def resample_grid_sample(x, size_out, mode="max"):
    """The same op written with F.grid_sample, as the spec describes it (used by the self-check only)."""
    n, c, h, w = x.shape

    def axis(n_in, s_out):
        n_out = int(round(float(s_out)))
        cell = torch.arange(n_out, dtype=x.dtype).repeat_interleave(2)
        q = (cell + torch.tensor(QUERY_OFFSETS, dtype=x.dtype).repeat(n_out)) * (n_in / s_out)
        return 2 * q / n_in - 1
    gy, gx = axis(h, size_out[0]), axis(w, size_out[1])
    grid = torch.stack(torch.broadcast_tensors(gx[None, :], gy[:, None]), dim=-1)  # (2H', 2W', (x, y))
    v = F.grid_sample(x, grid.expand(n, -1, -1, -1), mode="bilinear", padding_mode="border", align_corners=False)
    oh, ow = v.shape[2] // 2, v.shape[3] // 2
    v = v.view(n, c, oh, 2, ow, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, oh, ow, 4)
    return v.max(dim=-1).values if mode == "max" else v.mean(dim=-1)


class DynOPool(nn.Module):
    """Learnable resize: output size round(H/alpha_h) x round(W/alpha_w), alpha learned per axis.

    alpha:        initial (alpha_h, alpha_w) or one number; the stride of the op replaced (2 for stride 2).
    mode:         'max' (paper default) or 'mean' aggregation of the 4 queries, or 'centre' (one bilinear
                  query at the cell's centre).
    min_out:      smallest output size per axis (None disables the lower clamp).
    cap_at_input: also clamp the output size to the input size (no upsampling).
    target_size:  no parameters; forward(x, size_out=...) resizes to a size owned by another module
                  (HRNet fuse paths), so the gradient goes to the owner's alpha through size_out.
    """

    def __init__(self, alpha=2.0, mode="max", min_out=1, cap_at_input=False, target_size=False):
        super().__init__()
        self.mode, self.min_out, self.cap_at_input = mode, min_out, cap_at_input
        if target_size:
            self.register_parameter("alpha", None)
        else:
            a = (alpha, alpha) if np.isscalar(alpha) else alpha
            self.alpha = nn.Parameter(torch.tensor([float(a[0]), float(a[1])]))

    def out_size(self, size_in):
        """Straight-through output size (Hs, Ws) for an input of size size_in (numbers or tensors)."""
        if self.alpha is None:
            raise RuntimeError("a target_size DynOPool has no size of its own")
        return tuple(straight_through_size(size_in[k], self.alpha[k], self.min_out,
                                           size_in[k] if self.cap_at_input else None) for k in (0, 1))

    def forward(self, x, size_out=None, size_in=None):
        if size_in is None:
            size_in = tuple(x.shape[-2:])
        if size_out is None:
            size_out = self.out_size(size_in)
        return resample(x, size_out, size_in, self.mode)

    @torch.no_grad()
    def clamp_alpha_(self, size_in):
        """Clamp alpha in place (call after an optimiser step) so the output size stays in range."""
        for k in (0, 1):
            lo = 1.0 if self.cap_at_input else None
            hi = float(size_in[k]) / self.min_out if self.min_out else None
            if lo is not None or hi is not None:
                self.alpha[k].clamp_(min=lo, max=hi)

    def extra_repr(self):
        a = "target_size" if self.alpha is None else f"alpha={self.alpha.tolist()}"
        return f"{a}, mode={self.mode}, min_out={self.min_out}, cap_at_input={self.cap_at_input}"


def gmacs_loss(terms, lam=1.0, budget=None):
    """Complexity loss L = lam * sum_l (Hs_l*Ws_l)/(H0_l*W0_l) * GMACs0_l (hinge at budget if given).

    terms: iterable of (Hs, Ws, H0, W0, gmacs0) with Hs, Ws straight-through size tensors.
    Returns (loss, current GMACs as a float for reporting).
    """
    gmacs = sum((hs * ws) / (h0 * w0) * g0 for hs, ws, h0, w0, g0 in terms)
    excess = gmacs if budget is None else torch.clamp(gmacs - budget, min=0)
    return lam * excess, float(gmacs)


# ----------------------------------------------------------------------------------------------------
# Self-checks
# ----------------------------------------------------------------------------------------------------

def spec_reference(x, alpha, grad_out, mode="max", min_out=1):
    """Independent float64 numpy implementation of the spec's forward and backward.

    Returns (y, dL/dX, dL/dalpha) for L = sum(grad_out * y). Written from dynopool.md, not from grid_sample.
    """
    n, c, h, w = x.shape

    def axis(n_in, a):
        n_out = max(min_out, int(np.round(n_in / a)))
        q = (np.arange(n_out)[:, None] + np.array(QUERY_OFFSETS)[None, :]) * (n_in / n_out)
        u = q - 0.5
        free = (u > 0) & (u < n_in - 1)  # a coordinate clamped to (or lying on) the border passes no gradient
        u = np.clip(u, 0, n_in - 1)
        i0 = np.floor(u).astype(int)
        t = u - i0
        i1 = np.minimum(i0 + 1, n_in - 1)
        du_dalpha = np.where(free, (-q / n_out) * (-n_in / a ** 2), 0.0)  # dq/dHs * dHs/dalpha
        return n_out, i0, i1, t, du_dalpha

    oh, y0, y1, ty, du_da = axis(h, alpha[0])
    ow, x0, x1, tx, dv_da = axis(w, alpha[1])
    vals = np.zeros((n, c, oh, ow, 4))
    for i in range(oh):
        for j in range(ow):
            for k, (a, b) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
                r0, r1, sy, c0, c1, sx = y0[i, a], y1[i, a], ty[i, a], x0[j, b], x1[j, b], tx[j, b]
                vals[:, :, i, j, k] = ((1 - sy) * (1 - sx) * x[:, :, r0, c0] + (1 - sy) * sx * x[:, :, r0, c1]
                                       + sy * (1 - sx) * x[:, :, r1, c0] + sy * sx * x[:, :, r1, c1])
    if mode == "max":
        sel = vals.argmax(axis=-1)  # first maximal query
        y = vals.max(axis=-1)
        weight = np.stack([(sel == k) for k in range(4)], axis=-1).astype(float)
    else:
        y = vals.mean(axis=-1)
        weight = np.full(vals.shape, 0.25)
    dx = np.zeros_like(x)
    dalpha = np.zeros(2)
    for i in range(oh):
        for j in range(ow):
            for k, (a, b) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
                g = grad_out[:, :, i, j] * weight[:, :, i, j, k]
                r0, r1, sy, c0, c1, sx = y0[i, a], y1[i, a], ty[i, a], x0[j, b], x1[j, b], tx[j, b]
                for rr, cc, wgt in ((r0, c0, (1 - sy) * (1 - sx)), (r0, c1, (1 - sy) * sx),
                                    (r1, c0, sy * (1 - sx)), (r1, c1, sy * sx)):
                    dx[:, :, rr, cc] += g * wgt
                r1u, c1u = y0[i, a] + 1, x0[j, b] + 1  # unclamped neighbours for the slope
                if du_da[i, a] != 0:
                    dv_du = (1 - sx) * (x[:, :, r1u, c0] - x[:, :, r0, c0]) + sx * (x[:, :, r1u, c1] - x[:, :, r0, c1])
                    dalpha[0] += np.sum(g * dv_du) * du_da[i, a]
                if dv_da[j, b] != 0:
                    dv_dv = (1 - sy) * (x[:, :, r0, c1u] - x[:, :, r0, c0]) + sy * (x[:, :, r1, c1u] - x[:, :, r1, c0])
                    dalpha[1] += np.sum(g * dv_dv) * dv_da[j, b]
    return y, dx, dalpha


def _check(name, ok, detail=""):
    ok = bool(ok)
    print(f"[{'PASS' if ok else 'FAIL'}] {name} {detail}")
    return ok


def _queries_on_pixel_centres(n_in, n_out):
    """True if some interior query lies exactly on a pixel centre (where bilinear has a kink)."""
    i0, _, t = _axis_taps(n_in, n_in, n_out, torch.float64)
    return bool(((t == 0) & (i0 > 0) & (i0 < n_in - 1)).any())


def self_check():
    torch.manual_seed(0)
    ok = True

    # (0) straight-through size: exact integer value, round half to even, gradient of s.
    a = torch.tensor(4.0, requires_grad=True)
    hs = straight_through_size(10, a)
    hs.backward()
    ok &= _check("size 10/4=2.5 -> 2 and 14/4=3.5 -> 4 (half to even), dHs/dalpha = -H/alpha^2",
                 hs.item() == 2.0 and float(straight_through_size(14, torch.tensor(4.0))) == 4.0
                 and abs(a.grad.item() + 10 / 16) < 1e-7)

    # (a) alpha = 2 on even sizes is exactly max_pool2d(2, 2) (forward and dX); mean matches avg_pool2d.
    for shape in [(2, 3, 8, 12), (1, 5, 16, 16), (3, 2, 2, 6), (1, 4, 10, 14)]:
        x = torch.randn(shape, requires_grad=True)
        y = DynOPool(2.0)(x)
        g = torch.randn_like(y)
        dx, = torch.autograd.grad(y, x, g)
        xr = x.detach().clone().requires_grad_()
        yr = F.max_pool2d(xr, 2, 2)
        dxr, = torch.autograd.grad(yr, xr, g)
        ok &= _check(f"(a) alpha=2 == max_pool2d(2,2) exactly, forward and dX, {shape}",
                     torch.equal(y, yr) and torch.equal(dx, dxr))
        ym = DynOPool(2.0, mode="mean")(x)
        ok &= _check(f"(a) alpha=2 mean == avg_pool2d(2,2) {shape}", torch.allclose(ym, F.avg_pool2d(x, 2, 2), atol=1e-6))
    x = torch.randn(2, 3, 8, 12)
    err = (resample_grid_sample(x, (4, 6)) - F.max_pool2d(x, 2, 2)).abs().max().item()
    print(f"[INFO] the literal grid_sample form at alpha=2, 8x12, float32 differs from max_pool2d by {err:.1e}")

    cases = [((2.0, 2.0), (1, 3, 9, 13)), ((2.0, 2.0), (2, 4, 16, 16)), ((1.7, 2.3), (2, 4, 16, 16)),
             ((3.1, 1.4), (1, 3, 9, 13)), ((0.6, 0.8), (1, 2, 5, 7)), ((1.7, 2.3), (1, 3, 9, 13))]
    for mode in ("max", "mean"):
        for alpha, shape in cases:
            tag = f"{mode} alpha={alpha} {shape}"
            pool = DynOPool(alpha, mode=mode).double()
            alpha = pool.alpha.tolist()  # the float32-rounded values actually used
            x = torch.randn(shape, dtype=torch.float64, requires_grad=True)

            # (b) gradcheck of dL/dX in float64.
            gc = torch.autograd.gradcheck(lambda t: pool(t), (x,), eps=1e-6, atol=1e-6)
            ok &= _check(f"(b) gradcheck dX {tag}", gc)

            y = pool(x)
            g = torch.randn_like(y)
            dalpha, = torch.autograd.grad((y * g).sum(), pool.alpha)
            dx, = torch.autograd.grad((pool(x) * g).sum(), x)
            h, w = shape[-2:]
            oh, ow = y.shape[-2:]
            kinks = _queries_on_pixel_centres(h, oh) or _queries_on_pixel_centres(w, ow)

            # (c) dL/dalpha vs finite differences in a real-valued Hs with H' held fixed, times dHs/dalpha.
            if kinks:
                print(f"[SKIP] (c) FD in Hs: queries sit on pixel centres (kinks) for {tag}; covered by (d)")
            else:
                eps = 1e-6

                def loss_at(hs, ws):
                    size = (torch.tensor(hs, dtype=torch.float64), torch.tensor(ws, dtype=torch.float64))
                    return float((resample(x.detach(), size, mode=mode) * g).sum())
                fd = torch.tensor([(loss_at(oh + eps, ow) - loss_at(oh - eps, ow)) / (2 * eps) * (-h / alpha[0] ** 2),
                                   (loss_at(oh, ow + eps) - loss_at(oh, ow - eps)) / (2 * eps) * (-w / alpha[1] ** 2)],
                                  dtype=torch.float64)
                err = (dalpha - fd).abs().max().item() / (1 + fd.abs().max().item())
                ok &= _check(f"(c) dalpha vs FD-in-Hs {tag}", err < 1e-6,
                             f"autograd={[round(v, 6) for v in dalpha.tolist()]} fd={[round(v, 6) for v in fd.tolist()]}")

            # (d) independent numpy implementation of the spec: y, dX, dalpha.
            ry, rdx, rda = spec_reference(x.detach().numpy(), alpha, g.numpy(), mode)
            errs = (np.abs(ry - y.detach().numpy()).max(), np.abs(rdx - dx.numpy()).max(),
                    np.abs(rda - dalpha.numpy()).max())
            ok &= _check(f"(d) numpy spec reference == torch {tag}", max(errs) < 1e-10,
                         f"max errs y/dX/dalpha = {errs[0]:.0e}/{errs[1]:.0e}/{errs[2]:.0e}")

            # (e) the same op written with grid_sample (float64); dalpha only away from kinks.
            xg = x.detach().clone().requires_grad_()
            size = pool.out_size((h, w))
            yg = resample_grid_sample(xg, size, mode)
            dxg, dag = torch.autograd.grad((yg * g).sum(), (xg, pool.alpha))
            errs = ((yg - y).abs().max().item(), (dxg - dx).abs().max().item(),
                    0.0 if kinks else (dag - dalpha).abs().max().item())
            ok &= _check(f"(e) grid_sample form == index-space form {tag}", max(errs) < 1e-9,
                         f"max errs y/dX/dalpha = {errs[0]:.0e}/{errs[1]:.0e}/{errs[2]:.0e}")

    # (f) mode 'centre' is F.interpolate(bilinear, align_corners=False) at integer sizes, forward and
    # dX, the identity at equal sizes, and its size gradient matches finite differences in Hs (sizes
    # chosen so that no query sits on a pixel centre, where the read has a kink).
    for shape, size in [((1, 2, 9, 13), (4, 6)), ((2, 3, 8, 8), (16, 16)), ((1, 2, 12, 10), (24, 20)),
                        ((1, 1, 6, 10), (13, 4)), ((2, 2, 7, 7), (7, 7))]:
        x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        y = resample(x, size, mode="centre")
        g = torch.randn_like(y)
        dx, = torch.autograd.grad((y * g).sum(), x)
        xr = x.detach().clone().requires_grad_()
        yr = F.interpolate(xr, size=size, mode="bilinear", align_corners=False)
        dxr, = torch.autograd.grad((yr * g).sum(), xr)
        errs = ((y - yr).abs().max().item(), (dx - dxr).abs().max().item())
        ok &= _check(f"(f) centre == interpolate(bilinear, align_corners=False) {shape} -> {size}",
                     max(errs) < 1e-12, f"max errs y/dX = {errs[0]:.0e}/{errs[1]:.0e}")
        if tuple(size) == tuple(shape[-2:]):
            x32 = torch.randn(shape)
            ok &= _check(f"(f) centre at equal sizes is the identity, bit for bit {shape}",
                         torch.equal(resample(x32, size, mode="centre"), x32))
            continue
        s_out = [torch.tensor(float(v), dtype=torch.float64, requires_grad=True) for v in size]
        grads = torch.autograd.grad((resample(x.detach(), s_out, mode="centre") * g).sum(), s_out)
        eps = 1e-6

        def loss_at(hs, ws):
            sz = (torch.tensor(hs, dtype=torch.float64), torch.tensor(ws, dtype=torch.float64))
            return float((resample(x.detach(), sz, mode="centre") * g).sum())
        fd = [(loss_at(size[0] + eps, size[1]) - loss_at(size[0] - eps, size[1])) / (2 * eps),
              (loss_at(size[0], size[1] + eps) - loss_at(size[0], size[1] - eps)) / (2 * eps)]
        err = max(abs(float(a) - b) for a, b in zip(grads, fd)) / (1 + max(abs(b) for b in fd))
        ok &= _check(f"(f) centre dHs vs FD {shape} -> {size}", err < 1e-6,
                     f"autograd={[round(float(v), 6) for v in grads]} fd={[round(v, 6) for v in fd]}")

    # target_size mode: no parameters; the gradient reaches the owner's alpha through the size.
    owner = DynOPool(2.0)
    follower = DynOPool(target_size=True)
    y = follower(torch.randn(1, 2, 12, 12), size_out=owner.out_size((24, 24)))
    y.sum().backward()
    ok &= _check("target_size: no params, output 12x12, grad reaches the owner's alpha",
                 len(list(follower.parameters())) == 0 and y.shape[-2:] == (12, 12)
                 and owner.alpha.grad is not None and owner.alpha.grad.abs().sum() > 0)

    # min_out clamp and clamp_alpha_.
    p = DynOPool((40.0, 3.0), min_out=2)
    ok &= _check("min_out clamp: 9x13 alpha=(40,3) -> 2x4", p(torch.randn(1, 1, 9, 13)).shape[-2:] == (2, 4))
    p.clamp_alpha_((9, 13))
    ok &= _check("clamp_alpha_ keeps H/alpha >= min_out", math.isclose(p.alpha[0].item(), 4.5))
    p = DynOPool(0.5, cap_at_input=True)
    ok &= _check("cap_at_input: 9x13 alpha=0.5 -> 9x13", p(torch.randn(1, 1, 9, 13)).shape[-2:] == (9, 13))

    # gmacs_loss: d/dalpha_h of lam*(Hs*Ws)/(H0*W0)*G0 = lam*Ws/(H0*W0)*G0 * (-H/alpha_h^2).
    p = DynOPool((2.0, 2.0))
    hs, ws = p.out_size((64, 48))
    loss, now = gmacs_loss([(hs, ws, 32, 24, 1.5)], lam=0.1)
    loss.backward()
    want = 0.1 * 24 / (32 * 24) * 1.5 * (-64 / 4)
    ok &= _check("gmacs_loss value and alpha gradient", math.isclose(now, 1.5)
                 and math.isclose(p.alpha.grad[0].item(), want, rel_tol=1e-6))
    hinge, _ = gmacs_loss([(hs, ws, 32, 24, 1.5)], lam=0.1, budget=2.0)
    ok &= _check("gmacs_loss hinge below budget is 0", float(hinge) == 0.0)
    return ok


if __name__ == "__main__":
    torch.set_num_threads(2)
    all_ok = self_check()
    print("ALL PASS" if all_ok else "SOME CHECKS FAILED")
    raise SystemExit(0 if all_ok else 1)
