/**
 * Trigger inversion for text classifiers: for every label at once (one trial each), the search for a short token
 * sequence that, inserted anywhere into texts of the other labels, makes the model answer that label.
 *
 * Token mode (the verdict's search) optimises a relaxed distribution over the vocabulary per trigger position,
 * softmax(z / τ), with a per-label temperature moved by the search itself (the dynamic bound scaling of the 2022
 * NLP scanning papers): while the relaxed trigger already wins the batch the temperature falls, pushing the
 * distribution towards one token; when the loss has stalled for a while it rises, so the search can leave a local
 * optimum. What is judged is never the relaxed vector: every few steps the argmax tokens are stamped into texts and
 * run through the model as shipped, and the best real-token trigger is kept. Special tokens are excluded everywhere;
 * word pieces that cannot start a word ("##ing") only as the first trigger token: after a word-start token they spell a
 * word the vocabulary lacks ("zqxv" → z ##q ##x ##v), which someone can type.
 *
 * Where a trigger goes matters (a backdoor may fire only as the first word): the search stamps a quarter of each batch
 * right after [CLS], a quarter right before [SEP] and the rest at random positions, and every real-token trigger is
 * evaluated at each of POSITIONS (one-word triggers; longer ones at random positions) and counted where it works best.
 *
 * Embedding mode is the continuous search (free vectors in embedding space); it is reported, not judged on: an
 * unconstrained vector flips a clean model as easily as a backdoored one.
 */
import { Adam } from "./adam";
import { Rng } from "./rng";
import type { TextBatch, TextClassifier, TextTriggerBackend } from "./text-runtime";

/** Token sequences as the model takes them ([CLS] … [SEP]) with their labels. */
export interface TokenizedTexts {
	seqs: number[][];
	labels: number[];
}

export interface InversionOptions {
	/** Optimiser steps per trigger length. */
	steps: number;
	/** Steps between evaluations of the current real-token trigger. */
	evalEvery: number;
	/** Texts per label per evaluation. */
	evalTexts: number;
	lr: number;
	seed: number;
	/** Ids never proposed (special tokens, unused slots). */
	banned: ReadonlySet<number>;
	/** Ids never proposed as the first trigger token (continuation pieces "##…"). */
	notFirst: ReadonlySet<number>;
	padId: number;
}

export const DEFAULT_INVERSION: Omit<InversionOptions, "banned" | "notFirst" | "padId"> = {
	steps: 120,
	evalEvery: 10,
	evalTexts: 48,
	lr: 0.3,
	seed: 17,
};

export interface TriggerFound {
	target: number;
	tokens: number[];
	/**
	 * Share of evaluation texts (other labels, correctly classified) the real tokens flip to `target`, at the position
	 * where it is highest; or, where higher, that share among the texts of one source label (a source-specific
	 * backdoor flips only those).
	 */
	asr: number;
	/** Mean cross-entropy of the relaxed trigger when it was found. */
	loss: number;
	/** The source label of the pair trial that found it (null: a trial on every source label's texts). */
	source: number | null;
}

/**
 * Where a trigger is inserted: at a random position per text, right after [CLS], or right before [SEP]. A one-word
 * trigger is judged at each and counted where it works (a backdoor may fire at one place only); a longer one at random
 * positions only (oneWord()).
 */
export const POSITIONS = ["random", "start", "end"] as const;
export type TriggerPosition = (typeof POSITIONS)[number];

/**
 * Whether a trigger is one word: a word-start token and continuation pieces ("z ##q ##x"). Only such a trigger counts at
 * a fixed position: right after [CLS] a few words that are evidence for a label override any text in a clean small
 * encoder (clean-s2: "puzzle invasion alien" there sends 96% of the three-times-longer texts to games), so several
 * words stacked at one place are no sign of a backdoor.
 */
export function oneWord(trigger: readonly number[], notFirst: ReadonlySet<number>): boolean {
	return trigger.slice(1).every((id) => notFirst.has(id));
}

/** The `u` of stamp() for a position (random: drawn from `rng`). */
export function positionU(p: TriggerPosition, rng: Rng): number {
	return p === "start" ? 0 : p === "end" ? 1 - 1e-9 : rng.uniform();
}

