"""Writes the importer's fixtures: the golden w18_small_v1 weights (hrnet/testdata/hrnet_tiny_model.json,
8 classes) in each family's checkpoint layout, and the logits of each family's own PyTorch forward.

  mmseg_0x.pth     mmseg 0.x: legacy (pre-1.6) pickle, {'meta': {..., numpy values}, 'state_dict': backbone.* /
                   decode_head.* keys, no head conv bias}
  mmseg_1x.pth     mmseg 1.x (mmengine): zip, meta.dataset_meta, message_hub holding an mmengine HistoryBuffer
                   and numpy arrays, an optimizer state
  official_abn.pth official HRNet-Semantic-Segmentation trained with InPlaceABN: zip, 'model.' prefix,
                   loss.criterion.weight, no num_batches_tracked, some BN weights negative
  import_golden.json  input (1, 3, 75, 100) and the logits of every family's forward on it:
      mmseg           mmseg's forward (two-step fuse up-sampling, no head conv bias), 1/4 resolution
      mmseg_ori       mmseg's logits path: 1/4 -> network input (75x100) -> original image (45x60)
      mmseg_slide     mmseg's slide inference, crop 80x80, stride 40x40 (windows larger than the image are
                      not padded: 75x80 here), logits at 75x100: projection, norm, argmax and every 7th value
      official_abn    InPlaceABN semantics (scale |gamma| + 1e-5), align_corners=True, 1/4 resolution
      official_abn_bn the same weights read as plain BN (gamma as stored), align_corners=True
      official        official forward of the weights as weights/testdata/hrnet_tiny_fixed.pth holds them
                      (plain BN, one-step fuse), align_corners=False
      official_aligned  the same with align_corners=True
All float tensors are float16 in the files (exact for these weights). Run from this directory:
  SEG_REFERENCE=../../tools/reference /usr/bin/python3 make_fixtures.py
"""
import collections
import json
import math
import os
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.environ.get("SEG_REFERENCE", "../../tools/reference"))
import hrnet as ref  # noqa: E402
from golden import load_tensor  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
spec = json.load(open(os.path.join(here, "../../hrnet/testdata/hrnet_tiny_model.json")))
state = {k: load_tensor(v, torch.int64 if "int8_b64" not in v else torch.float32) for k, v in spec["weights"].items()}
CLASSES = ("background", "road", "person", "car", "tree", "sky", "building", "water")
PALETTE = [[0, 0, 0], [128, 64, 128], [220, 20, 60], [0, 0, 142], [107, 142, 35], [70, 130, 180], [70, 70, 70],
           [0, 80, 100]]


def tensor(t):
    vals = t.detach().to(torch.float32).reshape(-1).tolist()
    return {"shape": list(t.shape), "data": [float("%.9g" % v) for v in vals]}


def model(weights):
    m = ref.HRNet(spec["config"], spec["num_classes"], "fixed")
    m.load_state_dict(weights)
    return m.eval()


def half(sd):
    return collections.OrderedDict((k, v.half() if v.is_floating_point() else v) for k, v in sd.items())


# --- the forwards -------------------------------------------------------------------------------
ALIGN = False


def up(self, x, src, dst, target):
    return F.interpolate(x, size=target.shape[-2:], mode="bilinear", align_corners=ALIGN)


ref.Resizer.up = up
official_module_forward = ref.HighResolutionModule.forward


def mmseg_module_forward(self, xs, rs):
    """mmseg's HRModule: for j > i, Upsample(x2^(j-i)) inside the fuse layer, then resize to branch i's size."""
    xs = [branch(x) for branch, x in zip(self.branches, xs)]
    out = []
    for i, row in enumerate(self.fuse_layers):
        y = None
        for j, path in enumerate(row):
            if j == i:
                z = xs[j]
            elif j > i:
                z = F.interpolate(path(xs[j]), scale_factor=2 ** (j - i), mode="bilinear", align_corners=False)
                z = F.interpolate(z, size=xs[i].shape[2:], mode="bilinear", align_corners=False)
            else:
                z = xs[j]
                for step in path:
                    z = step(z)
            y = z if y is None else y + z
        out.append(F.relu(y))
    return out


def run(m, x, mmseg=False, align=False):
    global ALIGN
    ALIGN = align
    ref.HighResolutionModule.forward = mmseg_module_forward if mmseg else official_module_forward
    with torch.no_grad():
        return m(x)


def mmseg_slide(m, img, crop, stride, classes):
    """mmseg EncoderDecoder.slide_inference (1.x): windows are not padded; each window's logits go
    1/4 -> window size; logits summed and divided by the count."""
    h_stride, w_stride = stride
    h_crop, w_crop = crop
    _, _, h_img, w_img = img.shape
    h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
    preds = img.new_zeros((1, classes, h_img, w_img))
    count = img.new_zeros((1, 1, h_img, w_img))
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y1, x1 = h_idx * h_stride, w_idx * w_stride
            y2, x2 = min(y1 + h_crop, h_img), min(x1 + w_crop, w_img)
            y1, x1 = max(y2 - h_crop, 0), max(x2 - w_crop, 0)
            crop_img = img[:, :, y1:y2, x1:x2]
            logits = run(m, crop_img, mmseg=True)
            logits = F.interpolate(logits, size=crop_img.shape[2:], mode="bilinear", align_corners=False)
            preds[:, :, y1:y2, x1:x2] += logits
            count[:, :, y1:y2, x1:x2] += 1
    return preds / count


def proj(t):
    flat = t.detach().double().reshape(-1)
    i = torch.arange(flat.numel(), dtype=torch.float64)
    return float((flat * torch.sin(0.7 * i + 0.3)).sum().item())


