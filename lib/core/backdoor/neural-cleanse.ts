/**
 * Neural Cleanse (Wang et al., S&P 2019): the optimisation loop over an
 * NcBackend, exactly as docs/backdoor.md specifies — tanh parametrisation,
 * seeded initialisation, Adam in JS, one step = one pass over the reference
 * data in full batches after a seeded shuffle, the original code's cost
 * schedule (reset_cost_to_zero), best mask by smallest L1 among successful
 * steps, restarts, and the MAD anomaly index over the per-class L1 norms.
 *
 * Trials (class × restart) run K = backend.trials at a time, one trial per slot;
 * a short last group is padded with copies of its first trial whose results are
 * ignored. Seeds are derived per (class, restart) and per step, so results do
 * not depend on K. There is no early stop: every trial runs `steps` steps.
 */
import { FtguardError } from "../errors";
import { Adam } from "./adam";
import { Rng } from "./rng";
import { madAnomaly, minMax } from "./summary-stats";
import type { NcBackend } from "./types";

export interface NeuralCleanseOptions {
	/** target classes to reverse-engineer (default: all) */
	classes?: readonly number[];
	/** optimisation steps (passes over the data) per trial; default 300 */
	steps?: number;
	seed?: number;
	/** independent initialisations per class; default 1 */
	restarts?: number;
	/** default 1e-3 */
	initCost?: number;
	/** default 5 */
	patience?: number;
	/** default 0.99 */
	successThreshold?: number;
	/** default 2 */
	costMultiplierUp?: number;
	/** default 2^1.5 */
	costMultiplierDown?: number;
	/** Adam learning rate, default 0.1 */
	lr?: number;
	/** input range; default the min and max of the data */
	lo?: number;
	hi?: number;
	/** anomaly index above which a small-L1 class is flagged; default 2 */
	anomalyThreshold?: number;
	onProgress?: (p: NcProgress) => void;
	signal?: AbortSignal;
}

export interface NcProgress {
	/** trial-steps finished / total (padding excluded) */
	done: number;
	total: number;
	group: number;
	groups: number;
	step: number;
	steps: number;
}

export interface NcClassResult {
	cls: number;
	/** L1 (sum) of the returned mask; the mask size when the attack never succeeded */
	l1: number;
	/** whether some step reached the success threshold */
	succeeded: boolean;
	/** attack success (mean over the step's batches) of the returned step */
	success: number;
	/** step of the returned mask (0-based), −1 when never successful */
	bestStep: number;
	/** which restart produced this result */
	restart: number;
	/** [maskShape], values in [0, 1] */
	mask: Float32Array;
	/** [inputShape], in input space [lo, hi] */
	pattern: Float32Array;
}

export interface NeuralCleanseResult {
	perClass: NcClassResult[];
	/** per class, in perClass order */
	l1Norms: number[];
	anomalyIndices: number[];
	median: number;
	mad: number;
	/** classes with l1 ≤ median and anomaly index > threshold */
	flaggedClasses: number[];
	lo: number;
	hi: number;
}

const INIT_SHRINK = 0.999999;

function prod(shape: readonly number[]): number {
	return shape.reduce((a, b) => a * b, 1);
}

export interface Trial {
	cls: number;
	/** the class whose inputs the trial stamps; −1: every reference input */
	source: number;
	restart: number;
	maskInit: Float32Array;
	patternInit: Float32Array;
}

export interface TrialOutcome {
	cls: number;
	source: number;
	restart: number;
	succeeded: boolean;
	success: number;
	bestStep: number;
	mask: Float32Array;
	pattern: Float32Array;
	l1: number;
}

