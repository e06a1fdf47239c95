#!/usr/bin/env python3
"""PyTorch reference timings for `npm run bench` (never a runtime dependency of ibrar).

Reads a JSON spec on stdin: {"threads": N, "reps": R, "warmup": W, "rows": [{"network": ..., "step": ..., "batch": B}]}
and prints one JSON object {"torch": version, "threads": N, "results": [{"network", "step", "batch", "median_ms", "img_s"}]}.
The networks mirror src/models (VGG16 of the IB-RAR code with a width multiplier, the small CNN).
"""
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def scaled(c, w):
    return max(1, round(c * w))


class VGG16(nn.Module):
    BLOCKS = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]

    def __init__(self, width=1.0, n_cls=10, in_ch=3):
        super().__init__()
        self.blocks = nn.ModuleList()
        c = in_ch
        for widths in self.BLOCKS:
            layers = []
            for w in widths:
                o = scaled(w, width)
                layers += [nn.Conv2d(c, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]
                c = o
            layers.append(nn.MaxPool2d(2, 2))
            self.blocks.append(nn.Sequential(*layers))
        fc = scaled(4096, width)
        self.fc1 = nn.Sequential(nn.Linear(c, fc), nn.BatchNorm1d(fc), nn.ReLU(inplace=True))
        self.fc2 = nn.Sequential(nn.Linear(fc, fc), nn.BatchNorm1d(fc), nn.ReLU(inplace=True))
        self.out = nn.Linear(fc, n_cls)

    def forward(self, x):
        taps = []
        for b in self.blocks:
            x = b(x)
            taps.append(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        x = self.fc1(x)
        taps.append(x)
        x = self.fc2(x)
        taps.append(x)
        return self.out(x), taps


class SmallCNN(nn.Module):
    def __init__(self, width=1.0, n_cls=10, in_ch=3):
        super().__init__()
        w = [scaled(c, width) for c in (32, 64, 128)]
        self.c1 = nn.Sequential(nn.Conv2d(in_ch, w[0], 3, padding=1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.c2 = nn.Sequential(nn.Conv2d(w[0], w[1], 3, padding=1, bias=False), nn.BatchNorm2d(w[1]), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.c3 = nn.Sequential(nn.Conv2d(w[1], w[2], 3, padding=1, bias=False), nn.BatchNorm2d(w[2]), nn.ReLU(inplace=True))
        h = scaled(128, width)
        self.fc1 = nn.Linear(w[2], h)
        self.out = nn.Linear(h, n_cls)

    def forward(self, x):
        a = self.c1(x)
        b = self.c2(a)
        c = F.adaptive_avg_pool2d(self.c3(b), 1).flatten(1)
        d = F.relu(self.fc1(c))
        return self.out(d), [a, b, c, d]


def make(network):
    if network == "small-cnn":
        return SmallCNN(1.0), [1, 2, 3]
    if network == "vgg16-w0.25":
        return VGG16(0.25), [4, 5, 6]
    if network == "vgg16":
        return VGG16(1.0), [4, 5, 6]
    raise SystemExit(f"unknown network {network}")


# --- normalised-CCA HSIC, the authors' formula (docs/method.md §1.1), float32 as they run it
def gaussian_kernel(z, sigma=5.0):
    z = z.flatten(1)
    d = z.shape[1]
    r = (z * z).sum(1, keepdim=True)
    dist = (r - 2 * z @ z.t() + r.t()).abs()
    return torch.exp(-dist / (2 * sigma * sigma * d))


def linear_kernel(z):
    z = z.flatten(1)
    return z @ z.t()


def hsic_cca(ka, kb, eps=1e-5):
    m = ka.shape[0]
    h = torch.eye(m) - 1.0 / m
    kac, kbc = ka @ h, kb @ h
    ra = kac @ torch.inverse(kac + eps * m * torch.eye(m))
    rb = kbc @ torch.inverse(kbc + eps * m * torch.eye(m))
    return (ra * rb.t()).sum()


def ib_terms(taps, layers, x, y1h, alpha=0.1, beta=1.0):
    kx = gaussian_kernel(x)
    ky = linear_kernel(y1h)
    total = 0.0
    for l in layers:
        kt = gaussian_kernel(taps[l])
        total = total + alpha * hsic_cca(kt, kx) - beta * hsic_cca(kt, ky)
    return total


def pgd(model, x, y, eps=0.03, steps=10):
    alpha = eps / steps * 2.3
    xa = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1).detach()
    for _ in range(steps):
        xa.requires_grad_(True)
        loss = F.cross_entropy(model(xa)[0], y)
        (g,) = torch.autograd.grad(loss, xa)
        xa = torch.min(torch.max(xa.detach() + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)
    return xa.detach()


def run_row(row, reps, warmup):
    torch.manual_seed(0)
    model, robust = make(row["network"])
    b = row["batch"]
    x = torch.rand(b, 3, 32, 32)
    y = torch.randint(0, 10, (b,))
    y1h = F.one_hot(y, 10).float()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    step = row["step"]
    # Attack rows label each input with the model's own prediction (as the ibrar side does).
    model.eval()
    with torch.no_grad():
        y_pred = model(x)[0].argmax(1)

    def once():
        if step == "forward":
            model.eval()
            with torch.no_grad():
                model(x)
        elif step in ("ce", "ibrar"):
            model.train()
            logits, taps = model(x)
            loss = F.cross_entropy(logits, y)
            if step == "ibrar":
                loss = loss + ib_terms(taps, robust, x, y1h)
            opt.zero_grad()
            loss.backward()
            opt.step()
        elif step == "pgd-at":
            model.eval()
            xa = pgd(model, x, y)
            model.train()
            loss = F.cross_entropy(model(xa)[0], y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        elif step == "pgd10-attack":
            model.eval()
            pgd(model, x, y_pred)
        elif step == "grad100-attack":
            model.eval()
            pgd(model, x, y_pred, steps=100)
        else:
            raise SystemExit(f"unknown step {step}")

    for _ in range(warmup):
        once()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        once()
        times.append((time.perf_counter() - t0) * 1000)
    med = statistics.median(times)
    return {"network": row["network"], "step": step, "batch": b, "median_ms": med, "img_s": b / (med / 1000), "times_ms": times}


def blas_library():
    """The shared library behind Debian's libblas.so.3 (generic BLAS_INFO builds load it at run time)."""
    import glob
    import os
    for path in glob.glob("/usr/lib/*/libblas.so.3") + ["/usr/lib/libblas.so.3"]:
        if os.path.exists(path):
            return os.path.realpath(path)
    return "unknown"


def main():
    spec = json.load(sys.stdin)
    torch.set_num_threads(spec["threads"])
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "blas": torch.__config__.show().split("BLAS_INFO=")[-1].split(",")[0] if "BLAS_INFO" in torch.__config__.show() else "unknown", "blas_library": blas_library(), "results": []}
    for row in spec["rows"]:
        out["results"].append(run_row(row, spec["reps"], spec["warmup"]))
        print(json.dumps({"progress": row}), file=sys.stderr, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
