/**
 * MM-BD's maximum-margin statistic (Wang, Xiang, Miller, Kesidis, "MM-BD:
 * Post-Training Detection of Backdoor Attacks with Arbitrary Backdoor Pattern
 * Types Using a Maximum Margin Statistic", IEEE S&P 2024): per class k, the
 * largest margin logit_k(x) − max_{j≠k} logit_j(x) over inputs x in the data's
 * box [lo, hi]. A backdoor teaches the network a feature that drives its target's
 * logit far above what any natural feature does, so the target's maximum margin
 * is abnormally large whatever the trigger's size, shape or blending: a signal
 * independent of Neural Cleanse's trigger L1. No reference data is needed, only
 * the box.
 *
 * The search: per (class, restart) a seeded uniform start in the box, then
 * `steps` Adam ascent steps on the margin in the tanh parametrisation (mm-graph.ts);
 * the best margin seen over the steps (steps + 1 evaluations) and its input are
 * kept, and per class the best restart. Trials run K = backend.trials at a time,
 * one input each; a short last group is padded with copies of its first trial,
 * whose results are ignored. Starts are seeded per (class, restart), so results
 * do not depend on K (up to onnxruntime's batch-size-dependent float rounding).
 *
 * The reference code (univ_bd.py) uses 30 starts in [0, 1]^S, SGD with lr 0.01
 * for up to 300 steps on clamp(x, 0, 1), and stops when the summed loss changes
 * by under 1e-5 relatively; here the box is parametrised, Adam replaces SGD (the
 * margin's scale differs from model to model; Adam's step does not), and every
 * trial runs a fixed number of steps.
 *
 * The paper's detection rule is returned as `detection`: the largest class
 * statistic r_max is tested against a gamma null fitted to the other classes'
 * statistics, p = 1 − F(r_max)^C for C scanned classes (the chance that the
 * largest of C null draws reaches r_max). Differences from the reference: the
 * gamma's location is fixed at 0 (scipy's three-parameter fit there is
 * ill-conditioned on nine points) and margins ≤ 0 (a class no input in the box
 * makes the winner) are floored at 1e-6 of the largest positive margin. With
 * few classes the null rests on one to four values and the p-value means little;
 * with fewer than three classes it is not computed (null).
 */
import { FtguardError } from "../errors";
import { Adam } from "./adam";
import { fitGamma, incompleteGamma } from "./gamma";
import { classesToScan, type NcProgress, positiveInt } from "./neural-cleanse";
import { Rng } from "./rng";
import type { MmBackend } from "./types";

/**
 * Defaults measured on the 12 digits16c fixtures (3×16×16, 10 classes): at 8 × 300 doubling the steps moves
 * no class's margin by more than 1.5 %, doubling the restarts by more than 4.4 % (the margin is not concave;
 * more starts keep finding slightly higher maxima), and neither changes which class is largest; lr 0.3 strands
 * some tanh-MLP starts at saturated inputs, 0.03 needs twice the steps. A 10-class CNN takes ≈ 2 s on 2 busy
 * CPU cores, about 2 % of the default Neural Cleanse search on the same machine.
 */
export const MM_DEFAULTS = { restarts: 8, steps: 300, lr: 0.1 } as const;

export interface MaxMarginOptions {
	/** target classes (default: all) */
	classes?: readonly number[];
	/** random starts per class; default MM_DEFAULTS.restarts */
	restarts?: number;
	/** Adam ascent steps per start; default MM_DEFAULTS.steps */
	steps?: number;
	/** Adam learning rate in x_raw space; default MM_DEFAULTS.lr */
	lr?: number;
	seed?: number;
	/** the box: a number, or one value per input element (e.g. per-channel ranges of normalised images) */
	lo: number | ArrayLike<number>;
	hi: number | ArrayLike<number>;
	onProgress?: (p: MmProgress) => void;
	signal?: AbortSignal;
}

/** Progress of the search: the same counters as Neural Cleanse's (trial-steps done of total, group, step). */
export type MmProgress = NcProgress;

