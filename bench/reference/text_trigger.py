#!/usr/bin/python3
"""Reference token-level trigger search for text classifiers in PyTorch: the search of
lib/core/backdoor/text-inversion.ts (invertTokens) as driven by text-scan.ts, written out in torch, to
time ftguard's implementation against (npm run bench:backdoor -- --text).

    /usr/bin/python3 bench/reference/text_trigger.py MODEL_DIR --texts ref.jsonl --tokenizer tokenizer.json
        [--steps 120] [--batch 16] [--max-trigger-length 3] [--seed 17] [--threads 1] [--json]

MODEL_DIR holds model.safetensors and config.json (a fixture of test/fixtures/backdoor-text); the
weights are loaded into the fixture script's own torch model class (make_text_fixtures.py) and the
texts are tokenized with its own Python tokenizer (the same ids as @huggingface/tokenizers).

The search, per trigger length T = 1..max: every label searched by 2 trials (SEARCH_GROUPS) that share
one forward and backward pass of 2K*B sequences (B = ceil(batch / 2)) of length L = min(64, position
rows): trial g*K + k searches label k, group 0 stamping anywhere (every 4th text, j % 4 == 1, right
before [SEP]), group 1 right after [CLS]; z [2K, T, V] with Adam (lr 0.3, betas 0.9/0.999, eps 1e-8);
trigger = softmax(z * inv_temp) @ E written into the word-embedding lookup, emb = E[ids] * keep +
place @ trigger (place: one-hot [2K, B, L, T] insertion matrices, as ftguard's graph); loss = sum over
trials of the mean cross-entropy to the trial's label; special tokens (and unused slots) banned
everywhere, "##" pieces as the first trigger token only (initialised to -1e4, gradient zeroed); the
per-trial temperature moved as ftguard moves it (x1.25 while the batch is won at >= 90%, /2 after 10
steps without a better loss, bounds 0.25..50); every 10 steps (and at the last) the argmax tokens are
stamped into 48 search texts of the label and classified by the model as shipped, scored as
text-inversion.ts searchScore() does (a one-word trigger at random positions, after [CLS] and before
[SEP]; a longer one at random positions; or the share of one source label with >= 8 texts, random
positions; the best of these; cached per label); per label and length the 4 best triggers of each of
its 2 trials are kept (attack success, then loss), distinct.

Randomness is ftguard's: its xoshiro128** generator (rng.ts) is ported below and drawn in the same
order (the initial z, the batches and insertion positions, the evaluation texts and positions), so
both sides see the same batches; results differ only by float rounding (and where a rounding flips an
argmax, the search's path).

Prints (with --json) {seconds, per_length_seconds, labels: [{label, candidates: [...]}], ...}:
`seconds` is the in-process time of the token search over all trigger lengths (initial z, batches,
forward, backward, Adam, evaluations), not loading, tokenizing or the clean predictions.
"""
import argparse
import json
import math
import os
import sys
import time
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "test", "fixtures", "backdoor-text")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir", help="directory with model.safetensors and config.json")
    ap.add_argument("--texts", default=os.path.join(FIXTURES, "ref.jsonl"))
    ap.add_argument("--tokenizer", default=os.path.join(FIXTURES, "tokenizer.json"))
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-trigger-length", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    return ap.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    # before numpy and torch load OpenBLAS / OpenMP
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, FIXTURES)
import make_text_fixtures as fx  # noqa: E402  (sets 1 thread and deterministic algorithms on import)

torch.use_deterministic_algorithms(False)  # torch's default; the search is timed as PyTorch runs by default

EVAL_EVERY, EVAL_TEXTS, LR = 10, 48, 0.3
CANDIDATES_PER_LABEL = 4
SEARCH_GROUPS = 2  # per label: group 0 stamps anywhere, group 1 right after [CLS]
MIN_EVAL_SOURCE = 8  # smallest number of one source label's texts whose share counts in the search's score
POSITIONS = ("random", "start", "end")

