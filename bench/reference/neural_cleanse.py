#!/usr/bin/python3
"""Reference Neural Cleanse in PyTorch, following docs/backdoor.md step by step, to check and
time ftguard's implementation against (npm run bench:backdoor).

    /usr/bin/python3 bench/reference/neural_cleanse.py MODEL.onnx --data ref-x.npy [--labels ref-y.npy]
        [--steps 300] [--batch 32] [--seed 0] [--threads N] [--json]
    /usr/bin/python3 bench/reference/neural_cleanse.py --merge RUN_DIR
        (collects RUN_DIR/<family>-<model>-s<seed>.json, the --json outputs for the fixtures in
        test/fixtures/backdoor/manifest.json, into test/fixtures/backdoor/reference-results.json)

The ONNX model is run by a small ONNX->torch interpreter (OnnxModule below: the ops PyTorch emits
for small classifiers), so gradients flow through exactly the exported graph.
Prints (with --json) {l1_norms, anomaly_indices, flagged_classes, seconds, ...}; `seconds` is the
in-process time of the optimisation only (all classes), not loading or start-up.

Randomness: per class t, a numpy Generator seeded with (seed, 1, t) draws the initial mask and
pattern; one seeded with (seed, 2) draws the permutations of the reference data (the same for
every class). The algorithm is ftguard's; the random
streams are not, so compare results statistically (L1 norms, flagged classes), not bit for bit.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn

# ------------------------------------------------------------------ ONNX -> torch


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pool_pads(x, pads, value):
    n = len(pads) // 2
    begin, end = pads[:n], pads[n:]
    if begin == end:
        return x, list(begin)
    flat = []
    for b, e in reversed(list(zip(begin, end))):
        flat += [b, e]
    return F.pad(x, flat, value=value), [0] * n


class OnnxModule(nn.Module):
    """Evaluates an ONNX graph (opset <= 13 semantics) with torch ops. Supports the ops torch.onnx
    emits for small CNN/MLP classifiers. drop_final_softmax: when the graph output comes from a
    Softmax, return its input (the logits), as docs/backdoor.md asks."""

    def __init__(self, model: onnx.ModelProto, drop_final_softmax=True):
        super().__init__()
        g = model.graph
        self.consts = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in g.initializer}
        init = set(self.consts)
        self.input_name = [i.name for i in g.input if i.name not in init][0]
        self.nodes = [(n.op_type, list(n.input), list(n.output), _attrs(n)) for n in g.node]
        self.output_name = g.output[0].name
        if drop_final_softmax:
            last = [n for n in self.nodes if self.output_name in n[2]]
            if last and last[0][0] == "Softmax":
                self.output_name = last[0][1][0]

    def forward(self, x):
        env = dict(self.consts)
        env[self.input_name] = x
        for op, inputs, outputs, attrs in self.nodes:
            ins = [env[i] if i else None for i in inputs]
            outs = self._run(op, ins, attrs)
            for name, v in zip(outputs, outs if isinstance(outs, tuple) else (outs,)):
                env[name] = v
            if self.output_name in env:
                return env[self.output_name]
        return env[self.output_name]

    @staticmethod
    def _run(op, ins, a):
        if op == "Conv":
            w = ins[1]
            k = len(w.shape) - 2
            x, pads = _pool_pads(ins[0], a.get("pads", [0] * 2 * k), 0.0)
            conv = F.conv2d if k == 2 else F.conv1d
            return conv(x, w, ins[2] if len(ins) > 2 else None, stride=a.get("strides", [1] * k),
                        padding=pads, dilation=a.get("dilations", [1] * k), groups=a.get("group", 1))
        if op == "BatchNormalization":
            return F.batch_norm(ins[0], ins[3], ins[4], ins[1], ins[2], False, 0.0, a.get("epsilon", 1e-5))
        if op == "Relu":
            return F.relu(ins[0])
        if op == "LeakyRelu":
            return F.leaky_relu(ins[0], a.get("alpha", 0.01))
        if op == "Tanh":
            return torch.tanh(ins[0])
        if op == "Sigmoid":
            return torch.sigmoid(ins[0])
        if op == "Softmax":
            return F.softmax(ins[0], dim=a.get("axis", -1))
        if op in ("Identity", "Dropout"):
            return ins[0]
        if op in ("MaxPool", "AveragePool"):
            k = a["kernel_shape"]
            strides = a.get("strides", [1] * len(k))
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise NotImplementedError(f"{op} auto_pad")
            if op == "MaxPool":
                x, pads = _pool_pads(ins[0], a.get("pads", [0] * 2 * len(k)), -math.inf)
                return F.max_pool2d(x, k, strides, pads, ceil_mode=bool(a.get("ceil_mode", 0)))
            x, pads = _pool_pads(ins[0], a.get("pads", [0] * 2 * len(k)), 0.0)
            return F.avg_pool2d(x, k, strides, pads, ceil_mode=bool(a.get("ceil_mode", 0)),
                                count_include_pad=bool(a.get("count_include_pad", 0)))
        if op == "GlobalAveragePool":
            return ins[0].mean(dim=tuple(range(2, ins[0].dim())), keepdim=True)
        if op == "Flatten":
            ax = a.get("axis", 1)
            return ins[0].reshape(int(np.prod(ins[0].shape[:ax])), -1)
        if op == "Reshape":
            shape = [int(s) for s in ins[1].tolist()]
            shape = [ins[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
            return ins[0].reshape(shape)
        if op == "Gemm":
            A = ins[0].t() if a.get("transA", 0) else ins[0]
            B = ins[1].t() if a.get("transB", 0) else ins[1]
            y = a.get("alpha", 1.0) * (A @ B)
            return y + a.get("beta", 1.0) * ins[2] if len(ins) > 2 and ins[2] is not None else y
        if op == "MatMul":
            return ins[0] @ ins[1]
        if op == "Add":
            return ins[0] + ins[1]
        if op == "Sub":
            return ins[0] - ins[1]
        if op == "Mul":
            return ins[0] * ins[1]
        if op == "Div":
            return ins[0] / ins[1]
        if op == "Pad":  # opset 13: pads (and the constant value) as inputs
            pads = [int(v) for v in ins[1].tolist()]
            n = len(pads) // 2
            flat = []
            for d in reversed(range(n)):
                flat += [pads[d], pads[d + n]]
            mode = a.get("mode", b"constant")
            mode = mode.decode() if isinstance(mode, bytes) else mode
            if mode != "constant":
                raise NotImplementedError(f"Pad mode {mode}")
            value = float(ins[2]) if len(ins) > 2 and ins[2] is not None else 0.0
            return F.pad(ins[0], flat, value=value)
        if op == "Constant":
            return torch.from_numpy(numpy_helper.to_array(a["value"]).copy())
        if op == "Shape":
            return torch.tensor(list(ins[0].shape), dtype=torch.int64)
        if op == "Gather":
            return torch.index_select(ins[0], a.get("axis", 0), ins[1].reshape(-1)).reshape(
                list(ins[0].shape[:a.get("axis", 0)]) + list(ins[1].shape) + list(ins[0].shape[a.get("axis", 0) + 1:]))
        if op == "Unsqueeze":  # opset 13: axes as an input
            y = ins[0]
            for ax in sorted(int(v) for v in ins[1].tolist()):
                y = y.unsqueeze(ax)
            return y
        if op == "Concat":
            return torch.cat(ins, dim=a["axis"])
        raise NotImplementedError(f"ONNX op {op}")


# ------------------------------------------------------------------ Neural Cleanse

THRESHOLD = 0.99
PATIENCE = 5
INIT_COST = 1e-3
COST_UP = 2.0
COST_DOWN = 2.0 ** 1.5


def to_raw(u):
    return np.arctanh((2 * u - 1) * 0.999999)


def reverse_engineer(model, x, target, steps, batch, seed, lo, hi, mask_shape):
    """One class: returns (L1 of the best mask, its step or -1, final cost). A class whose attack
    never reaches the threshold reports the mask size."""
    rng = np.random.default_rng((seed, 1, target))
    m_raw = torch.tensor(to_raw(rng.uniform(0, 1, mask_shape)), dtype=torch.float32, requires_grad=True)
    p_raw = torch.tensor(to_raw(rng.uniform(0, 1, x.shape[1:])), dtype=torch.float32, requires_grad=True)
    opt = torch.optim.Adam([m_raw, p_raw], lr=0.1, betas=(0.5, 0.9), eps=1e-8)
    n = x.shape[0]
    per_step = -(-n // batch)
    tgt = torch.full((batch,), target, dtype=torch.int64)

    # step s visits the seeded permutation pi_s in batches of B; its last partial batch is
    # completed from the start of pi_{s+1}, and step s+1 again starts at pi_{s+1}[0]
    order_rng = np.random.default_rng((seed, 2))  # the same order for every class
    perms = []

    def step_indices(s):
        while len(perms) <= s + -(-batch // n) + 1:
            perms.append(order_rng.permutation(n))
        return np.concatenate(perms[s:])[:per_step * batch]

    cost = 0.0
    set_counter = up_counter = down_counter = 0
    best_l1, best_mean_l1, best_step = float(np.prod(mask_shape)), math.inf, -1
    for step in range(steps):
        accs, l1s = [], []
        idx = torch.from_numpy(step_indices(step))
        for b in range(per_step):
            xb = x[idx[b * batch:(b + 1) * batch]]
            m = (torch.tanh(m_raw) + 1) / 2
            p = lo + (hi - lo) * (torch.tanh(p_raw) + 1) / 2
            logits = model((1 - m) * xb + m * p)
            l1 = m.sum()
            loss = F.cross_entropy(logits, tgt) + cost * l1
            opt.zero_grad()
            loss.backward()
            opt.step()
            accs.append((logits.argmax(1) == target).float().mean().item())
            l1s.append(l1.item())
        acc, l1 = float(np.mean(accs)), float(np.mean(l1s))
        # as the original: compare the step's mean L1, keep the mask as it is after the step
        if acc >= THRESHOLD and l1 < best_mean_l1:
            best_mean_l1, best_step = l1, step
            with torch.no_grad():
                best_l1 = float(((torch.tanh(m_raw) + 1) / 2).sum())
        # cost schedule (original reset_cost_to_zero)
        if cost == 0 and acc >= THRESHOLD:
            set_counter += 1
            if set_counter >= PATIENCE:
                cost = INIT_COST
                up_counter = down_counter = 0
        else:
            set_counter = 0
        if acc >= THRESHOLD:
            up_counter += 1
            down_counter = 0
        else:
            up_counter = 0
            down_counter += 1
        if up_counter >= PATIENCE:
            up_counter = 0
            cost *= COST_UP
        elif down_counter >= PATIENCE:
            down_counter = 0
            cost /= COST_DOWN
    return best_l1, best_step, cost


def reverse_engineer_all(model, x, k, steps, batch, seed, lo, hi, mask_shape):
    """All k classes at once: the same per-class algorithm (same inits, data order, Adam, cost
    schedules; the trials share nothing but the forward pass), batched as (k*B) inputs. Only for
    getting results faster (--all-classes); the per-class loop above is what gets timed."""
    inits = []
    for t in range(k):
        rng = np.random.default_rng((seed, 1, t))
        inits.append((to_raw(rng.uniform(0, 1, mask_shape)), to_raw(rng.uniform(0, 1, x.shape[1:]))))
    m_raw = torch.tensor(np.stack([a for a, _ in inits]), dtype=torch.float32, requires_grad=True)
    p_raw = torch.tensor(np.stack([b for _, b in inits]), dtype=torch.float32, requires_grad=True)
    opt = torch.optim.Adam([m_raw, p_raw], lr=0.1, betas=(0.5, 0.9), eps=1e-8)
    n = x.shape[0]
    per_step = -(-n // batch)
    tgt = torch.arange(k).repeat_interleave(batch)
    order_rng = np.random.default_rng((seed, 2))
    perms = []

    def step_indices(s):
        while len(perms) <= s + -(-batch // n) + 1:
            perms.append(order_rng.permutation(n))
        return np.concatenate(perms[s:])[:per_step * batch]

    cost = np.zeros(k)
    set_c, up_c, down_c = np.zeros(k, int), np.zeros(k, int), np.zeros(k, int)
    best_l1 = np.full(k, float(np.prod(mask_shape)))
    best_mean = np.full(k, math.inf)
    best_step = np.full(k, -1)
    expand = (slice(None), None)
    for step in range(steps):
        accs, l1s = np.zeros(k), np.zeros(k)
        idx = torch.from_numpy(step_indices(step))
        cost_t = torch.tensor(cost, dtype=torch.float32)
        for b in range(per_step):
            xb = x[idx[b * batch:(b + 1) * batch]][None]
            m = ((torch.tanh(m_raw) + 1) / 2)[expand]
            p = (lo + (hi - lo) * (torch.tanh(p_raw) + 1) / 2)[expand]
            logits = model(((1 - m) * xb + m * p).reshape((k * batch,) + tuple(x.shape[1:])))
            ce = F.cross_entropy(logits, tgt, reduction="none").reshape(k, batch).mean(1)
            l1 = m.reshape(k, -1).sum(1)
            opt.zero_grad()
            (ce + cost_t * l1).sum().backward()
            opt.step()
            accs += (logits.argmax(1) == tgt).float().reshape(k, batch).mean(1).numpy()
            l1s += l1.detach().numpy()
        accs /= per_step
        l1s /= per_step
        with torch.no_grad():
            mask_sums = ((torch.tanh(m_raw) + 1) / 2).reshape(k, -1).sum(1).numpy()
        for t in range(k):
            acc, l1v = accs[t], l1s[t]
            if acc >= THRESHOLD and l1v < best_mean[t]:
                best_mean[t], best_step[t], best_l1[t] = l1v, step, mask_sums[t]
            if cost[t] == 0 and acc >= THRESHOLD:
                set_c[t] += 1
                if set_c[t] >= PATIENCE:
                    cost[t] = INIT_COST
                    up_c[t] = down_c[t] = 0
            else:
                set_c[t] = 0
            if acc >= THRESHOLD:
                up_c[t] += 1
                down_c[t] = 0
            else:
                up_c[t] = 0
                down_c[t] += 1
            if up_c[t] >= PATIENCE:
                up_c[t] = 0
                cost[t] *= COST_UP
            elif down_c[t] >= PATIENCE:
                down_c[t] = 0
                cost[t] /= COST_DOWN
    return [(float(best_l1[t]), int(best_step[t]), float(cost[t])) for t in range(k)]


def anomaly(l1):
    l1 = np.asarray(l1, np.float64)
    med = np.median(l1)
    mad = 1.4826 * np.median(np.abs(l1 - med))
    dev = np.abs(l1 - med)
    with np.errstate(divide="ignore", invalid="ignore"):
        idx = np.where(mad > 0, dev / mad, np.where(dev > 0, np.inf, 0.0))
    flagged = [int(c) for c in np.flatnonzero((l1 <= med) & (idx > 2))]
    return idx, flagged


def neural_cleanse(model_path, data, steps=300, batch=32, seed=0, labels=None, all_classes=False):
    model = OnnxModule(onnx.load(model_path)).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    lo, hi = float(x.min()), float(x.max())
    shape = tuple(x.shape[1:])
    mask_shape = (1,) + shape[1:] if len(shape) == 3 else shape
    with torch.no_grad():
        logits = model(x)
    k = logits.shape[1]
    out = {"model": model_path, "steps": steps, "batch": batch, "seed": seed, "num_classes": k,
           "input_range": [lo, hi]}
    if labels is not None:
        out["clean_accuracy"] = float((logits.argmax(1).numpy() == labels).mean())
    t0 = time.perf_counter()
    if all_classes:
        res = reverse_engineer_all(model, x, k, steps, batch, seed, lo, hi, mask_shape)
    else:
        res = [reverse_engineer(model, x, t, steps, batch, seed, lo, hi, mask_shape) for t in range(k)]
    out["seconds"] = time.perf_counter() - t0
    out["mode"] = "all-classes" if all_classes else "per-class"
    l1 = [r[0] for r in res]
    idx, flagged = anomaly(l1)
    out.update(l1_norms=l1, anomaly_indices=[float(v) for v in idx], flagged_classes=flagged,
               best_steps=[r[1] for r in res], final_costs=[r[2] for r in res])
    return out


def merge(run_dir, manifest_path, out_path):
    """Collect <run_dir>/<family>-<model>-s<seed>.json for every manifest model into one file, with
    a per-seed outcome: hit (only the target flagged, or the target among others), miss (target not
    flagged), false-flag (a clean model flagged, or only other classes flagged), ok (clean, none)."""
    import glob
    manifest = json.load(open(manifest_path))
    models = []
    for e in manifest:
        fam, name = e["file"].split("/")[0], os.path.basename(e["file"])[:-5]
        runs = {}
        for path in sorted(glob.glob(os.path.join(run_dir, f"{fam}-{name}-s*.json"))):
            r = json.load(open(path))
            flagged = r["flagged_classes"]
            t = e["target"]
            if t is None:
                outcome = "false-flag" if flagged else "ok"
            else:
                outcome = "hit" if t in flagged else ("false-flag" if flagged else "miss")
            runs[str(r["seed"])] = dict(outcome=outcome, flagged_classes=flagged,
                                        l1_norms=[round(v, 4) for v in r["l1_norms"]],
                                        anomaly_indices=[round(v, 3) for v in r["anomaly_indices"]],
                                        best_steps=r["best_steps"], seconds=round(r["seconds"], 2),
                                        mode=r.get("mode", "per-class"))
        models.append(dict(file=e["file"], kind=e["kind"], target=e["target"], runs=runs))
    out = dict(settings=dict(steps=300, batch=32, threads=1, rule="flag when index > 2 and l1 <= median",
                             script="bench/reference/neural_cleanse.py",
                             note="seconds are wall time on a shared, heavily loaded 2-core box (load 8-10): "
                                  "not a benchmark. mode all-classes = same algorithm batched over classes"),
               models=models)
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


def main(argv=None):
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--merge":
        here = os.path.dirname(os.path.abspath(__file__))
        fixtures = os.path.join(here, "..", "..", "test", "fixtures", "backdoor")
        return merge(sys.argv[2], os.path.join(fixtures, "manifest.json"),
                     os.path.join(fixtures, "reference-results.json"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--data", required=True)
    ap.add_argument("--labels")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--all-classes", action="store_true",
                    help="optimise all classes in one batched pass (same results, faster; not the timed mode)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    labels = np.load(args.labels) if args.labels else None
    out = neural_cleanse(args.model, np.load(args.data), args.steps, args.batch, args.seed, labels,
                         args.all_classes)
    if args.json:
        print(json.dumps(out))
    else:
        for c, (l1, i) in enumerate(zip(out["l1_norms"], out["anomaly_indices"])):
            print(f"class {c}: L1 {l1:8.3f}  index {i:6.2f}{'  FLAGGED' if c in out['flagged_classes'] else ''}")
        print(f"flagged {out['flagged_classes']}  ({out['seconds']:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
