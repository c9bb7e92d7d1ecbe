/**
 * Appends ONNX nodes and constant initializers to a graph under fresh names:
 * what the gradient rules and the Neural Cleanse graph builder emit through.
 */
import { DataType } from "../formats/onnx-wire";
import type { OnnxAttribute, OnnxNode, OnnxTensor, TensorData } from "./onnx-model";

/** Appends nodes and constants to a graph under fresh names. */
export class Emitter {
	readonly nodes: OnnxNode[] = [];
	readonly initializers: OnnxTensor[] = [];
	private counter = 0;
	private readonly consts = new Map<string, string>();

	constructor(
		private readonly taken: Set<string>,
		private readonly prefix: string,
	) {}

	fresh(hint: string): string {
		let name: string;
		do name = `${this.prefix}${hint}_${this.counter++}`;
		while (this.taken.has(name));
		this.taken.add(name);
		return name;
	}

	/** Appends a single-output node; returns the output's name. */
	op1(opType: string, inputs: string[], attributes: OnnxAttribute[] = []): string {
		const out = this.fresh(opType);
		this.nodes.push({ opType, domain: "", name: out, inputs, outputs: [out], attributes });
		return out;
	}

	/** A constant initializer; small ones (axes, shapes, scalars) are shared between identical requests. */
	tensor(dataType: number, dims: readonly number[], data: TensorData): string {
		const key =
			data.length <= 64
				? `${dataType}|${dims.join(",")}|${Array.from(data as ArrayLike<number | bigint>, String).join(",")}`
				: undefined;
		const hit = key === undefined ? undefined : this.consts.get(key);
		if (hit !== undefined) return hit;
		const name = this.fresh("const");
		this.initializers.push({ name, dataType, dims: [...dims], data });
		if (key !== undefined) this.consts.set(key, name);
		return name;
	}

	i64(values: readonly number[]): string {
		return this.tensor(
			DataType.INT64,
			[values.length],
			BigInt64Array.from(values, (v) => BigInt(v)),
		);
	}

	/** A float32 scalar (rank 0), which broadcasts against anything. */
	f32(value: number): string {
		return this.tensor(DataType.FLOAT, [], Float32Array.of(value));
	}
}