/**
 * Stamps `trigger` into `seq` at a position drawn by `u` ∈ [0, 1): after the first token ([CLS]) and before the last
 * ([SEP]); u = 0 is right after [CLS], u → 1 right before [SEP]. A sequence that would exceed `length` loses words
 * from its end, keeping its last token.
 */
export function stamp(
	seq: readonly number[],
	trigger: readonly number[],
	u: number,
	length: number,
): { ids: number[]; at: number } {
	let body = seq;
	if (body.length + trigger.length > length)
		body = [...seq.slice(0, Math.max(1, length - trigger.length - 1)), seq[seq.length - 1] as number];
	const at = 1 + Math.floor(u * Math.max(1, body.length - 1));
	return { ids: [...body.slice(0, at), ...trigger, ...body.slice(at)], at };
}

/** For each label, the sequences of the other labels that the model (its predictions `pred`) classifies as their own. */
export function sourcePools(texts: TokenizedTexts, pred: ArrayLike<number>, numClasses: number): number[][] {
	const right = texts.labels.map((y, i) => (pred[i] === y ? i : -1)).filter((i) => i >= 0);
	return Array.from({ length: numClasses }, (_, k) => right.filter((i) => texts.labels[i] !== k));
}

/**
 * Per position (POSITIONS order), whether each `pool` text with `trigger` stamped there is classified `target`: one
 * model run for all positions.
 */
export async function stampedHits(
	classifier: TextClassifier,
	texts: TokenizedTexts,
	pool: readonly number[],
	trigger: readonly number[],
	target: number,
	length: number,
	rng: Rng,
	positions: readonly TriggerPosition[] = POSITIONS,
): Promise<boolean[][]> {
	if (pool.length === 0) return positions.map(() => []);
	const seqs = positions.flatMap((p) =>
		pool.map((i) => stamp(texts.seqs[i] as number[], trigger, positionU(p, rng), length).ids),
	);
	const pred = await classifier.predict(seqs);
	return positions.map((_, j) => pool.map((_, i) => pred[j * pool.length + i] === target));
}

/** Attack success of a real-token trigger: the share of `pool` texts, stamped at `position`, classified `target`. */
export async function attackSuccess(
	classifier: TextClassifier,
	texts: TokenizedTexts,
	pool: readonly number[],
	trigger: readonly number[],
	target: number,
	length: number,
	rng: Rng,
	position: TriggerPosition = "random",
): Promise<number> {
	if (pool.length === 0) return 0;
	const [hits] = await stampedHits(classifier, texts, pool, trigger, target, length, rng, [position]);
	return (hits as boolean[]).filter(Boolean).length / pool.length;
}

/**
 * The search runs every label's trial in SEARCH_GROUPS groups that stamp differently: group 0 anywhere (a quarter of
 * the batch right before [SEP], the rest at random positions), group 1 right after [CLS]. A trigger tied to the first
 * word gets a trial of its own: mixed into a batch its few texts weigh less than a word that helps a little anywhere.
 * Trials searching one (label, source label) pair come after them (searchTrials()).
 */
export const SEARCH_GROUPS = 2;

/** One trial of the token search: the label it searches a trigger for, the texts its batches come from, where it stamps. */
export interface SearchTrial {
	label: number;
	/**
	 * anywhere: a quarter of the batch right before [SEP], the rest at random positions; start: right after [CLS];
	 * random: every text at a random position (the continuous search)
	 */
	stamp: "anywhere" | "start" | "random";
	/** the search texts (indices) its batches are drawn from */
	pool: readonly number[];
	/** the one source label its pool holds (null: every other label) */
	source: number | null;
}

/**
 * The token search's trials: each label's SEARCH_GROUPS trials (group g of label k at g·K + k), then one per
 * (label, source) pair of `pairs`, stamping anywhere on that source label's texts only. On texts of every source, words
 * that are evidence for a label flip a little of each and outweigh a trigger that flips one source only (a
 * source-specific backdoor: "factory" on libdevel texts → python); searched on that source's texts alone it is found.
 */
export function searchTrials(
	texts: TokenizedTexts,
	pools: readonly (readonly number[])[],
	pairs: readonly (readonly [number, number])[] = [],
): SearchTrial[] {
	const groups = (["anywhere", "start"] as const).flatMap((stamp) =>
		pools.map((pool, label): SearchTrial => ({ label, stamp, pool, source: null })),
	);
	const alone = pairs.map(
		([label, source]): SearchTrial => ({
			label,
			stamp: "anywhere",
			pool: (pools[label] ?? []).filter((i) => texts.labels[i] === source),
			source,
		}),
	);
	return [...groups, ...alone.filter((t) => t.pool.length > 0)];
}

