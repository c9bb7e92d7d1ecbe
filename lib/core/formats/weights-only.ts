/**
 * A model of PyTorch's `weights_only` unpickler (`torch/_weights_only_unpickler.py`): given the bytes of one
 * pickle torch.load would unpickle, says whether `torch.load(f, weights_only=True)` loads it, refuses it for a
 * reason about code (a global, callable, build/append target or opcode the unpickler does not allow), or fails as
 * a corrupt file. It is a checker: values are symbolic (types, small ints and strings, tuple items), nothing is
 * imported, called or allocated from a length field.
 *
 * Two versions are modelled, each whole (a file is judged by one version's rule at a time, never a mixture):
 * - "1.13": torch 1.13 (Debian bookworm's python3-torch), checked differentially against the real loader by the
 *   fixtures (test/fixtures/pickle/make_weights_only_fixtures.py);
 * - "2.x": torch main (2.6+, where weights_only=True is torch.load's default), from its source: BINFLOAT, more
 *   dtypes, Counter/set/bytearray/complex/_codecs.encode/torch.device, the newer rebuild functions, NEWOBJ and
 *   BUILD on allowed classes, SETITEM only on dicts, Python 2 names mapped, os/sys/posix/nt blocked.
 * `checkWeightsOnly` passes what EITHER version loads. That is sound for ftguard's question (does anything run on
 * load, under any loader, weights_only or not): every callable either version lets a pickle reach is a torch or
 * stdlib constructor of inert data (tensors, storages, containers, dtypes, layouts, devices; `_codecs.encode` only
 * finds codecs in the stdlib `encodings` package), called only with values such a pickle can build; the full
 * unpickler (weights_only=False, pickle.load) gives those opcodes the same meaning. The intersection would refuse
 * every optimizer checkpoint: torch 1.13 has no BINFLOAT, so any float (a learning rate) is refused there.
 */
import { normalizeGlobal } from "./pickle-policy";

export type TorchVersion = "1.13" | "2.x";

/** What torch.load's persistent_load does with a persistent id, by load path. */
export type PersistentMode =
	/** `torch.load` of a zip checkpoint (`_load`): ('storage', storage_type, key, location, numel). */
	| "zip"
	/** Legacy (pre-1.6) torch.save, the main pickle: ('storage', type, root_key, location, numel, view_metadata). */
	| "legacy"
	/** Pre-1.0 tar checkpoint, member 'pickle': string keys of the storages / tensors read before it. */
	| "tar"
	/** `pickle_module.load` (records, magic number…): the unpickler's own persistent_load, which refuses. */
	| "none";

export interface StorageRef {
	/** The storage's key, as `data/{key}` names its record. */
	key: string;
	/** The storage class's name (`FloatStorage`, `UntypedStorage`). */
	type: string;
	numel: bigint | undefined;
	/** Legacy files: the key of the view this persistent id names (its view_metadata's first item). */
	viewKey?: string;
}

export type Outcome = "loaded" | "refused" | "corrupt";

export interface VersionResult {
	outcome: Outcome | "incomplete";
	/** torch's message (or a close paraphrase) when not loaded. */
	reason?: string;
	/** Offset (in the buffer, plus baseOffset) of the opcode where it stopped. */
	offset?: number;
	/** The global a GLOBAL refusal was about. */
	global?: { module: string; name: string };
	/** Refused for an opcode the unpickler does not know (not a global or callable). */
	opcode?: boolean;
	/** Offset just after STOP when loaded. */
	end?: number;
	storages: StorageRef[];
	/** For record pickles: the value's shape, enough for torch's own checks on it (magic number, keys). */
	value?: Summary;
}

export type Summary =
	| { t: "int"; v: bigint }
	| { t: "str"; v: string }
	| { t: "strlist"; v: string[] }
	| { t: "other" };

export interface WeightsOnlyResult extends VersionResult {
	/** Which version's rule decided (the one that loaded it, else 1.13's). */
	version: TorchVersion;
	/** Each version checked, up to the first that loads it. */
	byVersion: Partial<Record<TorchVersion, VersionResult>>;
}

export interface CheckOptions {
	mode: PersistentMode;
	/** SHORT_BINSTRING decoding: torch.load passes 'utf-8'; `_weights_only_unpickler.load` defaults to 'ASCII'. @default "utf-8" */
	encoding?: "utf-8" | "ascii" | "bytes";
	/** Offset in `buf` where the pickle starts. @default 0 */
	start?: number;
	/** Added to reported offsets. @default 0 */
	baseOffset?: number;
	/** `buf` is a prefix: running out of bytes is `incomplete`, not corrupt. */
	partial?: boolean;
	/** @default 10_000_000 */
	maxOps?: number;
	/** Only these versions (tests). */
	versions?: readonly TorchVersion[];
}

