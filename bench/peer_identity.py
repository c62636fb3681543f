"""Zoo networks against their PyTorch twins: the same function, not only the same parameter count.

For every zoo file whose ``reference.twin`` names a PyTorch model (torchvision, timm, or the
authors' code transcribed below), both are built, the PyTorch one's weights are randomised (PyTorch's
own initialisation, batch-norm gamma and beta drawn at random and the running statistics set from
one batch in training mode) and copied into the kblocks model layer for layer in network order
(convolution OIHW -> HWIO, linear and 1x1-convolution-as-FC transposed, BN gamma, beta, mean,
variance), and both are run on the same random images (NCHW for PyTorch, NHWC for Keras). Printed
per network: trainable parameters (kblocks / PyTorch), multiply-adds (kblocks' analysis / fvcore's
convolution and linear counts), and the largest absolute logit difference (the input of the final
softmax in kblocks). Target: max diff <= 1e-4 (``TOL``).

Needs PyTorch, torchvision, timm and fvcore beside Keras with TensorFlow, which CI does not
install; a separate virtual environment (docs/BENCHMARKS.md has the commands):

    python3 -m venv /tmp/venv-torch
    /tmp/venv-torch/bin/pip install torch torchvision timm fvcore tensorflow-cpu keras lark pyyaml click rich
    PYTHONPATH=$PWD KERAS_BACKEND=tensorflow /tmp/venv-torch/bin/python bench/peer_identity.py
    ... --models resnet18,wrn28_10 --batch 2 --json peer.json

The last line is one JSON object with every figure. The ratio line says how many twins are within
``TOL`` and the range of the params and MACs ratios.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import cpu_model

TOL = 1e-4  #: the largest absolute logit difference a twin may show

# torchvision's compiled ops (_C.so) of the CUDA wheel do not load beside a CPU-only torch; the
# models need none of them, only the meta registrations at import fail. Skip those.
sys.modules.setdefault("torchvision._meta_registrations",
                       types.ModuleType("torchvision._meta_registrations"))


# -- the PyTorch twins ------------------------------------------------------------------------------

def _wrn(depth: int = 28, width: int = 10, num_classes: int = 10):
    """Wide ResNet as the authors' functional PyTorch code computes it (Zagoruyko and Komodakis,
    github.com/szagoruyko/wide-residual-networks, pytorch/resnet.py): conv0 3x3/16 pad 1, groups
    of pre-activation blocks (o1 = relu(bn0(x)); y = conv0(o1, stride, pad 1); z = conv1(relu(bn1(y)),
    pad 1); z + convdim(o1, stride) when the width changes, else z + x), relu(bn(.)), 8x8 average
    pool, linear. No convolution biases; F.batch_norm's epsilon 1e-5. Written with modules so its
    parameters register in network order; the functions are the same."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, ni, no, stride):
            super().__init__()
            self.stride = stride
            self.bn0 = nn.BatchNorm2d(ni)
            self.convdim = nn.Conv2d(ni, no, 1, stride, bias=False) if ni != no else None
            self.conv0 = nn.Conv2d(ni, no, 3, stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(no)
            self.conv1 = nn.Conv2d(no, no, 3, 1, padding=1, bias=False)

        def forward(self, x):
            o1 = torch.relu(self.bn0(x))
            y = self.conv0(o1)
            z = self.conv1(torch.relu(self.bn1(y)))
            return z + (self.convdim(o1) if self.convdim is not None else x)

    class WRN(nn.Module):
        def __init__(self):
            super().__init__()
            n = (depth - 4) // 6
            widths = [16 * width, 32 * width, 64 * width]
            self.conv0 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
            blocks, ni = [], 16
            for no, stride in zip(widths, (1, 2, 2)):
                for i in range(n):
                    blocks.append(Block(ni if i == 0 else no, no, stride if i == 0 else 1))
                ni = no
            self.blocks = nn.Sequential(*blocks)
            self.bn = nn.BatchNorm2d(widths[2])
            self.fc = nn.Linear(widths[2], num_classes)

        def forward(self, x):
            o = torch.relu(self.bn(self.blocks(self.conv0(x))))
            o = nn.functional.avg_pool2d(o, o.shape[-1], 1, 0).flatten(1)
            return self.fc(o)

    return WRN()


def _torchvision(name):
    def make(classes):
        import torchvision

        return getattr(torchvision.models, name)(weights=None, num_classes=classes)
    return make


def _timm(name):
    def make(classes):
        import timm

        return timm.create_model(name, pretrained=False, num_classes=classes)
    return make


# zoo name -> (label, factory(classes) -> torch.nn.Module)
TWINS = {
    "resnet18": ("torchvision resnet18", _torchvision("resnet18")),
    "resnet34": ("torchvision resnet34", _torchvision("resnet34")),
    "resnext50_32x4d": ("torchvision resnext50_32x4d", _torchvision("resnext50_32x4d")),
    "squeezenet1_1": ("torchvision squeezenet1_1", _torchvision("squeezenet1_1")),
    "se_resnet50": ("timm legacy_seresnet50", _timm("legacy_seresnet50")),
    "wrn28_10": ("authors' WRN-28-10 (transcribed)", lambda classes: _wrn(28, 10, classes)),
}


# -- weights --------------------------------------------------------------------------------------

def torch_layers(model) -> list:
    """(name, module) of the weighted Conv2d, Linear and BatchNorm2d modules in network order: in
    registration order, except that a block's ``downsample`` comes before the block's other layers
    (kblocks writes the shortcut branch first)."""
    from torch import nn

    kinds = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, kinds)]
    out: list = []
    for name, module in layers:
        match = re.match(r"(.*\.)downsample\.", name)
        if match:
            prefix = match.group(1)
            first = next(i for i, (n, _) in enumerate(out) if n.startswith(prefix))
            moved = [entry for entry in out[first:] if ".downsample." in entry[0]
                     and entry[0].startswith(prefix)]
            at = first + len(moved)
            out.insert(at, (name, module))
        else:
            out.append((name, module))
    return out


