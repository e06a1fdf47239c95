#!/usr/bin/python3
"""Golden outputs of the model zoo from PyTorch (float64, CPU).

Regenerate: /usr/bin/python3 test/models/make_golden.py  (Debian python3-torch 1.13; ~7 s;
deterministic, byte-identical output)
Writes test/models/golden_models.json, read by test/models/golden.test.ts.

The PyTorch modules below are written from method.md §0 and the IB-RAR architecture
descriptions; their module names give the same state_dict keys as the reference code, so
the test also checks ibrar's parameter names and PyTorch layouts. Weights and inputs are
not random: both sides compute them from the same exact integer hash (see `param_values`), so
the JSON only holds outputs. Each case also records `observedF32Gap`, how far PyTorch's own
float32 run lands from float64 (max |gap| / rms); the TS test allows 10× that (≥ 3e-4).
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DTYPE = torch.float64


def scaled(c, width):
    return max(1, int(math.floor(c * width + 0.5)))


# ---------------------------------------------------------------- formulas shared with TS
def name_seed(name):
    return sum((j + 1) * ord(ch) for j, ch in enumerate(name)) % 1000


def hash_uniform(seed, n):
    """Exact 32-bit integer hash of (seed, i) → [0, 1); the same bits in JavaScript."""
    m = np.uint64(0xFFFFFFFF)
    h = (np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B1) + np.uint64((seed + 1) * 0x85EBCA77)) & m
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x2C1B3C6D)) & m
    h ^= h >> np.uint64(12)
    h = (h * np.uint64(0x297A2D39)) & m
    h ^= h >> np.uint64(15)
    return torch.from_numpy(h.astype(np.float64) / 4294967296.0)


def param_values(name, shape):
    """Deterministic parameter value in PyTorch layout (flattened row-major)."""
    n = 1
    for d in shape:
        n *= d
    b = 2 * hash_uniform(name_seed(name), n) - 1  # U(-1, 1)-like
    leaf = name.rsplit('.', 1)[1]
    if leaf == 'weight' and len(shape) >= 2:  # conv or linear weight, PyTorch's init range
        v = b / math.sqrt(n // shape[0])
    elif leaf == 'bias':
        v = 0.1 * b
    elif leaf == 'weight':  # BatchNorm gamma
        v = 1.0 + 0.2 * b
    elif leaf == 'running_mean':
        v = 0.1 * b
    elif leaf == 'running_var':
        v = 1.0 + 0.5 * b.abs()
    else:
        raise ValueError(name)
    return v.reshape(shape)


def input_values(shape):  # NCHW, in [0, 1)
    n = 1
    for d in shape:
        n *= d
    return hash_uniform(1001, n).reshape(shape).to(DTYPE)


def upstream(n, k):  # d loss / d logits
    return (2 * hash_uniform(1002, n * k) - 1).reshape(n, k).to(DTYPE)


# ---------------------------------------------------------------- architectures
class Vgg16(nn.Module):
    BLOCKS = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]

    def __init__(self, width, in_ch, classes):
        super().__init__()
        c = in_ch
        for b, ws in enumerate(self.BLOCKS):
            seq = []
            for w in ws:
                o = scaled(w, width)
                seq.append(nn.Sequential(nn.Conv2d(c, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()))
                c = o
            setattr(self, 'layer%d' % (b + 1), nn.Sequential(*seq))
        fc = scaled(4096, width)
        self.layer6 = nn.Sequential(nn.Linear(c, fc), nn.BatchNorm1d(fc), nn.ReLU())
        self.layer7 = nn.Sequential(nn.Linear(fc, fc), nn.BatchNorm1d(fc), nn.ReLU())
        self.layer8 = nn.Linear(fc, classes)

    def forward(self, x, mask=None):
        taps = {}
        h = x
        for b in range(5):
            h = getattr(self, 'layer%d' % (b + 1))(h)
            if h.shape[2] >= 2 and h.shape[3] >= 2:  # ibrar skips pools below 2×2
                h = F.max_pool2d(h, 2, 2)
            if b == 4 and mask is not None:
                h = h * mask.view(1, -1, 1, 1)
            taps['block%d' % (b + 1)] = h
        f = self.layer6(h.mean(dim=(2, 3)))
        taps['fc1'] = f
        f = self.layer7(f)
        taps['fc2'] = f
        return self.layer8(f), taps


class BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Resnet18(nn.Module):
    def __init__(self, width, in_ch, classes):
        super().__init__()
        stem = scaled(64, width)
        self.conv1 = nn.Conv2d(in_ch, stem, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        c = stem
        for s, (planes, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
            p = scaled(planes, width)
            blocks = []
            for i in range(2):
                blocks.append(BasicBlock(c, p, stride if i == 0 else 1))
                c = p
            setattr(self, 'layer%d' % (s + 1), nn.Sequential(*blocks))
        self.linear = nn.Linear(c, classes)

    def forward(self, x, mask=None):
        taps = {}
        h = F.relu(self.bn1(self.conv1(x)))
        taps['conv1'] = h
        for s in range(4):
            for i, blk in enumerate(getattr(self, 'layer%d' % (s + 1))):
                h = blk(h)
                taps['layer%d.%d' % (s + 1, i)] = h
        p = h.mean(dim=(2, 3))
        if mask is not None:
            p = p * mask.view(1, -1)
        taps['pool'] = p
        return self.linear(p), taps


class WideBasic(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, planes, 3, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride=stride, bias=True))

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))  # dropout 0 here
        out = self.conv2(F.relu(self.bn2(out)))
        return out + self.shortcut(x)


class Wrn(nn.Module):
    def __init__(self, depth, k, in_ch, classes):
        super().__init__()
        n = (depth - 4) // 6
        self.n = n
        self.conv1 = nn.Conv2d(in_ch, 16, 3, padding=1, bias=True)
        c = 16
        for g, (planes, stride) in enumerate([(16 * k, 1), (32 * k, 2), (64 * k, 2)]):
            blocks = []
            for i in range(n):
                blocks.append(WideBasic(c, planes, stride if i == 0 else 1))
                c = planes
            setattr(self, 'layer%d' % (g + 1), nn.Sequential(*blocks))
        self.bn1 = nn.BatchNorm2d(c, momentum=0.9)
        self.linear = nn.Linear(c, classes)

    def forward(self, x, mask=None):
        taps = {}
        h = self.conv1(x)
        taps['conv1'] = h
        for g in range(3):
            for i, blk in enumerate(getattr(self, 'layer%d' % (g + 1))):
                h = blk(h)
                if g == 1 and i == self.n - 1 and mask is not None:
                    h = h * mask.view(1, -1, 1, 1)
                taps['layer%d.%d' % (g + 1, i)] = h
        p = F.relu(self.bn1(h)).mean(dim=(2, 3))
        taps['pool'] = p
        return self.linear(p), taps


class SmallCnn(nn.Module):
    def __init__(self, width, in_ch, classes):
        super().__init__()
        c = in_ch
        for i, w in enumerate([32, 64, 128]):
            o = scaled(w, width)
            setattr(self, 'conv%d' % (i + 1), nn.Conv2d(c, o, 3, padding=1, bias=False))
            setattr(self, 'bn%d' % (i + 1), nn.BatchNorm2d(o))
            c = o
        hidden = scaled(128, width)
        self.fc1 = nn.Linear(c, hidden)
        self.linear = nn.Linear(hidden, classes)

    def forward(self, x, mask=None):
        taps = {}
        h = x
        for i in range(2):
            h = F.relu(getattr(self, 'bn%d' % (i + 1))(getattr(self, 'conv%d' % (i + 1))(h)))
            if h.shape[2] >= 2 and h.shape[3] >= 2:
                h = F.max_pool2d(h, 2, 2)
            taps['conv%d' % (i + 1)] = h
        p = F.relu(self.bn3(self.conv3(h))).mean(dim=(2, 3))
        if mask is not None:
            p = p * mask.view(1, -1)
        taps['conv3'] = p
        f = F.relu(self.fc1(p))
        taps['fc1'] = f
        return self.linear(f), taps


# ---------------------------------------------------------------- cases
def summary(t):
    """Layout-free summary of a tap: sum, sum of squares, and all channels of one position."""
    probe = t[1, :, 0, 0] if t.dim() == 4 else t[1, :]
    return {
        'shape': list(t.shape),
        'sum': t.sum().item(),
        'sumsq': (t * t).sum().item(),
        'probe': probe.tolist(),
    }


def set_params(model):
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith('num_batches_tracked'):
                continue
            t.copy_(param_values(name, list(t.shape)))


def run_case(case, model):
    model = model.to(DTYPE)
    n, h, w, c = case['batch'], *case['inputShape']
    x = input_values([n, c, h, w])
    names = [k for k in model.state_dict() if not k.endswith('num_batches_tracked')]
    out = {
        'case': case,
        'params': [{'name': k, 'shape': list(model.state_dict()[k].shape)} for k in names],
        'trainableCount': sum(p.numel() for p in model.parameters()),
    }
    mask_c = case['maskChannels']

    # eval: running statistics from the formula
    set_params(model)
    model.eval()
    with torch.no_grad():
        logits, taps = model(x)
        out['eval'] = {'logits': logits.tolist(), 'taps': {k: summary(v) for k, v in taps.items()}}
        mask = torch.ones(mask_c['channels'])
        mask[mask_c['zero']] = 0
        mlogits, mtaps = model(x, mask)
        out['evalMasked'] = {'logits': mlogits.tolist(), 'maskTap': summary(mtaps[case['maskTap']])}

    # train: batch statistics, running-stat update, gradients of sum(logits * R)
    set_params(model)
    model.train()
    xg = x.clone().requires_grad_(True)
    logits, taps = model(xg)
    loss = (logits * upstream(*logits.shape)).sum()
    loss.backward()
    sd = model.state_dict()
    bn_names = sorted({k.rsplit('.', 1)[0] for k in names if k.endswith('running_mean')})
    chosen = [bn_names[0], bn_names[-1]]
    grads = {}
    pnames = [k for k, _ in model.named_parameters()]
    for k in [pnames[0], pnames[1], pnames[-2], pnames[-1]]:
        g = dict(model.named_parameters())[k].grad.reshape(-1)
        grads[k] = {'head': g[:8].tolist(), 'sum': g.sum().item(), 'sumsq': (g * g).sum().item()}
    out['train'] = {
        'logits': logits.tolist(),
        'taps': {k: summary(v.detach()) for k, v in taps.items()},
        'running': {b: {'running_mean': sd[b + '.running_mean'].tolist(), 'running_var': sd[b + '.running_var'].tolist()} for b in chosen},
        'inputGrad': summary(xg.grad),
        'paramGrads': grads,
    }
    return out


def leaves(o, prefix=''):
    """(path, flat values) for every list of numbers in a result."""
    if isinstance(o, dict):
        for k, v in o.items():
            yield from leaves(v, prefix + '.' + k if prefix else k)
    elif isinstance(o, list) and o and isinstance(o[0], list):
        yield prefix, [x for row in o for x in row]
    elif isinstance(o, list) and o and isinstance(o[0], (int, float)):
        yield prefix, o
    elif isinstance(o, float):
        yield prefix, [o]


def f32_gap(case, make):
    """max |f32 − f64| / rms(f64) over every output of a case, computed by PyTorch itself."""
    global DTYPE
    ref = {k: v for k, v in run_case(case, make()).items() if k in ('eval', 'evalMasked', 'train')}
    DTYPE = torch.float32
    try:
        got = {k: v for k, v in run_case(case, make()).items() if k in ('eval', 'evalMasked', 'train')}
    finally:
        DTYPE = torch.float64
    want = dict(leaves(ref))
    worst = 0.0
    for path, g in leaves(got):
        w = want[path]
        rms = math.sqrt(sum(x * x for x in w) / len(w))
        if rms < 1e-12:  # exactly-zero gradients (conv biases before BatchNorm)
            continue
        worst = max(worst, max(abs(a - b) for a, b in zip(g, w)) / rms)
    return worst


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    specs = [
        ({'arch': 'vgg16', 'width': 1 / 16, 'inputShape': [32, 32, 3], 'batch': 4, 'numClasses': 10, 'maskTap': 'block5'},
         lambda: Vgg16(1 / 16, 3, 10)),
        ({'arch': 'resnet18', 'width': 1 / 16, 'inputShape': [16, 16, 3], 'batch': 4, 'numClasses': 7, 'maskTap': 'pool'},
         lambda: Resnet18(1 / 16, 3, 7)),
        ({'arch': 'wrn', 'depth': 10, 'widen': 1, 'inputShape': [16, 16, 3], 'batch': 4, 'numClasses': 5, 'maskTap': 'layer2.0'},
         lambda: Wrn(10, 1, 3, 5)),
        ({'arch': 'small-cnn', 'width': 0.25, 'inputShape': [28, 28, 1], 'batch': 4, 'numClasses': 10, 'maskTap': 'conv3'},
         lambda: SmallCnn(0.25, 1, 10)),
    ]
    cases = []
    for spec, make in specs:
        spec['maskChannels'] = {'channels': 32, 'zero': [0, 3, 31]}  # every mask tap has 32 channels here
        out = run_case(spec, make())
        out['observedF32Gap'] = f32_gap(spec, make)
        cases.append(out)
        print(spec['arch'], 'PyTorch float32 vs float64: max |gap| / rms =', '%.1e' % out['observedF32Gap'])
    meta = {
        'generator': 'test/models/make_golden.py',
        'torch': torch.__version__,
        'dtype': 'float64',
        'formulas': 'hash_uniform in make_golden.py / test/models/helpers.ts',
        'observedF32Gap': 'max |float32 − float64| / rms(float64) of PyTorch itself over all outputs of a case',
    }
    path = os.path.join(outdir, 'golden_models.json')
    with open(path, 'w') as f:
        json.dump({'meta': meta, 'cases': cases}, f, separators=(',', ':'))
    print('wrote', path, os.path.getsize(path), 'bytes')


if __name__ == '__main__':
    main()
