#!/usr/bin/env python3
"""PyTorch's side of scripts/bench-vs-pytorch.sh and scripts/gpu-bench.sh.

Subcommands:
  models       the cases of `smoothlab bench models`, measured the same way, written as
               JSON of the same shape;
  epoch        the epochs of `smoothlab bench epoch --data DIR`: a real training loop
               over the same files (MNIST IDX or CIFAR-10 binary), as a PyTorch user
               writes it;
  write-cifar  writes CIFAR-10-format binary batches of synthetic images, the data set
               both sides of the ResNet-20 epoch read.

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
import ctypes
import gzip
import json
import math
import os
import pathlib
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
CASES = ["mlp-sgd", "mlp-adamw", "lenet5", "lenet5-adamw", "resnet20", "resnet20-adamw"]


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
    if case == "lenet5-adamw":
        return "LeNet-5", Lenet5(), [1, 28, 28], make_adamw, adamw
    if case == "resnet20":
        return "ResNet-20", Resnet(20, 16), [3, 32, 32], make_sgd, sgd
    if case == "resnet20-adamw":
        return "ResNet-20", Resnet(20, 16), [3, 32, 32], make_adamw, adamw
    raise SystemExit(f"unknown case {case!r}: expected one of {', '.join(CASES)}")


def measure(case, args):
    torch.manual_seed(0)
    name, model, shape, make_optimizer, optimizer_spec = case_setup(case)
    device = torch.device(args.device)
    model = model.to(device).train()
    optimizer = make_optimizer(model.parameters())
    criterion = nn.CrossEntropyLoss(label_smoothing=SMOOTHING)
    batch = args.batch_size
    n = DISTINCT_BATCHES * batch
    generator = torch.Generator().manual_seed(0)
    pool_x = (torch.rand((n, *shape), generator=generator) * 2 - 1).to(device)
    pool_y = torch.randint(0, CLASSES, (n,), generator=generator).to(device)
    order = torch.randperm(n, generator=generator).to(device)
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


def environment(args):
    env = {
        "framework": "pytorch",
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": args.device,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "flush_denormal": False,
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
    }
    if args.device.startswith("cuda"):
        index = torch.device(args.device).index or 0
        env["gpu"] = torch.cuda.get_device_name(index)
        env["cuda_version"] = torch.version.cuda
        env["cudnn_version"] = torch.backends.cudnn.version()
    print(f"PyTorch {env['torch_version']}, device {args.device}, {env['threads']} threads, "
          f"kernels {env['cpu_capability']}" + (f", GPU {env['gpu']}" if "gpu" in env else ""))
    print(f"CPU: {env['cpu']}, {env['logical_cpus']} logical CPUs")
    return env


def write_json(path, figures):
    if path:
        with open(path, "w") as f:
            json.dump(figures, f, indent=2)
            f.write("\n")


def models_command(args):
    cases = [c for c in args.models.split(",") if c]
    for case in cases:
        if case not in CASES:
            raise SystemExit(f"unknown model {case!r}: expected one of {', '.join(CASES)}")
    env = environment(args)
    results = []
    for case in cases:
        r = measure(case, args)
        results.append(r)
        print(f"{case:<10} {r['model']:<19} {r['samples_per_second']:>10.1f} samples/s "
              f"(min {r['min_samples_per_second']:.1f}, max {r['max_samples_per_second']:.1f}) "
              f"loss {r['first_loss']:.4f} -> {r['last_loss']:.4f}", flush=True)
    write_json(args.json, {
        "benchmark": "models",
        "environment": env,
        "smoothing": SMOOTHING,
        "distinct_batches": DISTINCT_BATCHES,
        "cases": results,
    })


# Per-channel pixel mean and standard deviation, as src/data/vision.rs normalises.
MNIST_NORM = ([0.1307], [0.3081])
CIFAR10_NORM = ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616])
CIFAR_PIXELS = 3 * 32 * 32
CIFAR_TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
VAL_FRACTION = 0.1


def read_bytes(path):
    """A file's bytes, gunzipped when it ends in .gz."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        return f.read()


