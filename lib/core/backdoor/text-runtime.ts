/**
 * onnxruntime-node sessions for text classifiers: the trigger-inversion graph (text-graph.ts) and plain
 * classification of token-id sequences by the model as shipped (no graph surgery: what users run is what is judged).
 */
import * as ort from "onnxruntime-node";
import { FtguardError } from "../errors";
import type { ShapeProbe } from "./nc-graph";
import type { OnnxModel } from "./onnx-model";
import {
	checkLength,
	createSession,
	type Device,
	probeShapes,
	runSession,
	type Session,
	type SessionOptions,
} from "./runtime";
import {
	buildTextTriggerGraph,
	type TextGraphOptions,
	type TextInput,
	type TextModelInfo,
	type TriggerMode,
} from "./text-graph";

/** One run's token inputs, laid out for K trials × B sequences of length L with T trigger slots. */
export interface TextBatch {
	ids: BigInt64Array;
	mask: BigInt64Array;
	place: Float32Array;
	keep: Float32Array;
}

export interface TextStepResult {
	/** [K] mean cross-entropy against each trial's target */
	ce: Float32Array;
	/** [K] share of each trial's batch classified as its target */
	acc: Float32Array;
	/** [K, T, V] (token mode) or [K, T, d] (embedding mode): d Σce / d trigger parameters */
	grad: Float32Array;
}

/** What the inversion loop drives (the ONNX runner below): the loop depends on this contract only. */
export interface TextTriggerBackend {
	readonly trials: number;
	readonly batch: number;
	readonly length: number;
	readonly triggerLength: number;
	readonly mode: TriggerMode;
	readonly info: TextModelInfo;
	readonly numClasses: number;
	run(batch: TextBatch, params: Float32Array, invTemp: Float32Array, target: BigInt64Array): Promise<TextStepResult>;
	dispose(): Promise<void>;
}

/**
 * The shape probe runs the model once in a throwaway session (a good part of building a graph); its answer depends
 * only on the model and the batch shape, which every trigger length (and the continuous search) shares: it is asked
 * once per model and shape. Held as long as the model object is.
 */
const probed = new WeakMap<OnnxModel, Map<string, Promise<Map<string, number[]>>>>();

function probeOnce(model: OnnxModel): ShapeProbe {
	return (graph, inputs) => {
		const byShape = probed.get(model) ?? new Map<string, Promise<Map<string, number[]>>>();
		probed.set(model, byShape);
		const key = JSON.stringify(Object.entries(inputs).map(([name, i]) => [name, i.type, i.dims]));
		let shapes = byShape.get(key);
		if (shapes === undefined) {
			shapes = probeShapes(graph, inputs);
			byShape.set(key, shapes);
			shapes.catch(() => byShape.delete(key)); // a failure is not remembered: the next build asks again
		}
		return shapes.then((m) => new Map(m));
	};
}

export class TextTriggerRunner implements TextTriggerBackend {
	private constructor(
		private readonly s: Session,
		private readonly o: TextGraphOptions,
		readonly info: TextModelInfo,
		readonly numClasses: number,
	) {}

	static async create(model: OnnxModel, opts: TextGraphOptions & SessionOptions): Promise<TextTriggerRunner> {
		const g = await buildTextTriggerGraph(model, opts, probeOnce(model));
		return new TextTriggerRunner(await createSession(g.bytes, opts), opts, g.info, g.numClasses);
	}
	get trials() {
		return this.o.trials;
	}
	get batch() {
		return this.o.batch;
	}
	get length() {
		return this.o.length;
	}
	get triggerLength() {
		return this.o.triggerLength;
	}
	get mode() {
		return this.o.mode;
	}
	get provider(): Device {
		return this.s.provider;
	}

