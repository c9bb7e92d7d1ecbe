/**
 * The tensors of a PyTorch zip checkpoint (`torch.save`, the format since torch 1.6), read without unpickling:
 * the archive as torch.load's reader (miniz) lists it, `data.pkl` first judged by the model of
 * `torch.load(weights_only=True)` (formats/weights-only.ts: only a pickle that loader loads is read further), then
 * decoded into symbolic values (formats/pickle-values.ts: nothing is imported or called) to find each tensor's
 * storage, dtype, offset, size and stride; the bytes are the storage records `data/<key>`, strided views gathered.
 * Tensors are named by their path in the pickled object (`net.0.weight` in a state dict; `model.net.0.weight` in
 * a dict holding one). Quantized, sparse and meta tensors cannot be compared: MODEL_UNSUPPORTED.
 */
import { FtguardError } from "../errors";
import { MAX_PICKLE_BYTES } from "../formats/pickle-stream";
import { decodePickleValue, type PickleValue } from "../formats/pickle-values";
import type { ByteSource } from "../formats/types";
import { checkWeightsOnly } from "../formats/weights-only";
import { entryDataOffset, findEntry, listZipView, readEntry, type ZipEntry, type ZipListing } from "../formats/zip";
import type { CheckpointTensor } from "./binding-weights";
import { MAX_DERIVED_BYTES, memoryBytes, rangeBytes, type TensorBytes } from "./tensor-bytes";

/** torch's typed storage classes (what torch.save names in persistent ids) → dtype, element size, torch dtype names. */
const STORAGES: Readonly<Record<string, { dtype: string; size: number; torch: readonly string[] }>> = {
	FloatStorage: { dtype: "F32", size: 4, torch: ["float32", "float"] },
	HalfStorage: { dtype: "F16", size: 2, torch: ["float16", "half"] },
	BFloat16Storage: { dtype: "BF16", size: 2, torch: ["bfloat16"] },
	DoubleStorage: { dtype: "F64", size: 8, torch: ["float64", "double"] },
	LongStorage: { dtype: "I64", size: 8, torch: ["int64", "long"] },
	IntStorage: { dtype: "I32", size: 4, torch: ["int32", "int"] },
	ShortStorage: { dtype: "I16", size: 2, torch: ["int16", "short"] },
	CharStorage: { dtype: "I8", size: 1, torch: ["int8"] },
	ByteStorage: { dtype: "U8", size: 1, torch: ["uint8"] },
	BoolStorage: { dtype: "BOOL", size: 1, torch: ["bool"] },
	ComplexFloatStorage: { dtype: "C64", size: 8, torch: ["complex64", "cfloat"] },
	ComplexDoubleStorage: { dtype: "C128", size: 16, torch: ["complex128", "cdouble"] },
};

const REBUILD = new Set(["_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3"]);
const PARAMETER = new Set(["_rebuild_parameter", "_rebuild_parameter_with_state"]);
/** Depth of nested dicts / lists walked for tensors. */
const MAX_DEPTH = 32;
/** A state dict's pickle is a few dozen opcodes per tensor. */
const MAX_OPS = 50_000_000;

interface TensorRef {
	name: string;
	storage: { cls: string; key: string; numel: number };
	offset: number;
	size: number[];
	stride: number[];
}

const bad = (file: string, why: string) => new FtguardError("MODEL_MALFORMED", `${file}: ${why}`);

function int(v: PickleValue | undefined): number | undefined {
	return v?.t === "int" && v.v >= 0n && v.v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v.v) : undefined;
}

function ints(v: PickleValue | undefined): number[] | undefined {
	if (v?.t !== "seq") return undefined;
	const out = v.items.map(int);
	return out.every((x) => x !== undefined) ? (out as number[]) : undefined;
}

const isGlobal = (v: PickleValue, module: string, names: ReadonlySet<string> | string) =>
	v.t === "global" && v.module === module && (typeof names === "string" ? v.name === names : names.has(v.name));

