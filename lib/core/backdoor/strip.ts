/**
 * STRIP (Gao et al., "STRIP: A Defence Against Trojan Attacks on Deep Neural
 * Networks", ACSAC 2019). An input carrying an input-agnostic trigger keeps its
 * (target) prediction when clean images are superimposed on it, so the softmax
 * of the perturbed copies has low entropy; a clean input's prediction scatters.
 *
 * - Superimposition as the paper's cv2.addWeighted(x, 1, x_j, 1, 0): x + x_j,
 *   saturated (clipped) to the input range [lo, hi].
 * - Score of an input = mean over N perturbed copies (default 100, overlays drawn
 *   with replacement from the overlay pool) of −Σ p log2 p of the softmax.
 * - The reference data is split by a seeded shuffle: one part is the overlay
 *   pool, the other (default half) the held-out clean inputs whose scores set the
 *   boundary = their FRR-quantile (default 1%, linear interpolation). The paper
 *   fits a normal to the clean scores and takes its FRR percentile; the empirical
 *   quantile makes no distribution assumption.
 * - An input is flagged when its score < boundary.
 * Model calls are batched: many perturbed copies (of many inputs) per logits().
 */
import { FtguardError } from "../errors";
import { Rng } from "./rng";
import { softmaxEntropy } from "./softmax";
import { mean, minMax, quantile, std } from "./summary-stats";
import type { InferenceRunner } from "./types";

export interface StripOptions {
	/** superimpositions per input (default 100) */
	overlays?: number;
	/** false rejection rate that sets the boundary (default 0.01) */
	frr?: number;
	/** fraction of the reference data held out as clean inputs to score (default 0.5) */
	holdout?: number;
	seed?: number;
	/** input range for saturation; default the min and max of the reference data */
	lo?: number;
	hi?: number;
	/** perturbed inputs per logits() call (default 2048, fewer for large inputs) */
	batch?: number;
}

export interface ScoreSummary {
	count: number;
	mean: number;
	std: number;
	min: number;
	max: number;
}

export interface StripCalibration {
	boundary: number;
	frr: number;
	overlays: number;
	seed: number;
	lo: number;
	hi: number;
	/** reference indices superimposed on inputs */
	poolIndices: Int32Array;
	/** reference indices scored as clean inputs */
	heldOutIndices: Int32Array;
	/** scores of the held-out inputs, in heldOutIndices order */
	cleanScores: Float64Array;
	clean: ScoreSummary;
}

export interface Trigger {
	cls: number;
	/** [1, H, W] for image inputs [C, H, W] (broadcast over channels) or the input's shape */
	mask: Float32Array;
	/** the input's shape, in input space */
	pattern: Float32Array;
}

export interface StripTriggerResult {
	cls: number;
	/** stamped inputs scored */
	count: number;
	/** fraction of stamped inputs with score < boundary */
	fractionBelow: number;
	meanScore: number;
	/** each stamped input's score (the report's histogram) */
	scores: Float64Array;
}