/** Seeded initial raw parameters for one (class, restart). */
export function ncInit(seed: number, cls: number, restart: number, maskSize: number, inputSize: number, source = -1) {
	// the all-source search keeps its original streams; a pair (source, cls) draws from its own
	const rng = source < 0 ? new Rng(seed, 1, cls, restart) : new Rng(seed, 4, cls, source, restart);
	const maskRaw = new Float32Array(maskSize);
	const patternRaw = new Float32Array(inputSize);
	for (let i = 0; i < maskSize; i++) maskRaw[i] = Math.atanh((2 * rng.uniform() - 1) * INIT_SHRINK);
	for (let i = 0; i < inputSize; i++) patternRaw[i] = Math.atanh((2 * rng.uniform() - 1) * INIT_SHRINK);
	return { maskRaw, patternRaw };
}

/**
 * The reference-data order: step s visits the seeded permutation π_s in batches
 * of B; its last partial batch is completed from the start of π_{s+1} (and
 * π_{s+2}, … when B exceeds the data), and step s+1 again starts at π_{s+1}[0].
 */
export class BatchOrder {
	private readonly rng: Rng;
	private readonly perms: Int32Array[] = [];

	constructor(
		seed: number,
		readonly n: number,
		readonly batch: number,
		/** a separate order per source class of the pair search; −1: the whole data */
		stream = -1,
	) {
		this.rng = stream < 0 ? new Rng(seed, 2) : new Rng(seed, 3, stream);
	}

	private perm(s: number): Int32Array {
		while (this.perms.length <= s) this.perms.push(this.rng.permutation(this.n));
		return this.perms[s] as Int32Array;
	}

	get batchesPerStep(): number {
		return Math.ceil(this.n / this.batch);
	}

	/** Indices of step s, batchesPerStep × batch of them. Call with non-decreasing s. */
	step(s: number): Int32Array {
		const total = this.batchesPerStep * this.batch;
		const out = new Int32Array(total);
		let k = 0;
		for (let q = s; k < total; q++) {
			const p = this.perm(q);
			const take = Math.min(p.length, total - k);
			out.set(p.subarray(0, take), k);
			k += take;
		}
		// Permutations before s are never needed again.
		for (let q = 0; q < s; q++) if (this.perms[q]) this.perms[q] = new Int32Array(0);
		return out;
	}
}

/** The original cost schedule (reset_cost_to_zero), one instance per trial. */
export class CostSchedule {
	cost = 0;
	private setCounter = 0;
	private upCounter = 0;
	private downCounter = 0;

	constructor(
		private readonly initCost: number,
		private readonly patience: number,
		private readonly threshold: number,
		private readonly up: number,
		private readonly down: number,
	) {}

	/** Update after a step whose mean attack success was `acc`. */
	update(acc: number): void {
		const ok = acc >= this.threshold;
		if (this.cost === 0 && ok) {
			this.setCounter++;
			if (this.setCounter >= this.patience) {
				this.cost = this.initCost;
				this.upCounter = 0;
				this.downCounter = 0;
			}
		} else this.setCounter = 0;
		if (ok) {
			this.upCounter++;
			this.downCounter = 0;
		} else {
			this.upCounter = 0;
			this.downCounter++;
		}
		if (this.upCounter >= this.patience) {
			this.upCounter = 0;
			this.cost *= this.up;
		} else if (this.downCounter >= this.patience) {
			this.downCounter = 0;
			this.cost /= this.down;
		}
	}
}

export function usage(msg: string): FtguardError {
	return new FtguardError("USAGE", `neural cleanse: ${msg}`);
}

function backendError(msg: string): FtguardError {
	return new FtguardError("BACKEND_ERROR", `neural cleanse: ${msg}`);
}

/** `v` when it is a positive integer; `fail` names the search in the error (MM-BD shares these checks). */
export function positiveInt(name: string, v: number, fail: (msg: string) => FtguardError = usage): number {
	if (!Number.isInteger(v) || v < 1) throw fail(`${name} must be a positive integer, got ${v}`);
	return v;
}