/** None, an empty tuple / list / dict, or an empty OrderedDict(): what torch writes for "no hooks, no state". */
function isEmpty(v: PickleValue | undefined): boolean {
	if (v === undefined || v.t === "none") return true;
	if (v.t === "seq") return v.items.length === 0;
	if (v.t === "dict") return v.entries.length === 0;
	return (
		v.t === "obj" &&
		isGlobal(v.func, "collections", "OrderedDict") &&
		isEmpty(v.args) &&
		v.entries.length === 0 &&
		(v.state ?? []).every(isEmpty)
	);
}

/**
 * What torch.load does to a tensor after rebuilding it must leave its bytes alone: a BUILD state (Tensor.set_,
 * Parameter.__setstate__), a parameter's state (setattr, `data` among them) and tensor metadata (the neg bit)
 * could re-point or re-read it, so anything but empty is not followed: could not check.
 */
function checkNothingAfter(file: string, name: string, what: string, ...values: (PickleValue | undefined)[]): void {
	if (values.every(isEmpty)) return;
	throw new FtguardError(
		"MODEL_UNSUPPORTED",
		`${file}: tensor ${name} is changed after it is rebuilt (${what}), which binding does not follow`,
	);
}

/** The tensor a value rebuilds (unwrapping Parameter), or undefined when it is no tensor. */
function tensorOf(file: string, name: string, v: PickleValue): TensorRef | undefined {
	if (v.t !== "obj" || v.args.t !== "seq") return undefined;
	const args = v.args.items;
	if (isGlobal(v.func, "torch._utils", PARAMETER) || isGlobal(v.func, "torch.nn.parameter", "Parameter")) {
		const inner = args[0];
		const t = inner === undefined ? undefined : tensorOf(file, name, inner);
		if (t !== undefined) {
			checkNothingAfter(file, name, "a pickle BUILD on the parameter", ...(v.state ?? []));
			// _rebuild_parameter_with_state(data, requires_grad, hooks, state): the state is set on the parameter
			if (isGlobal(v.func, "torch._utils", "_rebuild_parameter_with_state"))
				checkNothingAfter(file, name, "a parameter state", args[3]);
		}
		return t;
	}
	if (v.func.t === "global" && v.func.module === "torch._utils" && v.func.name.startsWith("_rebuild_")) {
		if (!REBUILD.has(v.func.name))
			throw new FtguardError(
				"MODEL_UNSUPPORTED",
				`${file}: tensor ${name} is rebuilt by ${v.func.name} (quantized, sparse or meta): binding compares dense tensors only`,
			);
		const pid = args[0];
		const id = pid?.t === "persid" && pid.id.t === "seq" ? pid.id.items : undefined;
		const cls = id?.[1];
		const key = id?.[2];
		const numel = int(id?.[4]);
		const offset = int(args[1]);
		const size = ints(args[2]);
		const stride = ints(args[3]);
		if (
			cls?.t !== "global" ||
			key?.t !== "str" ||
			numel === undefined ||
			offset === undefined ||
			size === undefined ||
			stride === undefined ||
			size.length !== stride.length
		)
			throw bad(file, `tensor ${name}: not a storage, offset, size and stride`);
		const storage = STORAGES[cls.name];
		if (storage === undefined)
			throw new FtguardError("MODEL_UNSUPPORTED", `${file}: tensor ${name} is held by a ${cls.name}`);
		// v3 (…, dtype, metadata) reads the storage as its own dtype: only the storage's is the bytes binding reads
		const v3 = v.func.name === "_rebuild_tensor_v3";
		const dtype = args[6];
		if (v3 && !(dtype?.t === "global" && dtype.module === "torch" && storage.torch.includes(dtype.name)))
			throw new FtguardError(
				"MODEL_UNSUPPORTED",
				`${file}: tensor ${name} is read as another dtype than its ${cls.name} (_rebuild_tensor_v3)`,
			);
		checkNothingAfter(file, name, "a pickle BUILD: Tensor.set_", ...(v.state ?? []));
		checkNothingAfter(file, name, "tensor metadata", v.func.name === "_rebuild_tensor" ? undefined : args[v3 ? 7 : 6]);
		return { name, storage: { cls: cls.name, key: key.v, numel }, offset, size, stride };
	}
	return undefined;
}

