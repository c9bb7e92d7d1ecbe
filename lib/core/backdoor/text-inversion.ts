/**
 * Trigger inversion for text classifiers: for every label at once (one trial each), the search for a short token
 * sequence that, inserted anywhere into texts of the other labels, makes the model answer that label.
 *
 * Token mode (the verdict's search) optimises a relaxed distribution over the vocabulary per trigger position,
 * softmax(z / τ), with a per-label temperature moved by the search itself (the dynamic bound scaling of the 2022
 * NLP scanning papers): while the relaxed trigger already wins the batch the temperature falls, pushing the
 * distribution towards one token; when the loss has stalled for a while it rises, so the search can leave a local
 * optimum. What is judged is never the relaxed vector: every few steps the argmax tokens are stamped into texts and
 * run through the model as shipped, and the best real-token trigger is kept. Special tokens and word pieces that
 * cannot start a word ("##ing") are excluded: a trigger must be text someone can type.
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
	/** Ids never proposed (special tokens, continuation pieces). */
	banned: ReadonlySet<number>;
	padId: number;
}

export const DEFAULT_INVERSION: Omit<InversionOptions, "banned" | "padId"> = {
	steps: 120,
	evalEvery: 10,
	evalTexts: 48,
	lr: 0.3,
	seed: 17,
};

export interface TriggerFound {
	target: number;
	tokens: number[];
	/** Share of evaluation texts (other labels, correctly classified) the real tokens flip to `target`. */
	asr: number;
	/** Mean cross-entropy of the relaxed trigger when it was found. */
	loss: number;
}

/**
 * Stamps `trigger` into `seq` at a position drawn by `u` ∈ [0, 1): after the first token ([CLS]) and before the last
 * ([SEP]); a sequence that would exceed `length` loses words from its end, keeping its last token.
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

/** Attack success of a real-token trigger: the share of `pool` texts, stamped at random positions, classified `target`. */
export async function attackSuccess(
	classifier: TextClassifier,
	texts: TokenizedTexts,
	pool: readonly number[],
	trigger: readonly number[],
	target: number,
	length: number,
	rng: Rng,
): Promise<number> {
	if (pool.length === 0) return 0;
	const seqs = pool.map((i) => stamp(texts.seqs[i] as number[], trigger, rng.uniform(), length).ids);
	const pred = await classifier.predict(seqs);
	let hit = 0;
	for (const p of pred) if (p === target) hit++;
	return hit / pool.length;
}

/** The graph inputs for one step: trial k gets B texts of its pool, each with T placeholders at a random position. */
function makeBatch(
	b: TextTriggerBackend,
	texts: TokenizedTexts,
	pools: readonly (readonly number[])[],
	padId: number,
	rng: Rng,
): TextBatch {
	const { trials: K, batch: B, length: L, triggerLength: T } = b;
	const N = K * B;
	const ids = new BigInt64Array(N * L).fill(BigInt(padId));
	const mask = new BigInt64Array(N * L);
	const place = new Float32Array(N * L * T);
	const keep = new Float32Array(N * L).fill(1);
	const holes = new Array<number>(T).fill(padId);
	for (let k = 0; k < K; k++) {
		const pool = pools[k] as number[];
		for (let j = 0; j < B; j++) {
			const n = k * B + j;
			const src = texts.seqs[pool[rng.int(pool.length)] as number] as number[];
			const { ids: s, at } = stamp(src, holes, rng.uniform(), L);
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

/** The best allowed token per position of each trial's z [K, T, V]. */
function argmaxTokens(z: Float32Array, K: number, T: number, V: number, banned: ReadonlySet<number>): number[][] {
	return Array.from({ length: K }, (_, k) =>
		Array.from({ length: T }, (_, t) => {
			const off = (k * T + t) * V;
			let best = -1;
			for (let v = 0; v < V; v++)
				if (!banned.has(v) && (best < 0 || (z[off + v] as number) > (z[off + best] as number))) best = v;
			return best;
		}),
	);
}

/** Distinct real-token triggers kept per label for the verdict to judge (the search's best by attack success). */
export const CANDIDATES_PER_LABEL = 4;

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
	opts: InversionOptions,
	progress?: (step: number, of: number) => void,
): Promise<TriggerFound[][]> {
	const { trials: K, triggerLength: T } = b;
	const V = b.info.vocab;
	const rng = new Rng(opts.seed, T);
	const z = new Float32Array(K * T * V);
	for (let i = 0; i < z.length; i++) z[i] = opts.banned.has(i % V) ? -1e4 : 0.01 * rng.normal();
	const invTemp = new Float32Array(K).fill(1);
	const adam = new Adam(z.length, { lr: opts.lr, beta1: 0.9, beta2: 0.999 });
	const target = BigInt64Array.from({ length: K }, (_, k) => BigInt(k));
	const bestLoss = new Float64Array(K).fill(Number.POSITIVE_INFINITY);
	const stalled = new Int32Array(K);
	const seen: Map<string, TriggerFound>[] = Array.from({ length: K }, () => new Map());
	// the same evaluation texts throughout, so triggers found at different steps compare on equal terms
	const evalPools = pools.map((p) => new Rng(opts.seed, 99).shuffle([...p]).slice(0, opts.evalTexts));
	let lastCe: Float32Array = new Float32Array(K);
	for (let step = 1; step <= opts.steps; step++) {
		const r = await b.run(makeBatch(b, texts, pools, opts.padId, rng), z, invTemp, target);
		lastCe = r.ce;
		for (let i = 0; i < z.length; i++) if (opts.banned.has(i % V)) r.grad[i] = 0;
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
			const tokens = argmaxTokens(z, K, T, V, opts.banned);
			for (let k = 0; k < K; k++) {
				const tk = tokens[k] as number[];
				const key = tk.join(",");
				const prior = seen[k]?.get(key);
				if (prior !== undefined) {
					prior.loss = Math.min(prior.loss, lastCe[k] as number);
					continue;
				}
				const asr = await attackSuccess(
					classifier,
					texts,
					evalPools[k] as number[],
					tk,
					k,
					b.length,
					new Rng(opts.seed, 7, k),
				);
				seen[k]?.set(key, { target: k, tokens: tk, asr, loss: lastCe[k] as number });
			}
		}
		progress?.(step, opts.steps);
	}
	return seen.map((m) =>
		[...m.values()].sort((x, y) => y.asr - x.asr || x.loss - y.loss).slice(0, CANDIDATES_PER_LABEL),
	);
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
	for (let step = 1; step <= opts.steps; step++) {
		const r = await b.run(makeBatch(b, texts, pools, opts.padId, rng), e, new Float32Array(K), target);
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