interface Data {
	x: Float32Array;
	n: number;
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function checkData(what: string, d: Data, inputSize: number, shape: readonly number[]): void {
	if (!Number.isInteger(d.n) || d.n < 0 || d.x.length !== d.n * inputSize)
		throw new FtguardError(
			"DATA_INVALID",
			`STRIP: ${what} has ${d.x.length} values, ${d.n} inputs of shape [${shape.join(", ")}] need ${d.n * inputSize}`,
		);
}

function summary(s: ArrayLike<number>): ScoreSummary {
	let mn = Number.POSITIVE_INFINITY;
	let mx = Number.NEGATIVE_INFINITY;
	for (let i = 0; i < s.length; i++) {
		mn = Math.min(mn, s[i] as number);
		mx = Math.max(mx, s[i] as number);
	}
	return { count: s.length, mean: mean(s), std: std(s), min: mn, max: mx };
}

function defaultBatch(inputSize: number, overlays: number): number {
	// keep the perturbed buffer under 2^24 floats (64 MiB)
	return Math.max(1, Math.min(Math.max(2048, overlays), Math.floor(2 ** 24 / Math.max(inputSize, 1))));
}

/**
 * Mean superimposition entropy of each of `count` inputs (read by `get(i)`),
 * overlays drawn with replacement from `pool` by `rng`, in input order.
 */
async function meanEntropies(
	runner: InferenceRunner,
	ref: Float32Array,
	pool: Int32Array,
	get: (i: number) => Float32Array,
	count: number,
	overlays: number,
	rng: Rng,
	lo: number,
	hi: number,
	batch: number,
): Promise<Float64Array> {
	const inputSize = size(runner.inputShape);
	const C = runner.numClasses;
	const scores = new Float64Array(count);
	const total = count * overlays;
	const buf = new Float32Array(Math.min(batch, Math.max(total, 1)) * inputSize);
	const owner = new Int32Array(Math.min(batch, Math.max(total, 1)));
	let filled = 0;
	const flush = async () => {
		if (filled === 0) return;
		const logits = await runner.logits(buf.subarray(0, filled * inputSize), filled);
		if (logits.length !== filled * C)
			throw new FtguardError("BACKEND_ERROR", `STRIP: logits of size ${logits.length} for ${filled} inputs`);
		for (let r = 0; r < filled; r++) {
			const h = softmaxEntropy(logits, r * C, C);
			if (!Number.isFinite(h)) throw new FtguardError("BACKEND_ERROR", "STRIP: non-finite logits");
			const o = owner[r] as number;
			scores[o] = (scores[o] as number) + h;
		}
		filled = 0;
	};
	for (let i = 0; i < count; i++) {
		const xi = get(i);
		for (let k = 0; k < overlays; k++) {
			const j = pool[rng.int(pool.length)] as number;
			const off = filled * inputSize;
			const src = j * inputSize;
			for (let e = 0; e < inputSize; e++) {
				const v = (xi[e] as number) + (ref[src + e] as number);
				buf[off + e] = Math.min(hi, Math.max(lo, v));
			}
			owner[filled] = i;
			filled++;
			if (filled * inputSize === buf.length) await flush();
		}
	}
	await flush();
	for (let i = 0; i < count; i++) scores[i] = (scores[i] as number) / overlays;
	return scores;
}

/** Splits the reference data, scores the held-out clean inputs and sets the boundary at their FRR-quantile. */
export async function stripCalibrate(
	runner: InferenceRunner,
	ref: Data,
	opts: StripOptions = {},
): Promise<StripCalibration> {
	const inputSize = size(runner.inputShape);
	checkData("reference data", ref, inputSize, runner.inputShape);
	const overlays = opts.overlays ?? 100;
	const frr = opts.frr ?? 0.01;
	const holdout = opts.holdout ?? 0.5;
	const seed = opts.seed ?? 0;
	if (!Number.isInteger(overlays) || overlays < 1)
		throw new FtguardError("USAGE", `STRIP: overlays must be a positive integer, got ${overlays}`);
	if (!(frr > 0 && frr < 1)) throw new FtguardError("USAGE", `STRIP: frr must be in (0, 1), got ${frr}`);
	if (!(holdout > 0 && holdout < 1))
		throw new FtguardError("USAGE", `STRIP: holdout must be in (0, 1), got ${holdout}`);
	const nHeld = Math.min(ref.n - 1, Math.max(1, Math.round(ref.n * holdout)));
	if (ref.n < 2 || nHeld < 1)
		throw new FtguardError("DATA_INVALID", `STRIP: needs at least 2 reference inputs, got ${ref.n}`);
	const r = minMax(ref.x);
	const lo = opts.lo ?? r.lo;
	const hi = opts.hi ?? r.hi;
	if (!(Number.isFinite(lo) && Number.isFinite(hi) && hi > lo))
		throw new FtguardError("DATA_INVALID", `STRIP: input range [${lo}, ${hi}] is empty or not finite`);
	const perm = new Rng(seed, 10).permutation(ref.n);
	const heldOutIndices = perm.slice(0, nHeld).sort();
	const poolIndices = perm.slice(nHeld).sort();
	const cleanScores = await meanEntropies(
		runner,
		ref.x,
		poolIndices,
		(i) => {
			const s = (heldOutIndices[i] as number) * inputSize;
			return ref.x.subarray(s, s + inputSize);
		},
		nHeld,
		overlays,
		new Rng(seed, 11),
		lo,
		hi,
		opts.batch ?? defaultBatch(inputSize, overlays),
	);
	return {
		boundary: quantile(cleanScores, frr),
		frr,
		overlays,
		seed,
		lo,
		hi,
		poolIndices,
		heldOutIndices,
		cleanScores,
		clean: summary(cleanScores),
	};
}

/** Scores inputs against a calibration; flagged = score below the boundary (likely trojaned). */
export async function stripScore(
	runner: InferenceRunner,
	ref: Data,
	inputs: Data,
	calib: StripCalibration,
	opts: { seed?: number; batch?: number } = {},
): Promise<{ scores: Float64Array; flagged: boolean[] }> {
	const inputSize = size(runner.inputShape);
	checkData("reference data", ref, inputSize, runner.inputShape);
	checkData("inputs", inputs, inputSize, runner.inputShape);
	const scores = await meanEntropies(
		runner,
		ref.x,
		calib.poolIndices,
		(i) => inputs.x.subarray(i * inputSize, (i + 1) * inputSize),
		inputs.n,
		calib.overlays,
		new Rng(opts.seed ?? calib.seed, 12),
		calib.lo,
		calib.hi,
		opts.batch ?? defaultBatch(inputSize, calib.overlays),
	);
	return { scores, flagged: Array.from(scores, (s) => s < calib.boundary) };
}

/**
 * Stamps a trigger on n inputs: x' = (1 − m) ⊙ x + m ⊙ p, the mask broadcast over
 * the channels when it is [1, H, W] and the input [C, H, W].
 */
export function stampTrigger(
	x: Float32Array,
	n: number,
	inputShape: readonly number[],
	mask: Float32Array,
	pattern: Float32Array,
): Float32Array {
	const inputSize = size(inputShape);
	if (pattern.length !== inputSize)
		throw new FtguardError("USAGE", `trigger pattern has ${pattern.length} values, the input ${inputSize}`);
	const plane = inputShape.length === 3 ? (inputShape[1] as number) * (inputShape[2] as number) : inputSize;
	let maskAt: (e: number) => number;
	if (mask.length === inputSize) maskAt = (e) => mask[e] as number;
	else if (inputShape.length === 3 && mask.length === plane) maskAt = (e) => mask[e % plane] as number;
	else
		throw new FtguardError("USAGE", `trigger mask has ${mask.length} values; input shape [${inputShape.join(", ")}]`);
	const out = new Float32Array(n * inputSize);
	for (let e = 0; e < inputSize; e++) {
		const m = maskAt(e);
		const pm = m * (pattern[e] as number);
		for (let i = 0; i < n; i++) out[i * inputSize + e] = (1 - m) * (x[i * inputSize + e] as number) + pm;
	}
	return out;
}

/**
 * Stamps each class's (reversed) trigger on the held-out clean inputs (at most
 * `count` of them, a seeded choice) and reports the fraction scoring below the
 * boundary: a genuine input-agnostic trigger makes nearly all of them low-entropy.
 */
export async function stripOnTriggers(
	runner: InferenceRunner,
	ref: Data,
	calib: StripCalibration,
	triggers: readonly Trigger[],
	opts: { count?: number; seed?: number; batch?: number } = {},
): Promise<StripTriggerResult[]> {
	const inputSize = size(runner.inputShape);
	checkData("reference data", ref, inputSize, runner.inputShape);
	const seed = opts.seed ?? calib.seed;
	let chosen = calib.heldOutIndices;
	if (opts.count !== undefined && opts.count < chosen.length) {
		const p = new Rng(seed, 13).permutation(chosen.length).subarray(0, Math.max(0, opts.count)).sort();
		chosen = Int32Array.from(p, (k) => chosen[k] as number);
	}
	const clean = new Float32Array(chosen.length * inputSize);
	chosen.forEach((j, i) => {
		clean.set(ref.x.subarray(j * inputSize, (j + 1) * inputSize), i * inputSize);
	});
	const out: StripTriggerResult[] = [];
	for (const t of triggers) {
		const stamped = stampTrigger(clean, chosen.length, runner.inputShape, t.mask, t.pattern);
		const { scores, flagged } = await stripScore(runner, ref, { x: stamped, n: chosen.length }, calib, {
			seed: seed + 1 + t.cls,
			...(opts.batch !== undefined ? { batch: opts.batch } : {}),
		});
		out.push({
			cls: t.cls,
			count: chosen.length,
			fractionBelow: chosen.length ? flagged.filter(Boolean).length / chosen.length : 0,
			meanScore: mean(scores),
			scores,
		});
	}
	return out;
}

/** Bins of the report's entropy histograms: enough to see two modes, few enough to stay small per class. */
export const HISTOGRAM_BINS = 20;

/**
 * The upper edge shared by a scan's entropy histograms: the largest score rounded up to a tenth of a bit, so the bins
 * resolve where the scores are (clean entropies often sit far below the log2(classes) maximum).
 */
export function histogramTop(scoreSets: ReadonlyArray<ArrayLike<number>>): number {
	let max = 0;
	for (const s of scoreSets)
		for (let i = 0; i < s.length; i++) if (Number.isFinite(s[i])) max = Math.max(max, s[i] as number);
	return Math.max(0.1, Math.ceil(max * 10) / 10);
}

/** Counts of scores in HISTOGRAM_BINS equal bins over [0, top] (a score at the top goes in the last bin). */
export function entropyHistogram(scores: ArrayLike<number>, top: number): number[] {
	const counts = new Array<number>(HISTOGRAM_BINS).fill(0);
	for (let i = 0; i < scores.length; i++) {
		const s = scores[i] as number;
		if (!Number.isFinite(s)) continue;
		const b = Math.min(HISTOGRAM_BINS - 1, Math.max(0, Math.floor((s / top) * HISTOGRAM_BINS)));
		counts[b] = (counts[b] as number) + 1;
	}
	return counts;
}