/** The classes to search (every class when none are given): each once, each in [0, numClasses). */
export function classesToScan(
	given: readonly number[] | undefined,
	numClasses: number,
	fail: (msg: string) => FtguardError = usage,
): number[] {
	const classes = given ? [...given] : Array.from({ length: numClasses }, (_, i) => i);
	if (classes.length === 0) throw fail("no classes to scan");
	for (const c of classes)
		if (!Number.isInteger(c) || c < 0 || c >= numClasses) throw fail(`class ${c} is not in [0, ${numClasses})`);
	if (new Set(classes).size !== classes.length) throw fail("classes listed twice");
	return classes;
}

/** Of one search's restarts: the smallest successful L1, else the closest to success. */
export function bestOutcome(mine: readonly TrialOutcome[]): TrialOutcome {
	let pick = mine[0] as TrialOutcome;
	for (const o of mine.slice(1)) {
		if (o.succeeded && (!pick.succeeded || o.l1 < pick.l1)) pick = o;
		else if (!o.succeeded && !pick.succeeded && o.success > pick.success) pick = o;
	}
	return { ...pick };
}

/** Schedule and optimiser settings every trial of a search shares (resolved defaults). */
export interface SearchSettings {
	steps: number;
	patience: number;
	initCost: number;
	threshold: number;
	up: number;
	down: number;
	lr: number;
	lo: number;
	hi: number;
	signal?: AbortSignal;
	onProgress?: (p: NcProgress) => void;
}

/**
 * Fills the step's b-th batch for the group's K slots: x [B, …S] shared (one
 * source of inputs) or [K, B, …S] (each slot its own). One per group, so the
 * data order restarts with every group and results do not depend on K.
 */
export type BatchFiller = { batchesPerStep: number; fill(step: number, b: number, xb: Float32Array): void };

/** Resolves and checks the options both searches share. */
export function searchSettings(backend: NcBackend, x: Float32Array, opts: NeuralCleanseOptions): SearchSettings {
	const steps = positiveInt("steps", opts.steps ?? 300);
	const patience = positiveInt("patience", opts.patience ?? 5);
	let lo = opts.lo;
	let hi = opts.hi;
	if (lo === undefined || hi === undefined) {
		const r = minMax(x);
		lo ??= r.lo;
		hi ??= r.hi;
	}
	if (!(Number.isFinite(lo) && Number.isFinite(hi) && hi > lo))
		throw new FtguardError("DATA_INVALID", `neural cleanse: input range [${lo}, ${hi}] is empty or not finite`);
	positiveInt("backend trials", backend.trials);
	positiveInt("backend batch", backend.batch);
	return {
		steps,
		patience,
		initCost: opts.initCost ?? 1e-3,
		threshold: opts.successThreshold ?? 0.99,
		up: opts.costMultiplierUp ?? 2,
		down: opts.costMultiplierDown ?? 2 ** 1.5,
		lr: opts.lr ?? 0.1,
		lo,
		hi,
		...(opts.signal ? { signal: opts.signal } : {}),
		...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
	};
}

export function checkNcData(backend: NcBackend, data: { x: Float32Array; n: number }): void {
	const inputSize = prod(backend.inputShape);
	const { n, x } = data;
	if (!Number.isInteger(n) || n < 1) throw new FtguardError("DATA_INVALID", "neural cleanse: no reference inputs");
	if (x.length !== n * inputSize)
		throw new FtguardError(
			"DATA_INVALID",
			`neural cleanse: reference data has ${x.length} values, ${n} inputs of shape [${backend.inputShape.join(", ")}] need ${n * inputSize}`,
		);
}

/**
 * The optimisation every trial runs (the original code's loop): K trials at a time through the
 * backend, Adam on the raw mask and pattern, the cost schedule per trial, the smallest successful
 * L1 kept. `filler` supplies each group's inputs.
 */
