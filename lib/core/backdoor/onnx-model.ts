/**
 * ONNX ModelProto ⇄ a plain graph structure, for building derived graphs
 * (gradients, the Neural Cleanse batch) that onnxruntime then executes.
 *
 * Reading and writing use the wire format and the ONNX field table the safety
 * scanner reads with (formats/protobuf.ts, formats/onnx-wire.ts). Only what a
 * feed-forward classifier needs is kept: nested graphs (If / Loop / Scan) and
 * external data are refused with MODEL_UNSUPPORTED rather than
 * half-represented, and `value_info` is dropped because derived graphs run at
 * other batch sizes, where stale intermediate shapes would contradict
 * onnxruntime's own inference.
 */
import { FtguardError } from "../errors";
import {
	AttributeProto,
	AttributeType,
	DataLocation,
	DataType,
	Dimension,
	GraphProto,
	ModelProto,
	NodeProto,
	OperatorSetIdProto,
	StringStringEntryProto,
	TensorProto,
	TensorShapeProto,
	TypeProto,
	TypeProtoTensor,
	ValueInfoProto,
} from "../formats/onnx-wire";
import {
	ProtoError,
	type ProtoField,
	ProtoSource,
	ProtoWriter,
	WIRE_I32,
	WIRE_I64,
	WIRE_LEN,
	WIRE_VARINT,
} from "../formats/protobuf";

export type TensorData =
	| Float32Array
	| Float64Array
	| BigInt64Array
	| BigUint64Array
	| Int32Array
	| Uint32Array
	| Int16Array
	| Uint16Array
	| Int8Array
	| Uint8Array;

export interface OnnxTensor {
	name: string;
	dataType: number;
	dims: number[];
	data: TensorData;
}

export type OnnxAttribute =
	| { name: string; type: "int"; value: number }
	| { name: string; type: "float"; value: number }
	| { name: string; type: "ints"; value: number[] }
	| { name: string; type: "floats"; value: number[] }
	| { name: string; type: "string"; value: string }
	| { name: string; type: "strings"; value: string[] }
	| { name: string; type: "tensor"; value: OnnxTensor };

export interface OnnxNode {
	opType: string;
	domain: string;
	name: string;
	inputs: string[];
	outputs: string[];
	attributes: OnnxAttribute[];
}

/** A dimension: its value, its symbolic name (dim_param), or null when neither is given. */
export type OnnxDim = number | string | null;

export interface OnnxValueInfo {
	name: string;
	elemType: number;
	/** null: the shape is not given at all (any rank). */
	shape: OnnxDim[] | null;
}

export interface OnnxGraph {
	name: string;
	nodes: OnnxNode[];
	initializers: OnnxTensor[];
	inputs: OnnxValueInfo[];
	outputs: OnnxValueInfo[];
}

export interface OnnxModel {
	irVersion: number;
	opsetImports: { domain: string; version: number }[];
	producerName: string;
	graph: OnnxGraph;
}

// ---------------------------------------------------------------- reading

export const malformed = (msg: string, cause?: unknown) =>
	new FtguardError("MODEL_MALFORMED", `ONNX model: ${msg}`, cause === undefined ? {} : { cause });

export async function fieldsOf(ps: ProtoSource, start: number, end: number): Promise<ProtoField[]> {
	const out: ProtoField[] = [];
	for await (const f of ps.fields(start, end)) out.push(f);
	return out;
}

const MAX_STRING = 1 << 20;

async function str(ps: ProtoSource, f: ProtoField): Promise<string> {
	if (f.wire !== WIRE_LEN) throw malformed(`field ${f.field} should be a string`);
	return ps.string(f, MAX_STRING);
}

/** Copies bytes into a fresh buffer: typed arrays need alignment that a slice of the file lacks. */
async function ownBytes(ps: ProtoSource, f: ProtoField): Promise<Uint8Array> {
	if (f.wire !== WIRE_LEN) throw malformed(`field ${f.field} should be bytes`);
	return new Uint8Array(await ps.bytes(f.start, f.length));
}