/** Every tensor reachable through dicts, OrderedDicts and lists, named by its path. */
function collect(file: string, v: PickleValue, path: string, out: TensorRef[], depth: number): void {
	if (depth > MAX_DEPTH) throw bad(file, `objects nested deeper than ${MAX_DEPTH}`);
	const t = tensorOf(file, path, v);
	if (t !== undefined) {
		out.push(t);
		return;
	}
	const at = (k: string) => (path === "" ? k : `${path}.${k}`);
	if (v.t === "dict" || (v.t === "obj" && isGlobal(v.func, "collections", "OrderedDict"))) {
		for (const [k, x] of v.entries) {
			const key = k.t === "str" ? k.v : k.t === "int" ? k.v.toString() : undefined;
			if (key !== undefined) collect(file, x, at(key), out, depth + 1);
		}
	} else if (v.t === "seq") {
		for (const [i, x] of v.items.entries()) collect(file, x, at(String(i)), out, depth + 1);
	} else if (v.t === "obj" && holdsStorage(v, 0))
		// torch.load would build tensors inside an object this reader does not model: they would escape binding
		throw new FtguardError(
			"MODEL_UNSUPPORTED",
			`${file}: ${path || "the checkpoint"} holds tensors inside ${v.func.t === "global" ? `${v.func.module}.${v.func.name}` : "an object"}, which binding does not read`,
		);
}

function holdsStorage(v: PickleValue, depth: number): boolean {
	if (depth > MAX_DEPTH || v.t === "persid") return true;
	if (v.t === "seq") return v.items.some((x) => holdsStorage(x, depth + 1));
	if (v.t === "dict" || v.t === "obj") {
		if (v.entries.some(([k, x]) => holdsStorage(k, depth + 1) || holdsStorage(x, depth + 1))) return true;
		return v.t === "obj" && holdsStorage(v.args, depth + 1);
	}
	return false;
}

/** Indices of a row-major walk of `size` with `stride`, from `offset` (in elements). */
function* stridedIndices(offset: number, size: readonly number[], stride: readonly number[]): Generator<number> {
	const n = size.reduce((a, b) => a * b, 1);
	if (n === 0) return;
	const idx = size.map(() => 0);
	let at = offset;
	for (let i = 0; i < n; i++) {
		yield at;
		for (let d = size.length - 1; d >= 0; d--) {
			idx[d] = (idx[d] as number) + 1;
			at += stride[d] as number;
			if ((idx[d] as number) < (size[d] as number)) break;
			at -= (size[d] as number) * (stride[d] as number);
			idx[d] = 0;
		}
	}
}

function isContiguous(size: readonly number[], stride: readonly number[]): boolean {
	let expect = 1;
	for (let d = size.length - 1; d >= 0; d--) {
		if ((size[d] as number) !== 1 && stride[d] !== expect) return false;
		expect *= size[d] as number;
	}
	return true;
}

interface Storage {
	/** where its bytes are: a range of the archive (stored record) or memory (deflated record) */
	read: (byteOffset: number, length: number) => TensorBytes;
	bytes: number;
}

async function openStorage(
	file: string,
	src: ByteSource,
	listing: ZipListing,
	ref: TensorRef["storage"],
): Promise<Storage> {
	const { size } = STORAGES[ref.cls] as { size: number };
	const name = `${listing.archiveName}/data/${ref.key}`;
	const e: ZipEntry | undefined = findEntry(listing, name);
	if (e === undefined) throw bad(file, `storage record ${name} is missing`);
	const bytes = ref.numel * size;
	if (e.method === 0) {
		const start = await entryDataOffset(src, e);
		if (typeof start === "string") throw bad(file, start);
		if (e.uncompressedSize < bytes || start + bytes > src.size) throw bad(file, `${name} is shorter than its storage`);
		return { read: (o, n) => rangeBytes(src, start + o, n, `${file}: ${name}`), bytes };
	}
	if (bytes > MAX_DERIVED_BYTES)
		throw new FtguardError("MODEL_UNSUPPORTED", `${file}: ${name} is compressed and large`);
	const r = await readEntry(src, e, bytes);
	if ("error" in r) throw bad(file, r.error);
	if (r.data.length < bytes) throw bad(file, `${name} is shorter than its storage`);
	return { read: (o, n) => memoryBytes(r.data.subarray(o, o + n)), bytes };
}