// ---------------------------------------------------------------- allowed globals

/** Storage classes both versions list (`torch._storage_classes`), as "module.name". */
const STORAGE_NAMES = [
	"BFloat16",
	"Bool",
	"Byte",
	"Char",
	"ComplexDouble",
	"ComplexFloat",
	"Double",
	"Float",
	"Half",
	"Int",
	"Long",
	"Short",
];
const LEGACY_STORAGES = [
	...STORAGE_NAMES.map((s) => `torch.${s}Storage`),
	...["QInt32", "QInt8", "QUInt2x4", "QUInt4x2", "QUInt8"].map((s) => `torch.${s}Storage`),
	...STORAGE_NAMES.map((s) => `torch.cuda.${s}Storage`),
];
const NEW_STORAGES = ["torch.storage.TypedStorage", "torch.storage.UntypedStorage"];
/** `torch._tensor_classes`: the legacy tensor types (torch.FloatTensor …), CPU, CUDA and sparse. */
const TENSOR_NAMES = ["BFloat16", "Bool", "Byte", "Char", "Double", "Float", "Half", "Int", "Long", "Short"];
const SPARSE_NAMES = ["BFloat16", "Byte", "Char", "Double", "Float", "Half", "Int", "Long", "Short"];
const TENSOR_CLASSES = [
	...TENSOR_NAMES.map((t) => `torch.${t}Tensor`),
	...TENSOR_NAMES.map((t) => `torch.cuda.${t}Tensor`),
	...SPARSE_NAMES.map((t) => `torch.sparse.${t}Tensor`),
	...SPARSE_NAMES.map((t) => `torch.cuda.sparse.${t}Tensor`),
];
const REBUILD_113 = [
	"_rebuild_parameter",
	"_rebuild_tensor",
	"_rebuild_tensor_v2",
	"_rebuild_sparse_tensor",
	"_rebuild_meta_tensor_no_storage",
	"_rebuild_sparse_csr_tensor",
].map((f) => `torch._utils.${f}`);
const REBUILD_2X = [
	"_rebuild_parameter",
	"_rebuild_parameter_with_state",
	"_rebuild_qtensor",
	"_rebuild_tensor",
	"_rebuild_tensor_v2",
	"_rebuild_tensor_v3",
	"_rebuild_sparse_tensor",
	"_rebuild_meta_tensor_no_storage",
	"_rebuild_wrapper_subclass",
	"_rebuild_device_tensor_from_numpy",
	"_rebuild_device_tensor_from_cpu_tensor",
].map((f) => `torch._utils.${f}`);
/** str(dtype) for torch 1.13's ten dtypes. */
const DTYPES_113 = [
	"complex32",
	"complex64",
	"complex128",
	"float16",
	"float32",
	"float64",
	"int8",
	"int16",
	"int32",
	"int64",
].map((d) => `torch.${d}`);
/** str(dtype) for every dtype torch 2.x lists (storage-type map, _new_dtypes, uint1–7, int1–7). */
const DTYPES_2X = [
	...DTYPES_113,
	"torch.bfloat16",
	"torch.uint8",
	"torch.bool",
	"torch.qint8",
	"torch.quint8",
	"torch.qint32",
	"torch.quint4x2",
	"torch.quint2x4",
	"torch.float8_e5m2",
	"torch.float8_e4m3fn",
	"torch.float8_e5m2fnuz",
	"torch.float8_e4m3fnuz",
	"torch.float8_e8m0fnu",
	"torch.float4_e2m1fn_x2",
	"torch.bits8",
	"torch.bits16",
	"torch.bits1x8",
	"torch.bits2x4",
	"torch.bits4x2",
	"torch.uint16",
	"torch.uint32",
	"torch.uint64",
	...[1, 2, 3, 4, 5, 6, 7].map((x) => `torch.uint${x}`),
	...[1, 2, 3, 4, 5, 6, 7].map((x) => `torch.int${x}`),
];
const QSCHEMES = [
	"per_tensor_affine",
	"per_tensor_symmetric",
	"per_channel_affine",
	"per_channel_symmetric",
	"per_channel_affine_float_qparams",
].map((q) => `torch.${q}`);

