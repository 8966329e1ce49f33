"""Writes bilinear_align_corners.json: F.interpolate(mode='bilinear', align_corners=True) cases in
the schema of bilinear.json (tools/reference/golden.py), each with "align_corners": true.
Run: /usr/bin/python3 make_bilinear_aligned.py bilinear_align_corners.json"""
import json
import sys

import torch
import torch.nn.functional as F


def tensor(t):
    vals = t.detach().to(torch.float32).reshape(-1).tolist()
    return {"shape": list(t.shape), "data": [float("%.9g" % v) for v in vals]}


torch.manual_seed(0)
cases = []
# up, down, non-integer ratios both ways, to one pixel and from one pixel
for shape, size in [((1, 2, 5, 7), (9, 4)), ((2, 3, 8, 8), (16, 16)), ((1, 2, 16, 16), (8, 8)),
                    ((1, 1, 6, 10), (3, 7)), ((1, 2, 2, 2), (8, 8)), ((1, 1, 19, 25), (75, 100)),
                    ((1, 1, 4, 5), (1, 1)), ((1, 1, 1, 1), (3, 2))]:
    x = torch.randn(shape, requires_grad=True)
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    g = torch.randn_like(y)
    dx, = torch.autograd.grad(y, x, g)
    cases.append({"name": f"{'x'.join(map(str, shape))}_to_{size[0]}x{size[1]}_aligned", "x": tensor(x),
                  "out_size": list(size), "align_corners": True, "grad_y": tensor(g), "y": tensor(y),
                  "dx": tensor(dx)})
with open(sys.argv[1], "w") as f:
    json.dump({"about": "F.interpolate bilinear, align_corners=True (torch %s)" % torch.__version__,
               "cases": cases}, f, separators=(",", ":"))
