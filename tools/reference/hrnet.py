"""HRNetV2 semantic segmentation (layout and state_dict names of HRNet/HRNet-Semantic-Segmentation
lib/models/seg_hrnet.py), with resize='fixed' (official: stride-2 convs, bilinear align_corners=False
up-sampling) or resize='dynopool' (docs/dynopool.md, "Where it goes in HRNet").

DynOPool placement (resize='dynopool'):
  * Resolution levels: 'half' (stem conv1 output) and branches 0..3. Their straight-through sizes are
    computed first from the input size and the alphas (level_sizes), then used by every resize.
  * pools.stem (alpha init 2) owns 'half' = in/alpha and branch 0 = half/alpha: the stem's two stride-2
    convs are each replaced by the stem pool followed by the same conv at stride 1 (one DynOPool, one
    alpha, applied twice; stem_pools=2 gives the second application its own alpha, pools.stem2).
  * pools.transition{k} (alpha init 2) owns branch k = branch(k-1)/alpha; the new-branch conv of
    transition{k} runs at stride 1 after it.
  * Fuse down-chain steps and head/fuse up-sampling resize with the same sampling op to the target
    level's current size (no parameters); positions scale with Hs_src/Hs_dst, so the gradient reaches the
    alphas of both ends through the sizes.
  All official parameter names are unchanged; the alphas are the only extra parameters (pools.*.alpha).
  down='strided' keeps every stride-2 conv and puts the resize in front of it instead: a bilinear resize
  (mode 'centre') to twice the target level's size, so at alpha 2 on even sizes the model is the fixed one.
  up='max'|'mean'|'centre' is how up-sampling reads a cell (default: agg).

Run: /usr/bin/python3 hrnet.py   (param counts, conv GMACs at 512x512, fixed-vs-dynopool checks)
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from dynopool import DynOPool, gmacs_loss, resample

# name: ((stage-1 bottleneck blocks, planes), [(modules, blocks per branch, channels) for stages 2..4])
CONFIGS = {
    "w18_small_v1": ((1, 32), [(1, 2, (16, 32)), (1, 2, (16, 32, 64)), (1, 2, (16, 32, 64, 128))]),
    "w18_small_v2": ((2, 64), [(1, 2, (18, 36)), (3, 2, (18, 36, 72)), (2, 2, (18, 36, 72, 144))]),
    "w18": ((4, 64), [(1, 4, (18, 36)), (4, 4, (18, 36, 72)), (3, 4, (18, 36, 72, 144))]),
    "w32": ((4, 64), [(1, 4, (32, 64)), (4, 4, (32, 64, 128)), (3, 4, (32, 64, 128, 256))]),
    "w48": ((4, 64), [(1, 4, (48, 96)), (4, 4, (48, 96, 192)), (3, 4, (48, 96, 192, 384))]),
}
LEVELS = ("half", 0, 1, 2, 3)


def conv(cin, cout, k, stride, level, bias=False):
    """Conv with padding k//2, tagged with the resolution level of its output (for MAC accounting)."""
    m = nn.Conv2d(cin, cout, k, stride, k // 2, bias=bias)
    m.level = level
    return m


def bn(c):
    return nn.BatchNorm2d(c, momentum=0.1)


class BasicBlock(nn.Module):
    def __init__(self, c, level):
        super().__init__()
        self.conv1, self.bn1 = conv(c, c, 3, 1, level), bn(c)
        self.conv2, self.bn2 = conv(c, c, 3, 1, level), bn(c)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + x)


class Bottleneck(nn.Module):
    def __init__(self, cin, planes, level):
        super().__init__()
        cout = planes * 4
        self.conv1, self.bn1 = conv(cin, planes, 1, 1, level), bn(planes)
        self.conv2, self.bn2 = conv(planes, planes, 3, 1, level), bn(planes)
        self.conv3, self.bn3 = conv(planes, cout, 1, 1, level), bn(cout)
        self.downsample = nn.Sequential(conv(cin, cout, 1, 1, level), bn(cout)) if cin != cout else None

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class Resizer:
    """How one forward pass changes resolution: fixed (strided conv / bilinear) or DynOPool sizes."""

    def __init__(self, sizes=None, agg="max", down="pool", up=None):
        self.sizes, self.agg, self.down_mode, self.up_mode = sizes, agg, down, up or agg

    def down(self, x, src, dst):
        """Applied before a conv that has stride 2 in the official model (stride 1 here if DynOPool
        with down='pool'; down='strided': to twice the target size, the conv keeps stride 2)."""
        if self.sizes is None:
            return x
        if self.down_mode == "strided":
            return resample(x, tuple(2 * s for s in self.sizes[dst]), self.sizes[src], "centre")
        return resample(x, self.sizes[dst], self.sizes[src], self.agg)

    def up(self, x, src, dst, ref):
        """Up-sample x (level src) to the size of ref (level dst)."""
        if self.sizes is None:
            return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)
        return resample(x, self.sizes[dst], self.sizes[src], self.up_mode)


