/**
 * The constants of an ONNX export that export binding compares with a checkpoint: every floating-point tensor the
 * graph carries — initializers, tensor attributes of nodes (Constant's `value`), float lists of attributes
 * (Constant's `value_floats`, ai.onnx.ml coefficients) — with where its bytes are. Initializer bytes are not read
 * here: `raw_data` stays a range of the file (or of an external-data file) that the matcher streams, so a large
 * model costs its headers, not its size in memory.
 *
 * Whether the graph computes with each constant (it is live), float constants computed at run time (refused) and
 * integer inputs rewritten before the lookup come from the graph analysis (binding-graph.ts).
 *
 * Refused (MODEL_UNSUPPORTED, "could not check"): what would hide constants from this walk — nested graphs
 * (If / Loop / Scan bodies carry their own initializers), model-local functions, sparse initializers — and
 * external data that points outside the model's directory.
 */
import { FtguardError, toFtguardError } from "../errors";
import { GraphProto, ModelProto } from "../formats/onnx-wire";
import { ProtoError, ProtoSource, WIRE_LEN, WIRE_VARINT } from "../formats/protobuf";
import type { ByteSource } from "../formats/types";
import { analyseGraph, type InputRewrite } from "./binding-graph";
import {
	fieldsOf,
	malformed,
	type OnnxNode,
	type OnnxValueInfo,
	readNode,
	readTensorFields,
	readValueInfo,
	type TensorFields,
} from "./onnx-model";
import { FLOAT_SIZE, type FloatDtype, memoryBytes, onnxFloatDtype, rangeBytes, type TensorBytes } from "./tensor-bytes";

export interface ExportConstant {
	/** the initializer's name, or `<op> "<node>" <attribute>` for a node attribute */
	name: string;
	origin: "initializer" | "attribute";
	dtype: FloatDtype;
	dims: number[];
	elements: number;
	/** its data reaches a graph output (binding-graph.ts): a constant only dead nodes read binds nothing */
	used: boolean;
	bytes: TensorBytes;
}

export interface ExportConstants {
	constants: ExportConstant[];
	/** constants of other types (shapes, indices, quantized integers): counted, not compared */
	otherConstants: number;
	/** integer inputs the graph rewrites before the lookup (findings) */
	rewrites: InputRewrite[];
}

/** Opens an external-data file by its `location` (relative to the model's directory, already checked). */
export type ExternalOpener = (location: string) => Promise<ByteSource>;

const unsupported = (msg: string) => new FtguardError("MODEL_UNSUPPORTED", `ONNX model: ${msg}`);

/** A location that stays inside the model's directory: relative, no `..`, no empty or `.` component. */
function checkedLocation(tensor: string, location: string | undefined): string {
	if (location === undefined || location === "") throw malformed(`tensor ${tensor}: external data without a location`);
	const parts = location.split(/[\\/]/);
	if (location.startsWith("/") || /^[A-Za-z]:/.test(location) || parts.some((p) => p === ".." || p === "" || p === "."))
		throw unsupported(
			`tensor ${tensor}: external data location ${JSON.stringify(location)} leaves the model directory`,
		);
	return parts.join("/");
}

/** A non-negative integer as ONNX writes external-data offsets and lengths (decimal text). */
function decimal(tensor: string, key: string, v: string | undefined): number | undefined {
	if (v === undefined) return undefined;
	if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(Number(v))) throw malformed(`tensor ${tensor}: bad external ${key}`);
	return Number(v);
}

async function tensorBytes(
	ps: ProtoSource,
	t: TensorFields,
	dtype: FloatDtype,
	elements: number,
	external: ExternalOpener,
): Promise<TensorBytes> {
	const want = elements * FLOAT_SIZE[dtype];
	const what = `ONNX tensor ${t.name}`;
	if (t.external) {
		const entries = new Map(t.externalData);
		const location = checkedLocation(t.name, entries.get("location"));
		const src = await external(location);
		const offset = decimal(t.name, "offset", entries.get("offset")) ?? 0;
		const length = decimal(t.name, "length", entries.get("length")) ?? want;
		if (length !== want) throw malformed(`tensor ${t.name}: external length ${length}, dims need ${want}`);
		if (offset + length > src.size) throw malformed(`tensor ${t.name}: external data past the end of ${location}`);
		return rangeBytes(src, offset, length, `${what} (${location})`);
	}
	if (t.raw !== undefined) {
		if (t.raw.length !== want)
			throw malformed(`tensor ${t.name}: raw_data is ${t.raw.length} bytes, dims need ${want}`);
		return rangeBytes(ps.src, t.raw.start, t.raw.length, what);
	}
	// typed fields: float_data (F32), double_data (F64), int32_data (the 16-bit types' bits)
	const values: ArrayLike<number | bigint> = dtype === "F32" ? t.floats : dtype === "F64" ? t.doubles : t.int32s;
	if (values.length !== elements) throw malformed(`tensor ${t.name}: ${values.length} values for ${elements} elements`);
	const buf = Buffer.alloc(want);
	for (let i = 0; i < elements; i++) {
		const v = values[i] as number | bigint;
		if (dtype === "F32") buf.writeFloatLE(v as number, i * 4);
		else if (dtype === "F64") buf.writeDoubleLE(v as number, i * 8);
		else buf.writeUInt16LE(Number(BigInt.asUintN(16, v as bigint)), i * 2);
	}
	return memoryBytes(buf);
}

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/**
 * Every floating-point constant of the model, in file order. Throws MODEL_MALFORMED for a file that is not an ONNX
 * model, MODEL_UNSUPPORTED for constructs that could hide constants from the walk.
 */
