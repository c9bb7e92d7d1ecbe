/**
 * The backdoor scan: ONNX model + reference data → detectors → verdict and
 * report. The one entry point shared by `ftguard backdoor` and the AWS Batch
 * job (which may split Neural Cleanse across an array job: `neuralCleanseShard`
 * per slice of classes, then `scanBackdoor` with the shards' results).
 *
 * Fail closed: anything that prevents a detector from running is an error
 * (exit 2, quarantine), never a clean verdict with that detector missing.
 */
import { createHash } from "node:crypto";
import { FtguardError } from "../errors";
import type { BackdoorPolicy, NcRuleName } from "../policy/backdoor";
import { type AcResult, activationClustering } from "./activation-clustering";
import { calibratedSearch, checkCalibratedData, checkCalibratedScan, checkReferenceAccuracy } from "./calibration";
import { CALIBRATIONS } from "./calibration-table";
import { maskConcentration } from "./mask-shape";
import { maxMargin } from "./max-margin";
import { allPairs, neuralCleansePairs } from "./nc-pairs";
import { type NcClassResult, type NcProgress, neuralCleanse } from "./neural-cleanse";
import type { NpyFloat32, NpyInt64 } from "./npy";
import { type OnnxModel, readOnnxModel } from "./onnx-model";
import { type Device, MmRunner, NcRunner, OnnxInferenceRunner } from "./runtime";
import { judgeCalibrated } from "./scan-calibrated";
import {
	entropyHistogram,
	histogramTop,
	type StripCalibration,
	type StripTriggerResult,
	stripCalibrate,
	stripOnTriggers,
	stripScore,
} from "./strip";
import { minMax, round } from "./summary-stats";
import type { ReversedTrigger } from "./trigger-images";
import { judgeNeuralCleanse, type NcEvidence } from "./verdict";

export type DataKind = "reference" | "training";

export interface BackdoorData {
	x: NpyFloat32;
	y: NpyInt64;
	/** reference: clean trusted data; training: a sample of the training set */
	kind: DataKind;
}

export interface ScanProgress {
	stage: "neural_cleanse" | "neural_cleanse_pairs" | "max_margin" | "strip" | "activation_clustering";
	done: number;
	total: number;
}

export interface ScanOptions {
	policy: BackdoorPolicy;
	device: Device;
	threads?: number;
	/** classes Neural Cleanse covers (a shard); default all */
	classes?: readonly number[];
	/**
	 * Neural Cleanse results of an array job's shards (parsed JSON); checked against
	 * this model, data and policy and merged instead of running Neural Cleanse here
	 */
	shards?: readonly NcShard[];
	/** inputs to check with STRIP (suspected triggered inputs, e.g. from production) */
	inputs?: NpyFloat32;
	log?: (line: string) => void;
	onProgress?: (p: ScanProgress) => void;
	signal?: AbortSignal;
}

/** What a shard hands to the merge step: a class's result as plain JSON. */
export type SerializedNcClass = Omit<NcClassResult, "mask" | "pattern"> & { mask: number[]; pattern: number[] };

export interface NcShard {
	format: "ftguard/nc-shard@1";
	model_sha256: string;
	data_sha256: string;
	policy: BackdoorPolicy["neuralCleanse"];
	classes: number[];
	results: SerializedNcClass[];
	provider: Device;
	seconds: number;
}