export async function optimiseTrials(
	backend: NcBackend,
	trials: readonly Trial[],
	cfg: SearchSettings,
	filler: (slots: readonly Trial[]) => BatchFiller,
): Promise<TrialOutcome[]> {
	const inputSize = prod(backend.inputShape);
	const maskSize = prod(backend.maskShape);
	const K = backend.trials;
	const B = backend.batch;
	const { steps, threshold, lo, hi } = cfg;
	const groups = Math.ceil(trials.length / K);
	const outcomes: TrialOutcome[] = [];
	const span = hi - lo;
	const toMask = (raw: Float32Array, off: number) => {
		const m = new Float32Array(maskSize);
		for (let i = 0; i < maskSize; i++) m[i] = (Math.tanh(raw[off + i] as number) + 1) / 2;
		return m;
	};
	const toPattern = (raw: Float32Array, off: number) => {
		const p = new Float32Array(inputSize);
		for (let i = 0; i < inputSize; i++) p[i] = lo + (span * (Math.tanh(raw[off + i] as number) + 1)) / 2;
		return p;
	};
	let done = 0;
	const total = trials.length * steps;

	for (let g = 0; g < groups; g++) {
		const real = trials.slice(g * K, g * K + K);
		const slots = Array.from({ length: K }, (_, s) => real[s] ?? (real[0] as Trial));
		const maskRaw = new Float32Array(K * maskSize);
		const patternRaw = new Float32Array(K * inputSize);
		const target = new BigInt64Array(K);
		const cost = new Float32Array(K);
		slots.forEach((t, s) => {
			maskRaw.set(t.maskInit, s * maskSize);
			patternRaw.set(t.patternInit, s * inputSize);
			target[s] = BigInt(t.cls);
		});
		const schedules = slots.map(() => new CostSchedule(cfg.initCost, cfg.patience, threshold, cfg.up, cfg.down));
		const adamMask = new Adam(K * maskSize, { lr: cfg.lr });
		const adamPattern = new Adam(K * inputSize, { lr: cfg.lr });
		const best = slots.map(() => ({
			l1: Number.POSITIVE_INFINITY,
			step: -1,
			acc: 0,
			mask: undefined as Float32Array | undefined,
			pattern: undefined as Float32Array | undefined,
		}));
		const lastAcc = new Float64Array(K);
		const data = filler(slots);
		const xb = new Float32Array((backend.perTrialInputs ? K : 1) * B * inputSize);
		for (let step = 0; step < steps; step++) {
			if (cfg.signal?.aborted) throw new FtguardError("ABORTED", "neural cleanse: aborted");
			for (let s = 0; s < K; s++) cost[s] = (schedules[s] as CostSchedule).cost;
			const nb = data.batchesPerStep;
			const accSum = new Float64Array(K);
			const l1Sum = new Float64Array(K);
			for (let b = 0; b < nb; b++) {
				data.fill(step, b, xb);
				const res = await backend.run(xb, maskRaw, patternRaw, target, cost);
				if (
					res.acc.length !== K ||
					res.l1.length !== K ||
					res.ce.length !== K ||
					res.gradMask.length !== K * maskSize ||
					res.gradPattern.length !== K * inputSize
				)
					throw backendError("the backend returned arrays of the wrong size");
				for (let s = 0; s < K; s++) {
					const a = res.acc[s] as number;
					const l = res.l1[s] as number;
					if (!Number.isFinite(a) || !Number.isFinite(l) || !Number.isFinite(res.ce[s] as number))
						throw backendError(`non-finite loss for class ${(slots[s] as Trial).cls}`);
					accSum[s] = (accSum[s] as number) + a;
					l1Sum[s] = (l1Sum[s] as number) + l;
				}
				for (const gv of [res.gradMask, res.gradPattern])
					for (let i = 0; i < gv.length; i++)
						if (!Number.isFinite(gv[i] as number)) throw backendError("non-finite gradient");
				adamMask.step(maskRaw, res.gradMask);
				adamPattern.step(patternRaw, res.gradPattern);
			}
			for (let s = 0; s < real.length; s++) {
				const acc = (accSum[s] as number) / nb;
				const l1 = (l1Sum[s] as number) / nb;
				lastAcc[s] = acc;
				const bs = best[s] as (typeof best)[number];
				// The original code compares the step's mean L1 and saves the mask as it is after the step.
				if (acc >= threshold && l1 < bs.l1) {
					bs.l1 = l1;
					bs.step = step;
					bs.acc = acc;
					bs.mask = toMask(maskRaw, s * maskSize);
					bs.pattern = toPattern(patternRaw, s * inputSize);
				}
				(schedules[s] as CostSchedule).update(acc);
			}
			done += real.length;
			cfg.onProgress?.({ done, total, group: g, groups, step, steps });
		}
		for (let s = 0; s < real.length; s++) {
			const t = real[s] as Trial;
			const bs = best[s] as (typeof best)[number];
			if (bs.mask && bs.pattern) {
				let l1 = 0;
				for (let i = 0; i < maskSize; i++) l1 += bs.mask[i] as number;
				outcomes.push({
					cls: t.cls,
					source: t.source,
					restart: t.restart,
					succeeded: true,
					success: bs.acc,
					bestStep: bs.step,
					mask: bs.mask,
					pattern: bs.pattern,
					l1,
				});
			} else
				outcomes.push({
					cls: t.cls,
					source: t.source,
					restart: t.restart,
					succeeded: false,
					success: lastAcc[s] as number,
					bestStep: -1,
					mask: toMask(maskRaw, s * maskSize),
					pattern: toPattern(patternRaw, s * inputSize),
					l1: maskSize,
				});
		}
	}
	return outcomes;
}