# --- the files ----------------------------------------------------------------------------------
def mmseg_state(sd):
    out = collections.OrderedDict()
    for k, v in sd.items():
        if k.startswith("last_layer."):
            idx, rest = k[len("last_layer."):].split(".", 1)
            if idx == "0":
                if rest == "bias":
                    continue  # mmseg's ConvModule before a norm has no bias
                out["decode_head.convs.0.conv." + rest] = v
            elif idx == "1":
                out["decode_head.convs.0.bn." + rest] = v
            else:
                out["decode_head.conv_seg." + rest] = v
        else:
            out["backbone." + k] = v
    return out


# mmengine's HistoryBuffer, pickled under its real module and name (the reader must not know it).
history = types.ModuleType("mmengine.logging.history_buffer")
sys.modules["mmengine"] = types.ModuleType("mmengine")
sys.modules["mmengine.logging"] = types.ModuleType("mmengine.logging")
sys.modules["mmengine.logging.history_buffer"] = history


class HistoryBuffer:
    def __init__(self):
        self._log_history = np.array([0.5, 0.25], dtype=np.float64)
        self._count_history = np.array([1, 1])
        self.max_length = 1000000


HistoryBuffer.__module__ = "mmengine.logging.history_buffer"
HistoryBuffer.__qualname__ = "HistoryBuffer"
history.HistoryBuffer = HistoryBuffer


def main():
    torch.manual_seed(0)
    weights = dict(state)
    base = model(weights)
    sd = base.state_dict()

    # mmseg: the head's first conv has no bias, so its forward is the model's with that bias at 0.
    mm_weights = dict(sd)
    mm_weights["last_layer.0.bias"] = torch.zeros_like(sd["last_layer.0.bias"])
    mm = model(mm_weights)
    mstate = half(mmseg_state(sd))
    meta0 = {"mmseg_version": "0.5.0+b2724da", "config": "model = dict(type='EncoderDecoder', ...)",
             "CLASSES": CLASSES, "PALETTE": PALETTE, "seed": np.int64(0), "epoch": 1, "iter": 20000,
             "time": "Wed Jun 17 22:45:03 2020", "lr": np.float32(0.0001)}
    torch.save({"meta": meta0, "state_dict": mstate}, os.path.join(here, "mmseg_0x.pth"),
               _use_new_zipfile_serialization=False)
    meta1 = {"cfg": "model = dict(type='EncoderDecoder', ...)", "seed": np.int64(1234), "experiment_name": "fcn",
             "time": "20230405_120000", "mmengine_version": "0.7.0",
             "dataset_meta": {"classes": CLASSES, "palette": PALETTE}}
    hub = {"log_scalars": {"train/loss": HistoryBuffer()}, "runtime_info": {"iter": 20000, "epoch": np.int64(0)}}
    optim = {"state": {}, "param_groups": [{"lr": 0.0001, "momentum": 0.9, "params": [0, 1]}]}
    torch.save({"meta": meta1, "state_dict": mstate, "message_hub": hub, "optimizer": optim},
               os.path.join(here, "mmseg_1x.pth"))

    # official, InPlaceABN: every third BN weight negated; the ABN forward uses |gamma| + 1e-5.
    abn = dict(sd)
    bn_weights = sorted(k for k in sd if k.endswith(".weight") and k.replace(".weight", ".running_var") in sd)
    for k in bn_weights[::3]:
        abn[k] = -sd[k]
    abn_state = collections.OrderedDict(("model." + k, v) for k, v in half(abn).items()
                                        if not k.endswith("num_batches_tracked"))
    abn_state["loss.criterion.weight"] = torch.linspace(0.8, 1.2, spec["num_classes"]).half()
    torch.save({"epoch": 484, "best_mIoU": 0.5, "state_dict": abn_state}, os.path.join(here, "official_abn.pth"))
    abn_eff = dict(abn)
    for k in bn_weights:
        abn_eff[k] = abn[k].abs() + 1e-5

    x = torch.randn(1, 3, 75, 100)
    out = {"about": "importer fixtures (make_fixtures.py), torch %s" % torch.__version__, "input": tensor(x),
           "classes": list(CLASSES), "palette": PALETTE, "negated_bn": bn_weights[::3]}
    m1 = run(mm, x, mmseg=True)
    out["mmseg"] = tensor(m1)
    out["mmseg_direct_fuse"] = tensor(run(mm, x, mmseg=False))
    net_in = F.interpolate(m1, size=(75, 100), mode="bilinear", align_corners=False)
    out["mmseg_ori"] = tensor(F.interpolate(net_in, size=(45, 60), mode="bilinear", align_corners=False))
    slide = mmseg_slide(mm, x, (80, 80), (40, 40), spec["num_classes"])
    flat = slide.reshape(-1)
    out["mmseg_slide"] = {"shape": list(slide.shape), "proj": proj(slide), "norm": float(flat.double().norm()),
                          "argmax": slide.argmax(1).reshape(-1).tolist(), "every7": tensor(flat[::7])}
    out["official_abn"] = tensor(run(model(abn_eff), x, align=True))
    out["official_abn_bn"] = tensor(run(model(abn), x, align=True))
    out["official"] = tensor(run(base, x))
    out["official_aligned"] = tensor(run(base, x, align=True))
    d = out["official_aligned"]["data"]
    diff = max(abs(a - b) for a, b in zip(d, out["official"]["data"]))
    print("align_corners changes the logits by up to", diff)
    diff = (m1 - run(mm, x)).abs().max().item()
    print("mmseg's two-step fuse changes the logits by up to", diff)
    with open(os.path.join(here, "import_golden.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
    for n in ("mmseg_0x.pth", "mmseg_1x.pth", "official_abn.pth", "import_golden.json"):
        print(n, os.path.getsize(os.path.join(here, n)))


main()