/** Repeated varint field, packed or not; values as signed int64. */
async function pushVarints(ps: ProtoSource, f: ProtoField, out: bigint[]): Promise<void> {
	if (f.wire === WIRE_VARINT) {
		out.push(BigInt.asIntN(64, f.value));
		return;
	}
	if (f.wire !== WIRE_LEN) throw malformed(`field ${f.field}: unexpected wire type ${f.wire}`);
	let pos = f.start;
	const end = f.start + f.length;
	while (pos < end) {
		const [v, next] = await ps.varint(pos, end);
		out.push(BigInt.asIntN(64, v));
		pos = next;
	}
}

/** Repeated fixed-width field (float: 4 bytes, double: 8), packed or not. */
async function pushFixed(ps: ProtoSource, f: ProtoField, width: 4 | 8, out: number[]): Promise<void> {
	const wire = width === 4 ? WIRE_I32 : WIRE_I64;
	const dv = new DataView(new ArrayBuffer(8));
	if (f.wire === wire) {
		if (width === 4) {
			dv.setUint32(0, Number(f.value), true);
			out.push(dv.getFloat32(0, true));
		} else {
			dv.setBigUint64(0, f.value, true);
			out.push(dv.getFloat64(0, true));
		}
		return;
	}
	if (f.wire !== WIRE_LEN || f.length % width !== 0)
		throw malformed(`field ${f.field}: bad packed ${width}-byte array`);
	const b = await ps.bytes(f.start, f.length);
	for (let i = 0; i < f.length; i += width) out.push(width === 4 ? b.readFloatLE(i) : b.readDoubleLE(i));
}

function typedFromRaw(dataType: number, raw: Uint8Array, name: string): TensorData {
	const buf = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength);
	const need = (w: number) => {
		if (raw.byteLength % w !== 0)
			throw malformed(`tensor ${name}: raw_data length ${raw.byteLength} not a multiple of ${w}`);
	};
	switch (dataType) {
		case DataType.FLOAT:
			need(4);
			return new Float32Array(buf);
		case DataType.DOUBLE:
			need(8);
			return new Float64Array(buf);
		case DataType.INT64:
			need(8);
			return new BigInt64Array(buf);
		case DataType.UINT64:
			need(8);
			return new BigUint64Array(buf);
		case DataType.INT32:
			need(4);
			return new Int32Array(buf);
		case DataType.UINT32:
			need(4);
			return new Uint32Array(buf);
		case DataType.INT16:
			need(2);
			return new Int16Array(buf);
		case DataType.UINT16:
		case DataType.FLOAT16:
		case DataType.BFLOAT16:
			need(2);
			return new Uint16Array(buf);
		case DataType.INT8:
			return new Int8Array(buf);
		case DataType.UINT8:
		case DataType.BOOL:
			return new Uint8Array(buf);
		default:
			throw new FtguardError("MODEL_UNSUPPORTED", `ONNX tensor ${name}: data type ${dataType} is not supported`);
	}
}

/** Builds the typed array for data held in the typed repeated fields (int32_data carries all narrow types). */
function typedFromFields(
	dataType: number,
	name: string,
	floats: number[],
	doubles: number[],
	ints: bigint[],
	int32s: bigint[],
	uint64s: bigint[],
): TensorData {
	switch (dataType) {
		case DataType.FLOAT:
			return Float32Array.from(floats);
		case DataType.DOUBLE:
			return Float64Array.from(doubles);
		case DataType.INT64:
			return BigInt64Array.from(ints);
		case DataType.UINT64:
			return BigUint64Array.from(uint64s, (v) => BigInt.asUintN(64, v));
		case DataType.UINT32:
			return Uint32Array.from(uint64s, Number);
		case DataType.INT32:
			return Int32Array.from(int32s, Number);
		case DataType.INT16:
			return Int16Array.from(int32s, Number);
		case DataType.UINT16:
		case DataType.FLOAT16:
		case DataType.BFLOAT16:
			return Uint16Array.from(int32s, Number);
		case DataType.INT8:
			return Int8Array.from(int32s, Number);
		case DataType.UINT8:
		case DataType.BOOL:
			return Uint8Array.from(int32s, Number);
		default:
			throw new FtguardError("MODEL_UNSUPPORTED", `ONNX tensor ${name}: data type ${dataType} is not supported`);
	}
}

