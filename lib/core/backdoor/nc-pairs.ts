/**
 * Neural Cleanse per (source, target) pair — the paper's source-specific variant
 * (Wang et al. 2019, §VI-C): a backdoor that fires only on inputs of one source
 * class needs no small trigger for "every class → target", so the all-source search
 * misses it; stamped only on the source's inputs, its trigger is as small as any.
 *
 * Each pair is a trial of the same optimisation as the all-source search
 * (neural-cleanse.ts `optimiseTrials`), through a backend built with per-trial
 * inputs: each step passes once over every pair's own source inputs, the pairs of
 * a group in one session run. The cost of a pair step is that of one class's
 * inputs, so all K(K−1) pairs cost about what the all-source search over K classes
 * costs per restart.
 */
import {
	BatchOrder,
	bestOutcome,
	checkNcData,
	type NcClassResult,
	type NeuralCleanseOptions,
	ncInit,
	optimiseTrials,
	positiveInt,
	searchSettings,
	type Trial,
	usage,
} from "./neural-cleanse";
import type { NcBackend } from "./types";

export interface NcPairResult extends NcClassResult {
	source: number;
}

const prod = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** A target's smallest pair trigger over the sources searched (a row of the report's [target][source] L1 grid). */
export function smallestPair(row: ReadonlyArray<number | null>): { source: number; l1: number } | undefined {
	let best: { source: number; l1: number } | undefined;
	row.forEach((l1, source) => {
		if (l1 !== null && (best === undefined || l1 < best.l1)) best = { source, l1 };
	});
	return best;
}

/** Every ordered pair (source ≠ target) of `numClasses` classes, targets in `targets` (default all). */
export function allPairs(numClasses: number, targets?: readonly number[]): Array<[number, number]> {
	const out: Array<[number, number]> = [];
	for (const t of targets ?? Array.from({ length: numClasses }, (_, i) => i))
		for (let s = 0; s < numClasses; s++) if (s !== t) out.push([s, t]);
	return out;
}

export async function neuralCleansePairs(
	backend: NcBackend,
	data: { x: Float32Array; y: ArrayLike<number | bigint>; n: number },
	pairs: ReadonlyArray<readonly [number, number]>,
	opts: Omit<NeuralCleanseOptions, "classes" | "anomalyThreshold"> = {},
): Promise<NcPairResult[]> {
	if (!backend.perTrialInputs) throw usage("the pair search needs a backend with per-trial inputs");
	checkNcData(backend, data);
	const cfg = searchSettings(backend, data.x, opts);
	const restarts = positiveInt("restarts", opts.restarts ?? 1);
	const seed = opts.seed ?? 0;
	const inputSize = prod(backend.inputShape);
	const maskSize = prod(backend.maskShape);
	const B = backend.batch;
	const K = backend.trials;
	const C = backend.numClasses;

	const bySource = new Map<number, Int32Array>();
	const labels = Array.from(data.y, (v) => Number(v));
	for (const [s, t] of pairs) {
		if (!(Number.isInteger(s) && Number.isInteger(t) && s >= 0 && t >= 0 && s < C && t < C && s !== t))
			throw usage(`pair (${s} → ${t}) is not two different classes of [0, ${C})`);
		if (!bySource.has(s)) {
			const idx = Int32Array.from(labels.flatMap((v, i) => (v === s ? [i] : [])));
			if (idx.length === 0) throw usage(`no reference inputs of source class ${s}`);
			bySource.set(s, idx);
		}
	}
	const trials: Trial[] = [];
	for (const [s, t] of pairs)
		for (let r = 0; r < restarts; r++) {
			const { maskRaw, patternRaw } = ncInit(seed, t, r, maskSize, inputSize, s);
			trials.push({ cls: t, source: s, restart: r, maskInit: maskRaw, patternInit: patternRaw });
		}

	const outcomes = await optimiseTrials(backend, trials, cfg, (slots) => {
		// per slot: its source's inputs in a seeded order of their own
		const orders = slots.map((t) => {
			const idx = bySource.get(t.source) as Int32Array;
			return { idx, order: new BatchOrder(seed, idx.length, B, t.source) };
		});
		const steps: Int32Array[] = orders.map(() => new Int32Array(0));
		return {
			// one pass over the largest source's inputs; smaller sources wrap around theirs
			batchesPerStep: Math.max(...orders.map((o) => o.order.batchesPerStep)),
			fill(step, b, xb) {
				for (let k = 0; k < K; k++) {
					const o = orders[k] as (typeof orders)[number];
					if (b === 0) steps[k] = o.order.step(step);
					const st = steps[k] as Int32Array;
					const nb = o.order.batchesPerStep;
					for (let i = 0; i < B; i++) {
						const src = (o.idx[st[(b % nb) * B + i] as number] as number) * inputSize;
						xb.set(data.x.subarray(src, src + inputSize), (k * B + i) * inputSize);
					}
				}
			},
		};
	});
	return pairs.map(([s, t]) => {
		const { source, ...rest } = bestOutcome(outcomes.filter((o) => o.cls === t && o.source === s));
		return { ...rest, source };
	});
}