const ALLOWED_113: ReadonlySet<string> = new Set([
	"collections.OrderedDict",
	"torch.nn.parameter.Parameter",
	"torch.serialization._get_layout",
	"torch.Size",
	"torch.Tensor",
	...DTYPES_113,
	...TENSOR_CLASSES,
	...LEGACY_STORAGES,
	...NEW_STORAGES,
	...REBUILD_113,
]);

const ALLOWED_2X: ReadonlySet<string> = new Set([
	"collections.OrderedDict",
	"collections.Counter",
	"torch.nn.parameter.Parameter",
	"torch.serialization._get_layout",
	"torch.Size",
	"torch.Tensor",
	"torch.device",
	"_codecs.encode",
	"builtins.bytearray",
	"builtins.set",
	"builtins.complex",
	...DTYPES_2X,
	...TENSOR_CLASSES,
	...LEGACY_STORAGES,
	...NEW_STORAGES,
	...QSCHEMES,
	...REBUILD_2X,
	"torch._tensor._rebuild_from_type_v2",
]);

/** The globals a version's weights_only unpickler imports ("module.name"). */
export function allowedGlobals(version: TorchVersion): ReadonlySet<string> {
	return version === "1.13" ? ALLOWED_113 : ALLOWED_2X;
}

/** torch 2.x refuses these modules whatever a user allow-lists. */
const BLOCKED_2X = new Set(["sys", "os", "posix", "nt"]);

const LEGACY_STORAGE_SET = new Set(LEGACY_STORAGES);
const TENSOR_CLASS_SET = new Set(TENSOR_CLASSES);
const DTYPE_SET = new Set(DTYPES_2X);
const QSCHEME_SET = new Set(QSCHEMES);
const REBUILD_TENSOR = new Set(
	[
		"_rebuild_tensor",
		"_rebuild_tensor_v2",
		"_rebuild_tensor_v3",
		"_rebuild_sparse_tensor",
		"_rebuild_sparse_csr_tensor",
		"_rebuild_meta_tensor_no_storage",
		"_rebuild_qtensor",
		"_rebuild_device_tensor_from_numpy",
		"_rebuild_device_tensor_from_cpu_tensor",
	].map((f) => `torch._utils.${f}`),
);

// ---------------------------------------------------------------- symbolic values

/** Python types the checks look at, by the name they are allowed under. */
const T_TENSOR = "torch.Tensor";
const T_PARAM = "torch.nn.parameter.Parameter";
const T_LIST = "builtins.list";
const T_DICT = "builtins.dict";
const T_ODICT = "collections.OrderedDict";
const T_COUNTER = "collections.Counter";
const T_TYPED = "torch.storage.TypedStorage";
const UNKNOWN_TYPE = "?";

type V =
	| { readonly k: "none" | "bool" | "float" | "set" | "frozen" }
	| { readonly k: "int"; readonly v: bigint }
	| { readonly k: "str"; readonly v: string }
	| { readonly k: "bytes"; readonly v: Buffer | undefined }
	| { readonly k: "tuple"; readonly items: readonly V[] }
	| { readonly k: "list"; readonly items: V[] }
	| { readonly k: "dict"; readonly type: string }
	/** An allowed global itself (a class, function, dtype …). */
	| { readonly k: "g"; readonly name: string }
	/** An object some call built, by its Python type's allowed name (UNKNOWN_TYPE when it cannot be told). */
	| { readonly k: "obj"; readonly type: string };

const NONE: V = { k: "none" };
const BOOL: V = { k: "bool" };
const FLOAT: V = { k: "float" };
/** BININT1 / BININT2 values, made once: ints are never mutated, and a checkpoint's shapes repeat them. */
const SMALL_INTS: V[] = [];
const smallInt = (n: number): V => {
	let v = SMALL_INTS[n];
	if (v === undefined) {
		v = { k: "int", v: BigInt(n) };
		SMALL_INTS[n] = v;
	}
	return v;
};

function typeOf(v: V): string {
	switch (v.k) {
		case "list":
			return T_LIST;
		case "dict":
			return v.type;
		case "set":
			return "builtins.set";
		case "obj":
			return v.type;
		case "tuple":
			return "builtins.tuple";
		case "str":
			return "builtins.str";
		case "int":
			return "builtins.int";
		case "g":
			return `<global ${v.name}>`;
		default:
			return `builtins.${v.k}`;
	}
}