export interface BackdoorReport {
	verdict: "clean" | "suspect";
	suspect_classes: number[];
	/** per suspect class, which detectors point at it */
	reasons: string[];
	model: { sha256: string; input_shape: number[]; num_classes: number };
	/** accuracy: the model's on the reference data (argmax of its logits against the labels) */
	data: { sha256: string; kind: DataKind; samples: number; lo: number; hi: number; accuracy: number };
	provider: Device;
	detectors: {
		neural_cleanse?: {
			rule: NcRuleName;
			l1_norms: number[];
			anomaly_indices: Array<number | null>;
			log_anomaly_indices: number[];
			relative_l1: number[];
			flagged_classes: number[];
			flagged_classes_vanilla: number[];
			/**
			 * The largest anomaly index, under the policy's rule, among classes small enough to be
			 * flagged (vanilla: L1 ≤ median; ftguard: L1 ≤ maxRelativeL1 × median): above the
			 * threshold exactly when a class is flagged. The metric the AWS alarm watches. Under the
			 * calibrated rule: the threshold × log(min p) / log(rate / C), above it exactly when the
			 * calibrated verdict flags a class.
			 */
			max_anomaly_index: number;
			mask_size: number;
			/** per class, the share of the reversed mask's mass in its densest 3/8-side window (mask-shape.ts); absent for inputs that are not images */
			concentration?: number[];
			attack_success: number[];
			restarts: number;
			steps: number;
		};
		/** Neural Cleanse per (source, target) pair (source-specific backdoors) */
		neural_cleanse_pairs?: {
			steps: number;
			restarts: number;
			/** targets whose every source was searched (all, unless the budget maxPairs cut them) */
			targets: number[];
			/** [target][source]: the pair's trigger L1 (the mask size when never successful); null: not searched */
			l1: Array<Array<number | null>>;
			/** [target][source]: attack success of the kept trigger on the source's inputs */
			attack_success: Array<Array<number | null>>;
		};
		/** MM-BD: per class the largest margin logit_k − max_j≠k logit_j reachable in the data's box */
		max_margin?: {
			steps: number;
			restarts: number;
			margins: number[];
			/** the paper's own rule (gamma null over the other classes; null below 3 classes): reported only */
			mmbd: { cls: number; p_value: number } | null;
		};
		/** the calibrated verdict (rule "calibrated"): each class's p-value against clean models (calibration.ts) */
		calibrated?: {
			false_alarm_rate: number;
			calibration: {
				families: string[];
				statistics: string[];
				models: number;
				classes: number;
				source: string;
				search: ReturnType<typeof calibratedSearch>;
				/** the input sizes (H·W) its area statistics hold at; none when it has only relative ones */
				maskSizes: number[];
			};
			per_class: Array<{
				cls: number;
				/** the strongest family's standardised score (stage 2: nc_area's z) */
				score: number;
				strongest: string;
				scores: Record<string, number>;
				p_value: number;
				z: Record<string, number>;
				flagged: boolean;
				/** 2: flagged on nc_area alone after another class was (calibration.ts secondStage) */
				stage: 1 | 2;
			}>;
			flagged_classes: number[];
			/**
			 * The model lies outside the population the table was fitted on (calibration.ts judgeModel): `per_class`
			 * holds the relative statistics' p-values, reported only, and Neural Cleanse's own rule decided `flagged`
			 */
			outside?: { shift: number; limit: number; decided_by: "neural_cleanse" };
			/** inside the population: how far its typical class lies beyond the clean models' (outside it at `limit`) */
			population?: { shift: number; limit: number };
		};
		activation_clustering?: {
			data_kind: DataKind;
			decides: boolean;
			flagged_classes: number[];
			per_class: Array<{
				cls: number;
				n: number;
				minority_fraction: number;
				silhouette: number;
				flagged: boolean;
				minority_indices: number[];
			}>;
		};
		strip?: {
			boundary: number;
			frr: number;
			superimpositions: number;
			clean_entropy: { mean: number; std: number; min: number; max: number };
			/** per reversed trigger: fraction of stamped clean inputs STRIP calls trojaned */
			reversed_triggers: Array<{ cls: number; fraction_below: number; mean_entropy: number }>;
			/**
			 * Entropy histograms (counts in equal bins over [0, max] bits, max: the largest score rounded up): the
			 * held-out clean inputs, and the same inputs stamped with each class's reversed trigger (the HTML report).
			 */
			histogram?: { max: number; clean: number[]; reversed_triggers: Array<{ cls: number; counts: number[] }> };
			/** user-supplied inputs (--inputs): entropy per input, and those below the boundary */
			inputs?: { count: number; flagged: number[]; entropy: number[] };
		};
	};
	policy: BackdoorPolicy;
	timings: Record<string, number>;
}