def keras_layers(model) -> list:
    """The kblocks model's weighted layers in graph order (layer names end in the node index)."""
    weighted = [layer for layer in model.layers if layer.weights]
    return sorted(weighted, key=lambda layer: int(layer.name.rsplit("_", 1)[1]))


def copy_weights(peer, model) -> int:
    """Copy the PyTorch ``peer``'s weights into the kblocks ``model``, layer for layer; every pair
    must be the same kind with weights of the same sizes. Returns the number of pairs."""
    import numpy as np
    from torch import nn

    src, dst = torch_layers(peer), keras_layers(model)
    if len(src) != len(dst):
        raise AssertionError(f"{len(src)} weighted PyTorch layers, {len(dst)} kblocks layers")
    for (name, m), layer in zip(src, dst):
        kind = type(layer).__name__
        shapes = [tuple(w.shape) for w in layer.get_weights()]
        if isinstance(m, nn.BatchNorm2d):
            values = [m.weight, m.bias, m.running_mean, m.running_var]
            want = "BatchNormalization"
        else:
            w = m.weight.detach().numpy()
            if w.ndim == 4 and kind == "Dense":  # 1x1 convolution on a pooled vector (SE)
                w = w.reshape(w.shape[0], w.shape[1]).T
            elif w.ndim == 4:
                w = w.transpose(2, 3, 1, 0)
            else:
                w = w.T
            values = [w] + ([m.bias] if m.bias is not None else [])
            want = "Dense" if (isinstance(m, nn.Linear) or kind == "Dense") else "Conv2D"
        values = [v if isinstance(v, np.ndarray) else v.detach().numpy() for v in values]
        if kind != want or [v.shape for v in values] != shapes:
            raise AssertionError(f"{name} ({type(m).__name__} {[v.shape for v in values]}) pairs "
                                 f"with {layer.name} ({kind} {shapes})")
        layer.set_weights(values)
    return len(src)


