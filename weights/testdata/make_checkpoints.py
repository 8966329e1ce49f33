"""Writes the small checkpoint fixtures the weights tests read, and checkpoints.json with what
PyTorch itself reads from them (names, shapes, values in row-major order, classes, palette).
Run: /usr/bin/python3 make_checkpoints.py   (Debian's PyTorch 1.13 and numpy)

  mmcv_legacy.pth    legacy format (_use_new_zipfile_serialization=False): mmseg 0.x's
                     {meta, state_dict, optimizer}, numpy scalars in meta, float16/64, bfloat16,
                     int64 buffers, a transposed tensor saved as is, two views of one storage
  mmengine_zip.pth   zip format: mmseg 1.x's {meta: {dataset_meta}, state_dict, message_hub,
                     optimizer, param_schedulers}; message_hub holds a HistoryBuffer (a stand-in
                     class with mmengine's module and name) with numpy array attributes
  official_p4.pth    zip format, pickle protocol 4: HRNet-Semantic-Segmentation's resume file
                     {epoch, best_mIoU, state_dict, optimizer}
"""
import json, os, sys, types
from collections import OrderedDict

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)


class HistoryBuffer:
    """Stands for mmengine.logging.history_buffer.HistoryBuffer, which the reader does not know."""
    def __init__(self, log, count, max_length):
        self._log_history = np.array(log, dtype=np.float64)
        self._count_history = np.array(count, dtype=np.int64)
        self.max_length = max_length


# pickle finds a class by module and name: make it look installed under mmengine's name.
HistoryBuffer.__module__ = 'mmengine.logging.history_buffer'
for name in ['mmengine', 'mmengine.logging', 'mmengine.logging.history_buffer']:
    sys.modules[name] = types.ModuleType(name)
sys.modules['mmengine.logging.history_buffer'].HistoryBuffer = HistoryBuffer


def small(*shape, dtype=torch.float32):
    """Values exact in float16 and bfloat16: k/8 for small k."""
    n = int(np.prod(shape)) if shape else 1
    return (torch.arange(n, dtype=torch.float64) / 8 - 1).reshape(shape).to(dtype)


def net():
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.BatchNorm2d(2))
    with torch.no_grad():
        m[0].weight.copy_(small(2, 3, 1, 1))
        m[0].bias.copy_(torch.tensor([0.5, -0.25]))
        m[1].running_mean.copy_(torch.tensor([0.125, 2]))
    m[1].num_batches_tracked += 7
    return m


def describe(path, state_dict, classes=None, palette=None):
    tensors, integer = {}, []
    for k, v in state_dict.items():
        if v.is_floating_point():
            tensors[k] = {'shape': list(v.shape), 'dtype': str(v.dtype), 'contiguous': v.is_contiguous(),
                          'values': v.double().flatten().tolist()}
        else:
            integer.append(k)
    return {'tensors': tensors, 'integer': sorted(integer), 'classes': classes, 'palette': palette,
            'size': os.path.getsize(path)}


out = {}

# mmcv (mmseg 0.x), legacy format.
base = small(4, 3)
sd = OrderedDict()
sd['backbone.conv.weight'] = small(2, 3, 1, 1)
sd['backbone.bn.running_mean'] = torch.tensor([0.5, -1.5])
sd['backbone.bn.num_batches_tracked'] = torch.tensor(12)
sd['decode_head.half'] = small(3, dtype=torch.float16)
sd['decode_head.double'] = small(2, 2, dtype=torch.float64)
sd['decode_head.bf16'] = small(2, dtype=torch.bfloat16)
sd['decode_head.transposed'] = small(2, 3).t()             # strides (1, 3), saved as is
sd['decode_head.rows'] = base[1:3]                          # offset 3 into base's storage
sd['decode_head.column'] = base[:, 1]                       # strided view of the same storage
sd['decode_head.labels'] = torch.tensor([[1, 2], [3, 4]], dtype=torch.int32)
sd['decode_head.mask'] = torch.tensor([True, False])
assert sd['decode_head.rows'].storage_offset() == 3
classes = ('background', 'cat', 'dog')
palette = [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
ckpt = {
    'meta': {'mmseg_version': '0.5.0', 'CLASSES': classes, 'PALETTE': palette,
             'seed': np.int64(0), 'x': np.float32(0.5), 'epoch': 3, 'iter': 120,
             'hook_msgs': {'last_ckpt': 'work_dirs/x/iter_120.pth'}},
    'state_dict': sd,
    'optimizer': {'state': {0: {'momentum_buffer': small(2, 3, 1, 1)}},
                  'param_groups': [{'lr': 0.01, 'momentum': 0.9, 'params': [0]}]},
}
path = os.path.join(here, 'mmcv_legacy.pth')
torch.save(ckpt, path, _use_new_zipfile_serialization=False)
back = torch.load(path)
assert all(torch.equal(back['state_dict'][k], v) for k, v in sd.items())
out['mmcv_legacy.pth'] = describe(path, sd, list(classes), palette)
out['mmcv_legacy.pth']['container'] = 'mmcv'

# mmengine (mmseg 1.x), zip format.
m = net()
dataset_meta = {'classes': ('road', 'sky'), 'palette': [[128, 64, 128], [70, 130, 180]]}
ckpt = {
    'meta': {'mmengine_version': '0.7.0', 'dataset_meta': dataset_meta, 'seed': np.int64(42),
             'experiment_name': 'fixture', 'time': '20230101_000000', 'epoch': 1, 'iter': 10},
    'state_dict': m.state_dict(),
    'message_hub': {'log_scalars': {'train/loss': HistoryBuffer([0.5, 0.25], [1, 1], 3)},
                    'runtime_info': {'epoch': 1, 'iter': 10, 'dataset_meta': dataset_meta},
                    'resumed_keys': {'epoch': True, 'iter': True}},
    'optimizer': {'state': {0: {'momentum_buffer': torch.ones(2, 3, 1, 1)}},
                  'param_groups': [{'lr': 0.01, 'params': [0, 1, 2, 3]}]},
    'param_schedulers': [{'eta_min': 1e-4, 'power': 0.9, '_last_lr': [0.01]}],
}
path = os.path.join(here, 'mmengine_zip.pth')
torch.save(ckpt, path)
out['mmengine_zip.pth'] = describe(path, m.state_dict(), list(dataset_meta['classes']), dataset_meta['palette'])
out['mmengine_zip.pth']['container'] = 'mmengine'

# HRNet-Semantic-Segmentation's resume file (FullModel's "model." prefix), pickle protocol 4.
sd = OrderedDict(('model.' + k, v) for k, v in net().state_dict().items())
ckpt = {'epoch': 5, 'best_mIoU': 0.625, 'state_dict': sd, 'optimizer': {'state': {}, 'param_groups': []}}
path = os.path.join(here, 'official_p4.pth')
torch.save(ckpt, path, pickle_protocol=4)
out['official_p4.pth'] = describe(path, sd)
out['official_p4.pth']['container'] = 'official'

with open(os.path.join(here, 'checkpoints.json'), 'w') as f:
    json.dump(out, f, indent=1)
for k, v in out.items():
    print(k, v['size'], 'bytes')