function hashable(v: V, depth = 0): boolean {
	if (depth > 100) return false;
	if (v.k === "list" || v.k === "dict" || v.k === "set") return false;
	if (v.k === "obj") return v.type !== "builtins.bytearray";
	if (v.k === "tuple") return v.items.every((i) => hashable(i, depth + 1));
	return true;
}

/** `_maybe_decode_ascii(x)`: bytes decoded as ASCII, str as is, anything else compared as is. */
function decodeAscii(v: V): string | undefined | Error {
	if (v.k === "str") return v.v;
	if (v.k === "bytes") {
		if (v.v === undefined) return undefined;
		for (const b of v.v) if (b > 0x7f) return new Error("persistent id is not ASCII");
		return v.v.toString("latin1");
	}
	return undefined;
}

class Fail {
	constructor(
		readonly outcome: Outcome | "incomplete",
		readonly reason: string,
		readonly extra: { global?: { module: string; name: string }; opcode?: boolean } = {},
	) {}
}

/** The Python type (by allowed name) that calling an allowed global returns, or a Fail (not callable …). */
function callResult(version: TorchVersion, name: string, args: V): V | Fail {
	switch (name) {
		case T_ODICT:
		case T_COUNTER:
			return { k: "dict", type: name };
		case T_PARAM:
		case "torch._utils._rebuild_parameter":
		case "torch._utils._rebuild_parameter_with_state":
			return { k: "obj", type: T_PARAM };
		case "torch.serialization._get_layout":
			return { k: "obj", type: "torch.layout" };
		case "torch.Size":
		case "torch.device":
		case "builtins.complex":
		case "builtins.bytearray":
			return { k: "obj", type: name };
		case T_TENSOR:
			return { k: "obj", type: T_TENSOR };
		case "_codecs.encode":
			return { k: "bytes", v: undefined };
		case "builtins.set":
			return { k: "set" };
		case "torch._utils._rebuild_wrapper_subclass":
		case "torch._tensor._rebuild_from_type_v2": {
			// The result's type is the class argument (cls first; new_type second).
			const i = name.endsWith("_rebuild_wrapper_subclass") ? 0 : 1;
			const c = args.k === "tuple" ? args.items[i] : undefined;
			return { k: "obj", type: c?.k === "g" && (c.name === T_TENSOR || c.name === T_PARAM) ? c.name : UNKNOWN_TYPE };
		}
	}
	if (TENSOR_CLASS_SET.has(name) || REBUILD_TENSOR.has(name)) return { k: "obj", type: T_TENSOR };
	if (NEW_STORAGES.includes(name)) return { k: "obj", type: name };
	if (LEGACY_STORAGE_SET.has(name)) {
		// 1.13: the real legacy storage class; 2.x wraps it in a StorageType, which is not callable.
		if (version === "1.13") return { k: "obj", type: T_TYPED };
		return new Fail("corrupt", `'StorageType' object is not callable (${name})`);
	}
	if (DTYPE_SET.has(name)) return new Fail("corrupt", `'torch.dtype' object is not callable (${name})`);
	if (QSCHEME_SET.has(name)) return new Fail("corrupt", `'torch.qscheme' object is not callable (${name})`);
	return { k: "obj", type: UNKNOWN_TYPE };
}

/** `cls.__new__(cls, *args)` (torch 2.x NEWOBJ on an allowed class): the instance, or a Fail for non-classes. */
function newResult(name: string): V | Fail {
	switch (name) {
		case T_ODICT:
		case T_COUNTER:
			return { k: "dict", type: name };
		case "builtins.set":
			return { k: "set" };
		case T_TENSOR:
		case "torch.Size":
		case "torch.device":
		case "builtins.complex":
		case "builtins.bytearray":
			return { k: "obj", type: name };
	}
	if (NEW_STORAGES.includes(name)) return { k: "obj", type: name };
	if (TENSOR_CLASS_SET.has(name)) return { k: "obj", type: UNKNOWN_TYPE };
	return new Fail("corrupt", `${name} is not a class (__new__ fails)`);
}

/** Storage classes persistent_load takes the dtype of (`storage_type.dtype`). */
function storageTypeName(v: V | undefined): string | undefined {
	if (v?.k !== "g") return undefined;
	if (v.name === "torch.storage.UntypedStorage") return "UntypedStorage";
	if (LEGACY_STORAGE_SET.has(v.name)) return v.name.slice(v.name.lastIndexOf(".") + 1);
	return undefined;
}

