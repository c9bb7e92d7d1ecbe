/**
 * onnxruntime-node sessions for the backdoor graphs, and the shape probe their
 * builders need. A requested execution provider that this build or machine
 * lacks falls back to CPU with one log line, so a scan never dies for want of a
 * GPU; `provider` says what ran. onnxruntime failures at run time are BACKEND_ERROR.
 */
import * as ort from "onnxruntime-node";
import { FtguardError, firstLine } from "../errors";
import { DataType } from "../formats/onnx-wire";
import { elemTypes } from "./gradient";
import { buildMaxMarginGraph } from "./mm-graph";
import { buildInferenceGraph, buildNeuralCleanseGraph, type ProbeInput } from "./nc-graph";
import { type OnnxModel, writeOnnxModel } from "./onnx-model";
import type { InferenceRunner, MmBackend, MmBatchResult, NcBackend, NcBatchResult } from "./types";

export type Device = "cpu" | "cuda" | "webgpu";

export interface SessionOptions {
	device: Device;
	/** Intra-op threads; onnxruntime's default (all cores) when absent. */
	threads?: number;
	/** Where the fallback line goes (stderr by default). */
	log?: (line: string) => void;
}

export interface Session {
	session: ort.InferenceSession;
	/** The execution provider that actually runs the graph. */
	provider: Device;
}

const message = (e: unknown) => firstLine(e instanceof Error ? e.message : String(e));

/** Providers already reported as unavailable: one line per process, not one per session. */
const reportedFallback = new Set<Device>();

export async function createSession(bytes: Uint8Array, opts: SessionOptions): Promise<Session> {
	const base: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: "all" };
	if (opts.threads !== undefined) base.intraOpNumThreads = opts.threads;
	if (opts.device !== "cpu") {
		try {
			const session = await ort.InferenceSession.create(bytes, { ...base, executionProviders: [opts.device] });
			return { session, provider: opts.device };
		} catch (e) {
			const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
			if (!reportedFallback.has(opts.device))
				log(`ftguard: ${opts.device} execution provider unavailable (${message(e)}); running on cpu`);
			reportedFallback.add(opts.device);
		}
	}
	try {
		return {
			session: await ort.InferenceSession.create(bytes, { ...base, executionProviders: ["cpu"] }),
			provider: "cpu",
		};
	} catch (e) {
		throw new FtguardError("BACKEND_ERROR", `onnxruntime cannot load the graph: ${message(e)}`, { cause: e });
	}
}

const ORT_TYPES: Record<number, ort.Tensor.Type> = {
	[DataType.FLOAT]: "float32",
	[DataType.INT64]: "int64",
	[DataType.BOOL]: "bool",
};

/**
 * The graph builders' ShapeProbe: runs the graph once on zeros with every
 * intermediate exposed and returns each tensor's concrete shape, exact for all
 * ops onnxruntime knows.
 */
export async function probeShapes(
	model: OnnxModel,
	inputs: Record<string, ProbeInput>,
): Promise<Map<string, number[]>> {
	const types = elemTypes(model.graph);
	const outputs = [...new Set(model.graph.nodes.flatMap((n) => n.outputs))]
		.filter((o) => o !== "" && ORT_TYPES[types.get(o) ?? 0] !== undefined)
		.map((name) => ({ name, elemType: types.get(name) as number, shape: null }));
	const probe: OnnxModel = { ...model, graph: { ...model.graph, outputs } };
	const feeds: Record<string, ort.Tensor> = {};
	for (const [name, { type, dims }] of Object.entries(inputs)) {
		const n = dims.reduce((a, b) => a * b, 1);
		feeds[name] = new ort.Tensor(type, type === "int64" ? new BigInt64Array(n) : new Float32Array(n), [...dims]);
	}
	let result: ort.InferenceSession.OnnxValueMapType;
	let session: ort.InferenceSession | undefined;
	try {
		session = await ort.InferenceSession.create(writeOnnxModel(probe), { graphOptimizationLevel: "disabled" });
		result = await session.run(feeds);
	} catch (e) {
		throw new FtguardError(
			"MODEL_UNSUPPORTED",
			`the model does not run at the requested batch shape: ${firstLine(e instanceof Error ? e.message : String(e))}`,
			{ cause: e },
		);
	} finally {
		await session?.release();
	}
	const shapes = new Map<string, number[]>();
	for (const [name, { dims }] of Object.entries(inputs)) shapes.set(name, [...dims]);
	for (const [name, t] of Object.entries(result)) shapes.set(name, [...(t as ort.Tensor).dims]);
	return shapes;
}

