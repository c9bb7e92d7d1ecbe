/**
 * What picks a backdoor scan's reference data (policy `referenceData`): the
 * model family from an HF `config.json`, and the input shape of an ONNX model
 * read from its graph's first non-initializer input. The ONNX walk skips every
 * length-delimited field it does not need, so over an S3Source it reads a few
 * kilobytes of a model whatever the size of its weights.
 */
import {
	Dimension,
	GraphProto,
	ModelProto,
	TensorProto,
	TensorShapeProto,
	TypeProto,
	TypeProtoTensor,
	ValueInfoProto,
} from "../formats/onnx-wire";
import { ProtoSource, WIRE_LEN, WIRE_VARINT } from "../formats/protobuf";
import type { ByteSource } from "../formats/types";

/**
 * JSON as Python's json.loads (what transformers reads config.json with) takes it: the bare NaN, Infinity and
 * -Infinity it accepts become null here, so a config.json transformers loads is never unreadable to ftguard.
 */
function parsePythonJson(text: string): unknown {
	return JSON.parse(text.replace(/"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g, (m) => (m.startsWith('"') ? m : "null")));
}

/** Far above any real config.json; a larger one is not read, and names no family. */
export const MAX_CONFIG_BYTES = 1 << 20;

/** `model_type`, else `architectures[0]`, of a config.json; undefined when neither is a string. */
export function familyOf(configJson: Uint8Array): string | undefined {
	try {
		const c = parsePythonJson(Buffer.from(configJson).toString("utf8")) as {
			model_type?: unknown;
			architectures?: unknown;
		};
		if (typeof c.model_type === "string" && c.model_type !== "") return c.model_type;
		const a = Array.isArray(c.architectures) ? c.architectures[0] : undefined;
		return typeof a === "string" && a !== "" ? a : undefined;
	} catch {
		return undefined;
	}
}

/** What the plan needs of an ONNX model's graph inputs (those that are not initializers). */
export interface OnnxInputs {
	/** the first input's shape without its batch dimension ("1x28x28"); absent when a dimension is symbolic */
	shape?: string;
	names: string[];
}

/**
 * The graph inputs of an ONNX model; undefined when the bytes are not one. Never throws: a model it cannot read
 * simply matches no shape-keyed reference data.
 */
export async function onnxInputs(source: ByteSource): Promise<OnnxInputs | undefined> {
	try {
		const ps = new ProtoSource(source);
		for await (const g of ps.fields(0, ps.size)) {
			if (g.field !== ModelProto.graph || g.wire !== WIRE_LEN) continue;
			const initializers = new Set<string>();
			const inputs: Array<{ name: string; start: number; end: number }> = [];
			for await (const f of ps.fields(g.start, g.start + g.length)) {
				if (f.wire !== WIRE_LEN) continue;
				if (f.field === GraphProto.initializer) {
					for await (const t of ps.fields(f.start, f.start + f.length)) {
						if (t.field === TensorProto.name && t.wire === WIRE_LEN) initializers.add(await ps.string(t));
					}
				} else if (f.field === GraphProto.input) {
					let name = "";
					let type: { start: number; end: number } | undefined;
					for await (const v of ps.fields(f.start, f.start + f.length)) {
						if (v.field === ValueInfoProto.name && v.wire === WIRE_LEN) name = await ps.string(v);
						if (v.field === ValueInfoProto.type && v.wire === WIRE_LEN)
							type = { start: v.start, end: v.start + v.length };
					}
					if (type) inputs.push({ name, ...type });
				}
			}
			const real = inputs.filter((i) => !initializers.has(i.name));
			const first = real[0];
			const shape = first ? await shapeOf(ps, first.start, first.end) : undefined;
			return { ...(shape !== undefined ? { shape } : {}), names: real.map((i) => i.name) };
		}
	} catch {
		return undefined;
	}
	return undefined;
}

/**
 * The first graph input's shape without its batch dimension, as policy writes
 * it ("1x28x28"); undefined when the model has no such input or a dimension
 * other than the batch one is symbolic.
 */
export async function onnxInputShape(source: ByteSource): Promise<string | undefined> {
	return (await onnxInputs(source))?.shape;
}

/** TypeProto → tensor_type → shape → dim → dim_value (a dim_param counts as unknown). */
async function shapeOf(ps: ProtoSource, start: number, end: number): Promise<string | undefined> {
	const sub = async (s: number, e: number, field: number) => {
		for await (const f of ps.fields(s, e)) if (f.field === field && f.wire === WIRE_LEN) return f;
		return undefined;
	};
	const tensor = await sub(start, end, TypeProto.tensor_type);
	if (!tensor) return undefined;
	const shape = await sub(tensor.start, tensor.start + tensor.length, TypeProtoTensor.shape);
	if (!shape) return undefined;
	const dims: Array<number | undefined> = [];
	for await (const d of ps.fields(shape.start, shape.start + shape.length)) {
		if (d.field !== TensorShapeProto.dim || d.wire !== WIRE_LEN) continue;
		let value: number | undefined;
		for await (const x of ps.fields(d.start, d.start + d.length)) {
			if (x.field === Dimension.dim_value && x.wire === WIRE_VARINT) value = Number(x.value);
		}
		dims.push(value);
	}
	const rest = dims.slice(1);
	if (rest.length === 0 || rest.some((d) => d === undefined || d <= 0)) return undefined;
	return rest.join("x");
}
