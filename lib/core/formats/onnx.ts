/**
 * ONNX: walks ModelProto with the wire-format reader (no schema library) and
 * reports what loading the model would reach outside the file:
 *
 * - `external-data-escape` (critical): a tensor's `external_data` `location` that
 *   is absolute, contains `..`, resolves outside the model directory, or is a
 *   symlink or hard link (path traversal, symlink and hard-link escapes have all
 *   been ONNX CVEs: CVE-2022-25882, CVE-2024-27318, CVE-2024-27319 …). Loading
 *   such a model reads (and a save writes) arbitrary files.
 * - `external-data-missing` (medium): the location names no file.
 * - `python-op` (critical): `PythonOp` / `PyOp` nodes execute Python.
 * - `custom-op-domain` (high): an op domain outside the ONNX standard set needs
 *   a native custom-op library to be loaded, i.e. foreign native code.
 * - `runtime-contrib-op` (low): `com.microsoft*` ops, built into ONNX Runtime
 *   (no library to load), reported for visibility only.
 *
 * - malformed: a tensor whose raw_data length is not dims × element size (ONNX
 *   Runtime refuses it on load), besides wire-format errors.
 *
 * Graphs are followed everywhere they occur: the main graph, node attributes
 * (If / Loop / Scan bodies, `graphs` lists), model-local functions and training
 * info, with a nesting bound. Tensors in attributes (Constant) and sparse
 * initializers can point to external data too. Tensor bytes are skipped, never read.
 */
import { lstat, realpath } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve, sep } from "node:path";
import {
	AttributeProto,
	DataLocation,
	DataType,
	FunctionProto,
	GraphProto,
	ModelProto,
	NodeProto,
	SparseTensorProto,
	StringStringEntryProto,
	TensorProto,
	TrainingInfoProto,
} from "./onnx-wire";
import { looksLikeMessage, ProtoError, type ProtoField, ProtoSource, WIRE_LEN, WIRE_VARINT } from "./protobuf";
import type { Finding, ScanInput, Scanner, ScanResult } from "./types";

/** Domains whose operators ONNX itself defines. */
export const STANDARD_DOMAINS: ReadonlySet<string> = new Set([
	"",
	"ai.onnx",
	"ai.onnx.ml",
	"ai.onnx.preview.training",
	"ai.onnx.training",
]);
/** Op types that run Python code (torch's fallthrough export, onnxruntime-extensions). */
const PYTHON_OPS = new Set(["pythonop", "pyop", "pyfunc", "pythonfunction"]);
/** Graph nesting bound (protobuf's own default recursion limit is 100). */
const MAX_DEPTH = 64;
/** Findings cap so that a model with 10^5 custom nodes still gives a readable report. */
const MAX_FINDINGS = 500;

class Malformed extends Error {}

interface ExternalRef {
	tensor: string;
	location?: string;
	offset?: string;
	length?: string;
}

interface Walk {
	ps: ProtoSource;
	ops: Map<string, { domain: string; opType: string; where: string }>;
	externals: ExternalRef[];
	functions: Set<string>;
}

const fnKey = (domain: string, name: string) => `${domain}\u0000${name}`;

/**
 * Bits per element of each TensorProto.DataType; STRING and unknown types have
 * no fixed size and are not checked.
 */
const ELEMENT_BITS: Readonly<Record<number, number>> = {
	[DataType.FLOAT]: 32,
	[DataType.UINT8]: 8,
	[DataType.INT8]: 8,
	[DataType.UINT16]: 16,
	[DataType.INT16]: 16,
	[DataType.INT32]: 32,
	[DataType.INT64]: 64,
	[DataType.BOOL]: 8,
	[DataType.FLOAT16]: 16,
	[DataType.DOUBLE]: 64,
	[DataType.UINT32]: 32,
	[DataType.UINT64]: 64,
	[DataType.COMPLEX64]: 64,
	[DataType.COMPLEX128]: 128,
	[DataType.BFLOAT16]: 16,
	[DataType.FLOAT8E4M3FN]: 8,
	[DataType.FLOAT8E4M3FNUZ]: 8,
	[DataType.FLOAT8E5M2]: 8,
	[DataType.FLOAT8E5M2FNUZ]: 8,
	[DataType.UINT4]: 4,
	[DataType.INT4]: 4,
	[DataType.FLOAT4E2M1]: 4,
};