class HighResolutionModule(nn.Module):
    def __init__(self, channels, num_blocks, stride):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c, i) for _ in range(num_blocks)]) for i, c in enumerate(channels))
        rows = []
        for i, ci in enumerate(channels):
            row = []
            for j, cj in enumerate(channels):
                if j > i:
                    row.append(nn.Sequential(conv(cj, ci, 1, 1, j), bn(ci)))
                elif j == i:
                    row.append(None)
                else:
                    steps = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        cout = ci if last else cj
                        step = [conv(cj, cout, 3, stride, j + k + 1), bn(cout)] + ([] if last else [nn.ReLU()])
                        steps.append(nn.Sequential(*step))
                    row.append(nn.Sequential(*steps))
            rows.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(rows)

    def forward(self, xs, rs):
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = None
            for j, path in enumerate(row):
                if j == i:
                    z = xs[j]
                elif j > i:
                    z = rs.up(path(xs[j]), j, i, xs[i])
                else:
                    z = xs[j]
                    for k, step in enumerate(path):
                        z = step(rs.down(z, j + k, j + k + 1))
                y = z if y is None else y + z
            out.append(F.relu(y))
        return out


def fixed_level_sizes(h, w):
    """Level sizes of the official model: each stride-2 3x3 pad-1 conv maps n to ceil(n/2)."""
    sizes, cur = {"in": (h, w)}, (h, w)
    for level in LEVELS:
        cur = ((cur[0] + 1) // 2, (cur[1] + 1) // 2)
        sizes[level] = cur
    return sizes


class HRNet(nn.Module):
    """HRNetV2 + concat head. Output: logits at the branch-0 resolution (1/4 of the input)."""

    def __init__(self, config="w48", num_classes=19, resize="fixed", agg="max", min_out=1, stem_pools=1,
                 cap_at_input=True, down="pool", up=None):
        super().__init__()
        if resize not in ("fixed", "dynopool") or down not in ("pool", "strided"):
            raise ValueError((resize, down))
        self.config, self.resize, self.agg, self.down, self.up = config, resize, agg, down, up
        (stage1_blocks, planes), stages = CONFIGS[config]
        s = 2 if resize == "fixed" or down == "strided" else 1
        self.conv1, self.bn1 = conv(3, 64, 3, s, "half"), bn(64)
        self.conv2, self.bn2 = conv(64, 64, 3, s, 0), bn(64)
        self.layer1 = nn.Sequential(*[Bottleneck(64 if b == 0 else planes * 4, planes, 0) for b in range(stage1_blocks)])
        pre = [planes * 4]
        for k, (modules, blocks, channels) in enumerate(stages, start=1):
            setattr(self, f"transition{k}", self._transition(pre, channels, s))
            setattr(self, f"stage{k + 1}", nn.ModuleList(
                HighResolutionModule(channels, blocks, s) for _ in range(modules)))
            pre = list(channels)
        c = sum(pre)
        self.last_layer = nn.Sequential(conv(c, c, 1, 1, 0, bias=True), bn(c), nn.ReLU(),
                                        conv(c, num_classes, 1, 1, 0, bias=True))
        if resize == "dynopool":
            names = ["stem"] + (["stem2"] if stem_pools == 2 else []) + [f"transition{k}" for k in (1, 2, 3)]
            # cap_at_input (alpha >= 1): without it and without a GMACs loss, a stem alpha ran away below 1
            # on CamVid (5x up-sampling, out of memory); up-sampling pools are opt-in.
            self.pools = nn.ModuleDict({n: DynOPool(2.0, agg, min_out, cap_at_input) for n in names})
        self.init_weights()

    @staticmethod
    def _transition(pre, cur, stride):
        layers = []
        for i, c in enumerate(cur):
            if i < len(pre):
                layers.append(None if c == pre[i] else nn.Sequential(conv(pre[i], c, 3, 1, i), bn(c), nn.ReLU()))
            else:
                assert i == len(pre), "each transition adds exactly one branch"
                layers.append(nn.Sequential(nn.Sequential(conv(pre[-1], c, 3, stride, i), bn(c), nn.ReLU())))
        return nn.ModuleList(layers)

    def init_weights(self):
        """Official init: conv weights N(0, 0.001), BN weight 1 / bias 0 (conv biases keep PyTorch's init)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def level_sizes(self, h, w):
        """Sizes of every level for an h x w input: ints (fixed) or straight-through tensors (dynopool)."""
        if self.resize == "fixed":
            return fixed_level_sizes(h, w)
        p = self.pools
        sizes = {"in": (h, w)}
        sizes["half"] = p["stem"].out_size((h, w))
        sizes[0] = p["stem2" if "stem2" in p else "stem"].out_size(sizes["half"])
        for k in (1, 2, 3):
            sizes[k] = p[f"transition{k}"].out_size(sizes[k - 1])
        return sizes

    def forward(self, x):
        rs = Resizer(self.level_sizes(*x.shape[-2:]) if self.resize == "dynopool" else None, self.agg, self.down, self.up)
        x = F.relu(self.bn1(self.conv1(rs.down(x, "in", "half"))))
        x = F.relu(self.bn2(self.conv2(rs.down(x, "half", 0))))
        xs = [self.layer1(x)]
        for k in (1, 2, 3):
            new = []
            for i, t in enumerate(getattr(self, f"transition{k}")):
                if i < len(xs):
                    new.append(xs[i] if t is None else t(xs[i]))
                else:
                    new.append(t(rs.down(xs[-1], i - 1, i)))
            xs = new
            for module in getattr(self, f"stage{k + 1}"):
                xs = module(xs, rs)
        x = torch.cat([xs[0]] + [rs.up(xs[j], j, 0, xs[0]) for j in (1, 2, 3)], dim=1)
        return self.last_layer(x)

    def macs_by_level(self, sizes):
        """Conv multiply-accumulates per image (weight numel x output H x W) for each level."""
        macs = {}
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                h, w = (int(v) for v in sizes[m.level])
                macs[m.level] = macs.get(m.level, 0) + m.weight.numel() * h * w
        return macs

    def conv_macs(self, h, w):
        """Conv MACs per image at an h x w input with the current sizes."""
        return sum(self.macs_by_level(self.level_sizes(h, w)).values())

    def gmacs_terms(self, crop):
        """(Hs, Ws, H0, W0, GMACs0) per level for dynopool.gmacs_loss, reference = official model at crop."""
        ref, cur = fixed_level_sizes(*crop), self.level_sizes(*crop)
        return [(cur[lv][0], cur[lv][1], ref[lv][0], ref[lv][1], macs / 1e9)
                for lv, macs in self.macs_by_level(ref).items()]

    def alphas(self):
        return [p.alpha for p in self.pools.values()] if self.resize == "dynopool" else []

    @torch.no_grad()
    def clamp_alphas_(self, h, w):
        """Clamp every alpha in place (after an optimiser step) for an h x w training input."""
        if self.resize == "fixed":
            return
        sizes = self.level_sizes(h, w)
        inputs = {"stem": "in", "stem2": "half", "transition1": 0, "transition2": 1, "transition3": 2}
        for name, pool in self.pools.items():
            pool.clamp_alpha_([int(v) for v in sizes[inputs[name]]])


def upsample_logits(logits, size):
    """Bilinear (align_corners=False) up-sampling of 1/4-resolution logits to the label size."""
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def param_groups(model, lr, alpha_lr, weight_decay):
    """SGD parameter groups: alphas get their own learning rate and no weight decay (spec)."""
    alpha_ids = {id(a) for a in model.alphas()}
    rest = [p for p in model.parameters() if id(p) not in alpha_ids]
    groups = [{"params": rest, "lr": lr, "weight_decay": weight_decay}]
    if alpha_ids:
        groups.append({"params": model.alphas(), "lr": alpha_lr, "weight_decay": 0.0})
    return groups


# Exact counts from research/hrnet_count.py (verified against the official README, which lists the
# Cityscapes models, 19 classes; at two decimals 19 and 21 classes give the same numbers).
EXPECTED_19 = {  # config: (params, conv MACs per image at 512x512)
    "w18_small_v1": (1540819, 4173856768), "w18_small_v2": (3939579, 9607110656),
    "w18": (9641119, 18425131008), "w32": (29546515, 45153255424), "w48": (65859379, 93439131648),
}
OFFICIAL_KEYS = ["conv1.weight", "bn2.running_var", "layer1.0.downsample.0.weight", "transition1.0.0.weight",
                 "transition1.1.0.0.weight", "transition2.2.0.0.weight", "stage2.0.branches.0.0.conv1.weight",
                 "stage2.0.fuse_layers.0.1.0.weight", "stage2.0.fuse_layers.1.0.0.1.running_mean",
                 "stage4.0.fuse_layers.3.0.2.0.weight", "last_layer.0.bias", "last_layer.3.weight"]


def _conv_shapes(model, x):
    """Run x through model (eval, no grad); return {conv name: output shape} and the conv MACs seen."""
    shapes, hooks = {}, []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: shapes.__setitem__(name, tuple(out.shape))))
    with torch.no_grad():
        y = model.eval()(x)
    for hk in hooks:
        hk.remove()
    convs = dict(model.named_modules())
    macs = sum(convs[n].weight.numel() * s[-2] * s[-1] for n, s in shapes.items()) // x.shape[0]
    return shapes, macs, y


def check(name, ok, detail=""):
    ok = bool(ok)
    print(f"[{'PASS' if ok else 'FAIL'}] {name} {detail}")
    return ok


def self_check():
    torch.manual_seed(0)
    ok = True
    x = torch.randn(1, 3, 512, 512)
    print("| config | classes | params fixed | params dynopool (alphas) | conv GMACs@512 fixed | dynopool |")
    print("|---|---|---|---|---|---|")
    for name in CONFIGS:
        fixed, dyno = HRNet(name, 19, "fixed"), HRNet(name, 19, "dynopool")
        dyno.load_state_dict(fixed.state_dict(), strict=False)
        pf = sum(p.numel() for p in fixed.parameters())
        pd = sum(p.numel() for p in dyno.parameters())
        na = sum(a.numel() for a in dyno.alphas())
        sf, mf, yf = _conv_shapes(fixed, x)
        sd, md, yd = _conv_shapes(dyno, x)
        print(f"| {name} | 19 | {pf:,} | {pd - na:,} + {na} | {mf / 1e9:.3f} | {md / 1e9:.3f} |")
        exp_p, exp_m = EXPECTED_19[name]
        keys_f, keys_d = set(fixed.state_dict()), set(dyno.state_dict())
        ok &= check(f"{name}: params and conv MACs == research/hrnet_count.py (19 classes)", pf == exp_p and mf == exp_m)
        ok &= check(f"{name}: analytic MACs by level == hook count", fixed.conv_macs(512, 512) == mf
                    and dyno.conv_macs(512, 512) == md)
        ok &= check(f"{name}: dynopool = fixed params + alphas, same keys apart from pools.*",
                    pd - na == pf and keys_d - keys_f == {f"pools.{n}.alpha" for n in dyno.pools}
                    and keys_f <= keys_d)
        ok &= check(f"{name}: official state_dict key names present", all(k in keys_f for k in OFFICIAL_KEYS))
        ok &= check(f"{name}: dynopool at initial alphas: same conv output shapes and MACs as fixed",
                    sf == sd and mf == md and yf.shape == yd.shape == (1, 19, 128, 128))
    # 21 classes (VOC): the head's last conv adds 2 * (720 + 1) for W48.
    p21 = sum(p.numel() for p in HRNet("w48", 21).parameters())
    ok &= check(f"w48 with 21 classes: {p21:,} params (= 19-class count + 1442)", p21 == EXPECTED_19["w48"][0] + 1442)

    # Sizes and gradients at a non-multiple-of-32 input in dynopool mode (sizes: round half to even vs ceil).
    m = HRNet("w18_small_v1", 8, "dynopool")
    xx = torch.randn(2, 3, 100, 75)
    y = m.train()(xx)
    sizes = {k: tuple(int(v) for v in s) for k, s in m.level_sizes(100, 75).items()}
    print(f"[INFO] 100x75 input, level sizes dynopool {sizes} vs fixed {fixed_level_sizes(100, 75)}")
    loss, now = gmacs_loss(m.gmacs_terms((100, 75)), lam=1e-3)
    (upsample_logits(y, (100, 75)).logsumexp(1).mean() + loss).backward()
    ok &= check("dynopool 100x75: logits at branch-0 size, every alpha gets a gradient",
                y.shape[-2:] == sizes[0] and all(a.grad is not None and a.grad.abs().sum() > 0 for a in m.alphas()),
                f"current GMACs {now:.4f}")

    # down='strided', up='centre' at the initial alphas on a multiple of 32 is the fixed model, and
    # still passes a gradient to every alpha (through the identity resizes' sizes).
    fixed = HRNet("w18_small_v1", 8, "fixed").eval()
    strided = HRNet("w18_small_v1", 8, "dynopool", down="strided", up="centre").eval()
    strided.load_state_dict(fixed.state_dict(), strict=False)
    xx = torch.randn(2, 3, 64, 96, dtype=torch.float64)
    fixed, strided = fixed.double(), strided.double()
    with torch.no_grad():
        err = (fixed(xx) - strided(xx)).abs().max().item()
    y = strided.train()(xx)
    (y.square().mean() + gmacs_loss(strided.gmacs_terms((64, 96)), lam=1e-3)[0]).backward()
    ok &= check("strided + centre at alpha 2 == fixed (64x96), every alpha gets a gradient",
                err < 1e-12 and all(a.grad is not None and a.grad.abs().sum() > 0 for a in strided.alphas()),
                f"max |difference| {err:.1e}")
    return ok


if __name__ == "__main__":
    torch.set_num_threads(2)
    all_ok = self_check()
    print("ALL PASS" if all_ok else "SOME CHECKS FAILED")
    raise SystemExit(0 if all_ok else 1)