export interface BackdoorScan {
	report: BackdoorReport;
	/** reversed triggers, for images (empty when Neural Cleanse did not run) */
	triggers: ReversedTrigger[];
	inputShape: number[];
}

const sha256 = (b: Uint8Array | Float32Array | BigInt64Array) =>
	createHash("sha256")
		.update(new Uint8Array(b.buffer, b.byteOffset, b.byteLength))
		.digest("hex");
const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function range(x: Float32Array): { lo: number; hi: number } {
	const r = minMax(x);
	if (!(r.hi > r.lo)) throw new FtguardError("DATA_INVALID", "reference data is constant: no input range to search");
	return r;
}

/** The reference data must fit the model: same input shape, labels in range, enough samples. */
function checkData(data: BackdoorData, inputShape: readonly number[], numClasses: number): void {
	const [n, ...rest] = data.x.shape;
	if (n === undefined || rest.join(",") !== inputShape.join(","))
		throw new FtguardError(
			"DATA_INVALID",
			`data has shape [${data.x.shape.join(", ")}], the model takes [N, ${inputShape.join(", ")}]`,
		);
	if (n < 2) throw new FtguardError("DATA_INVALID", `data has ${n} samples; at least 2 are needed`);
	if (data.y.shape.length !== 1 || data.y.shape[0] !== n)
		throw new FtguardError("DATA_INVALID", `labels have shape [${data.y.shape.join(", ")}], expected [${n}]`);
	for (const [i, v] of data.y.data.entries())
		if (v < 0n || v >= BigInt(numClasses))
			throw new FtguardError("DATA_INVALID", `label ${v} at index ${i} is outside the model's ${numClasses} classes`);
}

/** Input shape and class count, from the inference graph onnxruntime accepts. */
async function modelSignature(model: OnnxModel): Promise<{ numClasses: number; inputShape: readonly number[] }> {
	const probe = await OnnxInferenceRunner.create(model, { device: "cpu", penultimate: false });
	await probe.dispose();
	return { numClasses: probe.numClasses, inputShape: probe.inputShape };
}

function ncOptions(policy: BackdoorPolicy, lo: number, hi: number, opts: ScanOptions) {
	const p = policy.neuralCleanse;
	return {
		steps: p.steps,
		seed: p.seed,
		restarts: p.restarts,
		lo,
		hi,
		anomalyThreshold: p.anomalyThreshold,
		...(opts.signal ? { signal: opts.signal } : {}),
		...(opts.onProgress
			? {
					onProgress: (q: NcProgress) => opts.onProgress?.({ stage: "neural_cleanse", done: q.done, total: q.total }),
				}
			: {}),
	};
}

/** Trials per session run: all classes × restarts at once when small, bounded for memory. */
function trialsFor(classes: number, restarts: number, batch: number, inputSize: number): number {
	const want = classes * restarts;
	// each trial holds batch × input floats several times over in the gradient graph
	const cap = Math.max(1, Math.floor((64 * 1024 * 1024) / (batch * inputSize * 4 * 8)));
	return Math.max(1, Math.min(want, cap, 64));
}

async function runNeuralCleanse(
	model: OnnxModel,
	data: BackdoorData,
	classes: readonly number[],
	numClasses: number,
	inputShape: readonly number[],
	lo: number,
	hi: number,
	opts: ScanOptions,
): Promise<{ results: NcClassResult[]; provider: Device }> {
	const p = opts.policy.neuralCleanse;
	const trials = trialsFor(classes.length, p.restarts, p.batch, size(inputShape));
	const runner = await NcRunner.create(model, {
		device: opts.device,
		trials,
		batch: p.batch,
		lo,
		hi,
		...(opts.threads !== undefined ? { threads: opts.threads } : {}),
		...(opts.log ? { log: opts.log } : {}),
	});
	try {
		if (runner.numClasses !== numClasses)
			throw new FtguardError("MODEL_UNSUPPORTED", "the gradient graph and the model disagree on the class count");
		const r = await neuralCleanse(
			runner,
			{ x: data.x.data, n: data.x.shape[0] ?? 0 },
			{ ...ncOptions(opts.policy, lo, hi, opts), classes },
		);
		return { results: r.perClass, provider: runner.provider };
	} finally {
		await runner.dispose();
	}
}