async function tensorBytes(file: string, t: TensorRef, storage: Storage): Promise<TensorBytes> {
	const { size: item } = STORAGES[t.storage.cls] as { size: number };
	const elements = t.size.reduce((a, b) => a * b, 1);
	if (elements === 0) return memoryBytes(Buffer.alloc(0));
	// the last element a view reaches must lie inside its storage
	const last = t.offset + t.size.reduce((a, s, d) => a + (s - 1) * (t.stride[d] as number), 0);
	if (last >= t.storage.numel) throw bad(file, `tensor ${t.name} reaches past its storage`);
	if (isContiguous(t.size, t.stride)) return storage.read(t.offset * item, elements * item);
	// a strided view (a transposed or expanded tensor): gathered from the span it covers, bounded
	const span = (last - t.offset + 1) * item;
	if (span > MAX_DERIVED_BYTES || elements * item > MAX_DERIVED_BYTES)
		throw new FtguardError("MODEL_UNSUPPORTED", `${file}: tensor ${t.name} is a strided view too large to gather`);
	const chunks: Buffer[] = [];
	for await (const c of storage.read(t.offset * item, span).chunks()) chunks.push(c);
	const src = Buffer.concat(chunks);
	const out = Buffer.allocUnsafe(elements * item);
	let i = 0;
	for (const at of stridedIndices(0, t.size, t.stride)) src.copy(out, item * i++, at * item, (at + 1) * item);
	return memoryBytes(out);
}

/** The tensors of one torch zip checkpoint. */
export async function readTorchTensors(file: string, src: ByteSource): Promise<CheckpointTensor[]> {
	const listing = await listZipView(src, "miniz");
	if (typeof listing === "string") throw bad(file, `not a zip torch.load reads (${listing})`);
	if (listing.archiveName === undefined) throw bad(file, "torch.load finds no archive folder");
	const pkl = findEntry(listing, `${listing.archiveName}/data.pkl`);
	if (pkl === undefined) throw bad(file, "no data.pkl");
	const r = await readEntry(src, pkl, MAX_PICKLE_BYTES);
	if ("error" in r) throw bad(file, r.error);
	if (r.truncated !== undefined) throw bad(file, `data.pkl: ${r.truncated}`);
	// only what torch's weights_only loader loads is read further (files reports the rest)
	const judged = checkWeightsOnly(r.data, { mode: "zip" });
	if (judged.outcome !== "loaded")
		throw new FtguardError(
			"MODEL_UNSUPPORTED",
			`${file}: data.pkl is not a pickle torch.load(weights_only=True) loads (${judged.reason ?? judged.outcome})`,
		);
	const decoded = decodePickleValue(r.data, { objects: true, maxOps: MAX_OPS });
	if (decoded === undefined) throw bad(file, "data.pkl could not be decoded");
	const refs: TensorRef[] = [];
	collect(file, decoded.value, "", refs, 0);
	const storages = new Map<string, Storage>();
	const out: CheckpointTensor[] = [];
	for (const t of refs) {
		let storage = storages.get(t.storage.key);
		if (storage === undefined) {
			storage = await openStorage(file, src, listing, t.storage);
			storages.set(t.storage.key, storage);
		}
		out.push({
			name: t.name,
			file,
			dtype: (STORAGES[t.storage.cls] as { dtype: string }).dtype,
			shape: t.size,
			elements: t.size.reduce((a, b) => a * b, 1),
			bytes: await tensorBytes(file, t, storage),
		});
	}
	// every storage record must be a tensor's: bytes no tensor the reader found uses would be weights torch.load
	// may still attach somewhere this reader does not follow
	const prefix = `${listing.archiveName}/data/`;
	for (const e of listing.entries) {
		const key = e.name.startsWith(prefix) ? e.name.slice(prefix.length) : undefined;
		if (key !== undefined && !storages.has(key))
			throw new FtguardError(
				"MODEL_UNSUPPORTED",
				`${file}: storage record ${e.name} is used by no tensor binding found (a tensor re-pointed at load?)`,
			);
	}
	return out;
}