/** Where the search stamps the j-th text of a batch of a trial stamping `stamp`. */
function searchU(stamp: SearchTrial["stamp"], j: number, rng: Rng): number {
	const u = rng.uniform();
	return stamp === "start" ? 0 : stamp === "anywhere" && j % 4 === 1 ? 1 - 1e-9 : u;
}

/** Smallest number of texts of one source label whose share counts in the search's evaluation. */
const MIN_EVAL_SOURCE = 8;

/**
 * The search's score of a real-token trigger on its evaluation texts, as the verdict judges it: the best share flipped
 * of all texts at random positions or, for a one-word trigger, at a fixed position; or of the texts of one source
 * label (at least MIN_EVAL_SOURCE of them) at random positions.
 */
async function searchScore(
	classifier: TextClassifier,
	texts: TokenizedTexts,
	pool: readonly number[],
	trigger: readonly number[],
	target: number,
	length: number,
	rng: Rng,
	notFirst: ReadonlySet<number>,
): Promise<number> {
	if (pool.length === 0) return 0;
	const at = oneWord(trigger, notFirst) ? POSITIONS : (["random"] as const);
	const hits = await stampedHits(classifier, texts, pool, trigger, target, length, rng, at);
	let best = 0;
	for (const [pi, h] of hits.entries()) {
		best = Math.max(best, h.filter(Boolean).length / pool.length);
		if (at[pi] !== "random") continue;
		const by = new Map<number, [number, number]>();
		for (const [i, hit] of h.entries()) {
			const y = texts.labels[pool[i] as number] as number;
			const c = by.get(y) ?? [0, 0];
			by.set(y, [c[0] + Number(hit), c[1] + 1]);
		}
		for (const [n, of] of by.values()) if (of >= MIN_EVAL_SOURCE) best = Math.max(best, n / of);
	}
	return best;
}

/**
 * The graph inputs for one step: trial k gets B texts of its pool, each with T placeholders where it stamps. The
 * trials of every source draw from `main`, the pair trials from `extra`: adding pair trials leaves the others' batches,
 * and so what they find, as they were.
 */
function makeBatch(
	b: TextTriggerBackend,
	texts: TokenizedTexts,
	specs: readonly SearchTrial[],
	padId: number,
	main: Rng,
	extra: Rng = main,
): TextBatch {
	const { trials, batch: B, length: L, triggerLength: T } = b;
	const N = trials * B;
	const ids = new BigInt64Array(N * L).fill(BigInt(padId));
	const mask = new BigInt64Array(N * L);
	const place = new Float32Array(N * L * T);
	const keep = new Float32Array(N * L).fill(1);
	const holes = new Array<number>(T).fill(padId);
	for (let k = 0; k < trials; k++) {
		const spec = specs[k] as SearchTrial;
		const pool = spec.pool;
		const rng = spec.source === null ? main : extra;
		for (let j = 0; j < B; j++) {
			const n = k * B + j;
			const src = texts.seqs[pool[rng.int(pool.length)] as number] as number[];
			const { ids: s, at } = stamp(src, holes, searchU(spec.stamp, j, rng), L);
			for (let i = 0; i < s.length; i++) {
				ids[n * L + i] = BigInt(s[i] as number);
				mask[n * L + i] = 1n;
			}
			for (let t = 0; t < T; t++) {
				place[(n * L + at + t) * T + t] = 1;
				keep[n * L + at + t] = 0;
			}
		}
	}
	return { ids, mask, place, keep };
}

/** Whether token v may stand at trigger position t. */
const allowed = (opts: Pick<InversionOptions, "banned" | "notFirst">, t: number, v: number) =>
	!opts.banned.has(v) && (t > 0 || !opts.notFirst.has(v));

/** The best allowed token per position of each trial's z [K, T, V]. */
function argmaxTokens(
	z: Float32Array,
	K: number,
	T: number,
	V: number,
	opts: Pick<InversionOptions, "banned" | "notFirst">,
): number[][] {
	return Array.from({ length: K }, (_, k) =>
		Array.from({ length: T }, (_, t) => {
			const off = (k * T + t) * V;
			let best = -1;
			for (let v = 0; v < V; v++)
				if (allowed(opts, t, v) && (best < 0 || (z[off + v] as number) > (z[off + best] as number))) best = v;
			return best;
		}),
	);
}

