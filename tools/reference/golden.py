"""Writes golden test vectors (JSON) for a port of DynOPool / HRNet, computed with PyTorch on CPU.

Run: /usr/bin/python3 golden.py OUT_DIR [SEED [FILE ...]]   (deterministic for a given SEED, default 0;
about 1 minute; < 5 MB; with FILEs, e.g. dynopool_centre.json, writes only those)

JSON schema
-----------
Tensor      {"shape": [d0, d1, ...], "data": [v, ...]}  row-major (C order); float32 values written with
            9 significant digits (parse as float32 to get the exact value); integer tensors (labels) as ints.
QTensor     {"shape": [...], "scale": s, "int8_b64": "..."}  value = int8 * s exactly (s a power of two);
            int8_b64 is standard base64 of the int8 bytes, row-major. Used only for the HRNet weights.
Every file  {"about": "...", "cases": [case, ...]} or, for HRNet files, one object (see below).
Gradients   grad_y is the upstream gradient: every d* field is dL/d* for L = sum(grad_y * y).
Computation float32 forward/backward, except fields marked float64 (recomputed in float64 from the same
            float32 inputs): DynOPool dalpha/dsize, and HRNet grad norms (norms of float32 grads).

dynopool.json        case: name, mode ('max'|'mean'), alpha [2] (float32 values), x, grad_y, y, dx,
                     out_size [H', W'], dalpha [2] (float64).
                     Target-size cases (HRNet fuse paths) have instead size_in [2], size_out [2] (the
                     straight-through sizes' values) and dsize_in [2], dsize_out [2] (float64): dL/dHs.
dynopool_centre.json the same for mode 'centre' (one bilinear query at each cell's centre: a bilinear
                     resize to the learned size), learned and target-size cases.
bilinear.json        F.interpolate(mode='bilinear', align_corners=False): x, out_size, grad_y, y, dx.
conv2d.json          F.conv2d: x, weight, bias (Tensor or null), stride, padding, dilation, grad_y, y, dx,
                     dweight, dbias (or null).
batchnorm.json       F.batch_norm training mode: x, weight, bias, running_mean, running_var (before),
                     momentum, eps, grad_y, y, dx, dweight, dbias, running_mean_after, running_var_after
                     (running_var uses the unbiased batch variance: running = 0.9 running + 0.1 batch).
cross_entropy.json   F.cross_entropy(ignore_index=255, reduction='mean' = mean over non-ignored pixels):
                     logits (N,C,H,W), labels (N,H,W ints), ignore_index, loss (scalar), dlogits (dL/dlogits
                     of the loss itself, i.e. grad_y = 1).
hrnet_tiny_model.json  config 'w18_small_v1', num_classes 8, input (2,3,64,64) Tensor, labels (2,64,64),
                     weights: {state_dict name: QTensor (float) or {"shape", "data"} (int64 buffers)},
                     alphas of each dynopool variant: {variant: {pool name: [a_h, a_w]}}.
hrnet_tiny_<variant>.json  variant in fixed, dynopool (alphas 2), dynopool_alpha (non-integer alphas):
                     level_sizes {level: [h, w]}; logits_eval (eval-mode BN, running stats as loaded);
                     logits_train (train-mode BN, batch stats); loss = cross_entropy(upsample_logits(
                     logits_train, 64x64), labels, ignore 255); grad_norms {param name: float64 L2 norm};
                     grad_proj {param name: float64 sum_i g_i*sin(0.7*i+0.3) over the row-major gradient,
                     i = 0..n-1: catches sign flips, permutations and misrouted gradients that norms miss};
                     grads {name: Tensor} full gradients of GRAD_FULL (stem, a block, fuse paths, head);
                     alpha_grads {pool name: [2]} (dynopool variants); running_mean_after for bn1;
                     running_proj {buffer name: projection as grad_proj} for every BN running mean/var;
                     and the float64 reference, float32 spread and tie envelope of hrnet_golden.py,
                     which writes these files (other seeds and sizes: hrnet_golden.py OUT SEED N H W).
"""
import base64
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from dynopool import DynOPool, resample
from hrnet import HRNet, upsample_logits


def tensor(t):
    t = t.detach()
    if t.dtype in (torch.int64, torch.int32, torch.uint8):
        return {"shape": list(t.shape), "data": t.reshape(-1).tolist()}
    vals = t.to(torch.float32).reshape(-1).tolist()
    return {"shape": list(t.shape), "data": [float("%.9g" % v) for v in vals]}