/**
 * The (source, target) pairs the budget allows: every one while C(C − 1) ≤ maxPairs, else whole
 * targets, those with the smallest all-source trigger first (the likeliest backdoor targets).
 */
export function pairPlan(numClasses: number, maxPairs: number, ncL1?: readonly number[]): number[] {
	const all = Array.from({ length: numClasses }, (_, c) => c);
	if (numClasses < 3) return []; // with two classes a pair is the all-source search itself
	const order = ncL1 ? [...all].sort((a, b) => (ncL1[a] as number) - (ncL1[b] as number) || a - b) : all;
	const fit = Math.min(numClasses, Math.floor(maxPairs / (numClasses - 1)));
	return order.slice(0, fit).sort((a, b) => a - b);
}

async function runPairs(
	model: OnnxModel,
	data: BackdoorData,
	targets: readonly number[],
	numClasses: number,
	inputShape: readonly number[],
	lo: number,
	hi: number,
	opts: ScanOptions,
) {
	const p = opts.policy.pairs;
	const batch = opts.policy.neuralCleanse.batch;
	const pairs = allPairs(numClasses, targets);
	const runner = await NcRunner.create(model, {
		device: opts.device,
		trials: trialsFor(pairs.length, p.restarts, batch, size(inputShape)),
		batch,
		lo,
		hi,
		perTrialInputs: true,
		...(opts.threads !== undefined ? { threads: opts.threads } : {}),
		...(opts.log ? { log: opts.log } : {}),
	});
	try {
		return await neuralCleansePairs(runner, { x: data.x.data, y: data.y.data, n: data.x.shape[0] ?? 0 }, pairs, {
			steps: p.steps,
			restarts: p.restarts,
			seed: opts.policy.neuralCleanse.seed,
			lo,
			hi,
			...(opts.signal ? { signal: opts.signal } : {}),
			...(opts.onProgress
				? {
						onProgress: (q: NcProgress) =>
							opts.onProgress?.({ stage: "neural_cleanse_pairs", done: q.done, total: q.total }),
					}
				: {}),
		});
	} finally {
		await runner.dispose();
	}
}

async function runMaxMargin(model: OnnxModel, numClasses: number, lo: number, hi: number, opts: ScanOptions) {
	const p = opts.policy.maxMargin;
	const runner = await MmRunner.create(model, {
		device: opts.device,
		trials: Math.min(numClasses * p.restarts, 256),
		...(opts.threads !== undefined ? { threads: opts.threads } : {}),
		...(opts.log ? { log: opts.log } : {}),
	});
	try {
		return await maxMargin(runner, {
			lo,
			hi,
			steps: p.steps,
			restarts: p.restarts,
			seed: opts.policy.neuralCleanse.seed,
			...(opts.signal ? { signal: opts.signal } : {}),
			...(opts.onProgress
				? { onProgress: (q) => opts.onProgress?.({ stage: "max_margin", done: q.done, total: q.total }) }
				: {}),
		});
	} finally {
		await runner.dispose();
	}
}

const serialize = (r: NcClassResult): SerializedNcClass => ({
	cls: r.cls,
	l1: r.l1,
	succeeded: r.succeeded,
	success: r.success,
	bestStep: r.bestStep,
	restart: r.restart,
	mask: Array.from(r.mask),
	pattern: Array.from(r.pattern),
});

