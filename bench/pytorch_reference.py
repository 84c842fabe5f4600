#!/usr/bin/env python3
"""PyTorch reference timings for bench/lstm.bench.ts, on one CPU thread or (--device cuda) on a GPU.

Times the same two tasks as the TypeScript benchmark, on the same configurations, with the same method
(untimed warmup repetitions, then timed repetitions whose order alternates, medians reported):

  inference   forward only, no autograd (torch.no_grad), output materialised
  train step  forward, MSE over all outputs, backward, SGD(lr=1e-3) update, loss read back (.item())

for two models of the same size:

  nn.LSTM       torch's native LSTM (tanh activations: the fastest thing PyTorch has, not a ReLU-LSTM;
                cuDNN's kernel on CUDA)
  ReLU cell     a ReLU-LSTM written as a Python loop over time with autograd, PyTorch gate order
                (i, f, g, o): i, f, o = sigmoid; g = relu; c = f*c + i*g; h = o*relu(c); the input
                projection of all steps is one matrix product before the loop, as in the TS library.

Input is batch-first [batch, seq, input] float32 from a fixed seed. On CUDA every task ends with a read
back (.item()), which waits for the GPU, so the times cover the GPU's work. Prints one JSON object on stdout
(times in ms per repetition):

  python3 bench/pytorch_reference.py --config M --reps 5 --warmup 1

With --serve it warms up, prints one JSON line {"ready": true, ...}, then times one task per line read
from stdin ("infer nn.LSTM", "train ReLU cell loop", ...) and answers {"ms": ...}: the TS benchmark
runs it that way, so the PyTorch repetitions interleave with the tfjs ones under the same load.
"""
import argparse
import json
import os
import platform
import re
import sys
import time

# One thread, set before torch loads its BLAS (OpenBLAS / MKL read these at start-up).
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import torch  # noqa: E402  (after the thread variables on purpose)
from torch import nn  # noqa: E402

CONFIGS = {
    "S": dict(batch=16, seq=50, input=16, hidden=64, layers=1),
    "M": dict(batch=32, seq=100, input=32, hidden=128, layers=2),
    "L": dict(batch=64, seq=200, input=64, hidden=256, layers=2),
}
LEARNING_RATE = 1e-3


class ReluLstmLoop(nn.Module):
    """Stacked ReLU-LSTM as a Python time loop; parameters laid out as nn.LSTM's."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int):
        super().__init__()
        ref = nn.LSTM(input_size, hidden_size, num_layers)  # same init and layout as nn.LSTM
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.params = nn.ParameterList()
        for layer in range(num_layers):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                self.params.append(nn.Parameter(getattr(ref, f"{name}_l{layer}").detach().clone()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, T, I] -> [B, T, H]
        B, T, _ = x.shape
        H = self.hidden_size
        inp = x.transpose(0, 1)  # [T, B, I]
        for layer in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self.params[4 * layer : 4 * layer + 4]
            xp = torch.addmm(b_ih + b_hh, inp.reshape(T * B, -1), w_ih.t()).view(T, B, 4 * H)
            # unbind, not xp[t]: indexing's backward would build a zero [T, B, 4H] gradient per step (O(T^2)).
            xp_steps = xp.unbind(0)
            w_hh_t = w_hh.t()
            h = x.new_zeros(B, H)
            c = x.new_zeros(B, H)
            outs = []
            for t in range(T):
                gates = torch.addmm(xp_steps[t], h, w_hh_t)
                i, f, g, o = gates.chunk(4, 1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.relu(g)
                h = torch.sigmoid(o) * torch.relu(c)
                outs.append(h)
            inp = torch.stack(outs)
        return inp.transpose(0, 1)


def contenders(cfg):
    torch.manual_seed(1)
    native = nn.LSTM(cfg["input"], cfg["hidden"], cfg["layers"], batch_first=True)
    loop = ReluLstmLoop(cfg["input"], cfg["hidden"], cfg["layers"])
    return {"nn.LSTM": lambda x: native(x)[0], "ReLU cell loop": loop}, {"nn.LSTM": native, "ReLU cell loop": loop}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="M")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--serve", action="store_true", help="time one task per stdin request (see below)")
    args = parser.parse_args()
    if args.reps < 1 or args.warmup < 0:
        parser.error(f"--reps must be >= 1 and --warmup >= 0, got {args.reps} and {args.warmup}")
    torch.set_num_threads(1)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch.cuda.is_available() is False")
    device = torch.device(args.device)
    cfg = CONFIGS[args.config]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(cfg["batch"], cfg["seq"], cfg["input"], generator=g).to(device)
    y = torch.randn(cfg["batch"], cfg["seq"], cfg["hidden"], generator=g).to(device)
    fns, modules = contenders(cfg)
    for m in modules.values():
        m.to(device)
    opts = {name: torch.optim.SGD(m.parameters(), lr=LEARNING_RATE) for name, m in modules.items()}

    def infer(name):
        with torch.no_grad():
            fns[name](x).sum().item()  # read back, as the TS bench awaits out.data()

    def train(name):
        opts[name].zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(fns[name](x), y)
        loss.backward()
        opts[name].step()
        loss.item()

    tasks = {"infer": infer, "train": train}
    names = list(fns)
    for _ in range(args.warmup):
        for task in tasks.values():
            for name in names:
                task(name)

    def timed(task_name, name):
        t0 = time.perf_counter()
        tasks[task_name](name)
        return (time.perf_counter() - t0) * 1000

    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "blas": blas_description(),
        "config": args.config,
        "models": names,
        "device": "cpu" if args.device == "cpu" else f"cuda ({torch.cuda.get_device_name(0)})",
    }
    if args.serve:
        # One JSON line when ready, then one line per request "<infer|train> <model>" -> {"ms": ...}.
        print(json.dumps({"ready": True, **info}), flush=True)
        for line in sys.stdin:
            task_name, _, name = line.strip().partition(" ")
            if task_name not in tasks or name not in fns:
                print(json.dumps({"error": f"unknown request {line.strip()!r}"}), flush=True)
                continue
            print(json.dumps({"ms": timed(task_name, name)}), flush=True)
        return
    times = {name: {task: [] for task in tasks} for name in names}
    for r in range(args.reps):
        order = names if r % 2 == 0 else names[::-1]
        for task_name in tasks:
            for name in order:
                times[name][task_name].append(timed(task_name, name))
    print(json.dumps({**info, "times_ms": times}))


def blas_description() -> str:
    found = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    blas = f"BLAS_INFO={found.group(1) if found else 'unknown'}"
    try:  # the BLAS library actually loaded (Debian's torch calls libblas.so.3, an alternatives link)
        with open("/proc/self/maps") as maps:
            libs = sorted({os.path.realpath(line.split()[-1]) for line in maps if "blas" in line.lower() and "/" in line})
        if libs:
            blas += " loaded " + ", ".join(os.path.join(os.path.basename(os.path.dirname(p)), os.path.basename(p)) for p in libs)
    except OSError:
        pass
    return blas

if __name__ == "__main__":
    main()
