/**
 * The contracts between the backdoor engine's parts: the ONNX-backed runners
 * (runtime.ts) and the detectors that drive them (neural-cleanse.ts, strip.ts,
 * activation-clustering.ts). Detectors depend only on these interfaces, so their
 * logic is testable with small analytic backends and the runtime is swappable.
 */

/** One Neural Cleanse mini-batch for K trials, all computed in one session run. */
export interface NcBatchResult {
	/** [K] mean cross-entropy of the stamped batch against each trial's target */
	ce: Float32Array;
	/** [K] L1 norm (sum) of each trial's mask */
	l1: Float32Array;
	/** [K] fraction of the batch classified as the trial's target */
	acc: Float32Array;
	/** [K, ...maskShape] d(ce + cost·l1)/d mask_raw */
	gradMask: Float32Array;
	/** [K, ...inputShape] d(ce + cost·l1)/d pattern_raw */
	gradPattern: Float32Array;
}

export interface NcBackend {
	readonly trials: number;
	readonly batch: number;
	/** one input without the batch axis, e.g. [1, 8, 8] */
	readonly inputShape: readonly number[];
	/** [1, H, W] for image inputs (C, H, W), else the input shape */
	readonly maskShape: readonly number[];
	readonly numClasses: number;
	/** x holds K × B inputs, each trial its own B (else B inputs shared by every trial) */
	readonly perTrialInputs?: boolean;
	run(
		x: Float32Array,
		maskRaw: Float32Array,
		patternRaw: Float32Array,
		target: BigInt64Array,
		cost: Float32Array,
	): Promise<NcBatchResult>;
	dispose(): Promise<void>;
}

export interface InferenceRunner {
	readonly numClasses: number;
	readonly inputShape: readonly number[];
	/** logits [n, numClasses] for n inputs laid out contiguously */
	logits(x: Float32Array, n: number): Promise<Float32Array>;
	/** activations feeding the last Gemm/MatMul: [n, dim] */
	penultimate(x: Float32Array, n: number): Promise<{ data: Float32Array; dim: number }>;
	dispose(): Promise<void>;
}

/** One MM-BD step for K trials (one input each), computed in one session run. */
export interface MmBatchResult {
	/** [K] logit of the trial's target minus the largest other logit, at x(x_raw) */
	margin: Float32Array;
	/** [K, ...inputShape] d margin / d x_raw (ascent direction) */
	grad: Float32Array;
}

export interface MmBackend {
	readonly trials: number;
	readonly inputShape: readonly number[];
	readonly numClasses: number;
	/**
	 * x = lo + (hi − lo)·(tanh(x_raw) + 1)/2 elementwise; lo and hi are one input's
	 * shape (the box, per element), x_raw is [K, ...inputShape].
	 */
	run(xRaw: Float32Array, target: BigInt64Array, lo: Float32Array, hi: Float32Array): Promise<MmBatchResult>;
	dispose(): Promise<void>;
}