export interface MmClassResult {
	cls: number;
	/** the largest margin found: logit_cls − max over the other classes, at `input` */
	margin: number;
	/** which restart found it */
	restart: number;
	/** the best margin of each restart (their spread says how settled the search is) */
	restartMargins: number[];
	/** step (0 = the start) at which the best margin was seen */
	bestStep: number;
	/** [inputShape], in the box */
	input: Float32Array;
}

export interface MmDetection {
	/** the class with the largest maximum margin */
	cls: number;
	margin: number;
	/** p = 1 − F(r_max)^C under the gamma fitted to the other classes' margins */
	pValue: number;
	/** the fitted null (location 0) */
	shape: number;
	scale: number;
	/** how many margins the null was fitted to (C − 1) */
	nullCount: number;
}

export interface MaxMarginResult {
	perClass: MmClassResult[];
	/** per class, in perClass order */
	margins: number[];
	/** the paper's rule; null with fewer than three classes or a degenerate null (all margins equal) */
	detection: MmDetection | null;
}

const INIT_SHRINK = 0.999999;

const prod = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function usage(msg: string): FtguardError {
	return new FtguardError("USAGE", `max margin: ${msg}`);
}

function box(name: string, v: number | ArrayLike<number>, n: number): Float32Array {
	const out = typeof v === "number" ? new Float32Array(n).fill(v) : Float32Array.from(v);
	if (out.length !== n)
		throw new FtguardError("DATA_INVALID", `max margin: ${name} has ${out.length} values, the input ${n}`);
	if (!out.every((x) => Number.isFinite(x)))
		throw new FtguardError("DATA_INVALID", `max margin: ${name} is not finite`);
	return out;
}

/** Seeded raw start of one (class, restart): uniform in the box. */
export function mmInit(seed: number, cls: number, restart: number, inputSize: number): Float32Array {
	const rng = new Rng(seed, 3, cls, restart);
	const raw = new Float32Array(inputSize);
	for (let i = 0; i < inputSize; i++) raw[i] = Math.atanh((2 * rng.uniform() - 1) * INIT_SHRINK);
	return raw;
}