def qtensor(t, bits=7):
    """Quantise to int8 * 2^-k (k chosen from the max magnitude); returns (QTensor, exact float32 tensor)."""
    peak = float(t.abs().max()) or 1.0
    scale = 2.0 ** np.ceil(np.log2(peak / (2 ** bits - 1)))
    q = torch.clamp(torch.round(t / scale), -127, 127).to(torch.int8)
    enc = base64.b64encode(q.numpy().tobytes()).decode("ascii")
    return {"shape": list(t.shape), "scale": scale, "int8_b64": enc}, q.to(torch.float32) * scale


def write(out_dir, name, obj):
    path = os.path.join(out_dir, name)
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
    print(f"{path}: {os.path.getsize(path) / 1e3:.0f} kB")


def dynopool_cases(modes=("max", "mean"), alphas=((2.0, 2.0), (1.7, 2.3), (3.1, 1.4), (0.6, 0.8)),
                   targets=((((1, 3, 8, 8), (8, 8), (5, 11), "max"), ((2, 2, 12, 6), (12, 6), (6, 3), "max"),
                             ((1, 4, 6, 10), (6, 10), (13, 19), "mean")))):
    cases = []
    for shape in [(1, 3, 9, 13), (2, 4, 16, 16), (1, 2, 5, 7)]:
        for alpha in alphas:
            for mode in modes:
                if mode == "centre" and _centre_kink(shape[-2:], alpha):
                    continue
                pool = DynOPool(alpha, mode=mode)
                x = torch.randn(shape, requires_grad=True)
                y = pool(x)
                g = torch.randn_like(y)
                dx, = torch.autograd.grad(y, x, g)
                p64 = DynOPool(alpha, mode=mode).double()
                p64.alpha.data.copy_(pool.alpha.data)  # same float32 alpha values, in float64
                dalpha, = torch.autograd.grad((p64(x.detach().double()) * g.double()).sum(), p64.alpha)
                cases.append({"name": f"{mode}_a{alpha[0]}x{alpha[1]}_{'x'.join(map(str, shape))}", "mode": mode,
                              "alpha": pool.alpha.tolist(), "x": tensor(x), "grad_y": tensor(g), "y": tensor(y),
                              "dx": tensor(dx), "out_size": list(y.shape[-2:]), "dalpha": dalpha.tolist()})
    # Target-size mode: sizes are straight-through values owned elsewhere; gradient to both sizes.
    for shape, size_in, size_out, mode in targets:
        x = torch.randn(shape, requires_grad=True)
        y = resample(x, size_out, size_in, mode)
        g = torch.randn_like(y)
        dx, = torch.autograd.grad(y, x, g)
        s_in = [torch.tensor(float(v), dtype=torch.float64, requires_grad=True) for v in size_in]
        s_out = [torch.tensor(float(v), dtype=torch.float64, requires_grad=True) for v in size_out]
        loss = (resample(x.detach().double(), s_out, s_in, mode) * g.double()).sum()
        grads = torch.autograd.grad(loss, s_in + s_out)
        cases.append({"name": f"target_{mode}_{'x'.join(map(str, shape))}_to_{size_out[0]}x{size_out[1]}",
                      "mode": mode, "x": tensor(x), "grad_y": tensor(g), "y": tensor(y), "dx": tensor(dx),
                      "size_in": list(size_in), "size_out": list(size_out),
                      "dsize_in": [float(v) for v in grads[:2]], "dsize_out": [float(v) for v in grads[2:]]})
    return cases


def _centre_kink(size, alpha):
    """Whether a centre query of an axis that changes size sits on an interior pixel centre: there
    the read has a kink, and float32 (a port) and float64 (dalpha here) may take opposite sides."""
    for n, a in zip(size, alpha):
        m = max(1, round(float(torch.tensor(float(n)) / torch.tensor(float(a)))))
        u = [(i + 0.5) * n / m - 0.5 for i in range(m)]
        if m != n and any(0 < v < n - 1 and abs(v - round(v)) < 1e-4 for v in u):
            return True
    return False


def dynopool_centre_cases():
    """Mode 'centre' as HRNet's ResizeThenStride uses it: to twice a level's size (alpha 1 on the
    doubled size is the identity), shrinking, growing, and up to a level above. Learned cases with a
    kink (_centre_kink) are left out."""
    return dynopool_cases(("centre",), ((1.0, 1.0), (1.7, 2.3), (3.1, 1.4), (0.6, 0.8)),
                          (((1, 3, 8, 8), (8, 8), (5, 11), "centre"), ((2, 2, 12, 6), (12, 6), (12, 6), "centre"),
                           ((1, 4, 6, 10), (6, 10), (13, 19), "centre"), ((1, 2, 9, 7), (9, 7), (18, 14), "centre")))