/** Distinct real-token triggers kept per label and search group for the verdict to judge (the best by attack success). */
export const CANDIDATES_PER_LABEL = 4;
/** … and per (label, source) pair trial: its best are what the pair adds (the verdict's cost grows with candidates). */
export const CANDIDATES_PER_PAIR = 2;

/**
 * The token-level search on one backend (one trigger length): per label, the distinct real-token triggers the
 * search passed through, best first (attack success on `evalTexts` texts of the search pools, then relaxed loss),
 * at most CANDIDATES_PER_LABEL. Several are kept because the most potent trigger of a label may be one of its own
 * words; the verdict judges each.
 */
export async function invertTokens(
	b: TextTriggerBackend,
	classifier: TextClassifier,
	texts: TokenizedTexts,
	pools: readonly (readonly number[])[],
	specs: readonly SearchTrial[],
	opts: InversionOptions,
	progress?: (step: number, of: number) => void,
): Promise<TriggerFound[][]> {
	const { trials: K, triggerLength: T } = b;
	if (specs.length !== K) throw new Error(`${specs.length} search trials for a backend of ${K}`);
	const labels = pools.length;
	const V = b.info.vocab;
	const rng = new Rng(opts.seed, T);
	const extra = new Rng(opts.seed, T, 1);
	const z = new Float32Array(K * T * V);
	// the ban mask over [K, T, V]: banned logits start far down and get no gradient
	const ban = new Uint8Array(T * V);
	for (let t = 0; t < T; t++) for (let v = 0; v < V; v++) ban[t * V + v] = allowed(opts, t, v) ? 0 : 1;
	for (let i = 0; i < z.length; i++) {
		const r = 0.01 * rng.normal(); // drawn for every entry, so the stream does not depend on the bans
		z[i] = ban[i % (T * V)] ? -1e4 : r;
	}
	const invTemp = new Float32Array(K).fill(1);
	const adam = new Adam(z.length, { lr: opts.lr, beta1: 0.9, beta2: 0.999 });
	const target = BigInt64Array.from(specs, (t) => BigInt(t.label));
	const bestLoss = new Float64Array(K).fill(Number.POSITIVE_INFINITY);
	const stalled = new Int32Array(K);
	const seen: Map<string, TriggerFound>[] = Array.from({ length: K }, () => new Map());
	// the same evaluation texts throughout, so triggers found at different steps compare on equal terms
	const evalPools = pools.map((p) => new Rng(opts.seed, 99).shuffle([...p]).slice(0, opts.evalTexts));
	// a trigger's score per label, whichever group's trial proposed it
	const scores: Map<string, number>[] = Array.from({ length: labels }, () => new Map());
	let lastCe: Float32Array = new Float32Array(K);
	for (let step = 1; step <= opts.steps; step++) {
		const r = await b.run(makeBatch(b, texts, specs, opts.padId, rng, extra), z, invTemp, target);
		lastCe = r.ce;
		for (let i = 0; i < z.length; i++) if (ban[i % (T * V)]) r.grad[i] = 0;
		adam.step(z, r.grad);
		for (let k = 0; k < K; k++) {
			const ce = r.ce[k] as number;
			if (ce < (bestLoss[k] as number) - 1e-3) {
				bestLoss[k] = ce;
				stalled[k] = 0;
			} else stalled[k] = (stalled[k] as number) + 1;
			// dynamic bound scaling: sharpen while winning, loosen when stuck
			if ((r.acc[k] as number) >= 0.9) invTemp[k] = Math.min(50, (invTemp[k] as number) * 1.25);
			else if ((stalled[k] as number) >= 10) {
				invTemp[k] = Math.max(0.25, (invTemp[k] as number) / 2);
				stalled[k] = 0;
			}
		}
		if (step % opts.evalEvery === 0 || step === opts.steps) {
			const tokens = argmaxTokens(z, K, T, V, opts);
			for (let k = 0; k < K; k++) {
				const tk = tokens[k] as number[];
				const key = tk.join(",");
				const prior = seen[k]?.get(key);
				if (prior !== undefined) {
					prior.loss = Math.min(prior.loss, lastCe[k] as number);
					continue;
				}
				const y = (specs[k] as SearchTrial).label;
				let asr = scores[y]?.get(key);
				if (asr === undefined) {
					asr = await searchScore(
						classifier,
						texts,
						evalPools[y] as number[],
						tk,
						y,
						b.length,
						new Rng(opts.seed, 7, y),
						opts.notFirst,
					);
					scores[y]?.set(key, asr);
				}
				seen[k]?.set(key, {
					target: y,
					tokens: tk,
					asr,
					loss: lastCe[k] as number,
					source: (specs[k] as SearchTrial).source,
				});
			}
		}
		progress?.(step, opts.steps);
	}
	// per label, the best of each of its trials (a trigger a trial of every source found too counts as theirs)
	return Array.from({ length: labels }, (_, y) => {
		const kept = new Map<string, TriggerFound>();
		for (const [k, spec] of specs.entries()) {
			if (spec.label !== y) continue;
			for (const f of [...(seen[k]?.values() ?? [])]
				.sort((p, q) => q.asr - p.asr || p.loss - q.loss)
				.slice(0, spec.source === null ? CANDIDATES_PER_LABEL : CANDIDATES_PER_PAIR))
				if (!kept.has(f.tokens.join())) kept.set(f.tokens.join(), f);
		}
		return [...kept.values()];
	});
}