/**
 * Neural Cleanse for one element of an AWS Batch array job of `slice.count`: the
 * classes c with c mod count = index (of the model's classes, read here once).
 */
export async function neuralCleanseShard(
	modelBytes: Uint8Array,
	data: BackdoorData,
	slice: { index: number; count: number },
	opts: ScanOptions,
): Promise<NcShard> {
	const t0 = performance.now();
	const model = await readOnnxModel(modelBytes);
	const { numClasses, inputShape } = await modelSignature(model);
	checkData(data, inputShape, numClasses);
	checkRule(opts.policy, numClasses, data);
	const classes = Array.from({ length: numClasses }, (_, c) => c).filter((c) => c % slice.count === slice.index);
	if (classes.length === 0)
		throw new FtguardError(
			"USAGE",
			`array index ${slice.index} of ${slice.count} has none of the model's ${numClasses} classes`,
		);
	const { lo, hi } = range(data.x.data);
	const { results, provider } = await runNeuralCleanse(model, data, classes, numClasses, inputShape, lo, hi, opts);
	return {
		format: "ftguard/nc-shard@1",
		model_sha256: sha256(modelBytes),
		data_sha256: sha256(data.x.data),
		policy: opts.policy.neuralCleanse,
		classes: [...classes],
		results: results.map(serialize),
		provider,
		seconds: (performance.now() - t0) / 1000,
	};
}

/**
 * Checks that shards cover every class exactly once, for this model, this data
 * and this policy — a shard from another run must not stand in for a missing one.
 */
function mergeShards(
	shards: readonly NcShard[],
	expect: { modelSha256: string; dataSha256: string; numClasses: number; policy: BackdoorPolicy["neuralCleanse"] },
): SerializedNcClass[] {
	const byClass = new Map<number, SerializedNcClass>();
	for (const s of shards) {
		if (s.format !== "ftguard/nc-shard@1") throw new FtguardError("DATA_INVALID", "not a Neural Cleanse shard");
		if (s.model_sha256 !== expect.modelSha256 || s.data_sha256 !== expect.dataSha256)
			throw new FtguardError("DATA_INVALID", "a shard was computed for another model or other data");
		if (JSON.stringify(s.policy) !== JSON.stringify(expect.policy))
			throw new FtguardError("DATA_INVALID", "a shard was computed with another Neural Cleanse policy");
		for (const r of s.results) {
			if (byClass.has(r.cls)) throw new FtguardError("DATA_INVALID", `class ${r.cls} appears in two shards`);
			byClass.set(r.cls, r);
		}
	}
	const out: SerializedNcClass[] = [];
	for (let c = 0; c < expect.numClasses; c++) {
		const r = byClass.get(c);
		if (!r) throw new FtguardError("DATA_INVALID", `no shard has Neural Cleanse results for class ${c}`);
		out.push(r);
	}
	return out;
}

/** A calibrated scan the table cannot judge is refused before any search runs (calibration.ts). */
function checkRule(policy: BackdoorPolicy, numClasses: number, data: BackdoorData): void {
	if (policy.neuralCleanse.rule !== "calibrated") return;
	checkCalibratedScan(new Set(policy.detectors), numClasses, calibratedSearch(policy), CALIBRATIONS);
	checkCalibratedData(data.y.data, numClasses);
}

/** The share of inputs whose largest logit is their label's, overall and per class. */
function referenceAccuracy(
	logits: Float32Array,
	labels: ArrayLike<number | bigint>,
	C: number,
): { accuracy: number; perClass: number[] } {
	const right = new Array<number>(C).fill(0);
	const seen = new Array<number>(C).fill(0);
	for (let i = 0; i < labels.length; i++) {
		let best = 0;
		for (let k = 1; k < C; k++) if ((logits[i * C + k] as number) > (logits[i * C + best] as number)) best = k;
		const y = Number(labels[i]);
		seen[y] = (seen[y] ?? 0) + 1;
		if (best === y) right[y] = (right[y] ?? 0) + 1;
	}
	const total = right.reduce((a, b) => a + b, 0);
	return {
		accuracy: labels.length === 0 ? 0 : total / labels.length,
		perClass: right.map((r, c) => ((seen[c] as number) > 0 ? r / (seen[c] as number) : 0)),
	};
}