const EXTERNAL = BigInt(DataLocation.EXTERNAL);

/**
 * A TensorProto's fields as they lie in the file: `raw` is where raw_data is (not read, so a reader of a large
 * model can stream it), the typed repeated fields decoded, and the external-data entries (key, value).
 */
export interface TensorFields {
	name: string;
	dataType: number;
	dims: number[];
	raw?: ProtoField;
	external: boolean;
	externalData: [string, string][];
	floats: number[];
	doubles: number[];
	ints: bigint[];
	int32s: bigint[];
	uint64s: bigint[];
}

export async function readTensorFields(ps: ProtoSource, start: number, end: number): Promise<TensorFields> {
	const dims: bigint[] = [];
	const t: Omit<TensorFields, "dims"> = {
		name: "",
		dataType: 0,
		external: false,
		externalData: [],
		floats: [],
		doubles: [],
		ints: [],
		int32s: [],
		uint64s: [],
	};
	for (const f of await fieldsOf(ps, start, end)) {
		switch (f.field) {
			case TensorProto.dims:
				await pushVarints(ps, f, dims);
				break;
			case TensorProto.data_type:
				t.dataType = Number(f.value);
				break;
			case TensorProto.segment:
				throw new FtguardError("MODEL_UNSUPPORTED", "ONNX tensor: segmented tensors are not supported");
			case TensorProto.float_data:
				await pushFixed(ps, f, 4, t.floats);
				break;
			case TensorProto.int32_data:
				await pushVarints(ps, f, t.int32s);
				break;
			case TensorProto.int64_data:
				await pushVarints(ps, f, t.ints);
				break;
			case TensorProto.name:
				t.name = await str(ps, f);
				break;
			case TensorProto.raw_data:
				if (f.wire !== WIRE_LEN) throw malformed(`field ${f.field} should be bytes`);
				t.raw = f;
				break;
			case TensorProto.double_data:
				await pushFixed(ps, f, 8, t.doubles);
				break;
			case TensorProto.uint64_data:
				await pushVarints(ps, f, t.uint64s);
				break;
			case TensorProto.external_data:
				t.external = true;
				if (f.wire === WIRE_LEN && t.externalData.length < 64) {
					let key = "";
					let value = "";
					for (const e of await fieldsOf(ps, f.start, f.start + f.length)) {
						if (e.field === StringStringEntryProto.key) key = await str(ps, e);
						else if (e.field === StringStringEntryProto.value) value = await str(ps, e);
					}
					t.externalData.push([key, value]);
				}
				break;
			case TensorProto.data_location:
				if (f.value === EXTERNAL) t.external = true;
				break;
		}
	}
	if (dims.some((d) => d < 0n || d > BigInt(Number.MAX_SAFE_INTEGER))) throw malformed(`tensor ${t.name}: bad dims`);
	return { ...t, dims: dims.map(Number) };
}

async function readTensor(ps: ProtoSource, start: number, end: number): Promise<OnnxTensor> {
	const t = await readTensorFields(ps, start, end);
	const { name, dataType, dims: shape } = t;
	if (t.external)
		throw new FtguardError(
			"MODEL_UNSUPPORTED",
			`ONNX tensor ${name}: external data is not supported (embed the weights)`,
		);
	const data =
		t.raw !== undefined
			? typedFromRaw(dataType, await ownBytes(ps, t.raw), name)
			: typedFromFields(dataType, name, t.floats, t.doubles, t.ints, t.int32s, t.uint64s);
	const count = shape.reduce((a, b) => a * b, 1);
	if (data.length !== count) throw malformed(`tensor ${name}: ${data.length} elements for dims [${shape.join(", ")}]`);
	return { name, dataType, dims: shape, data };
}