export async function runSession(
	session: ort.InferenceSession,
	feeds: Record<string, ort.Tensor>,
	fetches?: string[],
): Promise<ort.InferenceSession.OnnxValueMapType> {
	try {
		return await (fetches === undefined ? session.run(feeds) : session.run(feeds, fetches));
	} catch (e) {
		throw new FtguardError("BACKEND_ERROR", `onnxruntime run failed: ${message(e)}`, { cause: e });
	}
}

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

export function checkLength(what: string, got: number, want: number): void {
	if (got !== want) throw new FtguardError("DATA_INVALID", `${what}: ${got} values where ${want} are expected`);
}

export interface NcRunnerOptions extends SessionOptions {
	trials: number;
	batch: number;
	lo: number;
	hi: number;
	/** x is [K, B, …S]: each trial its own inputs (nc-graph.ts) */
	perTrialInputs?: boolean;
}

/** The Neural Cleanse step graph in one session: K trials × B inputs per run. */
export class NcRunner implements NcBackend {
	private constructor(
		private readonly s: Session,
		readonly trials: number,
		readonly batch: number,
		readonly inputShape: readonly number[],
		readonly maskShape: readonly number[],
		readonly numClasses: number,
		readonly perTrialInputs: boolean,
	) {}

	static async create(model: OnnxModel, opts: NcRunnerOptions): Promise<NcRunner> {
		const g = await buildNeuralCleanseGraph(model, opts, probeShapes);
		const s = await createSession(g.bytes, opts);
		return new NcRunner(s, g.trials, g.batch, g.inputShape, g.maskShape, g.numClasses, g.perTrialInputs);
	}

	get provider(): Device {
		return this.s.provider;
	}

	async run(
		x: Float32Array,
		maskRaw: Float32Array,
		patternRaw: Float32Array,
		target: BigInt64Array,
		cost: Float32Array,
	): Promise<NcBatchResult> {
		const K = this.trials;
		const S = this.inputShape;
		const M = this.maskShape;
		const xShape = this.perTrialInputs ? [K, this.batch, ...S] : [this.batch, ...S];
		checkLength("x", x.length, size(xShape));
		checkLength("mask_raw", maskRaw.length, K * size(M));
		checkLength("pattern_raw", patternRaw.length, K * size(S));
		checkLength("target", target.length, K);
		checkLength("cost", cost.length, K);
		for (const t of target)
			if (t < 0n || t >= BigInt(this.numClasses))
				throw new FtguardError("DATA_INVALID", `target class ${t} outside [0, ${this.numClasses})`);
		const r = await runSession(this.s.session, {
			x: new ort.Tensor("float32", x, xShape),
			mask_raw: new ort.Tensor("float32", maskRaw, [K, ...M]),
			pattern_raw: new ort.Tensor("float32", patternRaw, [K, ...S]),
			target: new ort.Tensor("int64", target, [K]),
			cost: new ort.Tensor("float32", cost, [K]),
		});
		const out = (name: string) => (r[name] as ort.Tensor).data as Float32Array;
		return {
			ce: out("ce"),
			l1: out("l1"),
			acc: out("acc"),
			gradMask: out("grad_mask"),
			gradPattern: out("grad_pattern"),
		};
	}

	async dispose(): Promise<void> {
		await this.s.session.release();
	}
}

export interface InferenceRunnerOptions extends SessionOptions {
	/** Inputs per session run; the last chunk may be smaller. */
	chunk?: number;
	/**
	 * Expose the penultimate activations (Activation Clustering needs them); off,
	 * a model without a final linear layer can still be scanned by the other detectors.
	 * @default true
	 */
	penultimate?: boolean;
}