// ---------------------------------------------------------------- the unpickler model

/**
 * Strict UTF-8, as Python decodes GLOBAL names and (with surrogatepass) BINUNICODE: an encoded surrogate, which
 * surrogatepass accepts in BINUNICODE, is refused here (corrupt where torch would load: never in torch.save output).
 */
const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });
const MAX_STACK = 1_000_000;
/** A char above "~" in a latin1-decoded name: not plain ASCII, so decoded as strict UTF-8 (DEL decodes alike either way). */
const NON_ASCII = /[^\0-~]/;
const MAX_MEMO = 1_000_000;
const MAX_LIST = 1_000_000;

function runVersion(buf: Buffer, version: TorchVersion, opts: CheckOptions): VersionResult {
	const base = opts.baseOffset ?? 0;
	const encoding = opts.encoding ?? "utf-8";
	let pos = opts.start ?? 0;
	let at = pos;
	let ops = opts.maxOps ?? 10_000_000;
	let stack: V[] = [];
	const metastack: V[][] = [];
	const memo = new Map<number, V>();
	const storages: StorageRef[] = [];
	const len = buf.length;

	const eof = (): Fail =>
		new Fail(
			opts.partial ? "incomplete" : "corrupt",
			`pickle data was truncated at offset 0x${(base + at).toString(16)}`,
		);
	/** Consumes n bytes and returns where they start (no Buffer made: most arguments are one to four bytes). */
	const take = (n: number): number => {
		if (len - pos < n) throw eof();
		const p = pos;
		pos += n;
		return p;
	};
	// Little-endian fields by hand: Buffer's readers are not inlined before V8 optimises, and a first scan runs
	// this loop unoptimised.
	const u16 = (p: number): number => (buf[p] as number) | ((buf[p + 1] as number) << 8);
	const i32 = (p: number): number => u16(p) | ((buf[p + 2] as number) << 16) | ((buf[p + 3] as number) << 24);
	const u32 = (p: number): number => i32(p) >>> 0;
	const read = (n: number): Buffer => {
		const p = take(n);
		return buf.subarray(p, p + n);
	};
	/** file.readline(): up to and including the newline, or the rest of the data. */
	const readline = (): Buffer => {
		const nl = buf.indexOf(0x0a, pos);
		if (nl < 0 && opts.partial) throw eof();
		const end = nl < 0 ? len : nl + 1;
		const b = buf.subarray(pos, end);
		pos = end;
		return b;
	};
	const pop = (): V => {
		const v = stack.pop();
		if (v === undefined) throw new Fail("corrupt", "pop from empty list (stack underflow)");
		return v;
	};
	const top = (): V => {
		const v = stack[stack.length - 1];
		if (v === undefined) throw new Fail("corrupt", "list index out of range (stack underflow)");
		return v;
	};
	const push = (v: V): void => {
		if (stack.length >= MAX_STACK) throw new Fail("refused", `pickle stack deeper than ${MAX_STACK}`);
		stack.push(v);
	};
	const popMark = (): V[] => {
		const items = stack;
		const prev = metastack.pop();
		if (prev === undefined) throw new Fail("corrupt", "pop from empty list (MARK not found)");
		stack = prev;
		return items;
	};
	const utf8 = (b: Buffer, what: string): string => {
		// Python's strict decoder (BINUNICODE's surrogatepass also lets encoded surrogates through: see STRICT_UTF8).
		try {
			return STRICT_UTF8.decode(b);
		} catch {
			throw new Fail("corrupt", `'utf-8' codec can't decode ${what}`);
		}
	};
	/** utf8 for buf[start, end): ASCII (every name torch writes) needs no decoder. */
	const utf8At = (start: number, end: number, what: string): string => {
		const s = buf.toString("latin1", start, end);
		return NON_ASCII.test(s) ? utf8(buf.subarray(start, end), what) : s;
	};
	const appendCheck = (target: V): void => {
		if (target.k !== "list")
			throw new Fail("refused", `Can only append to lists, but got ${typeOf(target)}`, { opcode: false });
	};
	const setitemCheck = (op: string, target: V, keys: V[]): void => {
		const t = typeOf(target);
		if (version === "2.x") {
			if (t !== T_DICT && t !== T_ODICT && t !== T_COUNTER)
				throw new Fail(
					"refused",
					`Can only ${op} for dict, collections.OrderedDict, collections.Counter, but got ${t}`,
				);
		} else if (target.k !== "dict") {
			// 1.13 assigns into whatever is there: lists, tensors and storages take item assignment, the rest raise.
			if (
				!(
					target.k === "list" ||
					(target.k === "obj" && t !== "torch.Size" && t !== "torch.layout" && t !== UNKNOWN_TYPE)
				)
			)
				throw new Fail("corrupt", `'${t}' object does not support item assignment`);
			return;
		}
		for (const k of keys) if (!hashable(k)) throw new Fail("corrupt", `unhashable type: '${typeOf(k)}'`);
	};
	const persistentLoad = (pid: V): V => {
		// The unpickler's own check first (1.13's condition is inverted for ints: it refuses exactly them).
		if (version === "1.13" ? pid.k === "int" : pid.k !== "tuple" && pid.k !== "int")
			throw new Fail("corrupt", `persistent_load id must be tuple or int, but got ${typeOf(pid)}`);
		if (pid.k === "tuple" && pid.items.length > 0) {
			const tn = decodeAscii(pid.items[0] as V);
			if (tn instanceof Error) throw new Fail("corrupt", tn.message);
			if (tn !== "storage") throw new Fail("corrupt", "Only persistent_load of storage is allowed");
		}
		switch (opts.mode) {
			case "none":
				throw new Fail("corrupt", "unsupported persistent id encountered");
			case "tar":
				// legacy_load: a tuple gives back its first item; anything else is int(saved_id) of a storage / tensor key.
				if (pid.k === "tuple") return pid.items[0] ?? NONE;
				if (pid.k !== "str" && pid.k !== "int" && pid.k !== "bytes")
					throw new Fail("corrupt", "persistent id is not a storage or tensor key");
				return { k: "obj", type: UNKNOWN_TYPE };
			case "zip":
			case "legacy": {
				if (pid.k !== "tuple") throw new Fail("corrupt", "AssertionError: persistent id is not a tuple");
				const data = pid.items.slice(1);
				const want = opts.mode === "zip" ? 4 : 5;
				if (data.length !== want)
					throw new Fail("corrupt", `not enough values to unpack (expected ${want}, got ${data.length})`);
				const st = storageTypeName(data[0]);
				if (st === undefined) throw new Fail("corrupt", "storage_type has no dtype");
				if (st === "UntypedStorage" && opts.mode === "legacy")
					throw new Fail("corrupt", "storage_type has no dtype (UntypedStorage)");
				const key = data[1] as V;
				const numel = data[3] as V;
				const loc = decodeAscii(data[2] as V);
				if (loc instanceof Error) throw new Fail("corrupt", loc.message);
				if (numel.k !== "int" && numel.k !== "bool") throw new Fail("corrupt", "storage numel is not an int");
				if (!hashable(key)) throw new Fail("corrupt", `unhashable type: '${typeOf(key)}'`);
				const keyText = (k: V | undefined): string =>
					k?.k === "str" ? k.v : k?.k === "int" ? k.v.toString() : `<${k === undefined ? "none" : typeOf(k)}>`;
				const view = data[4];
				storages.push({
					key: keyText(key),
					type: st,
					numel: numel.k === "int" ? numel.v : undefined,
					...(view?.k === "tuple" ? { viewKey: keyText(view.items[0]) } : {}),
				});
				return { k: "obj", type: T_TYPED };
			}
		}
	};

	try {
		for (;;) {
			if (ops-- <= 0) throw new Fail("refused", "opcode budget exhausted");
			at = pos;
			if (pos >= len) throw opts.partial ? eof() : new Fail("corrupt", "EOFError (no STOP)");
			const op = buf[pos++] as number;
			switch (op) {
				case 0x63: {
					// GLOBAL: looked up by "module.name" in the allowed dict, never imported.
					const m = readline().subarray(0, -1);
					const n = readline().subarray(0, -1);
					let module = utf8(m, "GLOBAL module");
					let name = utf8(n, "GLOBAL name");
					if (version === "2.x") {
						({ module, name } = normalizeGlobal({ module, name }));
						if (BLOCKED_2X.has(module))
							throw new Fail(
								"refused",
								`Trying to load unsupported GLOBAL ${module}.${name} whose module ${module} is blocked.`,
								{
									global: { module, name },
								},
							);
					}
					const full = `${module}.${name}`;
					if (!allowedGlobals(version).has(full))
						throw new Fail("refused", `Unsupported class ${full}`, { global: { module, name } });
					push({ k: "g", name: full });
					break;
				}
				case 0x81: {
					// NEWOBJ
					const args = pop();
					const cls = pop();
					if (cls.k === "g" && cls.name === T_PARAM) push({ k: "obj", type: T_PARAM });
					else if (version === "2.x" && cls.k === "g") {
						void args;
						const r = newResult(cls.name);
						if (r instanceof Fail) throw r;
						push(r);
					} else
						throw new Fail(
							"refused",
							`Trying to instantiate unsupported class ${cls.k === "g" ? cls.name : typeOf(cls)}`,
						);
					break;
				}
				case 0x52: {
					// REDUCE: only an allowed global is called.
					const args = pop();
					const func = top();
					if (func.k !== "g")
						throw new Fail("refused", `Trying to call reduce for unrecognized function ${typeOf(func)}`);
					const r = callResult(version, func.name, args);
					if (r instanceof Fail) throw r;
					stack[stack.length - 1] = r;
					break;
				}
				case 0x62: {
					// BUILD
					pop();
					const inst = top();
					const t = typeOf(inst);
					const ok =
						t === T_TENSOR ||
						t === T_PARAM ||
						t === T_ODICT ||
						(version === "2.x" && t !== UNKNOWN_TYPE && allowedGlobals(version).has(t));
					if (!ok)
						throw new Fail(
							"refused",
							version === "1.13"
								? `Can only build Tensor, parameter or dict objects, but got ${t}`
								: `Can only build Tensor, Parameter, OrderedDict or types allowlisted via add_safe_globals, but got ${t}`,
						);
					break;
				}
				case 0x61: {
					// APPEND
					const item = pop();
					const target = top();
					appendCheck(target);
					if (target.k === "list" && target.items.length < MAX_LIST) target.items.push(item);
					break;
				}
				case 0x65: {
					// APPENDS
					const items = popMark();
					const target = top();
					appendCheck(target);
					if (target.k === "list" && target.items.length + items.length <= MAX_LIST) target.items.push(...items);
					break;
				}
				case 0x73: {
					// SETITEM
					pop();
					const k = pop();
					setitemCheck("SETITEM", top(), [k]);
					break;
				}
				case 0x75: {
					// SETITEMS
					const items = popMark();
					const target = top();
					setitemCheck(
						"SETITEMS",
						target,
						items.filter((_, i) => i % 2 === 0),
					);
					if (items.length % 2 === 1) throw new Fail("corrupt", "list index out of range (SETITEMS with an odd count)");
					break;
				}
				case 0x28: // MARK
					if (metastack.length >= MAX_STACK) throw new Fail("refused", "MARK nesting too deep");
					metastack.push(stack);
					stack = [];
					break;
				case 0x74: // TUPLE
					push({ k: "tuple", items: popMark() });
					break;
				case 0x85: // TUPLE1
					stack[stack.length - 1] = { k: "tuple", items: [top()] };
					break;
				case 0x86: // TUPLE2
				case 0x87: {
					// TUPLE3
					const n = op === 0x86 ? 2 : 3;
					if (stack.length < n) throw new Fail("corrupt", "list index out of range (stack underflow)");
					push({ k: "tuple", items: stack.splice(stack.length - n, n) });
					break;
				}
				case 0x4e: // NONE
					push(NONE);
					break;
				case 0x88: // NEWTRUE
				case 0x89: // NEWFALSE
					push(BOOL);
					break;
				case 0x29: // EMPTY_TUPLE
					push({ k: "tuple", items: [] });
					break;
				case 0x5d: // EMPTY_LIST
					push({ k: "list", items: [] });
					break;
				case 0x7d: // EMPTY_DICT
					push({ k: "dict", type: T_DICT });
					break;
				case 0x8f: // EMPTY_SET
					push({ k: "set" });
					break;
				case 0x4a: // BININT
					push({ k: "int", v: BigInt(i32(take(4))) });
					break;
				case 0x4b: // BININT1
					push(smallInt(buf[take(1)] as number));
					break;
				case 0x4d: // BININT2
					push(smallInt(u16(take(2))));
					break;
				case 0x47: // BINFLOAT: torch 2.x only
					if (version === "1.13") throw new Fail("refused", `Unsupported operand ${op}`, { opcode: true });
					take(8);
					push(FLOAT);
					break;
				case 0x58: {
					// BINUNICODE
					const n = u32(take(4));
					const p = take(n);
					push({ k: "str", v: utf8At(p, p + n, "BINUNICODE") });
					break;
				}
				case 0x55: {
					// SHORT_BINSTRING
					const b = read(buf[take(1)] as number);
					if (encoding === "bytes") push({ k: "bytes", v: b });
					else if (encoding === "ascii") {
						for (const c of b) if (c > 0x7f) throw new Fail("corrupt", "'ascii' codec can't decode SHORT_BINSTRING");
						push({ k: "str", v: b.toString("latin1") });
					} else push({ k: "str", v: utf8(b, "SHORT_BINSTRING") });
					break;
				}
				case 0x51: // BINPERSID
					push(persistentLoad(pop()));
					break;
				case 0x68: // BINGET
				case 0x6a: {
					// LONG_BINGET
					const idx = op === 0x68 ? (buf[take(1)] as number) : u32(take(4));
					const v = memo.get(idx);
					if (v === undefined) throw new Fail("corrupt", `KeyError: memo ${idx}`);
					push(v);
					break;
				}
				case 0x71: // BINPUT
				case 0x72: {
					// LONG_BINPUT
					const idx = op === 0x71 ? (buf[take(1)] as number) : u32(take(4));
					const v = top();
					if (!memo.has(idx) && memo.size >= MAX_MEMO) throw new Fail("refused", "memo larger than the analysis bound");
					memo.set(idx, v);
					break;
				}
				case 0x8a: {
					// LONG1
					const b = read(buf[take(1)] as number);
					let v = 0n;
					for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i] as number);
					if (b.length > 0 && ((b[b.length - 1] as number) & 0x80) !== 0) v -= 1n << BigInt(8 * b.length);
					push({ k: "int", v });
					break;
				}
				case 0x80: // PROTO: read and ignored (2.x only warns when it is not 2)
					take(1);
					break;
				case 0x2e: {
					// STOP
					const v = pop();
					return { outcome: "loaded", end: base + pos, storages, value: summarize(v) };
				}
				default:
					throw new Fail("refused", `Unsupported operand ${op}`, { opcode: true });
			}
		}
	} catch (e) {
		if (!(e instanceof Fail)) throw e;
		return {
			outcome: e.outcome,
			reason: e.reason,
			offset: base + at,
			storages,
			...(e.extra.global ? { global: e.extra.global } : {}),
			...(e.extra.opcode ? { opcode: true } : {}),
		};
	}
}