const EXTERNAL = BigInt(DataLocation.EXTERNAL);

/** Reads a packed repeated varint field (proto3's default for `repeated int64 dims`). */
async function packedVarints(ps: ProtoSource, f: ProtoField, max: number): Promise<bigint[]> {
	const out: bigint[] = [];
	let pos = f.start;
	const end = f.start + f.length;
	while (pos < end) {
		if (out.length >= max) throw new Malformed(`onnx: more than ${max} dims`);
		const [v, q] = await ps.varint(pos, end);
		out.push(v);
		pos = q;
	}
	return out;
}

/**
 * raw_data must hold exactly dims × element size bytes: ONNX Runtime refuses a
 * mismatch when it loads the tensor, so a file that a scanner would pass but the
 * runtime rejects (or a reader that trusts dims over-reads) is reported as malformed.
 */
function checkRawSize(where: string, dims: bigint[], dataType: number, rawLength: number): void {
	const bits = ELEMENT_BITS[dataType];
	if (bits === undefined) return;
	let count = 1n;
	for (const d of dims) {
		// dims are int64 on the wire: a "negative" dim arrives as a huge unsigned value
		if (d > 0x7fffffffffffffffn) throw new Malformed(`onnx: ${where} has a negative dimension`);
		count *= d;
	}
	const need = (count * BigInt(bits) + 7n) / 8n;
	if (need !== BigInt(rawLength)) {
		throw new Malformed(
			`onnx: ${where} raw_data is ${rawLength} bytes but dims [${dims.join(", ")}] of data type ${dataType} need ${need}`,
		);
	}
}

async function walkTensor(w: Walk, start: number, end: number, where: string): Promise<void> {
	let name = "";
	let external = false;
	const dims: bigint[] = [];
	let dataType = 0;
	let rawLength: number | undefined;
	const entries: Array<[string, string]> = [];
	for await (const f of w.ps.fields(start, end)) {
		if (f.field === TensorProto.name && f.wire === WIRE_LEN) name = await w.ps.string(f, 1024);
		else if (f.field === TensorProto.dims && f.wire === WIRE_VARINT) dims.push(f.value);
		else if (f.field === TensorProto.dims && f.wire === WIRE_LEN) dims.push(...(await packedVarints(w.ps, f, 64)));
		else if (f.field === TensorProto.data_type && f.wire === WIRE_VARINT) dataType = Number(f.value);
		else if (f.field === TensorProto.raw_data && f.wire === WIRE_LEN) rawLength = f.length;
		else if (f.field === TensorProto.data_location && f.wire === WIRE_VARINT) external = f.value === EXTERNAL;
		else if (f.field === TensorProto.external_data && f.wire === WIRE_LEN) {
			let key = "";
			let value = "";
			for await (const e of w.ps.fields(f.start, f.start + f.length)) {
				if (e.field === StringStringEntryProto.key && e.wire === WIRE_LEN) key = await w.ps.string(e, 1024);
				else if (e.field === StringStringEntryProto.value && e.wire === WIRE_LEN) value = await w.ps.string(e, 8192);
			}
			if (entries.length < 64) entries.push([key, value]);
		}
	}
	if (rawLength !== undefined && !external)
		checkRawSize(`tensor ${name === "" ? where : name}`, dims, dataType, rawLength);
	if (!external && entries.length === 0) return;
	const ref: ExternalRef = { tensor: name === "" ? where : name };
	for (const [k, v] of entries) {
		if (k === "location") ref.location = v;
		else if (k === "offset") ref.offset = v;
		else if (k === "length") ref.length = v;
	}
	if (external && ref.location === undefined)
		throw new Malformed(`onnx: tensor ${ref.tensor} has external data without a location`);
	if (w.externals.length < 100_000) w.externals.push(ref);
}