# ------------------------------------------------------------------ ftguard's PRNG (rng.ts), bit for bit

M32 = 0xFFFFFFFF


def _imul(a, b):
    return (a * b) & M32


def _mix32(z):
    z &= M32
    z = _imul(z ^ (z >> 16), 0x85EBCA6B)
    z = _imul(z ^ (z >> 13), 0xC2B2AE35)
    return z ^ (z >> 16)


def _rotl(x, k):
    return ((x << k) | (x >> (32 - k))) & M32


class Rng:
    """xoshiro128** seeded through splitmix32, as lib/core/backdoor/rng.ts."""

    def __init__(self, seed, *streams):
        x = _mix32((seed & M32) or 0x9E3779B9)
        for s in streams:
            x = _mix32(((x ^ (s & M32)) + 0x7F4A7C15) & M32)
        st = []
        for _ in range(4):
            x = (x + 0x9E3779B9) & M32
            st.append(_mix32(x))
        if not any(st):
            st[0] = 1
        self.s0, self.s1, self.s2, self.s3 = st
        self.spare = None

    def next_u32(self):
        s0, s1, s2, s3 = self.s0, self.s1, self.s2, self.s3
        result = _imul(_rotl(_imul(s1, 5), 7), 9)
        t = (s1 << 9) & M32
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = _rotl(s3, 11)
        self.s0, self.s1, self.s2, self.s3 = s0, s1, s2, s3
        return result

    def uniform(self):
        return (self.next_u32() + 0.5) / 4294967296.0

    def int(self, n):
        return int(self.uniform() * n)

    def normal(self):
        if self.spare is not None:
            s, self.spare = self.spare, None
            return s
        u, v = self.uniform(), self.uniform()
        r = math.sqrt(-2.0 * math.log(u))
        self.spare = r * math.sin(2 * math.pi * v)
        return r * math.cos(2 * math.pi * v)

    def shuffle(self, a):
        for i in range(len(a) - 1, 0, -1):
            j = self.int(i + 1)
            a[i], a[j] = a[j], a[i]
        return a


# ------------------------------------------------------------------ data, model


def stamp(seq, trigger, u, length):
    """text-inversion.ts stamp(): the trigger after [CLS] and before [SEP], words cut from the end to fit."""
    body = seq
    if len(body) + len(trigger) > length:
        body = seq[:max(1, length - len(trigger) - 1)] + [seq[-1]]
    at = 1 + int(u * max(1, len(body) - 1))
    return body[:at] + list(trigger) + body[at:], at