def randomise(peer, x, seed: int) -> None:
    """BN gamma and beta at random, then the running statistics from one batch ``x`` (cumulative
    average in training mode), then evaluation mode."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in peer.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
                m.reset_running_stats()
                m.momentum = None
        peer.train()
        peer(x)
        peer.eval()


def fvcore_macs(peer, x) -> int:
    """Multiply-adds per image of convolutions and linear layers, as fvcore counts them."""
    from fvcore.nn import FlopCountAnalysis

    flops = FlopCountAnalysis(peer, x)
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    ops = flops.by_operator()
    return int(sum(v for k, v in ops.items() if k in ("conv", "linear", "addmm", "matmul")) //
               x.shape[0])


def logits_model(model):
    """The kblocks model up to its final softmax (the logits)."""
    import keras

    last = model.layers[-1]
    if type(last).__name__ in ("Softmax", "Activation") and "softmax" in last.name:
        return keras.Model(model.input, last.input)
    return model


def run_one(name: str, batch: int, seed: int, file: str | None = None) -> dict:
    import numpy as np
    import torch

    import kblocks
    from kblocks import zoo

    e = zoo.entry(name)
    label, make = TWINS[name]
    torch.manual_seed(seed)
    peer = make(e.classes)
    rng = np.random.default_rng(seed)
    shape = tuple(e.input_shape)
    stats_x = rng.normal(0, 1, (max(batch, 8), *shape)).astype("float32")
    x = rng.normal(0, 1, (batch, *shape)).astype("float32")
    randomise(peer, torch.from_numpy(stats_x.transpose(0, 3, 1, 2)), seed)
    t0 = time.perf_counter()
    model = kblocks.build(file or name)  # file: another version of the zoo file (--file)
    pairs = copy_weights(peer, model)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2))
    with torch.no_grad():
        want = peer(xt).numpy()
    got = np.asarray(logits_model(model)(x, training=False))
    diff = float(np.abs(got - want).max())
    peer_params = sum(p.numel() for p in peer.parameters())
    macs = fvcore_macs(peer, xt)
    return {"name": name, "file": file, "twin": label, "input": list(shape), "classes": e.classes,
            "layers": pairs, "trainable": e.trainable, "peer_params": int(peer_params),
            "params_ratio": e.trainable / peer_params, "macs": e.macs, "fvcore_macs": macs,
            "macs_ratio": e.macs / macs if macs else None, "max_abs_diff": diff,
            "logit_scale": float(np.abs(want).max()), "within_tol": diff <= TOL,
            "seconds": round(time.perf_counter() - t0, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(TWINS),
                        help="comma-separated zoo names (default: every network with a twin)")
    parser.add_argument("--batch", type=int, default=2, help="images compared (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the JSON record to this file")
    parser.add_argument("--file", action="append", default=[], metavar="NAME=PATH",
                        help="build NAME from PATH instead of the zoo file (e.g. an older version "
                             "from git show, to see the difference a fix makes)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in TWINS]
    if unknown:
        parser.error(f"no PyTorch twin for {', '.join(unknown)}; twins: {', '.join(TWINS)}")
    files = dict(f.split("=", 1) for f in args.file)
    import keras
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    rows = []
    print(f"{'network':<16} {'twin':<34} {'params k/peer':>22} {'MACs k/fvcore':>26} "
          f"{'max |diff|':>10} {'scale':>7}")
    for name in names:
        r = run_one(name, args.batch, args.seed, files.get(name))
        rows.append(r)
        print(f"{name:<16} {r['twin']:<34} {r['trainable']:>11,}/{r['peer_params']:<10,} "
              f"{r['macs']:>13,}/{r['fvcore_macs']:<12,} {r['max_abs_diff']:>10.1e} "
              f"{r['logit_scale']:>7.2f}", flush=True)
    ok = sum(r["within_tol"] for r in rows)
    p = [r["params_ratio"] for r in rows]
    m = [r["macs_ratio"] for r in rows if r["macs_ratio"] is not None]
    print(f"\nwithin {TOL:g}: {ok}/{len(rows)}; params kblocks / peer {min(p):.4f}x-{max(p):.4f}x; "
          f"MACs kblocks / fvcore {min(m):.4f}x-{max(m):.4f}x; largest diff "
          f"{max(r['max_abs_diff'] for r in rows):.1e}")
    import timm
    import torchvision

    record = {"bench": "peer_identity", "tol": TOL, "batch": args.batch, "seed": args.seed,
              "within_tol": ok, "networks": len(rows), "rows": rows,
              "machine": cpu_model(), "python": platform.python_version(),
              "keras": keras.__version__, "backend": keras.backend.backend(),
              "torch": torch.__version__, "torchvision": torchvision.__version__,
              "timm": timm.__version__, "date": _dt.date.today().isoformat()}
    line = json.dumps(record)
    if args.json:
        Path(args.json).write_text(line + "\n")
    print(line)
    return 0 if ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