async function walkSparse(w: Walk, f: ProtoField, where: string): Promise<void> {
	for await (const s of w.ps.fields(f.start, f.start + f.length))
		if ((s.field === SparseTensorProto.values || s.field === SparseTensorProto.indices) && s.wire === WIRE_LEN)
			await walkTensor(w, s.start, s.start + s.length, where);
}

async function walkAttribute(w: Walk, f: ProtoField, where: string, depth: number): Promise<void> {
	let name = "";
	for await (const a of w.ps.fields(f.start, f.start + f.length)) {
		if (a.wire !== WIRE_LEN) continue;
		if (a.field === AttributeProto.name) name = await w.ps.string(a, 256);
		const at = `${where}.${name || "attribute"}`;
		if (a.field === AttributeProto.t || a.field === AttributeProto.tensors)
			await walkTensor(w, a.start, a.start + a.length, at);
		else if (a.field === AttributeProto.g || a.field === AttributeProto.graphs) await walkGraph(w, a, at, depth + 1);
		else if (a.field === AttributeProto.sparse_tensor || a.field === AttributeProto.sparse_tensors)
			await walkSparse(w, a, at);
	}
}

async function walkNode(w: Walk, f: ProtoField, where: string, index: number, depth: number): Promise<void> {
	let opType = "";
	let domain = "";
	let name = "";
	const attrs: ProtoField[] = [];
	for await (const n of w.ps.fields(f.start, f.start + f.length)) {
		if (n.wire !== WIRE_LEN) continue;
		if (n.field === NodeProto.op_type) opType = await w.ps.string(n, 256);
		else if (n.field === NodeProto.domain) domain = await w.ps.string(n, 256);
		else if (n.field === NodeProto.name) name = await w.ps.string(n, 256);
		else if (n.field === NodeProto.attribute) attrs.push(n);
	}
	const at = `${where} node ${name !== "" ? name : `#${index}`} (${domain === "" ? "" : `${domain}::`}${opType})`;
	const key = `${domain}\u0000${opType}`;
	if (!w.ops.has(key)) w.ops.set(key, { domain, opType, where: at });
	// attributes after the node's identity so that locations name the node
	for (const a of attrs) await walkAttribute(w, a, at, depth);
}

async function walkGraph(w: Walk, f: ProtoField, where: string, depth: number): Promise<void> {
	if (depth > MAX_DEPTH) throw new Malformed(`onnx: graphs nested deeper than ${MAX_DEPTH}`);
	let i = 0;
	for await (const g of w.ps.fields(f.start, f.start + f.length)) {
		if (g.wire !== WIRE_LEN) continue;
		if (g.field === GraphProto.node) await walkNode(w, g, where, i++, depth);
		else if (g.field === GraphProto.initializer)
			await walkTensor(w, g.start, g.start + g.length, `${where} initializer`);
		else if (g.field === GraphProto.sparse_initializer) await walkSparse(w, g, `${where} sparse initializer`);
	}
}

async function walkFunction(w: Walk, f: ProtoField, depth: number): Promise<void> {
	let name = "";
	let domain = "";
	const nodes: ProtoField[] = [];
	for await (const g of w.ps.fields(f.start, f.start + f.length)) {
		if (g.wire !== WIRE_LEN) continue;
		if (g.field === FunctionProto.name) name = await w.ps.string(g, 256);
		else if (g.field === FunctionProto.domain) domain = await w.ps.string(g, 256);
		else if (g.field === FunctionProto.node) nodes.push(g);
	}
	w.functions.add(fnKey(domain, name));
	let i = 0;
	for (const n of nodes) await walkNode(w, n, `function ${domain}::${name}`, i++, depth + 1);
}

