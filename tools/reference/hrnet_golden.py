"""Golden vectors for the tiny HRNet (w18_small_v1, 8 classes) with their tolerance ingredients.

Run: /usr/bin/python3 hrnet_golden.py OUT_DIR SEED BATCH HEIGHT WIDTH [VARIANT ...]

Writes hrnet_tiny_model.json (weights, input, labels, alphas) and hrnet_tiny_<variant>.json for the
variants fixed, dynopool (alphas 2), dynopool_alpha (non-integer alphas), strided (down='strided',
up='centre', alphas 2) and strided_alpha (the same with non-integer alphas), in the schema of
golden.py's docstring, plus what a port needs to set its tolerances honestly. With VARIANTs, only
those are written, and their alphas merged into an existing hrnet_tiny_model.json of the same seed.

float64 reference  grad_norms64, grad_proj64, alpha_grads64, grads64: the same step recomputed in
                   float64 from the same float32 weights and input.
float32 spread     grad_spread {param: ||g32 - g64||_2}, grads_spread {param: max |g32 - g64|},
                   alpha_spread {pool: [|a32 - a64|, ...]}: how far PyTorch's own float32 result lies
                   from the float64 one. A port's float32 sums run in another order; its error is of
                   the same order, not the same value.
                   logits_train_spread (max |l32 - l64| / max |l64|), running_proj64 and
                   running_spread {buffer: |proj32 - proj64|} for the forward side.
tie envelope       grad_env {param: [norm, proj]}, grads_env {param: max_i sum |dg_i|},
                   alpha_env {pool: [2]}: the sum over every near-tie gate of how much the float64
                   gradients move when that one gate is flipped. A gate is near a tie when float32
                   rounding can put it on the other side: a ReLU input, or a DynOPool max-window's
                   two largest queries, closer than r * peak of its tensor, where r is the larger
                   of TAU and twice PyTorch's own float32 error of that tensor relative to its
                   peak (exact ties are decided by the first-maximum rule on both sides and are
                   not counted). ties {relu, max, tau, reach}: how many there were, TAU, and the
                   largest float32 error relative to its tensor's peak.

Near-ties are found and flipped in float64; each flip reruns the backward of the same forward pass
with that gate forced (a ReLU passes or blocks its element, a max-window sends its gradient to its
second-largest query). The forward values would move by less than the gate's margin: left out.
"""
import json
import os
import sys
import types

import torch
import torch.nn as nn
import torch.nn.functional as F

import dynopool
import hrnet
from golden import GRAD_FULL, proj, qtensor, tensor, write

TAU = 1e-5
NON_INTEGER = {"stem": (1.9, 2.1), "transition1": (2.2, 1.8), "transition2": (1.7, 2.4), "transition3": (2.5, 1.6)}
VARIANT_ALPHAS = {"fixed": None, "dynopool": {}, "dynopool_alpha": NON_INTEGER, "strided": {}, "strided_alpha": NON_INTEGER}
VARIANT_MODEL = {"strided": {"down": "strided", "up": "centre"}, "strided_alpha": {"down": "strided", "up": "centre"}}


class Gates:
    """Every ReLU and DynOPool max-window of a forward pass, numbered in call order. When tracking
    (the float64 passes), it records their inputs (to find near-ties) and routes their backward
    through Gate functions, so that one element or cell can be flipped in a later backward of the
    same graph; otherwise the reference ops run as they are (the float32 golden's own numbers)."""

    def __init__(self):
        self.tracking, self.record, self.flip, self.calls = False, [], None, 0

    def start(self, tracking=False):
        self.tracking, self.record, self.flip, self.calls = tracking, [], None, 0

    def _next(self, kind, t):
        self.calls += 1
        self.record.append((kind, t.detach()))
        return self.calls - 1

    def flipped(self, call):
        return self.flip[1] if self.flip is not None and self.flip[0] == call else None

    def relu(self, x, inplace=False):
        if not self.tracking:
            return torch.relu(x)
        return GatedReLU.apply(x, self._next("relu", x))

    def max_pool2d(self, v, kernel, stride):
        assert kernel == 2 and stride == 2
        if not self.tracking:
            return F.max_pool2d(v, 2, 2)
        return GatedMax.apply(v, self._next("max", v))