/** Logits and penultimate activations, computed in fixed-size chunks to bound memory. */
export class OnnxInferenceRunner implements InferenceRunner {
	private constructor(
		private readonly s: Session,
		readonly numClasses: number,
		readonly inputShape: readonly number[],
		readonly penultimateDim: number,
		private readonly chunk: number,
	) {}

	static async create(model: OnnxModel, opts: InferenceRunnerOptions): Promise<OnnxInferenceRunner> {
		const g = await buildInferenceGraph(model, { penultimate: opts.penultimate ?? true }, probeShapes);
		const s = await createSession(g.bytes, opts);
		return new OnnxInferenceRunner(s, g.numClasses, g.inputShape, g.penultimateDim, opts.chunk ?? 256);
	}

	get provider(): Device {
		return this.s.provider;
	}

	private async outputs(x: Float32Array, n: number, name: string, width: number): Promise<Float32Array> {
		const per = size(this.inputShape);
		checkLength("inputs", x.length, n * per);
		const out = new Float32Array(n * width);
		for (let start = 0; start < n; start += this.chunk) {
			const m = Math.min(this.chunk, n - start);
			const r = await runSession(
				this.s.session,
				{
					x: new ort.Tensor("float32", x.subarray(start * per, (start + m) * per), [m, ...this.inputShape]),
				},
				[name],
			);
			out.set((r[name] as ort.Tensor).data as Float32Array, start * width);
		}
		return out;
	}

	logits(x: Float32Array, n: number): Promise<Float32Array> {
		return this.outputs(x, n, "logits", this.numClasses);
	}

	async penultimate(x: Float32Array, n: number): Promise<{ data: Float32Array; dim: number }> {
		if (this.penultimateDim === 0)
			throw new FtguardError("INTERNAL", "penultimate activations were not requested when the runner was created");
		return { data: await this.outputs(x, n, "penultimate", this.penultimateDim), dim: this.penultimateDim };
	}

	async dispose(): Promise<void> {
		await this.s.session.release();
	}
}

export interface MmRunnerOptions extends SessionOptions {
	/** inputs (trials) per run: classes × restarts at once when that fits */
	trials: number;
}

/** The MM-BD max-margin step graph (mm-graph.ts) in one session: K trials, one input each, per run. */
export class MmRunner implements MmBackend {
	private constructor(
		private readonly s: Session,
		readonly trials: number,
		readonly inputShape: readonly number[],
		readonly numClasses: number,
	) {}

	static async create(model: OnnxModel, opts: MmRunnerOptions): Promise<MmRunner> {
		const g = await buildMaxMarginGraph(model, opts, probeShapes);
		const s = await createSession(g.bytes, opts);
		return new MmRunner(s, g.trials, g.inputShape, g.numClasses);
	}

	get provider(): Device {
		return this.s.provider;
	}

	async run(xRaw: Float32Array, target: BigInt64Array, lo: Float32Array, hi: Float32Array): Promise<MmBatchResult> {
		const K = this.trials;
		const S = this.inputShape;
		checkLength("x_raw", xRaw.length, K * size(S));
		checkLength("target", target.length, K);
		checkLength("lo", lo.length, size(S));
		checkLength("hi", hi.length, size(S));
		for (const t of target)
			if (t < 0n || t >= BigInt(this.numClasses))
				throw new FtguardError("DATA_INVALID", `target class ${t} outside [0, ${this.numClasses})`);
		const r = await runSession(this.s.session, {
			x_raw: new ort.Tensor("float32", xRaw, [K, ...S]),
			target: new ort.Tensor("int64", target, [K]),
			lo: new ort.Tensor("float32", lo, [...S]),
			hi: new ort.Tensor("float32", hi, [...S]),
		});
		const out = (name: string) => (r[name] as ort.Tensor).data as Float32Array;
		return { margin: out("margin"), grad: out("grad") };
	}

	async dispose(): Promise<void> {
		await this.s.session.release();
	}
}