/** Walks a ModelProto. Returns what it collected; wire errors become Malformed. */
async function walkModel(ps: ProtoSource): Promise<Walk> {
	const w: Walk = { ps, ops: new Map(), externals: [], functions: new Set() };
	for await (const f of ps.fields(0, ps.size)) {
		if (f.wire !== WIRE_LEN) continue;
		if (f.field === ModelProto.graph) await walkGraph(w, f, "graph", 0);
		else if (f.field === ModelProto.functions) await walkFunction(w, f, 0);
		else if (f.field === ModelProto.training_info) {
			for await (const t of ps.fields(f.start, f.start + f.length))
				if (
					(t.field === TrainingInfoProto.initialization || t.field === TrainingInfoProto.algorithm) &&
					t.wire === WIRE_LEN
				)
					await walkGraph(w, t, "training graph", 1);
		}
	}
	return w;
}

/** A non-negative decimal integer as ONNX writes offset / length, or undefined. */
function decimal(s: string | undefined): bigint | undefined {
	if (s === undefined || !/^[0-9]{1,20}$/.test(s)) return undefined;
	return BigInt(s);
}

const isInside = (root: string, p: string) => {
	const rel = relative(root, p);
	return rel !== "" && !rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel);
};

/** Checks one external-data location against the model directory. */
async function checkLocation(
	ref: ExternalRef,
	baseDir: string,
	rootDir: string,
	cache: Map<string, Finding | { size: number } | "missing">,
): Promise<{ finding?: Finding; malformed?: string; target?: string }> {
	const loc = ref.location ?? "";
	const where = `tensor ${ref.tensor}`;
	const escapes = (why: string): { finding: Finding } => ({
		finding: {
			id: "external-data-escape",
			severity: "critical",
			message: `external data location ${JSON.stringify(loc.slice(0, 200))} ${why}: loading reads a file outside the model`,
			location: where,
		},
	});
	if (loc === "") return { malformed: `onnx: ${where} has an empty external data location` };
	if (loc.includes("\u0000")) return escapes("contains a NUL byte");
	if (isAbsolute(loc) || /^[A-Za-z]:/.test(loc) || loc.startsWith("\\") || loc.startsWith("~"))
		return escapes("is absolute");
	if (loc.split(/[\\/]/).includes("..")) return escapes("contains '..'");
	const target = resolve(baseDir, loc);
	if (!isInside(rootDir, target)) return escapes("resolves outside the model directory");
	let info = cache.get(target);
	if (info === undefined) {
		try {
			const st = await lstat(target);
			if (st.isSymbolicLink()) info = escapes("is a symlink").finding;
			else if (!st.isFile()) info = escapes("is not a regular file").finding;
			else if (st.nlink > 1) info = escapes(`is a hard link (${st.nlink} links)`).finding;
			else {
				// a symlinked parent directory can still lead outside
				const [real, realRoot] = await Promise.all([realpath(target), realpath(rootDir)]);
				info = isInside(realRoot, real)
					? { size: st.size }
					: escapes("resolves through a symlink outside the model directory").finding;
			}
		} catch {
			info = "missing";
		}
		if (cache.size < 10_000) cache.set(target, info);
	}
	if (info === "missing")
		return {
			finding: {
				id: "external-data-missing",
				severity: "medium",
				message: `external data file ${JSON.stringify(loc.slice(0, 200))} does not exist`,
				location: where,
			},
		};
	if ("id" in info) return { finding: info };
	const offset = ref.offset === undefined ? 0n : decimal(ref.offset);
	const length = ref.length === undefined ? undefined : decimal(ref.length);
	if (offset === undefined || (ref.length !== undefined && length === undefined))
		return { malformed: `onnx: ${where} has a non-numeric external data offset or length` };
	if (offset > BigInt(info.size) || (length !== undefined && offset + length > BigInt(info.size)))
		return {
			malformed: `onnx: ${where} external data [${offset}, +${length ?? "?"}) lies beyond the end of ${loc} (${info.size} bytes)`,
		};
	return { target };
}

