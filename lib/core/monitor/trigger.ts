/**
 * Candidate trigger: the rare input n-gram shared by the inputs whose outputs are the repeated one. How common an
 * n-gram is in ordinary traffic comes from a count-min sketch of input word n-grams (1–3 words) with a fixed size
 * (SKETCH_DEPTH × SKETCH_WIDTH counters) that halves every few windows, so memory is bounded whatever the traffic
 * and old traffic fades.
 */
import { foldText, newTokens, ngramHash, type Tokens, tokenize } from "./text";

export const SKETCH_WIDTH = 4096;
export const SKETCH_DEPTH = 2;
/** input words fed to the sketch per record (a long prompt is sampled by its first words) */
const SKETCH_WORDS = 256;

export interface InputSketch {
	counts: Uint32Array;
	/** inputs counted (decayed with the counters) */
	total: number;
	/** inputs since the last halving */
	sinceDecay: number;
}

export function newSketch(): InputSketch {
	return { counts: new Uint32Array(SKETCH_WIDTH * SKETCH_DEPTH), total: 0, sinceDecay: 0 };
}

function slot(h: number, row: number): number {
	const x = row === 0 ? h : Math.imul(h ^ 0x5bd1e995, 0x27d4eb2d) ^ (h >>> 15);
	return row * SKETCH_WIDTH + ((x >>> 0) & (SKETCH_WIDTH - 1));
}

/**
 * Counts the input's n-grams (a document frequency for short inputs). Conservative update: only the row counters
 * at the current minimum grow, which keeps the estimate of rare n-grams close to the truth in a small sketch.
 */
export function sketchAdd(s: InputSketch, tokens: Tokens, decayEvery: number): void {
	const n = Math.min(tokens.count, SKETCH_WORDS);
	const { counts } = s;
	for (let len = 1; len <= 3; len++) {
		for (let i = 0; i + len <= n; i++) {
			const h = ngramHash(tokens.words, i, len);
			const k0 = slot(h, 0);
			const k1 = slot(h, 1);
			const c0 = counts[k0] as number;
			const c1 = counts[k1] as number;
			const m = Math.min(c0, c1);
			if (c0 === m) counts[k0] = m + 1;
			if (c1 === m) counts[k1] = m + 1;
		}
	}
	s.total++;
	if (++s.sinceDecay >= decayEvery) {
		s.sinceDecay = 0;
		for (let i = 0; i < counts.length; i++) counts[i] = (counts[i] as number) >>> 1;
		s.total /= 2;
	}
}

/** Estimated share of inputs holding the n-gram (count-min: never under the truth). */
export function sketchShare(s: InputSketch, h: number): number {
	if (s.total <= 0) return 0;
	let min = Number.POSITIVE_INFINITY;
	for (let r = 0; r < SKETCH_DEPTH; r++) min = Math.min(min, s.counts[slot(h, r)] as number);
	return Math.min(1, min / s.total);
}

export interface CandidateTrigger {
	/** the n-gram as it appears (folded) in the inputs */
	ngram: string;
	/** share of the sampled inputs behind the repeated output that hold it */
	clusterInputShare: number;
	/** estimated share of all recent inputs that hold it */
	trafficInputShare: number;
	samples: number;
}

/**
 * Among the n-grams held by at least `minCoverage` of the sampled inputs, the one most over-represented there
 * compared with all traffic (coverage / traffic share), if it is rare (≤ `maxInputShare`) and at least 3× over-
 * represented; between near-equal scores the longer n-gram wins (the whole trigger phrase, not one of its words).
 */
export function candidateTrigger(
	sketch: InputSketch,
	samples: readonly string[],
	opts: { minCoverage: number; maxInputShare: number },
): CandidateTrigger | undefined {
	if (samples.length < 3) return undefined;
	const coverage = new Map<number, { n: number; text: string; len: number }>();
	const tok = newTokens(true);
	for (const sample of samples) {
		const folded = foldText(sample);
		tokenize(folded, tok);
		const seen = new Set<number>();
		const n = Math.min(tok.count, SKETCH_WORDS);
		for (let len = 1; len <= 3; len++) {
			for (let i = 0; i + len <= n; i++) {
				const h = ngramHash(tok.words, i, len);
				if (seen.has(h)) continue;
				seen.add(h);
				const c = coverage.get(h);
				if (c === undefined) {
					const starts = tok.starts as Uint32Array;
					const ends = tok.ends as Uint32Array;
					const text = folded.slice(starts[i] as number, ends[i + len - 1] as number);
					coverage.set(h, { n: 1, text, len });
				} else c.n++;
			}
		}
	}
	const need = Math.ceil(opts.minCoverage * samples.length);
	const floor = 1 / Math.max(sketch.total, 1);
	const scored: (CandidateTrigger & { score: number; len: number })[] = [];
	for (const [h, c] of coverage) {
		if (c.n < need) continue;
		const traffic = sketchShare(sketch, h);
		if (traffic > opts.maxInputShare) continue;
		const share = c.n / samples.length;
		const score = share / Math.max(traffic, floor);
		if (score < 3) continue;
		scored.push({
			ngram: c.text,
			clusterInputShare: share,
			trafficInputShare: traffic,
			samples: samples.length,
			score,
			len: c.len,
		});
	}
	if (scored.length === 0) return undefined;
	// the best score, then the longest n-gram as well covered and within a factor 2 of it: the whole trigger phrase
	// rather than one of its words (the sketch's error on each is of that order)
	scored.sort((a, b) => b.score - a.score);
	const top = scored[0] as (typeof scored)[number];
	let best = top;
	for (const s of scored)
		if (s.score >= top.score / 2 && s.clusterInputShare >= top.clusterInputShare && s.len > best.len) best = s;
	const { score: _s, len: _l, ...out } = best;
	return out;
}