export interface EmbeddingTrigger {
	target: number;
	/** Mean cross-entropy and relaxed attack success at the end of the search. */
	loss: number;
	asr: number;
	/** L2 norm of each trigger vector, and the allowed token nearest each (cosine). */
	norms: number[];
	nearest: number[];
}

/** The continuous search: free trigger vectors, Adam from the mean embedding. `table` is the [V, d] embedding matrix. */
export async function invertEmbeddings(
	b: TextTriggerBackend,
	texts: TokenizedTexts,
	pools: readonly (readonly number[])[],
	table: Float32Array,
	opts: InversionOptions,
): Promise<EmbeddingTrigger[]> {
	const { trials: K, triggerLength: T } = b;
	const { vocab: V, dim: d } = b.info;
	const rng = new Rng(opts.seed, 1000 + T);
	const mean = new Float64Array(d);
	for (let v = 0; v < V; v++)
		for (let j = 0; j < d; j++) mean[j] = (mean[j] as number) + (table[v * d + j] as number) / V;
	const e = Float32Array.from({ length: K * T * d }, (_, i) => (mean[i % d] as number) + 0.01 * rng.normal());
	const adam = new Adam(e.length, { lr: 0.05, beta1: 0.9, beta2: 0.999 });
	const target = BigInt64Array.from({ length: K }, (_, k) => BigInt(k));
	let last: { ce: Float32Array; acc: Float32Array } = { ce: new Float32Array(K), acc: new Float32Array(K) };
	const specs = pools.map((pool, label): SearchTrial => ({ label, stamp: "random", pool, source: null }));
	for (let step = 1; step <= opts.steps; step++) {
		const r = await b.run(makeBatch(b, texts, specs, opts.padId, rng), e, new Float32Array(K), target);
		last = r;
		adam.step(e, r.grad);
	}
	const norms2 = new Float64Array(V);
	for (let v = 0; v < V; v++)
		for (let j = 0; j < d; j++) norms2[v] = (norms2[v] as number) + (table[v * d + j] as number) ** 2;
	return Array.from({ length: K }, (_, k) => {
		const norms: number[] = [];
		const nearest: number[] = [];
		for (let t = 0; t < T; t++) {
			const off = (k * T + t) * d;
			let n2 = 0;
			for (let j = 0; j < d; j++) n2 += (e[off + j] as number) ** 2;
			let best = -1;
			let bestCos = Number.NEGATIVE_INFINITY;
			for (let v = 0; v < V; v++) {
				if (opts.banned.has(v)) continue;
				let dot = 0;
				for (let j = 0; j < d; j++) dot += (e[off + j] as number) * (table[v * d + j] as number);
				const cos = dot / Math.sqrt(n2 * (norms2[v] as number) + 1e-12);
				if (cos > bestCos) {
					bestCos = cos;
					best = v;
				}
			}
			norms.push(Math.sqrt(n2));
			nearest.push(best);
		}
		return { target: k, loss: last.ce[k] as number, asr: last.acc[k] as number, norms, nearest };
	});
}