function maxAnomalyIndex(evidence: readonly NcEvidence[], p: BackdoorPolicy["neuralCleanse"]): number {
	let max = 0;
	for (const e of evidence) {
		const eligible = p.rule === "vanilla" ? e.relativeL1 <= 1 : e.relativeL1 <= p.maxRelativeL1;
		const index = p.rule === "vanilla" ? e.anomalyIndex : e.logAnomalyIndex;
		// an infinite index (MAD 0) is reported as a large finite one: metrics take numbers
		if (eligible) max = Math.max(max, Number.isFinite(index) ? index : 1e6);
	}
	return max;
}

export async function scanBackdoor(
	modelBytes: Uint8Array,
	data: BackdoorData,
	opts: ScanOptions,
): Promise<BackdoorScan> {
	const timings: Record<string, number> = {};
	const t = () => performance.now();
	const tLoad = t();
	const policy = opts.policy;
	const model = await readOnnxModel(modelBytes);
	const runner = await OnnxInferenceRunner.create(model, {
		device: opts.device,
		penultimate: policy.detectors.includes("ac"),
		...(opts.threads !== undefined ? { threads: opts.threads } : {}),
		...(opts.log ? { log: opts.log } : {}),
	});
	try {
		const { numClasses, inputShape } = runner;
		checkData(data, inputShape, numClasses);
		checkRule(policy, numClasses, data);
		const calibrated = policy.neuralCleanse.rule === "calibrated";
		const n = data.x.shape[0] ?? 0;
		const { lo, hi } = range(data.x.data);
		const detectors = new Set(policy.detectors);
		if (detectors.has("ac") && (data.kind === "reference" || !policy.activationClustering.decides))
			opts.log?.(
				`ftguard: activation clustering is reported but does not decide (${data.kind === "reference" ? "clean reference data; it needs --data-kind training" : "policy activationClustering.decides is false"})`,
			);
		const { accuracy, perClass } = referenceAccuracy(await runner.logits(data.x.data, n), data.y.data, numClasses);
		if (calibrated) checkReferenceAccuracy(accuracy, perClass, numClasses);
		timings.load_ms = t() - tLoad;
		const report: BackdoorReport = {
			verdict: "clean",
			suspect_classes: [],
			reasons: [],
			model: { sha256: sha256(modelBytes), input_shape: [...inputShape], num_classes: numClasses },
			data: { sha256: sha256(data.x.data), kind: data.kind, samples: n, lo, hi, accuracy: round(accuracy) },
			provider: runner.provider,
			detectors: {},
			policy,
			timings,
		};
		const suspects = new Map<number, string[]>();
		const accuse = (cls: number, why: string) => suspects.set(cls, [...(suspects.get(cls) ?? []), why]);
		let triggers: ReversedTrigger[] = [];

		if (detectors.has("nc")) {
			const tNc = t();
			let results: Array<NcClassResult | SerializedNcClass>;
			if (opts.shards)
				results = mergeShards(opts.shards, {
					modelSha256: report.model.sha256,
					dataSha256: report.data.sha256,
					numClasses,
					policy: policy.neuralCleanse,
				});
			else {
				const all = Array.from({ length: numClasses }, (_, c) => c);
				const ran = await runNeuralCleanse(model, data, all, numClasses, inputShape, lo, hi, opts);
				results = ran.results;
				report.provider = ran.provider;
			}
			results.sort((a, b) => a.cls - b.cls);
			if (results.length !== numClasses || results.some((r, i) => r.cls !== i))
				throw new FtguardError("DATA_INVALID", "Neural Cleanse results do not cover every class once");
			const l1 = results.map((r) => r.l1);
			// under the calibrated rule Neural Cleanse's own (ftguard) flags are reported, not judged
			const evidence: NcEvidence[] = judgeNeuralCleanse(l1, {
				rule: policy.neuralCleanse.rule === "vanilla" ? "vanilla" : "ftguard",
				anomalyThreshold: policy.neuralCleanse.anomalyThreshold,
				maxRelativeL1: policy.neuralCleanse.maxRelativeL1,
			});
			const maskSize = results[0]?.mask.length ?? 0;
			const [h, w] = inputShape.length >= 3 ? inputShape.slice(-2) : [0, 0];
			const image = h !== undefined && w !== undefined && h * w === maskSize && maskSize > 0;
			report.detectors.neural_cleanse = {
				rule: policy.neuralCleanse.rule,
				l1_norms: l1.map((v) => round(v)),
				anomaly_indices: evidence.map((e) => (Number.isFinite(e.anomalyIndex) ? round(e.anomalyIndex) : null)),
				log_anomaly_indices: evidence.map((e) => round(e.logAnomalyIndex)),
				relative_l1: evidence.map((e) => round(e.relativeL1)),
				flagged_classes: evidence.filter((e) => e.flagged).map((e) => e.cls),
				flagged_classes_vanilla: evidence.filter((e) => e.flaggedVanilla).map((e) => e.cls),
				max_anomaly_index: round(maxAnomalyIndex(evidence, policy.neuralCleanse)),
				mask_size: maskSize,
				...(image ? { concentration: results.map((r) => round(maskConcentration(r.mask, h, w))) } : {}),
				attack_success: results.map((r) => round(r.success)),
				restarts: policy.neuralCleanse.restarts,
				steps: policy.neuralCleanse.steps,
			};
			for (const e of evidence)
				if (e.flagged && !calibrated)
					accuse(
						e.cls,
						`neural_cleanse: reversed trigger L1 ${round(e.l1, 2)} is ${round(e.relativeL1, 2)}× the median (log anomaly index ${round(e.logAnomalyIndex, 2)})`,
					);
			triggers = results.map((r) => ({
				cls: r.cls,
				mask: Float32Array.from(r.mask),
				pattern: Float32Array.from(r.pattern),
			}));
			timings.neural_cleanse_ms = t() - tNc;
		}

		const pairTargets = detectors.has("pairs")
			? pairPlan(numClasses, policy.pairs.maxPairs, report.detectors.neural_cleanse?.l1_norms)
			: [];
		if (pairTargets.length > 0) {
			const tPairs = t();
			const found = await runPairs(model, data, pairTargets, numClasses, inputShape, lo, hi, opts);
			const grid = () => Array.from({ length: numClasses }, () => Array<number | null>(numClasses).fill(null));
			const l1 = grid();
			const success = grid();
			for (const r of found) {
				(l1[r.cls] as Array<number | null>)[r.source] = round(r.l1);
				(success[r.cls] as Array<number | null>)[r.source] = round(r.success);
			}
			report.detectors.neural_cleanse_pairs = {
				steps: policy.pairs.steps,
				restarts: policy.pairs.restarts,
				targets: pairTargets,
				l1,
				attack_success: success,
			};
			timings.neural_cleanse_pairs_ms = t() - tPairs;
		}

		if (detectors.has("mm")) {
			const tMm = t();
			const mm = await runMaxMargin(model, numClasses, lo, hi, opts);
			report.detectors.max_margin = {
				steps: policy.maxMargin.steps,
				restarts: policy.maxMargin.restarts,
				margins: mm.margins.map((v) => round(v)),
				mmbd: mm.detection ? { cls: mm.detection.cls, p_value: mm.detection.pValue } : null,
			};
			timings.max_margin_ms = t() - tMm;
		}

		if (calibrated) judgeCalibrated(report, policy, numClasses, accuse);

		if (detectors.has("strip")) {
			const tStrip = t();
			const calib: StripCalibration = await stripCalibrate(
				runner,
				{ x: data.x.data, n },
				{ overlays: policy.strip.superimpositions, frr: policy.strip.frr, seed: policy.neuralCleanse.seed, lo, hi },
			);
			let onTriggers: StripTriggerResult[] = [];
			if (triggers.length > 0) onTriggers = await stripOnTriggers(runner, { x: data.x.data, n }, calib, triggers);
			const top = histogramTop([calib.cleanScores, ...onTriggers.map((r) => r.scores)]);
			report.detectors.strip = {
				boundary: round(calib.boundary),
				frr: calib.frr,
				superimpositions: calib.overlays,
				clean_entropy: {
					mean: round(calib.clean.mean),
					std: round(calib.clean.std),
					min: round(calib.clean.min),
					max: round(calib.clean.max),
				},
				reversed_triggers: onTriggers.map((r) => ({
					cls: r.cls,
					fraction_below: round(r.fractionBelow),
					mean_entropy: round(r.meanScore),
				})),
				histogram: {
					max: top,
					clean: entropyHistogram(calib.cleanScores, top),
					reversed_triggers: onTriggers.map((r) => ({ cls: r.cls, counts: entropyHistogram(r.scores, top) })),
				},
			};
			if (opts.inputs) {
				const [m, ...rest] = opts.inputs.shape;
				if (m === undefined || rest.join(",") !== inputShape.join(","))
					throw new FtguardError(
						"DATA_INVALID",
						`inputs have shape [${opts.inputs.shape.join(", ")}], the model takes [N, ${inputShape.join(", ")}]`,
					);
				const scored = await stripScore(runner, { x: data.x.data, n }, { x: opts.inputs.data, n: m }, calib);
				report.detectors.strip.inputs = {
					count: m,
					flagged: scored.flagged.flatMap((f, i) => (f ? [i] : [])),
					entropy: Array.from(scored.scores, (v) => round(v)),
				};
			}
			opts.onProgress?.({ stage: "strip", done: 1, total: 1 });
			timings.strip_ms = t() - tStrip;
		}

		if (detectors.has("ac")) {
			const tAc = t();
			const ac: AcResult = await activationClustering(
				runner,
				{ x: data.x.data, n, labels: data.y.data },
				{
					dims: policy.activationClustering.dims,
					silhouetteThreshold: policy.activationClustering.minSilhouette,
					minorityThreshold: policy.activationClustering.maxMinorityFraction,
					seed: policy.neuralCleanse.seed,
				},
			);
			// AC was designed for training-set samples; on clean reference data it never decides
			const decides = data.kind === "training" && policy.activationClustering.decides;
			report.detectors.activation_clustering = {
				data_kind: data.kind,
				decides,
				flagged_classes: ac.flaggedClasses,
				per_class: ac.perClass
					.filter((c) => !c.skipped)
					.map((c) => ({
						cls: c.cls,
						n: c.n,
						minority_fraction: round(c.minorityFraction),
						silhouette: round(c.silhouette),
						flagged: c.flagged,
						minority_indices: c.minorityIndices,
					})),
			};
			if (decides)
				for (const c of ac.perClass)
					if (c.flagged)
						accuse(
							c.cls,
							`activation_clustering: ${c.minorityIndices.length} of ${c.n} training samples form a separate cluster (silhouette ${round(c.silhouette, 2)})`,
						);
			opts.onProgress?.({ stage: "activation_clustering", done: 1, total: 1 });
			timings.activation_clustering_ms = t() - tAc;
		}

		report.suspect_classes = [...suspects.keys()].sort((a, b) => a - b);
		report.reasons = report.suspect_classes.flatMap((c) => suspects.get(c) ?? []);
		report.verdict = report.suspect_classes.length > 0 ? "suspect" : "clean";
		timings.total_ms = t() - tLoad;
		for (const k of Object.keys(timings)) timings[k] = Math.round(timings[k] ?? 0);
		return { report, triggers, inputShape: [...inputShape] };
	} finally {
		await runner.dispose();
	}
}