async function readAttribute(ps: ProtoSource, start: number, end: number, where: string): Promise<OnnxAttribute> {
	let name = "";
	let type = 0;
	let f1: number | undefined;
	let i1: bigint | undefined;
	let s1: string | undefined;
	let t1: OnnxTensor | undefined;
	const floats: number[] = [];
	const ints: bigint[] = [];
	const strings: string[] = [];
	let nested = false;
	for (const f of await fieldsOf(ps, start, end)) {
		switch (f.field) {
			case AttributeProto.name:
				name = await str(ps, f);
				break;
			case AttributeProto.type:
				type = Number(f.value);
				break;
			case AttributeProto.f: {
				const v: number[] = [];
				await pushFixed(ps, f, 4, v);
				f1 = v[0];
				break;
			}
			case AttributeProto.i:
				i1 = BigInt.asIntN(64, f.value);
				break;
			case AttributeProto.s:
				s1 = await str(ps, f);
				break;
			case AttributeProto.t:
				if (f.wire !== WIRE_LEN) throw malformed(`attribute ${name} of ${where}: bad tensor`);
				t1 = await readTensor(ps, f.start, f.start + f.length);
				break;
			case AttributeProto.floats:
				await pushFixed(ps, f, 4, floats);
				break;
			case AttributeProto.ints:
				await pushVarints(ps, f, ints);
				break;
			case AttributeProto.strings:
				strings.push(await str(ps, f));
				break;
			case AttributeProto.g:
			case AttributeProto.tensors:
			case AttributeProto.graphs:
			case AttributeProto.tp:
			case AttributeProto.type_protos:
			case AttributeProto.sparse_tensor:
			case AttributeProto.sparse_tensors:
				nested = true;
				break;
		}
	}
	const unsupported = () =>
		new FtguardError("MODEL_UNSUPPORTED", `ONNX node ${where}: attribute ${name} (type ${type}) is not supported`);
	if (nested) throw unsupported();
	switch (type) {
		case AttributeType.FLOAT:
			return { name, type: "float", value: f1 ?? 0 };
		case AttributeType.INT:
			return { name, type: "int", value: Number(i1 ?? 0n) };
		case AttributeType.STRING:
			return { name, type: "string", value: s1 ?? "" };
		case AttributeType.TENSOR:
			if (t1 === undefined) throw malformed(`attribute ${name} of ${where}: missing tensor`);
			return { name, type: "tensor", value: t1 };
		case AttributeType.FLOATS:
			return { name, type: "floats", value: floats };
		case AttributeType.INTS:
			return { name, type: "ints", value: ints.map(Number) };
		case AttributeType.STRINGS:
			return { name, type: "strings", value: strings };
		default:
			throw unsupported();
	}
}

export async function readNode(ps: ProtoSource, start: number, end: number, index: number): Promise<OnnxNode> {
	const node: OnnxNode = { opType: "", domain: "", name: "", inputs: [], outputs: [], attributes: [] };
	const attrs: ProtoField[] = [];
	for (const f of await fieldsOf(ps, start, end)) {
		if (f.field === NodeProto.input) node.inputs.push(await str(ps, f));
		else if (f.field === NodeProto.output) node.outputs.push(await str(ps, f));
		else if (f.field === NodeProto.name) node.name = await str(ps, f);
		else if (f.field === NodeProto.op_type) node.opType = await str(ps, f);
		else if (f.field === NodeProto.domain) node.domain = await str(ps, f);
		else if (f.field === NodeProto.attribute && f.wire === WIRE_LEN) attrs.push(f);
	}
	if (node.opType === "") throw malformed(`node #${index} has no op_type`);
	const where = `${node.opType} "${node.name || `#${index}`}"`;
	for (const f of attrs) node.attributes.push(await readAttribute(ps, f.start, f.start + f.length, where));
	return node;
}

export async function readValueInfo(ps: ProtoSource, start: number, end: number): Promise<OnnxValueInfo> {
	const vi: OnnxValueInfo = { name: "", elemType: 0, shape: null };
	for (const f of await fieldsOf(ps, start, end)) {
		if (f.field === ValueInfoProto.name) vi.name = await str(ps, f);
		else if (f.field === ValueInfoProto.type && f.wire === WIRE_LEN) {
			for (const t of await fieldsOf(ps, f.start, f.start + f.length)) {
				// only tensor types matter for classifiers
				if (t.field !== TypeProto.tensor_type || t.wire !== WIRE_LEN) continue;
				for (const tt of await fieldsOf(ps, t.start, t.start + t.length)) {
					if (tt.field === TypeProtoTensor.elem_type) vi.elemType = Number(tt.value);
					else if (tt.field === TypeProtoTensor.shape && tt.wire === WIRE_LEN) {
						vi.shape = [];
						for (const d of await fieldsOf(ps, tt.start, tt.start + tt.length)) {
							if (d.field !== TensorShapeProto.dim || d.wire !== WIRE_LEN) continue;
							let dim: OnnxDim = null;
							for (const x of await fieldsOf(ps, d.start, d.start + d.length)) {
								if (x.field === Dimension.dim_value) dim = Number(BigInt.asIntN(64, x.value));
								else if (x.field === Dimension.dim_param) dim = await str(ps, x);
							}
							vi.shape.push(dim);
						}
					}
				}
			}
		}
	}
	return vi;
}