export async function maxMargin(backend: MmBackend, opts: MaxMarginOptions): Promise<MaxMarginResult> {
	const inputSize = prod(backend.inputShape);
	const K = positiveInt("backend trials", backend.trials, usage);
	const steps = positiveInt("steps", opts.steps ?? MM_DEFAULTS.steps, usage);
	const restarts = positiveInt("restarts", opts.restarts ?? MM_DEFAULTS.restarts, usage);
	const lr = opts.lr ?? MM_DEFAULTS.lr;
	if (!(lr > 0 && Number.isFinite(lr))) throw usage(`lr must be positive, got ${lr}`);
	const seed = opts.seed ?? 0;
	const lo = box("lo", opts.lo, inputSize);
	const hi = box("hi", opts.hi, inputSize);
	if (lo.some((l, i) => !((hi[i] as number) > l)))
		throw new FtguardError("DATA_INVALID", "max margin: the box [lo, hi] is empty in some element");
	const classes = classesToScan(opts.classes, backend.numClasses, usage);

	const trials: { cls: number; restart: number }[] = [];
	for (const cls of classes) for (let r = 0; r < restarts; r++) trials.push({ cls, restart: r });
	const groups = Math.ceil(trials.length / K);
	const total = trials.length * steps;
	const toInput = (raw: Float32Array, off: number) => {
		const x = new Float32Array(inputSize);
		for (let i = 0; i < inputSize; i++) {
			const l = lo[i] as number;
			x[i] = l + (((hi[i] as number) - l) * (Math.tanh(raw[off + i] as number) + 1)) / 2;
		}
		return x;
	};
	const outcomes: { cls: number; restart: number; margin: number; step: number; input: Float32Array }[] = [];
	let done = 0;

	for (let g = 0; g < groups; g++) {
		const real = trials.slice(g * K, g * K + K);
		const first = real[0] as (typeof real)[number];
		const slots = Array.from({ length: K }, (_, s) => real[s] ?? first);
		const raw = new Float32Array(K * inputSize);
		const target = new BigInt64Array(K);
		slots.forEach((t, s) => {
			raw.set(mmInit(seed, t.cls, t.restart, inputSize), s * inputSize);
			target[s] = BigInt(t.cls);
		});
		const adam = new Adam(K * inputSize, { lr });
		const best = real.map(() => ({ margin: Number.NEGATIVE_INFINITY, step: -1, input: new Float32Array(0) }));
		const ascent = new Float32Array(K * inputSize);
		for (let step = 0; step <= steps; step++) {
			if (opts.signal?.aborted) throw new FtguardError("ABORTED", "max margin: aborted");
			const res = await backend.run(raw, target, lo, hi);
			if (res.margin.length !== K || res.grad.length !== K * inputSize)
				throw new FtguardError("BACKEND_ERROR", "max margin: the backend returned arrays of the wrong size");
			for (let s = 0; s < real.length; s++) {
				const m = res.margin[s] as number;
				if (!Number.isFinite(m))
					throw new FtguardError("BACKEND_ERROR", `max margin: non-finite margin for class ${slots[s]?.cls}`);
				const b = best[s] as (typeof best)[number];
				if (m > b.margin) {
					b.margin = m;
					b.step = step;
					b.input = toInput(raw, s * inputSize);
				}
			}
			if (step === steps) break;
			for (let i = 0; i < ascent.length; i++) {
				const v = res.grad[i] as number;
				if (!Number.isFinite(v)) throw new FtguardError("BACKEND_ERROR", "max margin: non-finite gradient");
				ascent[i] = -v;
			}
			adam.step(raw, ascent);
			done += real.length;
			opts.onProgress?.({ done, total, group: g, groups, step, steps });
		}
		real.forEach((t, s) => {
			const b = best[s] as (typeof best)[number];
			outcomes.push({ cls: t.cls, restart: t.restart, margin: b.margin, step: b.step, input: b.input });
		});
	}

	const perClass: MmClassResult[] = classes.map((cls) => {
		const mine = outcomes.filter((o) => o.cls === cls);
		let pick = mine[0] as (typeof mine)[number];
		for (const o of mine) if (o.margin > pick.margin) pick = o;
		return {
			cls,
			margin: pick.margin,
			restart: pick.restart,
			restartMargins: mine.map((o) => o.margin),
			bestStep: pick.step,
			input: pick.input,
		};
	});
	const margins = perClass.map((r) => r.margin);
	return { perClass, margins, detection: mmbdDetection(margins, classes) };
}

/**
 * The paper's order-statistic test on per-class maximum margins (see the file
 * comment): null with fewer than three classes or when the other margins do not
 * determine a gamma (all equal).
 */
export function mmbdDetection(margins: readonly number[], classes?: readonly number[]): MmDetection | null {
	const C = margins.length;
	if (C < 3) return null;
	let top = 0;
	for (let i = 1; i < C; i++) if ((margins[i] as number) > (margins[top] as number)) top = i;
	const rMax = margins[top] as number;
	const rest = margins.filter((_, i) => i !== top);
	const positive = Math.max(...margins.filter((m) => m > 0), 0);
	if (!(positive > 0)) return null;
	const floor = positive * 1e-6;
	const fit = fitGamma(rest.map((m) => Math.max(m, floor)));
	if (fit === null) return null;
	const { q } = incompleteGamma(fit.shape, Math.max(rMax, floor) / fit.scale);
	// 1 − (1 − q)^C without cancellation when q is tiny
	const pValue = -Math.expm1(C * Math.log1p(-Math.min(q, 1)));
	return {
		cls: classes?.[top] ?? top,
		margin: rMax,
		pValue: Math.min(1, Math.max(0, pValue)),
		shape: fit.shape,
		scale: fit.scale,
		nullCount: C - 1,
	};
}