def bilinear_cases():
    cases = []
    for shape, size in [((1, 2, 5, 7), (9, 4)), ((2, 3, 8, 8), (16, 16)), ((1, 2, 16, 16), (8, 8)),
                        ((1, 1, 6, 10), (3, 7)), ((1, 2, 2, 2), (8, 8))]:
        x = torch.randn(shape, requires_grad=True)
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        g = torch.randn_like(y)
        dx, = torch.autograd.grad(y, x, g)
        cases.append({"name": f"{'x'.join(map(str, shape))}_to_{size[0]}x{size[1]}", "x": tensor(x),
                      "out_size": list(size), "grad_y": tensor(g), "y": tensor(y), "dx": tensor(dx)})
    return cases


def conv_cases():
    cases = []
    for xs, ws, stride, pad, bias in [((2, 3, 9, 11), (4, 3, 3, 3), 1, 1, True), ((2, 3, 9, 11), (4, 3, 3, 3), 2, 1, False),
                                      ((1, 4, 8, 8), (5, 4, 3, 3), 2, 1, True), ((1, 4, 7, 6), (3, 4, 3, 3), 1, 1, False),
                                      ((2, 6, 5, 5), (4, 6, 1, 1), 1, 0, True)]:
        x = torch.randn(xs, requires_grad=True)
        w = (torch.randn(ws) * 0.3).requires_grad_()
        b = torch.randn(ws[0]).requires_grad_() if bias else None
        y = F.conv2d(x, w, b, stride=stride, padding=pad, dilation=1)
        g = torch.randn_like(y)
        grads = torch.autograd.grad(y, [x, w] + ([b] if bias else []), g)
        cases.append({"name": f"x{'x'.join(map(str, xs))}_w{'x'.join(map(str, ws))}_s{stride}_p{pad}_{'bias' if bias else 'nobias'}",
                      "x": tensor(x), "weight": tensor(w), "bias": tensor(b) if bias else None, "stride": stride,
                      "padding": pad, "dilation": 1, "grad_y": tensor(g), "y": tensor(y), "dx": tensor(grads[0]),
                      "dweight": tensor(grads[1]), "dbias": tensor(grads[2]) if bias else None})
    return cases


def batchnorm_cases():
    cases = []
    for shape in [(4, 3, 5, 6), (2, 5, 3, 3), (1, 3, 4, 4), (8, 2, 1, 1)]:
        c = shape[1]
        x = (torch.randn(shape) * 2 + 0.5).requires_grad_()
        w = (torch.rand(c) + 0.5).requires_grad_()
        b = (torch.randn(c) * 0.1).requires_grad_()
        rm, rv = torch.randn(c) * 0.1, torch.rand(c) + 0.5
        rm_after, rv_after = rm.clone(), rv.clone()
        y = F.batch_norm(x, rm_after, rv_after, w, b, training=True, momentum=0.1, eps=1e-5)
        g = torch.randn_like(y)
        dx, dw, db = torch.autograd.grad(y, [x, w, b], g)
        cases.append({"name": "x".join(map(str, shape)), "x": tensor(x), "weight": tensor(w), "bias": tensor(b),
                      "running_mean": tensor(rm), "running_var": tensor(rv), "momentum": 0.1, "eps": 1e-5,
                      "grad_y": tensor(g), "y": tensor(y), "dx": tensor(dx), "dweight": tensor(dw), "dbias": tensor(db),
                      "running_mean_after": tensor(rm_after), "running_var_after": tensor(rv_after)})
    return cases


def cross_entropy_cases():
    cases = []
    for shape, ignore_frac in [((2, 5, 4, 6), 0.2), ((1, 3, 3, 3), 0.8), ((2, 21, 8, 8), 0.1)]:
        n, c, h, w = shape
        logits = (torch.randn(shape) * 3).requires_grad_()
        labels = torch.randint(0, c, (n, h, w))
        labels[torch.rand(n, h, w) < ignore_frac] = 255
        labels.view(-1)[0] = 1  # at least one valid pixel
        loss = F.cross_entropy(logits, labels, ignore_index=255)
        dl, = torch.autograd.grad(loss, logits)
        cases.append({"name": "x".join(map(str, shape)), "logits": tensor(logits), "labels": tensor(labels),
                      "ignore_index": 255, "loss": float("%.9g" % loss.item()), "dlogits": tensor(dl)})
    return cases