async function readGraph(ps: ProtoSource, start: number, end: number): Promise<OnnxGraph> {
	const g: OnnxGraph = { name: "", nodes: [], initializers: [], inputs: [], outputs: [] };
	for (const f of await fieldsOf(ps, start, end)) {
		const s = f.start;
		const e = f.start + f.length;
		if (f.field === GraphProto.name) g.name = await str(ps, f);
		else if (f.wire !== WIRE_LEN) continue;
		else if (f.field === GraphProto.node) g.nodes.push(await readNode(ps, s, e, g.nodes.length));
		else if (f.field === GraphProto.initializer) g.initializers.push(await readTensor(ps, s, e));
		else if (f.field === GraphProto.input) g.inputs.push(await readValueInfo(ps, s, e));
		else if (f.field === GraphProto.output) g.outputs.push(await readValueInfo(ps, s, e));
		else if (f.field === GraphProto.sparse_initializer)
			throw new FtguardError("MODEL_UNSUPPORTED", "ONNX model: sparse initializers are not supported");
	}
	return g;
}

/** Parses ModelProto bytes. Throws MODEL_MALFORMED for anything that is not a readable model. */
export async function readOnnxModel(bytes: Uint8Array): Promise<OnnxModel> {
	const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
	let read = 0;
	const ps = new ProtoSource({
		size: buf.length,
		read: async (offset, length) => {
			const b = buf.subarray(offset, offset + length);
			read += b.length;
			return b;
		},
		get bytesRead() {
			return read;
		},
	});
	try {
		let irVersion: number | undefined;
		let producerName = "";
		let graph: OnnxGraph | undefined;
		const opsetImports: OnnxModel["opsetImports"] = [];
		for (const f of await fieldsOf(ps, 0, buf.length)) {
			if (f.field === ModelProto.ir_version && f.wire === WIRE_VARINT) irVersion = Number(f.value);
			else if (f.field === ModelProto.producer_name) producerName = await str(ps, f);
			else if (f.field === ModelProto.opset_import && f.wire === WIRE_LEN) {
				const op = { domain: "", version: 0 };
				for (const x of await fieldsOf(ps, f.start, f.start + f.length)) {
					if (x.field === OperatorSetIdProto.domain) op.domain = await str(ps, x);
					else if (x.field === OperatorSetIdProto.version) op.version = Number(x.value);
				}
				opsetImports.push(op);
			} else if (f.field === ModelProto.graph && f.wire === WIRE_LEN)
				graph = await readGraph(ps, f.start, f.start + f.length);
			else if (f.field === ModelProto.functions)
				throw new FtguardError("MODEL_UNSUPPORTED", "ONNX model: model-local functions are not supported");
		}
		if (irVersion === undefined || graph === undefined) throw malformed("no ir_version or no graph");
		if (graph.nodes.length === 0 || graph.outputs.length === 0) throw malformed("empty graph");
		// opset_import is the last field torch writes: without it a file may simply be cut short
		if (opsetImports.length === 0) throw malformed("no opset_import");
		return { irVersion, opsetImports, producerName, graph };
	} catch (e) {
		if (e instanceof FtguardError) throw e;
		if (e instanceof ProtoError) throw malformed(e.message, e);
		throw malformed(e instanceof Error ? e.message : String(e), e);
	}
}

/** The opset version of the default ONNX domain (1 when not imported, as the spec says). */
export function defaultOpset(model: OnnxModel): number {
	return model.opsetImports.find((o) => o.domain === "" || o.domain === "ai.onnx")?.version ?? 1;
}