function summarize(v: V): Summary {
	if (v.k === "int") return { t: "int", v: v.v };
	if (v.k === "bool") return { t: "other" };
	if (v.k === "str") return { t: "str", v: v.v };
	if (v.k === "list" && v.items.every((i) => i.k === "str"))
		return { t: "strlist", v: v.items.map((i) => (i.k === "str" ? i.v : "")) };
	return { t: "other" };
}

/** The versions `checkWeightsOnly` models when not told: both, except inside `withModelledVersions` (tests). */
let modelled: readonly TorchVersion[] = ["1.13", "2.x"];

/** Runs `fn` with only `versions` modelled (the differential tests check the torch 1.13 model on its own). */
export async function withModelledVersions<T>(versions: readonly TorchVersion[], fn: () => Promise<T>): Promise<T> {
	const prev = modelled;
	modelled = versions;
	try {
		return await fn();
	} finally {
		modelled = prev;
	}
}

const RANK: Record<VersionResult["outcome"], number> = { loaded: 0, incomplete: 1, corrupt: 2, refused: 3 };

/**
 * Checks one pickle at `start` as torch's weights_only unpickler would read it, under each modelled version;
 * the result is the best outcome (loaded < incomplete < corrupt < refused) with that version's details; `byVersion`
 * holds every version up to the first that loads.
 */
export function checkWeightsOnly(buf: Buffer, opts: CheckOptions): WeightsOnlyResult {
	const versions = opts.versions ?? modelled;
	const byVersion: Partial<Record<TorchVersion, VersionResult>> = {};
	let best: TorchVersion | undefined;
	for (const v of versions) {
		const r = runVersion(buf, v, opts);
		byVersion[v] = r;
		if (best === undefined || RANK[r.outcome] < RANK[(byVersion[best] as VersionResult).outcome]) best = v;
		// Nothing beats "loaded": the other versions' details are only ever shown for a pickle no version loads.
		if (r.outcome === "loaded") break;
	}
	const version = best ?? "1.13";
	return { ...(byVersion[version] as VersionResult), version, byVersion };
}
