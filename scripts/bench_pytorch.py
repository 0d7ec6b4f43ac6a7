#!/usr/bin/env python3
"""PyTorch's side of scripts/bench-vs-pytorch.sh: the cases of `smoothlab bench models`
in PyTorch, measured the same way, written as JSON of the same shape.

Same models (MLP 784-512-512-10 with ReLU; LeNet-5 as src/model/lenet.rs builds it;
ResNet-20 as src/model/resnet.rs: option-A shortcuts, widths 16/32/64, BatchNorm), same
batch, optimisers, label smoothing (nn.CrossEntropyLoss(label_smoothing=0.1)) and thread
count, same step (forward, loss, backward, update, correct count kept on the device),
20 fixed random batches index-selected in a seeded order, warm-up, then the median of
several repetitions, each ending with one read of the running losses. Initialisation is
PyTorch's default: it does not change the speed. Denormals are not flushed (smoothlab
does not flush them either).
"""

import argparse
import json
import math
import os
import platform
import statistics
import time
import warnings

# torch warns at import when numpy is absent; nothing here needs numpy.
warnings.filterwarnings("ignore", message=".*Failed to initialize NumPy.*")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

CLASSES = 10
SMOOTHING = 0.1
DISTINCT_BATCHES = 20
CASES = ["mlp-sgd", "mlp-adamw", "lenet5", "resnet20"]


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 512),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, CLASSES),
        )

    def forward(self, x):
        return self.net(x)


class Lenet5(nn.Module):
    """conv 5x5 -> 6 (28x28 inputs padded by 2), ReLU, 2x2 max pool, conv 5x5 -> 16,
    ReLU, 2x2 max pool, linear 400 -> 120 -> 84 (ReLU) -> classes."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.head = nn.Linear(84, CLASSES)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2).flatten(1)
        h = F.relu(self.fc1(h))
        return self.head(F.relu(self.fc2(h)))


def conv3x3(inputs, outputs, stride):
    return nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)); the shortcut is option A:
    x[:, :, ::stride, ::stride] with the extra channels zero-padded, half before and
    half after."""

    def __init__(self, inputs, outputs, stride):
        super().__init__()
        self.conv1 = conv3x3(inputs, outputs, stride)
        self.norm1 = nn.BatchNorm2d(outputs, eps=1e-5, momentum=0.1)
        self.conv2 = conv3x3(outputs, outputs, 1)
        self.norm2 = nn.BatchNorm2d(outputs, eps=1e-5, momentum=0.1)
        self.stride = stride
        self.extra = outputs - inputs

    def forward(self, x):
        h = F.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        shortcut = x
        if self.stride != 1 or self.extra:
            shortcut = x[:, :, :: self.stride, :: self.stride]
            half = self.extra // 2
            shortcut = F.pad(shortcut, (0, 0, 0, 0, half, self.extra - half))
        return F.relu(h + shortcut)


class Resnet(nn.Module):
    """The CIFAR ResNet of He et al. 2016 (section 4.2), depth 6n+2."""

    def __init__(self, depth=20, width=16):
        super().__init__()
        n = (depth - 2) // 6
        self.stem = conv3x3(3, width, 1)
        self.stem_norm = nn.BatchNorm2d(width, eps=1e-5, momentum=0.1)
        blocks = []
        inputs = width
        for stage in range(3):
            outputs = width << stage
            for b in range(n):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(BasicBlock(inputs, outputs, stride))
                inputs = outputs
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(inputs, CLASSES)

    def forward(self, x):
        h = F.relu(self.stem_norm(self.stem(x)))
        return self.head(self.blocks(h).mean((2, 3)))


def case_setup(case):
    """(model name, model, input shape, optimiser factory, optimiser as smoothlab writes it)"""
    sgd = {"name": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": False,
           "weight_decay": 0.0, "decoupled_weight_decay": False}
    adamw = {"name": "adamw", "lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
             "weight_decay": 0.01}

    def make_sgd(params):
        return torch.optim.SGD(params, lr=sgd["lr"], momentum=sgd["momentum"],
                               weight_decay=sgd["weight_decay"])

    def make_adamw(params):
        return torch.optim.AdamW(params, lr=adamw["lr"], betas=(adamw["beta1"], adamw["beta2"]),
                                 eps=adamw["eps"], weight_decay=adamw["weight_decay"])

    if case == "mlp-sgd":
        return "MLP 784-512-512-10", Mlp(), [1, 28, 28], make_sgd, sgd
    if case == "mlp-adamw":
        return "MLP 784-512-512-10", Mlp(), [1, 28, 28], make_adamw, adamw
    if case == "lenet5":
        return "LeNet-5", Lenet5(), [1, 28, 28], make_sgd, sgd
    if case == "resnet20":
        return "ResNet-20", Resnet(20, 16), [3, 32, 32], make_sgd, sgd
    raise SystemExit(f"unknown case {case!r}: expected one of {', '.join(CASES)}")