class GatedReLU(torch.autograd.Function):
    """ReLU whose backward passes or blocks one element against its gate when GATES says so."""

    @staticmethod
    def forward(ctx, x, call):
        ctx.call = call
        mask = x > 0
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, g):
        mask, = ctx.saved_tensors
        i = GATES.flipped(ctx.call)
        if i is not None:
            mask = mask.flatten().clone()
            mask[i] = ~mask[i]
            mask = mask.view_as(g)
        return g * mask, None


class GatedMax(torch.autograd.Function):
    """2x2 max-windows (the first maximal query wins) whose backward sends one cell's gradient to
    its second-largest query when GATES says so."""

    @staticmethod
    def forward(ctx, v, call):
        q = cells(v)
        order = ranked(q)
        ctx.call, ctx.shape = call, v.shape
        ctx.save_for_backward(order[..., 0], order[..., 1])
        return q.gather(-1, order[..., :1]).squeeze(-1)

    @staticmethod
    def backward(ctx, g):
        first, second = ctx.saved_tensors
        i = GATES.flipped(ctx.call)
        if i is not None:
            first = first.flatten().clone()
            first[i] = second.flatten()[i]
            first = first.view_as(second)
        gq = torch.zeros(g.shape + (4,), dtype=g.dtype).scatter_(-1, first.unsqueeze(-1), g.unsqueeze(-1))
        n, c, h, w = g.shape
        return gq.reshape(n, c, h, w, 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(ctx.shape), None


def cells(v):
    """(N, C, 2H, 2W) -> (N, C, H, W, 4): each 2x2 window's queries in the order (-,-), (-,+), (+,-), (+,+)."""
    n, c, h2, w2 = v.shape
    return v.reshape(n, c, h2 // 2, 2, w2 // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h2 // 2, w2 // 2, 4)


def ranked(q):
    """Query indices by decreasing value, the first maximal one first (max_pool2d's choice)."""
    return torch.sort(q, dim=-1, descending=True, stable=True).indices


def near_ties(record, record32):
    """(call, flat index) of every gate within float32 reach of its tie: closer than TAU or than
    twice PyTorch's own float32 error of that tensor (both relative to its peak), and the counts."""
    out, counts = [], {"relu": 0, "max": 0, "tau": TAU, "reach": 0.0}
    for call, ((kind, t), (_, t32)) in enumerate(zip(record, record32)):
        peak = t.abs().max()
        reach = ((t32.double() - t).abs().max() / peak).item()
        counts["reach"] = max(counts["reach"], reach)
        if kind == "relu":
            margin = t.abs().flatten()
        else:
            top = torch.sort(cells(t), dim=-1, descending=True).values
            margin = (top[..., 0] - top[..., 1]).flatten()
            margin = torch.where(margin == 0, torch.full_like(margin, float("inf")), margin)
        idx = torch.nonzero(margin < max(TAU, 2 * reach) * peak).flatten().tolist()
        counts[kind] += len(idx)
        out += [(call, i) for i in idx]
    return out, counts


GATES = Gates()
# The reference modules call F.relu / nn.ReLU and dynopool's F.max_pool2d: route those through GATES.
hrnet.F = types.SimpleNamespace(**{k: getattr(F, k) for k in dir(F) if not k.startswith("__")})
hrnet.F.relu = GATES.relu
dynopool.F = types.SimpleNamespace(**{k: getattr(F, k) for k in dir(F) if not k.startswith("__")})
dynopool.F.max_pool2d = GATES.max_pool2d


class ReLUModule(nn.Module):
    def forward(self, x):
        return GATES.relu(x)


def gate_modules(model):
    for name, m in list(model.named_modules()):
        for child_name, child in list(m.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(m, child_name, ReLUModule())
    return model


def make_model(variant, state, dtype):
    alphas = VARIANT_ALPHAS[variant]
    model = hrnet.HRNet("w18_small_v1", 8, "fixed" if alphas is None else "dynopool", **VARIANT_MODEL.get(variant, {}))
    model.load_state_dict(state, strict=False)
    for pool_name, a in (alphas or {}).items():
        model.pools[pool_name].alpha.data = torch.tensor(a)
    return gate_modules(model.to(dtype).train())


def step(model, x, labels, tracking=False):
    """One training forward and backward; returns logits, loss, {param: grad} and a function
    that runs the same backward again with one gate flipped (tracking only)."""
    model.zero_grad(set_to_none=True)
    GATES.start(tracking)
    logits = model(x)
    loss = F.cross_entropy(hrnet.upsample_logits(logits, labels.shape[-2:]), labels, ignore_index=255)
    names, params = zip(*model.named_parameters())
    grads = torch.autograd.grad(loss, params, retain_graph=tracking)

    def flipped(flip):
        GATES.flip = flip
        g = torch.autograd.grad(loss, params, retain_graph=True)
        GATES.flip = None
        return dict(zip(names, g))
    return logits, loss, dict(zip(names, grads)), flipped


def summary(grads):
    """The compared quantities of a gradient set: (norm, projection) per tensor, alphas as they are."""
    return {n: ((g[0].item(), g[1].item()) if n.startswith("pools.") else (g.norm().item(), proj(g)))
            for n, g in grads.items()}


def make_weights(seed):
    torch.manual_seed(1234 + seed)
    base = hrnet.HRNet("w18_small_v1", 8, "fixed")
    weights, exact = {}, {}
    for name, t in base.state_dict().items():
        if t.dtype == torch.int64:
            weights[name], exact[name] = tensor(t), t
            continue
        if name.endswith("running_var"):
            v = torch.rand_like(t) + 0.5
        elif name.endswith("running_mean") or (name.endswith("bias") and t.dim() == 1):
            v = torch.randn_like(t) * 0.1
        elif t.dim() == 1:  # BN weight
            v = torch.rand_like(t) + 0.5
        else:  # conv weight: He-normal
            v = torch.randn_like(t) * (2.0 / t[0].numel()) ** 0.5
        weights[name], exact[name] = qtensor(v)
    return weights, exact


def variant_golden(variant, exact, x, labels):
    model = make_model(variant, exact, torch.float32)
    alphas = VARIANT_ALPHAS[variant]
    h, w = x.shape[-2:]
    sizes = {str(k): [int(v) for v in s] for k, s in model.level_sizes(h, w).items()}
    with torch.no_grad():
        GATES.start()
        logits_eval = model.eval()(x)
    model.train()
    logits, loss, g32, _ = step(model, x, labels)
    out = {"variant": variant, "level_sizes": sizes, "logits_eval": tensor(logits_eval),
           "logits_train": tensor(logits), "loss": float("%.9g" % loss.item()),
           "grad_norms": {n: g.double().norm().item() for n, g in g32.items()},
           "grad_proj": {n: proj(g) for n, g in g32.items()},
           "grads": {n: tensor(g) for n, g in g32.items() if n in GRAD_FULL},
           "running_mean_after": {"bn1": tensor(model.bn1.running_mean)},
           "running_proj": {n: proj(b) for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var"))}}

    step(make_model(variant, exact, torch.float32), x, labels, tracking=True)
    record32 = GATES.record
    m64 = make_model(variant, exact, torch.float64)
    x64 = x.double()
    logits64, loss64, g64, flipped = step(m64, x64, labels, tracking=True)
    flips, counts = near_ties(GATES.record, record32)
    running64 = {n: proj(b) for n, b in m64.named_buffers() if n.endswith(("running_mean", "running_var"))}
    base = summary(g64)
    env = {n: [0.0, 0.0] for n in g64}
    env_full = {n: torch.zeros_like(g64[n]) for n in GRAD_FULL}
    for flip in flips:
        gf = flipped(flip)
        for n, (a, b) in summary(gf).items():
            env[n][0] += abs(a - base[n][0])
            env[n][1] += abs(b - base[n][1])
        for n in GRAD_FULL:
            env_full[n] += (gf[n] - g64[n]).abs()
    tensors = [n for n in g64 if not n.startswith("pools.")]
    out.update({
        "loss64": loss64.item(),
        "grad_norms64": {n: base[n][0] for n in tensors},
        "grad_proj64": {n: base[n][1] for n in tensors},
        "grads64": {n: {"shape": list(g64[n].shape), "data": g64[n].flatten().tolist()} for n in GRAD_FULL},
        "grad_spread": {n: (g32[n].double() - g64[n]).norm().item() for n in tensors},
        "grads_spread": {n: (g32[n].double() - g64[n]).abs().max().item() for n in GRAD_FULL},
        "grad_env": {n: env[n] for n in tensors},
        "grads_env": {n: env_full[n].max().item() for n in GRAD_FULL},
        "ties": counts,
        "logits_train_spread": ((logits.double() - logits64).abs().max() / logits64.abs().max()).item(),
        "running_proj64": running64,
        "running_spread": {n: abs(out["running_proj"][n] - v) for n, v in running64.items()},
    })
    if alphas is not None:
        pools = list(model.pools)
        out["alpha_grads"] = {k: g32[f"pools.{k}.alpha"].tolist() for k in pools}
        out["alpha_grads64"] = {k: g64[f"pools.{k}.alpha"].tolist() for k in pools}
        out["alpha_spread"] = {k: (g32[f"pools.{k}.alpha"].double() - g64[f"pools.{k}.alpha"]).abs().tolist() for k in pools}
        out["alpha_env"] = {k: env[f"pools.{k}.alpha"] for k in pools}
    return out, {k: p.alpha.tolist() for k, p in model.pools.items()} if alphas is not None else None, len(flips)


def main(out_dir, seed, batch, height, width, variants=()):
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(2)
    weights, exact = make_weights(seed)
    x = torch.randn(batch, 3, height, width)
    labels = torch.randint(0, 8, (batch, height, width))
    labels[torch.rand(batch, height, width) < 0.1] = 255
    alphas_out = {}
    model_path = os.path.join(out_dir, "hrnet_tiny_model.json")
    if variants:
        with open(model_path) as f:
            model_spec = json.load(f)
        assert model_spec["input"] == tensor(x), f"{model_path} is not of seed {seed} at {batch}x{height}x{width}"
        alphas_out = model_spec["alphas"]
    for variant in variants or VARIANT_ALPHAS:
        out, alphas, flips = variant_golden(variant, exact, x, labels)
        if alphas is not None:
            alphas_out[variant] = alphas
        write(out_dir, f"hrnet_tiny_{variant}.json", out)
        worst = max(out["grad_env"].items(), key=lambda kv: kv[1][0] / max(out["grad_norms64"][kv[0]], 1e-30))
        print(f"  {variant}: loss {out['loss']:.6f}, sizes {out['level_sizes']}, near-ties {out['ties']}, "
              f"largest envelope {worst[0]} {worst[1][0] / max(out['grad_norms64'][worst[0]], 1e-30):.1e} of its norm")
    if variants:
        model_spec["alphas"] = alphas_out
        write(out_dir, "hrnet_tiny_model.json", model_spec)
        return
    write(out_dir, "hrnet_tiny_model.json", {
        "about": f"w18_small_v1, 8 classes, seed {seed}; weights = int8 * scale (exact); BN momentum 0.1, eps 1e-5",
        "config": "w18_small_v1", "num_classes": 8, "input": tensor(x), "labels": tensor(labels),
        "weights": weights, "alphas": alphas_out})


if __name__ == "__main__":
    if len(sys.argv) < 6:
        sys.exit(__doc__.split("\n\n")[0] + "\nusage: hrnet_golden.py OUT_DIR SEED BATCH HEIGHT WIDTH [VARIANT ...]")
    main(sys.argv[1], *(int(a) for a in sys.argv[2:6]), sys.argv[6:])