export async function neuralCleanse(
	backend: NcBackend,
	data: { x: Float32Array; n: number },
	opts: NeuralCleanseOptions = {},
): Promise<NeuralCleanseResult> {
	const inputSize = prod(backend.inputShape);
	const maskSize = prod(backend.maskShape);
	const B = backend.batch;
	checkNcData(backend, data);
	const cfg = searchSettings(backend, data.x, opts);
	const restarts = positiveInt("restarts", opts.restarts ?? 1);
	const seed = opts.seed ?? 0;
	const { n, x } = data;
	if (backend.perTrialInputs) throw usage("the backend takes inputs per trial; this search shares them");
	const classes = classesToScan(opts.classes, backend.numClasses);

	const trials: Trial[] = [];
	for (const cls of classes)
		for (let r = 0; r < restarts; r++) {
			const { maskRaw, patternRaw } = ncInit(seed, cls, r, maskSize, inputSize);
			trials.push({ cls, source: -1, restart: r, maskInit: maskRaw, patternInit: patternRaw });
		}
	const outcomes = await optimiseTrials(backend, trials, cfg, () => {
		const order = new BatchOrder(seed, n, B);
		let idx: Int32Array = new Int32Array(0);
		return {
			batchesPerStep: order.batchesPerStep,
			fill(step, b, xb) {
				if (b === 0) idx = order.step(step);
				for (let i = 0; i < B; i++) {
					const src = (idx[b * B + i] as number) * inputSize;
					xb.set(x.subarray(src, src + inputSize), i * inputSize);
				}
			},
		};
	});
	const { lo, hi } = cfg;

	const perClass: NcClassResult[] = classes.map((cls) => {
		const { source: _, ...pick } = bestOutcome(outcomes.filter((o) => o.cls === cls));
		return pick;
	});
	const l1Norms = perClass.map((r) => r.l1);
	const a = madAnomaly(l1Norms, opts.anomalyThreshold ?? 2);
	return {
		perClass,
		l1Norms,
		anomalyIndices: a.indices,
		median: a.median,
		mad: a.mad,
		flaggedClasses: a.flagged.map((i) => (perClass[i] as NcClassResult).cls),
		lo,
		hi,
	};
}