export async function readExportConstants(source: ByteSource, external: ExternalOpener): Promise<ExportConstants> {
	const ps = new ProtoSource(source);
	try {
		let irVersion = false;
		let graph: { start: number; end: number } | undefined;
		for (const f of await fieldsOf(ps, 0, source.size)) {
			if (f.field === ModelProto.ir_version && f.wire === WIRE_VARINT) irVersion = true;
			else if (f.field === ModelProto.graph && f.wire === WIRE_LEN) graph = { start: f.start, end: f.start + f.length };
			else if (f.field === ModelProto.functions) throw unsupported("model-local functions are not supported");
		}
		if (!irVersion || graph === undefined) throw malformed("no ir_version or no graph");
		const initializers: TensorFields[] = [];
		const nodes: OnnxNode[] = [];
		const inputs: OnnxValueInfo[] = [];
		const outputs: string[] = [];
		for (const f of await fieldsOf(ps, graph.start, graph.end)) {
			if (f.wire !== WIRE_LEN) continue;
			const end = f.start + f.length;
			if (f.field === GraphProto.initializer) initializers.push(await readTensorFields(ps, f.start, end));
			else if (f.field === GraphProto.sparse_initializer) throw unsupported("sparse initializers are not supported");
			else if (f.field === GraphProto.input) inputs.push(await readValueInfo(ps, f.start, end));
			else if (f.field === GraphProto.output) outputs.push((await readValueInfo(ps, f.start, end)).name);
			// readNode refuses subgraph attributes (If / Loop / Scan bodies), which would hide their constants
			else if (f.field === GraphProto.node) nodes.push(await readNode(ps, f.start, end, nodes.length));
		}
		if (nodes.length === 0) throw malformed("empty graph");
		const declared = new Map(initializers.map((t) => [t.name, { dataType: t.dataType, dims: t.dims }]));
		// what the graph computes with: constants count only where their data reaches an output (binding-graph.ts)
		const { live, liveNodes, rewrites } = analyseGraph({
			nodes,
			inputs: inputs.filter((i) => !declared.has(i.name)),
			outputs,
			initializers: declared,
		});
		const constants: ExportConstant[] = [];
		let otherConstants = 0;
		for (const [index, node] of nodes.entries()) {
			const where = `${node.opType} "${node.name || node.outputs[0] || `#${index}`}"`;
			// a Constant node's value is used when its output is; another op's attribute when the op is
			const used =
				node.opType === "Constant" && node.domain === ""
					? node.outputs[0] !== undefined && live.has(node.outputs[0])
					: liveNodes.has(node);
			for (const a of node.attributes) {
				if (a.type === "tensor") {
					const dtype = onnxFloatDtype(a.value.dataType);
					if (dtype === undefined) {
						otherConstants++;
						continue;
					}
					const d = a.value.data;
					constants.push({
						name: `${where} ${a.name}`,
						origin: "attribute",
						dtype,
						dims: a.value.dims,
						elements: d.length,
						used,
						bytes: memoryBytes(Buffer.from(d.buffer, d.byteOffset, d.byteLength)),
					});
				} else if (a.type === "floats" && a.value.length > 1)
					constants.push({
						name: `${where} ${a.name}`,
						origin: "attribute",
						dtype: "F32",
						dims: [a.value.length],
						elements: a.value.length,
						used,
						bytes: memoryBytes(Buffer.from(Float32Array.from(a.value).buffer)),
					});
			}
		}
		for (const t of initializers) {
			const dtype = onnxFloatDtype(t.dataType);
			if (dtype === undefined) {
				otherConstants++;
				continue;
			}
			const elements = product(t.dims);
			constants.push({
				name: t.name,
				origin: "initializer",
				dtype,
				dims: t.dims,
				elements,
				used: live.has(t.name),
				bytes: await tensorBytes(ps, t, dtype, elements, external),
			});
		}
		return { constants, otherConstants, rewrites };
	} catch (e) {
		throw modelError(e);
	}
}

/**
 * The external-data files an ONNX model's initializers name, relative to its directory (each checked to stay
 * inside it): the model's own weights, not weights beside it.
 */
export async function externalDataFiles(source: ByteSource): Promise<string[]> {
	const ps = new ProtoSource(source);
	try {
		const out = new Set<string>();
		for (const f of await fieldsOf(ps, 0, source.size)) {
			if (f.field !== ModelProto.graph || f.wire !== WIRE_LEN) continue;
			for (const g of await fieldsOf(ps, f.start, f.start + f.length)) {
				if (g.field !== GraphProto.initializer || g.wire !== WIRE_LEN) continue;
				const t = await readTensorFields(ps, g.start, g.start + g.length);
				if (t.external) out.add(checkedLocation(t.name, new Map(t.externalData).get("location")));
			}
		}
		return [...out];
	} catch (e) {
		throw modelError(e);
	}
}

function modelError(e: unknown): FtguardError {
	if (e instanceof FtguardError) return e;
	if (e instanceof ProtoError) return malformed(e.message, e);
	// an external-data file that cannot be opened or read: I/O, not a malformed model
	if (typeof (e as NodeJS.ErrnoException).code === "string") return toFtguardError(e);
	return malformed(e instanceof Error ? e.message : String(e), e);
}