def measure(case, args):
    torch.manual_seed(0)
    name, model, shape, make_optimizer, optimizer_spec = case_setup(case)
    model.train()
    optimizer = make_optimizer(model.parameters())
    criterion = nn.CrossEntropyLoss(label_smoothing=SMOOTHING)
    batch = args.batch_size
    n = DISTINCT_BATCHES * batch
    generator = torch.Generator().manual_seed(0)
    pool_x = torch.rand((n, *shape), generator=generator) * 2 - 1
    pool_y = torch.randint(0, CLASSES, (n,), generator=generator)
    order = torch.randperm(n, generator=generator)
    taken = 0

    def step(losses, corrects):
        nonlocal taken
        start = (taken % DISTINCT_BATCHES) * batch
        taken += 1
        idx = order[start:start + batch]
        x = pool_x.index_select(0, idx)
        y = pool_y.index_select(0, idx)
        logits = model(x)
        loss = criterion(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
        corrects.append((logits.detach().argmax(1) == y).sum())

    def read(losses, corrects):
        values = torch.stack(losses).tolist()
        torch.stack(corrects).sum().item()
        if not all(math.isfinite(v) for v in values):
            raise SystemExit(f"{case}: the training loss became non-finite: {values}")
        return sum(values) / len(values)

    losses, corrects = [], []
    for _ in range(args.warmup):
        step(losses, corrects)
    if args.warmup:
        read(losses, corrects)
    rates, mean_losses = [], []
    for _ in range(args.repeats):
        losses, corrects = [], []
        start = time.perf_counter()
        for _ in range(args.steps):
            step(losses, corrects)
        mean_losses.append(read(losses, corrects))
        rates.append(args.steps * batch / (time.perf_counter() - start))
    return {
        "case": case,
        "model": name,
        "input": shape,
        "parameters": sum(p.numel() for p in model.parameters()),
        "optimizer": optimizer_spec,
        "batch_size": batch,
        "warmup_steps": args.warmup,
        "steps": args.steps,
        "repeats": args.repeats,
        "samples_per_second": statistics.median(rates),
        "min_samples_per_second": min(rates),
        "max_samples_per_second": max(rates),
        "repeat_samples_per_second": rates,
        "first_loss": mean_losses[0],
        "last_loss": mean_losses[-1],
    }


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def at_least_one(value):
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("expected at least 1")
    return n


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(CASES),
                        help="comma-separated: " + ", ".join(CASES))
    parser.add_argument("--steps", type=at_least_one, default=20)
    parser.add_argument("--repeats", type=at_least_one, default=5)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=at_least_one, default=128)
    parser.add_argument("--threads", type=at_least_one, default=os.cpu_count() or 1)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    cases = [c for c in args.models.split(",") if c]
    for case in cases:
        if case not in CASES:
            parser.error(f"unknown model {case!r}: expected one of {', '.join(CASES)}")

    torch.set_num_threads(args.threads)
    environment = {
        "framework": "pytorch",
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "flush_denormal": False,
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
    }
    print(f"PyTorch {environment['torch_version']}, device cpu, {environment['threads']} threads, "
          f"kernels {environment['cpu_capability']}")
    print(f"CPU: {environment['cpu']}, {environment['logical_cpus']} logical CPUs")
    results = []
    for case in cases:
        r = measure(case, args)
        results.append(r)
        print(f"{case:<10} {r['model']:<19} {r['samples_per_second']:>10.1f} samples/s "
              f"(min {r['min_samples_per_second']:.1f}, max {r['max_samples_per_second']:.1f}) "
              f"loss {r['first_loss']:.4f} -> {r['last_loss']:.4f}", flush=True)
    figures = {
        "benchmark": "models",
        "environment": environment,
        "smoothing": SMOOTHING,
        "distinct_batches": DISTINCT_BATCHES,
        "cases": results,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