// ---------------------------------------------------------------- writing

function writeTensor(t: OnnxTensor): ProtoWriter {
	const w = new ProtoWriter();
	for (const d of t.dims) w.varint(TensorProto.dims, d);
	w.varint(TensorProto.data_type, t.dataType);
	w.string(TensorProto.name, t.name);
	w.bytes(TensorProto.raw_data, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
	return w;
}

function writeAttribute(a: OnnxAttribute): ProtoWriter {
	const w = new ProtoWriter();
	w.string(AttributeProto.name, a.name);
	switch (a.type) {
		case "float":
			w.float(AttributeProto.f, a.value);
			w.varint(AttributeProto.type, AttributeType.FLOAT);
			break;
		case "int":
			w.varint(AttributeProto.i, a.value);
			w.varint(AttributeProto.type, AttributeType.INT);
			break;
		case "string":
			w.string(AttributeProto.s, a.value);
			w.varint(AttributeProto.type, AttributeType.STRING);
			break;
		case "tensor":
			w.message(AttributeProto.t, writeTensor(a.value));
			w.varint(AttributeProto.type, AttributeType.TENSOR);
			break;
		case "floats":
			for (const v of a.value) w.float(AttributeProto.floats, v);
			w.varint(AttributeProto.type, AttributeType.FLOATS);
			break;
		case "ints":
			for (const v of a.value) w.varint(AttributeProto.ints, v);
			w.varint(AttributeProto.type, AttributeType.INTS);
			break;
		case "strings":
			for (const v of a.value) w.string(AttributeProto.strings, v);
			w.varint(AttributeProto.type, AttributeType.STRINGS);
			break;
	}
	return w;
}

function writeValueInfo(v: OnnxValueInfo): ProtoWriter {
	const tensor = new ProtoWriter();
	tensor.varint(TypeProtoTensor.elem_type, v.elemType);
	if (v.shape !== null) {
		const shape = new ProtoWriter();
		for (const d of v.shape) {
			const dim = new ProtoWriter();
			if (typeof d === "number") dim.varint(Dimension.dim_value, d);
			else if (typeof d === "string") dim.string(Dimension.dim_param, d);
			shape.message(TensorShapeProto.dim, dim);
		}
		tensor.message(TypeProtoTensor.shape, shape);
	}
	const type = new ProtoWriter();
	type.message(TypeProto.tensor_type, tensor);
	const w = new ProtoWriter();
	w.string(ValueInfoProto.name, v.name);
	w.message(ValueInfoProto.type, type);
	return w;
}

/** Serialises a model to ModelProto bytes (tensors always as raw_data). */
export function writeOnnxModel(model: OnnxModel): Uint8Array {
	const g = new ProtoWriter();
	for (const n of model.graph.nodes) {
		const w = new ProtoWriter();
		for (const i of n.inputs) w.string(NodeProto.input, i);
		for (const o of n.outputs) w.string(NodeProto.output, o);
		if (n.name !== "") w.string(NodeProto.name, n.name);
		w.string(NodeProto.op_type, n.opType);
		for (const a of n.attributes) w.message(NodeProto.attribute, writeAttribute(a));
		if (n.domain !== "") w.string(NodeProto.domain, n.domain);
		g.message(GraphProto.node, w);
	}
	g.string(GraphProto.name, model.graph.name || "graph");
	for (const t of model.graph.initializers) g.message(GraphProto.initializer, writeTensor(t));
	for (const v of model.graph.inputs) g.message(GraphProto.input, writeValueInfo(v));
	for (const v of model.graph.outputs) g.message(GraphProto.output, writeValueInfo(v));
	const m = new ProtoWriter();
	m.varint(ModelProto.ir_version, model.irVersion);
	if (model.producerName !== "") m.string(ModelProto.producer_name, model.producerName);
	m.message(ModelProto.graph, g);
	for (const o of model.opsetImports) {
		const w = new ProtoWriter();
		w.string(OperatorSetIdProto.domain, o.domain);
		w.varint(OperatorSetIdProto.version, o.version);
		m.message(ModelProto.opset_import, w);
	}
	return m.finish();
}