def first_existing(*paths):
    for path in paths:
        if path.exists():
            return path
    raise SystemExit(f"none of {', '.join(map(str, paths))} exists")


def read_mnist_train(directory):
    """The training images [n, 1, 28, 28] (uint8) and labels of an MNIST-format directory."""
    def idx(stem):
        data = read_bytes(first_existing(directory / f"{stem}.gz", directory / stem))
        dims = data[3]
        shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
        return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).view(shape)
    images = idx("train-images-idx3-ubyte")
    return images.unsqueeze(1), idx("train-labels-idx1-ubyte").long()


def read_cifar10_train(directory):
    """The training images [n, 3, 32, 32] (uint8) and labels of CIFAR-10's binary batches."""
    if not (directory / CIFAR_TRAIN_FILES[0]).exists():
        directory = directory / "cifar-10-batches-bin"
    records = torch.cat([
        torch.frombuffer(bytearray(read_bytes(directory / name)), dtype=torch.uint8).view(-1, 1 + CIFAR_PIXELS)
        for name in CIFAR_TRAIN_FILES
    ])
    return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0].long()


def epoch_command(args):
    """Epochs of a plain PyTorch training loop over the files `smoothlab bench epoch
    --data` reads: the first --samples training images, a tenth held out (as smoothlab
    holds out floor(n/10)), normalised as smoothlab does, all on the device as one
    tensor; per epoch a fresh permutation whose chunks index the batches. Timed per epoch
    (after the device has finished), warm-up epochs first."""
    if args.model not in CASES:
        raise SystemExit(f"unknown model {args.model!r}: expected one of {', '.join(CASES)}")
    env = environment(args)
    torch.manual_seed(0)
    name, model, shape, make_optimizer, optimizer_spec = case_setup(args.model)
    directory = pathlib.Path(args.data)
    images, labels = (read_cifar10_train if shape[0] == 3 else read_mnist_train)(directory)
    if args.samples:
        images, labels = images[:args.samples], labels[:args.samples]
    mean, std = CIFAR10_NORM if shape[0] == 3 else MNIST_NORM
    device = torch.device(args.device)
    x = (images.float() / 255 - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
    n_val = math.floor(VAL_FRACTION * len(x))
    train_idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[n_val:].sort().values
    x_train, y_train = x[train_idx].to(device), labels[train_idx].to(device)
    del x, images
    model = model.to(device).train()
    optimizer = make_optimizer(model.parameters())
    criterion = nn.CrossEntropyLoss(label_smoothing=SMOOTHING)
    n, batch = len(x_train), args.batch_size

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    epochs = []
    for epoch in range(args.warmup_epochs + args.epochs):
        synchronize()
        start = time.perf_counter()
        order = torch.randperm(n, device=device)
        losses = []
        for first in range(0, n, batch):
            idx = order[first:first + batch]
            xb, yb = x_train.index_select(0, idx), y_train.index_select(0, idx)
            loss = criterion(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach() * len(idx))
        mean_loss = (torch.stack(losses).sum() / n).item()
        synchronize()
        seconds = time.perf_counter() - start
        if not math.isfinite(mean_loss):
            raise SystemExit(f"epoch {epoch + 1}: the training loss became non-finite")
        warmup = epoch < args.warmup_epochs
        epochs.append({"epoch": epoch + 1, "warmup": warmup, "train_seconds": seconds,
                       "samples_per_second": n / seconds, "train_loss": mean_loss})
        print(f"  epoch {epoch + 1:<3}{' (warm-up)' if warmup else ' ' * 10} train {seconds:8.3f} s "
              f"{n / seconds:10.1f} samples/s | loss {mean_loss:.4f}", flush=True)
    rates = sorted(e["samples_per_second"] for e in epochs if not e["warmup"])
    print(f"training: {statistics.median(rates):.1f} samples/s, the median of {len(rates)} epochs "
          f"({rates[0]:.1f}-{rates[-1]:.1f})")
    write_json(args.json, {
        "benchmark": "epoch",
        "environment": env,
        "case": args.model,
        "model": name,
        "input": shape,
        "parameters": sum(p.numel() for p in model.parameters()),
        "optimizer": optimizer_spec,
        "smoothing": SMOOTHING,
        "data": str(directory),
        "batch_size": batch,
        "train_samples": n,
        "warmup_epochs": args.warmup_epochs,
        "epochs": epochs,
        "samples_per_second": statistics.median(rates),
        "min_samples_per_second": rates[0],
        "max_samples_per_second": rates[-1],
    })


def write_cifar_command(args):
    """CIFAR-10 binary batches (1 label byte + 3072 pixel bytes per record) of synthetic
    images a network can learn: each class has a random template image, each sample is
    its class's template half-blended with uniform noise."""
    generator = torch.Generator().manual_seed(args.seed)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    templates = torch.randint(0, 256, (CLASSES, CIFAR_PIXELS), generator=generator).float()

    def records(count):
        labels = torch.randint(0, CLASSES, (count,), generator=generator)
        noise = torch.randint(0, 256, (count, CIFAR_PIXELS), generator=generator).float()
        pixels = (0.5 * templates[labels] + 0.5 * noise).round().to(torch.uint8)
        return torch.cat([labels.to(torch.uint8).unsqueeze(1), pixels], 1).contiguous()

    per_file = [args.samples // 5 + (i < args.samples % 5) for i in range(5)]
    for name, count in zip(CIFAR_TRAIN_FILES + ["test_batch.bin"], per_file + [args.test_samples]):
        data = records(count)
        # The tensor's own bytes (numpy, which .numpy() needs, may be absent).
        (out / name).write_bytes(ctypes.string_at(data.data_ptr(), data.numel()))
    print(f"wrote {args.samples} training and {args.test_samples} test images to {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub):
        sub.add_argument("--batch-size", type=at_least_one, default=128)
        sub.add_argument("--threads", type=at_least_one, default=os.cpu_count() or 1)
        sub.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
        sub.add_argument("--json", help="also write the figures to this file")

    models = commands.add_parser("models", help="the cases of `smoothlab bench models`")
    models.add_argument("--models", default=",".join(CASES),
                        help="comma-separated: " + ", ".join(CASES))
    models.add_argument("--steps", type=at_least_one, default=20)
    models.add_argument("--repeats", type=at_least_one, default=5)
    models.add_argument("--warmup", type=int, default=5)
    common(models)
    epoch = commands.add_parser("epoch", help="epochs of a real loop over MNIST or CIFAR-10 files")
    epoch.add_argument("--model", default="mlp-sgd", help="one of " + ", ".join(CASES))
    epoch.add_argument("--data", required=True,
                       help="MNIST IDX files (MNIST-shaped models) or CIFAR-10 binary batches (resnet20)")
    epoch.add_argument("--samples", type=at_least_one, help="use the first N training images")
    epoch.add_argument("--warmup-epochs", type=int, default=1)
    epoch.add_argument("--epochs", type=at_least_one, default=3)
    common(epoch)
    cifar = commands.add_parser("write-cifar", help="synthetic CIFAR-10-format batches")
    cifar.add_argument("out")
    cifar.add_argument("--samples", type=at_least_one, default=50_000)
    cifar.add_argument("--test-samples", type=at_least_one, default=10_000)
    cifar.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if args.command == "write-cifar":
        write_cifar_command(args)
        return
    torch.set_num_threads(args.threads)
    (models_command if args.command == "models" else epoch_command)(args)


if __name__ == "__main__":
    main()