	async run(
		batch: TextBatch,
		params: Float32Array,
		invTemp: Float32Array,
		target: BigInt64Array,
	): Promise<TextStepResult> {
		const { trials: K, batch: B, length: L, triggerLength: T, mode } = this.o;
		const N = K * B;
		const width = mode === "token" ? this.info.vocab : this.info.dim;
		checkLength("input_ids", batch.ids.length, N * L);
		checkLength("place", batch.place.length, N * L * T);
		checkLength("trigger parameters", params.length, K * T * width);
		for (const t of target)
			if (t < 0n || t >= BigInt(this.numClasses))
				throw new FtguardError("DATA_INVALID", `target class ${t} outside [0, ${this.numClasses})`);
		const feeds: Record<string, ort.Tensor> = {
			place: new ort.Tensor("float32", batch.place, [K, B, L, T]),
			keep: new ort.Tensor("float32", batch.keep, [N, L, 1]),
			target: new ort.Tensor("int64", target, [K]),
		};
		for (const name of this.info.inputs) feeds[name] = new ort.Tensor("int64", idsFor(name, batch), [N, L]);
		if (mode === "token") {
			feeds.z = new ort.Tensor("float32", params, [K, T, width]);
			feeds.inv_temp = new ort.Tensor("float32", invTemp, [K, 1, 1]);
		} else feeds.trigger = new ort.Tensor("float32", params, [K, T, width]);
		const r = await runSession(this.s.session, feeds);
		const out = (name: string) => (r[name] as ort.Tensor).data as Float32Array;
		return { ce: out("ce"), acc: out("acc"), grad: out("grad") };
	}

	async dispose(): Promise<void> {
		await this.s.session.release();
	}
}

function idsFor(name: TextInput, batch: Pick<TextBatch, "ids" | "mask">): BigInt64Array {
	if (name === "input_ids") return batch.ids;
	if (name === "attention_mask") return batch.mask;
	return new BigInt64Array(batch.ids.length); // token_type_ids: one segment
}

/** Classifies token-id sequences with the model as shipped. */
export class TextClassifier {
	private constructor(
		private readonly s: Session,
		private readonly inputs: readonly TextInput[],
		private readonly int32: readonly TextInput[],
		private readonly padId: number,
		private readonly chunk: number,
	) {}

	static async create(
		model: Uint8Array,
		info: TextModelInfo,
		opts: SessionOptions & { padId: number; chunk?: number },
	): Promise<TextClassifier> {
		return new TextClassifier(await createSession(model, opts), info.inputs, info.int32, opts.padId, opts.chunk ?? 128);
	}

	/** The first output for each sequence, [n, C] (logits, or probabilities when the model ends in Softmax). */
	async scores(seqs: readonly (readonly number[])[]): Promise<{ data: Float32Array; classes: number }> {
		let out = new Float32Array(0);
		let C = 0;
		for (let start = 0; start < seqs.length; start += this.chunk) {
			const part = seqs.slice(start, start + this.chunk);
			const L = Math.max(...part.map((s) => s.length));
			const ids = new BigInt64Array(part.length * L).fill(BigInt(this.padId));
			const mask = new BigInt64Array(part.length * L);
			part.forEach((s, i) => {
				for (let j = 0; j < s.length; j++) {
					ids[i * L + j] = BigInt(s[j] as number);
					mask[i * L + j] = 1n;
				}
			});
			const feeds: Record<string, ort.Tensor> = {};
			for (const name of this.inputs)
				feeds[name] = this.int32.includes(name)
					? new ort.Tensor("int32", Int32Array.from(idsFor(name, { ids, mask }), Number), [part.length, L])
					: new ort.Tensor("int64", idsFor(name, { ids, mask }), [part.length, L]);
			const r = await runSession(this.s.session, feeds);
			const t = r[this.s.session.outputNames[0] as string] as ort.Tensor;
			if (start === 0) {
				C = t.dims[1] as number;
				out = new Float32Array(seqs.length * C);
			}
			out.set(t.data as Float32Array, start * C);
		}
		return { data: out, classes: C };
	}

	/** The predicted class of each sequence (argmax of the first output: logits or probabilities alike). */
	async predict(seqs: readonly (readonly number[])[]): Promise<Int32Array> {
		return (await this.classify(seqs)).pred;
	}

	/** `predict`, with the number of classes the model answers in. */
	async classify(seqs: readonly (readonly number[])[]): Promise<{ pred: Int32Array; classes: number }> {
		const { data, classes: C } = await this.scores(seqs);
		const pred = new Int32Array(seqs.length);
		for (let i = 0; i < seqs.length; i++) {
			let best = 0;
			for (let c = 1; c < C; c++) if ((data[i * C + c] as number) > (data[i * C + best] as number)) best = c;
			pred[i] = best;
		}
		return { pred, classes: C };
	}

	async dispose(): Promise<void> {
		await this.s.session.release();
	}
}
