/**
 * The constants of an ONNX export that export binding compares with a checkpoint: every floating-point tensor the
 * graph carries — initializers, tensor attributes of nodes (Constant's `value`), float lists of attributes
 * (Constant's `value_floats`, ai.onnx.ml coefficients) — with where its bytes are. Initializer bytes are not read
 * here: `raw_data` stays a range of the file (or of an external-data file) that the matcher streams, so a large
 * model costs its headers, not its size in memory.
 *
 * Refused (MODEL_UNSUPPORTED, "could not check"): what would hide constants from this walk — nested graphs
 * (If / Loop / Scan bodies carry their own initializers), model-local functions, sparse initializers — and
 * external data that points outside the model's directory.
 */
import { FtguardError, toFtguardError } from "../errors";
import { GraphProto, ModelProto, ValueInfoProto } from "../formats/onnx-wire";
import { ProtoError, ProtoSource, WIRE_LEN, WIRE_VARINT } from "../formats/protobuf";
import type { ByteSource } from "../formats/types";
import { fieldsOf, malformed, readNode, readTensorFields, type TensorFields } from "./onnx-model";
import { FLOAT_SIZE, type FloatDtype, memoryBytes, onnxFloatDtype, rangeBytes, type TensorBytes } from "./tensor-bytes";

export interface ExportConstant {
	/** the initializer's name, or `<op> "<node>" <attribute>` for a node attribute */
	name: string;
	origin: "initializer" | "attribute";
	dtype: FloatDtype;
	dims: number[];
	elements: number;
	/** read by a node or a graph output: an unused initializer binds nothing */
	used: boolean;
	bytes: TensorBytes;
}

export interface ExportConstants {
	constants: ExportConstant[];
	/** constants of other types (shapes, indices, quantized integers): counted, not compared */
	otherConstants: number;
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
		const constants: ExportConstant[] = [];
		const consumed = new Set<string>();
		const constantOutputs = new Map<ExportConstant, string | undefined>();
		let otherConstants = 0;
		let nodes = 0;
		for (const f of await fieldsOf(ps, graph.start, graph.end)) {
			if (f.wire !== WIRE_LEN) continue;
			const end = f.start + f.length;
			if (f.field === GraphProto.initializer) initializers.push(await readTensorFields(ps, f.start, end));
			else if (f.field === GraphProto.sparse_initializer) throw unsupported("sparse initializers are not supported");
			else if (f.field === GraphProto.output) {
				for (const v of await fieldsOf(ps, f.start, end))
					if (v.field === ValueInfoProto.name && v.wire === WIRE_LEN) consumed.add(await ps.string(v, 1 << 20));
			} else if (f.field === GraphProto.node) {
				// readNode refuses subgraph attributes (If / Loop / Scan bodies), which would hide their constants
				const node = await readNode(ps, f.start, end, nodes++);
				for (const i of node.inputs) consumed.add(i);
				const where = `${node.opType} "${node.name || node.outputs[0] || `#${nodes - 1}`}"`;
				for (const a of node.attributes) {
					let c: Omit<ExportConstant, "used"> | undefined;
					if (a.type === "tensor") {
						const dtype = onnxFloatDtype(a.value.dataType);
						if (dtype === undefined) {
							otherConstants++;
							continue;
						}
						const d = a.value.data;
						c = {
							name: `${where} ${a.name}`,
							origin: "attribute",
							dtype,
							dims: a.value.dims,
							elements: d.length,
							bytes: memoryBytes(Buffer.from(d.buffer, d.byteOffset, d.byteLength)),
						};
					} else if (a.type === "floats" && a.value.length > 1) {
						c = {
							name: `${where} ${a.name}`,
							origin: "attribute",
							dtype: "F32",
							dims: [a.value.length],
							elements: a.value.length,
							bytes: memoryBytes(Buffer.from(Float32Array.from(a.value).buffer)),
						};
					}
					if (c === undefined) continue;
					const constant = { ...c, used: true };
					constants.push(constant);
					// a Constant node's value is used when its output is; another op's attribute is part of the op
					if (node.opType === "Constant" && node.domain === "") constantOutputs.set(constant, node.outputs[0]);
				}
			}
		}
		if (nodes === 0) throw malformed("empty graph");
		for (const [c, out] of constantOutputs) c.used = out !== undefined && consumed.has(out);
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
				used: consumed.has(t.name),
				bytes: await tensorBytes(ps, t, dtype, elements, external),
			});
		}
		return { constants, otherConstants };
	} catch (e) {
		if (e instanceof FtguardError) throw e;
		if (e instanceof ProtoError) throw malformed(e.message, e);
		// an external-data file that cannot be opened or read: I/O, not a malformed model
		if (typeof (e as NodeJS.ErrnoException).code === "string") throw toFtguardError(e);
		throw malformed(e instanceof Error ? e.message : String(e), e);
	}
}
