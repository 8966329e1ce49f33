"""Writes hrnet_tiny_fixed.pth: the golden w18_small_v1 weights (hrnet/testdata/hrnet_tiny_model.json)
loaded into the reference HRNet and saved with torch.save as float16 (exact for these weights).
Run: SEG_REFERENCE=../../tools/reference /usr/bin/python3 make_fixture.py hrnet_tiny_fixed.pth"""
import json, os, sys

import torch
sys.path.insert(0, os.environ.get('SEG_REFERENCE', '../../tools/reference'))
from hrnet import HRNet
from golden import load_tensor
here = os.path.dirname(os.path.abspath(__file__))
spec = json.load(open(os.path.join(here, '../../hrnet/testdata/hrnet_tiny_model.json')))
state = {k: load_tensor(v, torch.int64 if "int8_b64" not in v else torch.float32) for k, v in spec["weights"].items()}
model = HRNet(spec["config"], spec["num_classes"], "fixed")
model.load_state_dict(state)
sd = model.state_dict()
half = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
exact = all(torch.equal(half[k].float(), v) for k, v in sd.items() if v.is_floating_point())
print("float16 exact:", exact)
out = sys.argv[1]
torch.save(half, out)
print(os.path.getsize(out))
x = load_tensor(spec["input"])
with torch.no_grad():
    y = model.eval()(x)
want = json.load(open(os.path.join(here, '../../hrnet/testdata/hrnet_tiny_fixed.json')))
print("matches logits_eval:", (y - load_tensor(want["logits_eval"])).abs().max().item())