GRAD_FULL = ("conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "stage2.0.fuse_layers.0.1.0.weight",
             "stage2.0.fuse_layers.1.0.0.0.weight", "last_layer.3.weight", "last_layer.3.bias")


def proj(t):
    """sum_i t_i * sin(0.7 i + 0.3) over the flattened tensor, in float64."""
    flat = t.detach().double().reshape(-1)
    i = torch.arange(flat.numel(), dtype=torch.float64)
    return float((flat * torch.sin(0.7 * i + 0.3)).sum().item())


def load_tensor(d, dtype=torch.float32):
    """Inverse of tensor()/qtensor(): JSON object -> torch tensor."""
    if "int8_b64" in d:
        q = np.frombuffer(base64.b64decode(d["int8_b64"]), dtype=np.int8).astype(np.float32)
        return torch.from_numpy(q * np.float32(d["scale"])).reshape(d["shape"])
    return torch.tensor(d["data"], dtype=dtype).reshape(d["shape"])


def verify(out_dir):
    """Re-read the files and recompute some outputs from the JSON alone (checks the encoding)."""
    with open(os.path.join(out_dir, "dynopool.json")) as f:
        cases = json.load(f)["cases"]
    worst = 0.0
    for c in cases:
        x = load_tensor(c["x"])
        if "alpha" in c:
            pool = DynOPool(c["alpha"], mode=c["mode"])
            y = pool(x)
        else:
            y = resample(x, c["size_out"], c["size_in"], c["mode"])
        worst = max(worst, (y - load_tensor(c["y"])).abs().max().item())
    print(f"verify dynopool.json: {len(cases)} cases, max |y - y_json| = {worst:.1e}")
    assert worst == 0.0
    with open(os.path.join(out_dir, "hrnet_tiny_model.json")) as f:
        spec = json.load(f)
    state = {k: load_tensor(v, torch.int64 if "int8_b64" not in v else torch.float32) for k, v in spec["weights"].items()}
    x = load_tensor(spec["input"])
    for variant in ("fixed", "dynopool", "dynopool_alpha"):
        model = HRNet(spec["config"], spec["num_classes"], "fixed" if variant == "fixed" else "dynopool")
        model.load_state_dict(state, strict=False)
        for name, a in spec["alphas"].get(variant, {}).items():
            model.pools[name].alpha.data = torch.tensor(a)
        with open(os.path.join(out_dir, f"hrnet_tiny_{variant}.json")) as f:
            want = json.load(f)
        with torch.no_grad():
            err = (model.eval()(x) - load_tensor(want["logits_eval"])).abs().max().item()
            err = max(err, (model.train()(x) - load_tensor(want["logits_train"])).abs().max().item())
        print(f"verify hrnet_tiny_{variant}.json: max |logits - logits_json| = {err:.1e}")
        assert err == 0.0


def main(out_dir, seed=0, only=()):
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(2)
    torch.manual_seed(seed)
    if "dynopool_centre.json" in only or not only:
        write(out_dir, "dynopool_centre.json", {"about": "DynOPool mode centre (a bilinear resize to the learned size)",
                                                "cases": dynopool_centre_cases()})
    if only:
        return
    write(out_dir, "dynopool.json", {"about": "DynOPool forward/backward (docs/dynopool.md)", "cases": dynopool_cases()})
    write(out_dir, "bilinear.json", {"about": "bilinear resize, align_corners=False", "cases": bilinear_cases()})
    write(out_dir, "conv2d.json", {"about": "conv2d forward/backward", "cases": conv_cases()})
    write(out_dir, "batchnorm.json", {"about": "batch norm, training mode", "cases": batchnorm_cases()})
    write(out_dir, "cross_entropy.json", {"about": "softmax CE, ignore 255, mean over valid", "cases": cross_entropy_cases()})
    import hrnet_golden  # imports this module: loaded once this one is
    hrnet_golden.main(out_dir, seed, 2, 64, 64)
    total = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"total {total / 1e6:.2f} MB")
    assert total < 5e6, "golden set over 5 MB"
    verify(out_dir)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__.split("\n\n")[0] + "\nusage: golden.py OUT_DIR [SEED [FILE ...]]")
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) >= 3 else 0, sys.argv[3:])