def load_model(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    model = fx.BertForSequenceClassification(cfg["vocab_size"], cfg["num_hidden_layers"],
                                             cfg["num_attention_heads"], cfg["intermediate_size"])
    # fx.read_safetensors reads the file by hand (8-byte LE header length, JSON header, raw F32 data)
    sd = {k: torch.from_numpy(v.copy()) for k, v in fx.read_safetensors(os.path.join(model_dir, "model.safetensors")).items()}
    model.load_state_dict(sd, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def logits_from_word_embeddings(model, wemb, mask):
    """The fixture class's forward, cut after the word-embedding lookup (position and token-type
    embeddings, LayerNorm, encoder, pooler, classifier follow as in BertForSequenceClassification)."""
    e = model.bert.embeddings
    n, length = mask.shape
    pos = torch.arange(length, dtype=torch.long).unsqueeze(0)
    x = wemb + e.position_embeddings(pos) + e.token_type_embeddings(torch.zeros((n, length), dtype=torch.long))
    x = e.dropout(e.LayerNorm(x))
    ext = (1.0 - mask[:, None, None, :].to(torch.float32)) * -10000.0
    h = model.bert.encoder(x, ext)
    return model.classifier(model.dropout(model.bert.pooler(h)))


@torch.no_grad()
def predict(model, seqs, chunk=128):
    """TextClassifier.predict: chunks of 128, each padded to its longest sequence."""
    out = []
    for i in range(0, len(seqs), chunk):
        out.append(model(*fx.batchify(seqs[i:i + chunk])).argmax(1))
    return torch.cat(out).numpy()


def position_u(p, rng):
    """text-inversion.ts positionU()."""
    return 0.0 if p == "start" else (1 - 1e-9 if p == "end" else rng.uniform())


def one_word(trigger, not_first):
    """text-inversion.ts oneWord(): a word-start token followed by continuation pieces only."""
    return all(i in not_first for i in trigger[1:])


def search_score(model, seqs, labels, pool, trigger, target, length, rng, not_first):
    """text-inversion.ts searchScore(): the best share flipped over the positions (fixed ones for a one-word
    trigger only) and, at random positions, over the source labels with >= MIN_EVAL_SOURCE texts."""
    if not pool:
        return 0.0
    at = POSITIONS if one_word(trigger, not_first) else ("random",)
    stamped = [stamp(seqs[i], trigger, position_u(p, rng), length)[0] for p in at for i in pool]
    hit = (predict(model, stamped) == target).reshape(len(at), len(pool))
    best = 0.0
    for pi, h in enumerate(hit):
        best = max(best, float(h.sum()) / len(pool))
        if at[pi] != "random":
            continue
        by = {}
        for i, x in enumerate(h):
            c = by.setdefault(labels[pool[i]], [0, 0])
            c[0] += int(x)
            c[1] += 1
        for n, of in by.values():
            if of >= MIN_EVAL_SOURCE:
                best = max(best, n / of)
    return best


def search_u(g, j, rng):
    """text-inversion.ts searchU(): group 1 right after [CLS]; group 0 every 4th text before [SEP], else anywhere."""
    u = rng.uniform()
    return 0.0 if g == 1 else (1 - 1e-9 if j % 4 == 1 else u)


def make_batch(seqs, pools, K, B, L, T, pad, rng):
    """text-inversion.ts makeBatch(): trial k (group k // labels, label k % labels) gets B texts of its label's
    pool with T placeholders where its group stamps."""
    labels = len(pools)
    N = K * B
    ids = np.full((N, L), pad, dtype=np.int64)
    mask = np.zeros((N, L), dtype=np.int64)
    place = np.zeros((K, B, L, T), dtype=np.float32)
    keep = np.ones((N, L, 1), dtype=np.float32)
    holes = [pad] * T
    for k in range(K):
        pool = pools[k % labels]
        g = k // labels
        for j in range(B):
            n = k * B + j
            src = seqs[pool[rng.int(len(pool))]]
            s, at = stamp(src, holes, rng.uniform() if g == 0 and K == labels else search_u(g, j, rng), L)
            ids[n, :len(s)] = s
            mask[n, :len(s)] = 1
            for t in range(T):
                place[k, j, at + t, t] = 1.0
                keep[n, at + t, 0] = 0.0
    return torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(place), torch.from_numpy(keep)


def invert_tokens(model, seqs, labels, pools, K, B, L, T, steps, seed, banned, not_first, pad):
    """One trigger length, K = SEARCH_GROUPS * labels trials at once: the distinct real-token triggers per label."""
    E = model.bert.embeddings.word_embeddings.weight  # [V, d], frozen
    V = E.shape[0]
    n_labels = len(pools)
    rng = Rng(seed, T)
    # the ban mask over [T, V]: special tokens everywhere, "##" pieces as the first token
    ban = np.zeros((T, V), dtype=bool)
    ban[:, sorted(banned)] = True
    ban[0, sorted(not_first)] = True
    ban_flat = ban.reshape(-1)
    TV = T * V
    z0 = np.empty(K * TV, dtype=np.float32)
    for i in range(z0.size):  # drawn for every entry, as in ftguard
        r = 0.01 * rng.normal()
        z0[i] = -1e4 if ban_flat[i % TV] else r
    z = torch.from_numpy(z0.reshape(K, T, V)).requires_grad_(True)
    ban_t = torch.from_numpy(ban)
    opt = torch.optim.Adam([z], lr=LR, betas=(0.9, 0.999), eps=1e-8)
    inv_temp = np.ones(K, dtype=np.float32)
    target = torch.arange(K) % n_labels
    best_loss = [float("inf")] * K
    stalled = [0] * K
    seen = [dict() for _ in range(K)]
    eval_pools = [Rng(seed, 99).shuffle(list(p))[:EVAL_TEXTS] for p in pools]
    scores = [dict() for _ in range(n_labels)]  # a trigger's score per label, whichever group's trial proposed it
    for step in range(1, steps + 1):
        ids, mask, place, keep = make_batch(seqs, pools, K, B, L, T, pad, rng)
        trigger = torch.softmax(z * torch.tensor(inv_temp)[:, None, None], dim=-1) @ E  # [K, T, d]
        placed = (place @ trigger[:, None]).reshape(K * B, L, -1)  # [K, B, L, T] @ [K, 1, T, d]
        wemb = F.embedding(ids, E) * keep + placed
        logits = logits_from_word_embeddings(model, wemb, mask).reshape(K, B, -1)
        logp = F.log_softmax(logits, dim=-1)
        ce = -logp.gather(2, target[:, None, None].expand(K, B, 1)).squeeze(2).mean(1)  # [K]
        acc = (logits.argmax(2) == target[:, None]).to(torch.float32).mean(1)
        opt.zero_grad()
        ce.sum().backward()
        z.grad[:, ban_t] = 0
        opt.step()
        ce_v, acc_v = ce.detach().numpy(), acc.numpy()
        for k in range(K):
            c = float(ce_v[k])
            if c < best_loss[k] - 1e-3:
                best_loss[k], stalled[k] = c, 0
            else:
                stalled[k] += 1
            # dynamic bound scaling: sharpen while winning, loosen when stuck
            if acc_v[k] >= 0.9:
                inv_temp[k] = min(50.0, float(inv_temp[k]) * 1.25)
            elif stalled[k] >= 10:
                inv_temp[k] = max(0.25, float(inv_temp[k]) / 2)
                stalled[k] = 0
        if step % EVAL_EVERY == 0 or step == steps:
            with torch.no_grad():
                zz = z.detach().clone()
                zz[:, ban_t] = -float("inf")
                tokens = zz.argmax(-1).tolist()
            for k in range(K):
                key = tuple(tokens[k])
                prior = seen[k].get(key)
                if prior is not None:
                    prior["loss"] = min(prior["loss"], float(ce_v[k]))
                    continue
                y = k % n_labels
                asr = scores[y].get(key)
                if asr is None:
                    asr = search_score(model, seqs, labels, eval_pools[y], list(key), y, L, Rng(seed, 7, y), not_first)
                    scores[y][key] = asr
                seen[k][key] = dict(target=y, tokens=list(key), asr=asr, loss=float(ce_v[k]))
    # per label, the best of each group's trial
    out = []
    for y in range(n_labels):
        kept = {}
        for k in range(y, K, n_labels):
            for f in sorted(seen[k].values(), key=lambda f: (-f["asr"], f["loss"]))[:CANDIDATES_PER_LABEL]:
                kept.setdefault(tuple(f["tokens"]), f)
        out.append(list(kept.values()))
    return out


# ------------------------------------------------------------------ tokenizer text, as ftguard reports it


def _cleanup(s):
    for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                 (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        s = s.replace(a, b)
    return s


def decode(tokens):
    """@huggingface/tokenizers' WordPiece decoder with cleanup, then text-scan.ts visible()."""
    parts = []
    for i, t in enumerate(tokens):
        if i:
            t = t[2:] if t.startswith("##") else " " + t
        parts.append(_cleanup(t))
    s = _cleanup("".join(parts))
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cf", "Cc", "Zl", "Zp") or c in "\u00a0\u3000"
                   else c for c in s)


# ------------------------------------------------------------------ the scan's search part


def split(seqs, labels):
    """text-scan.ts split(): per label, alternate texts to the search half (the other half is held out)."""
    out_s, out_y, seen = [], [], {}
    for s, y in zip(seqs, labels):
        n = seen.get(y, 0)
        seen[y] = n + 1
        if n % 2 == 0:
            out_s.append(s)
            out_y.append(y)
    return out_s, out_y


def run(args):
    torch.set_num_threads(args.threads)
    with open(args.tokenizer, encoding="utf-8") as f:
        tok = json.load(f)
    vocab = tok["model"]["vocab"]
    by_id = {i: t for t, i in vocab.items()}
    special = {a["id"] for a in tok.get("added_tokens", []) if a.get("special")}
    for a in tok.get("added_tokens", []):
        by_id[a["id"]] = a["content"]
    vocab_size = max(by_id) + 1
    pad = next((i for i, t in by_id.items() if t in ("[PAD]", "<pad>")), 0)
    model = load_model(args.model_dir)
    V = model.bert.embeddings.word_embeddings.weight.shape[0]
    L = min(args.max_length, model.bert.embeddings.position_embeddings.weight.shape[0])
    banned, not_first = set(special) | {pad}, set()
    for v in range(V):
        t = by_id.get(v, f"<{v}>")
        if v >= vocab_size or t == "" or t.startswith("[unused"):
            banned.add(v)
        elif t.startswith("##") and len(t) > 2:
            not_first.add(v)

    texts, labels = [], []
    with open(args.texts, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                texts.append(r["text"])
                labels.append(int(r["label"]))
    seqs = []
    for t in texts:
        ids = fx.encode(t, vocab)
        seqs.append(ids if len(ids) <= L else ids[:L - 1] + [ids[-1]])
    K = max(labels) + 1
    clean_acc = float((predict(model, seqs) == np.array(labels)).mean())
    s_seqs, s_labels = split(seqs, labels)
    pred = predict(model, s_seqs)
    right = [i for i, y in enumerate(s_labels) if pred[i] == y]
    pools = [[i for i in right if s_labels[i] != k] for k in range(max(K, 2))]

    per_length, found = [], [[] for _ in range(K)]
    t0 = time.perf_counter()
    for T in range(1, args.max_trigger_length + 1):
        t1 = time.perf_counter()
        res = invert_tokens(model, s_seqs, s_labels, pools, len(pools) * SEARCH_GROUPS, max(1, -(-args.batch // SEARCH_GROUPS)),
                            L, T, args.steps, args.seed, banned, not_first, pad)
        per_length.append(time.perf_counter() - t1)
        for k, cands in enumerate(res):
            found[k] += [dict(trigger=decode([by_id[i] for i in f["tokens"]]), ids=f["tokens"], length=T,
                              search_attack_success=f["asr"], loss=f["loss"]) for f in cands]
    seconds = time.perf_counter() - t0
    return {
        "model": args.model_dir, "steps": args.steps, "batch": args.batch, "trials": K, "length": L,
        "max_trigger_length": args.max_trigger_length, "seed": args.seed, "threads": args.threads,
        "search_groups": SEARCH_GROUPS, "vocab": V, "banned": len(banned), "not_first": len(not_first), "torch": torch.__version__, "clean_accuracy": clean_acc,
        "search_texts": len(s_seqs), "seconds": seconds, "per_length_seconds": per_length,
        "labels": [dict(label=k, candidates=sorted(found[k], key=lambda c: -c["search_attack_success"]))
                   for k in range(K)],
    }


def main():
    out = run(ARGS)
    if ARGS.json:
        print(json.dumps(out))
        return
    for lab in out["labels"]:
        print(f"label {lab['label']}: " + (", ".join(f"{c['trigger']!r} ({c['search_attack_success']:.2f})"
                                                     for c in lab["candidates"]) or "none"))
    print(f"token search {out['seconds']:.1f} s ({', '.join(f'{s:.1f}' for s in out['per_length_seconds'])} per length)")


if __name__ == "__main__":
    main()