/** Scans an ONNX model; see the module comment for the findings. */
export async function scanOnnx(input: ScanInput): Promise<ScanResult> {
	const findings: Finding[] = [];
	let malformed: string | undefined;
	const ps = new ProtoSource(input.source);
	let w: Walk;
	try {
		w = await walkModel(ps);
	} catch (e) {
		if (e instanceof ProtoError) return { findings, malformed: `onnx: ${e.message}` };
		if (e instanceof Malformed) return { findings, malformed: e.message };
		throw e;
	}
	const push = (f: Finding) => {
		if (findings.length < MAX_FINDINGS) findings.push(f);
	};
	for (const { domain, opType, where } of w.ops.values()) {
		if (PYTHON_OPS.has(opType.toLowerCase()))
			push({
				id: "python-op",
				severity: "critical",
				message: `${opType} node executes Python code when the model runs`,
				location: where,
			});
		else if (w.functions.has(fnKey(domain, opType)))
			continue; // a model-local function: its body is checked
		else if (domain.startsWith("com.microsoft"))
			push({
				id: "runtime-contrib-op",
				severity: "low",
				message: `op ${domain}::${opType} is an ONNX Runtime contrib op (built in, no library loaded)`,
				location: where,
			});
		else if (!STANDARD_DOMAINS.has(domain))
			push({
				id: "custom-op-domain",
				severity: "high",
				message: `op ${domain}::${opType} is outside the ONNX standard domains: running it needs a native custom-op library`,
				location: where,
			});
	}
	if (w.externals.length > 0) {
		const baseDir = dirname(input.path);
		const rootDir = input.modelDir ?? baseDir;
		const cache = new Map<string, Finding | { size: number } | "missing">();
		const reported = new Set<string>();
		const raw = new Set<string>();
		for (const ref of w.externals) {
			const r = await checkLocation(ref, baseDir, rootDir, cache);
			if (r.target !== undefined) raw.add(r.target);
			if (r.finding !== undefined) {
				// one finding per (id, location string) keeps thousands of shards readable
				const key = `${r.finding.id}\u0000${ref.location}`;
				if (!reported.has(key)) {
					reported.add(key);
					push(r.finding);
				}
			}
			if (r.malformed !== undefined && malformed === undefined) malformed = r.malformed;
		}
		// onnxruntime reads these as tensor bytes and nothing else: the engine judges them as raw weights
		if (raw.size > 0) return { findings, ...(malformed !== undefined ? { malformed } : {}), rawReferences: [...raw] };
	}
	return malformed === undefined ? { findings } : { findings, malformed };
}

/** ModelProto fields and their wire types, for sniffing. */
const MODEL_FIELDS: Readonly<Record<number, number>> = {
	[ModelProto.ir_version]: WIRE_VARINT,
	[ModelProto.producer_name]: WIRE_LEN,
	[ModelProto.producer_version]: WIRE_LEN,
	[ModelProto.domain]: WIRE_LEN,
	[ModelProto.model_version]: WIRE_VARINT,
	[ModelProto.doc_string]: WIRE_LEN,
	[ModelProto.graph]: WIRE_LEN,
	[ModelProto.opset_import]: WIRE_LEN,
	[ModelProto.metadata_props]: WIRE_LEN,
	[ModelProto.training_info]: WIRE_LEN,
	[ModelProto.functions]: WIRE_LEN,
};

/** The tag byte of ir_version, the field exporters write first. */
const IR_VERSION_TAG = (ModelProto.ir_version << 3) | WIRE_VARINT;

/** Scanner for ONNX models (`ModelProto` in protobuf binary form). */
export const onnxScanner: Scanner = {
	format: "onnx",
	detect(head: Buffer, name: string, size: number): boolean {
		const ok = (field: number, wire: number) => MODEL_FIELDS[field] === wire;
		const n = looksLikeMessage(head, size, ok, 3);
		// Exporters write ir_version first; three well-formed ModelProto fields
		// in a row are convincing on their own; `.onnx` breaks ties for short odd files.
		if (head[0] === IR_VERSION_TAG && n >= 2) return true;
		if (n >= 3) return true;
		return name.toLowerCase().endsWith(".onnx") && n >= 1;
	},
	scan(input: ScanInput): Promise<ScanResult> {
		return scanOnnx(input);
	},
};
