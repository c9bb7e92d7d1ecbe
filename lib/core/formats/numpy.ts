/**
 * NumPy `.npy` and `.npz` scanners. A `.npy` header is a Python dict literal;
 * it is parsed here by a strict literal parser (never evaluated). Arrays of
 * object dtype (an `O` anywhere in the descr, structured fields included) are
 * stored as a pickle after the header, which is analysed like any pickle.
 * Other arrays are plain bytes: safe if their size matches the header.
 */
import { analyzeStream, SliceSource } from "./pytorch";
import { BufferSource } from "./source";
import type { ByteSource, Finding, ScanInput, Scanner, ScanPolicy, ScanResult } from "./types";
import { entryDataOffset, isZip, listZip, readEntry, type ZipEntry } from "./zip";

const MAGIC = Buffer.from("\x93NUMPY", "latin1");
/** numpy itself refuses headers over 10,000 bytes unless told otherwise; allow some slack. */
const MAX_HEADER = 1024 * 1024;
/** Largest deflated npz member inflated (object members must be inflated whole to analyse their pickle). */
const MAX_MEMBER_BYTES = 256 * 1024 * 1024;

type Lit = string | number | bigint | boolean | null | Lit[] | { tuple: Lit[] } | Map<string, Lit>;

/** A strict parser for the Python literals np.save writes: dict, tuple, list, str, int, bool, None. */
function parseLiteral(src: string): Lit {
	let i = 0;
	let nodes = 0;
	const ws = () => {
		while (i < src.length && /\s/.test(src[i] as string)) i++;
	};
	const err = (m: string): never => {
		throw new Error(`header: ${m} at ${i}`);
	};
	const value = (depth: number): Lit => {
		if (depth > 32 || ++nodes > 100_000) err("too deeply nested or too large");
		ws();
		const c = src[i];
		if (c === "{") {
			i++;
			const m = new Map<string, Lit>();
			for (;;) {
				ws();
				if (src[i] === "}") {
					i++;
					return m;
				}
				const k = value(depth + 1);
				if (typeof k !== "string") err("dict key is not a string");
				ws();
				if (src[i++] !== ":") err("expected ':'");
				if (m.has(k as string)) err(`duplicate key ${k as string}`);
				m.set(k as string, value(depth + 1));
				ws();
				if (src[i] === ",") i++;
				else if (src[i] !== "}") err("expected ',' or '}'");
			}
		}
		if (c === "(" || c === "[") {
			const close = c === "(" ? ")" : "]";
			i++;
			const items: Lit[] = [];
			let sawComma = false;
			for (;;) {
				ws();
				if (src[i] === close) {
					i++;
					break;
				}
				items.push(value(depth + 1));
				ws();
				if (src[i] === ",") {
					i++;
					sawComma = true;
				} else if (src[i] !== close) err(`expected ',' or '${close}'`);
			}
			if (c === "[") return items;
			// "(x)" is x in Python, not a tuple
			if (items.length === 1 && !sawComma) return items[0] as Lit;
			return { tuple: items };
		}
		if (c === "'" || c === '"') {
			i++;
			let s = "";
			while (i < src.length && src[i] !== c) {
				if (src[i] === "\\") {
					const n = src[i + 1];
					const map: Record<string, string> = { n: "\n", t: "\t", "\\": "\\", "'": "'", '"': '"' };
					if (n === undefined || !(n in map)) err("unsupported escape");
					s += map[n as string];
					i += 2;
				} else s += src[i++];
			}
			if (src[i++] !== c) err("unterminated string");
			return s;
		}
		const m = /^(-?\d+)L?|^(True|False|None)\b/.exec(src.slice(i, i + 64));
		if (m) {
			i += m[0].length;
			if (m[1] !== undefined) {
				if (m[1].length > 30) err("integer too long");
				return BigInt(m[1]);
			}
			return m[2] === "True" ? true : m[2] === "False" ? false : null;
		}
		return err("unexpected character");
	};
	const v = value(0);
	ws();
	if (i !== src.length) err("trailing characters");
	return v;
}

export interface NpyHeader {
	/** Offset of the array data (or the pickle, for object arrays). */
	dataOffset: number;
	descr: Lit;
	shape: bigint[];
	fortranOrder: boolean;
	/** An `O` anywhere in descr: the data is a pickle. */
	object: boolean;
	/** Bytes per element when computable from descr. */
	itemsize?: bigint;
}

function isTuple(v: Lit): v is { tuple: Lit[] } {
	return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Map) && "tuple" in v;
}

function hasObject(d: Lit): boolean {
	if (typeof d === "string") return /O/.test(d);
	if (Array.isArray(d)) return d.some(hasObject);
	if (isTuple(d)) return d.tuple.some(hasObject);
	return false;
}

/** Element size of a descr ("<f4", "|S10", "<U3", structured lists), or undefined if it cannot be told. */
function itemsizeOf(d: Lit, depth = 0): bigint | undefined {
	if (depth > 16) return undefined;
	if (typeof d === "string") {
		const m = /^[<>|=]?([biufcSUVaMm?])(\d*)(\[\w+\])?$/.exec(d);
		if (!m) return undefined;
		if (m[1] === "?") return 1n;
		const n = m[2] ? BigInt(m[2]) : undefined;
		if (n === undefined) return m[1] === "b" ? 1n : undefined;
		return m[1] === "U" ? n * 4n : n;
	}
	if (Array.isArray(d)) {
		let sum = 0n;
		for (const f of d) {
			const parts = isTuple(f) ? f.tuple : Array.isArray(f) ? f : undefined;
			if (!parts || parts.length < 2) return undefined;
			const sz = itemsizeOf(parts[1] as Lit, depth + 1);
			if (sz === undefined) return undefined;
			let count = 1n;
			const sub = parts[2];
			if (sub !== undefined) {
				const dims = isTuple(sub) ? sub.tuple : [sub];
				for (const x of dims) {
					if (typeof x !== "bigint" || x < 0n) return undefined;
					count *= x;
				}
			}
			sum += sz * count;
		}
		return sum;
	}
	return undefined;
}

/** Parses and checks an .npy header from the file's first bytes (which must hold the whole header). */
export function parseNpyHeader(head: Buffer): NpyHeader | string {
	if (head.length < 10 || !head.subarray(0, 6).equals(MAGIC)) return "no \\x93NUMPY magic";
	const major = head[6] as number;
	let len: number;
	let start: number;
	if (major === 1) {
		len = head.readUInt16LE(8);
		start = 10;
	} else if (major === 2 || major === 3) {
		if (head.length < 12) return "truncated header length";
		len = head.readUInt32LE(8);
		start = 12;
	} else return `unsupported .npy version ${major}.${head[7]}`;
	if (len > MAX_HEADER) return `header of ${len} bytes (limit ${MAX_HEADER})`;
	if (start + len > head.length) return "truncated header";
	const text = head.toString(major === 3 ? "utf8" : "latin1", start, start + len);
	let lit: Lit;
	try {
		lit = parseLiteral(text);
	} catch (e) {
		return (e as Error).message;
	}
	if (!(lit instanceof Map)) return "header is not a dict";
	const keys = [...lit.keys()].sort().join(",");
	if (keys !== "descr,fortran_order,shape") return `header keys are {${keys}}, not {descr, fortran_order, shape}`;
	const descr = lit.get("descr") as Lit;
	const fortran = lit.get("fortran_order");
	const shapeLit = lit.get("shape") as Lit;
	if (typeof fortran !== "boolean") return "fortran_order is not a bool";
	if (typeof descr !== "string" && !Array.isArray(descr)) return "descr is neither a string nor a list";
	const dims = isTuple(shapeLit) ? shapeLit.tuple : undefined;
	if (!dims) return "shape is not a tuple";
	const shape: bigint[] = [];
	for (const d of dims) {
		if (typeof d !== "bigint" || d < 0n) return "shape holds something other than non-negative integers";
		shape.push(d);
	}
	const out: NpyHeader = { dataOffset: start + len, descr, shape, fortranOrder: fortran, object: hasObject(descr) };
	const sz = out.object ? undefined : itemsizeOf(descr);
	if (sz !== undefined) out.itemsize = sz;
	return out;
}

/** Scans one .npy held in `src` (a file, or an npz member); `object` says whether it held a pickle. */
async function scanNpy(
	src: ByteSource,
	policy: ScanPolicy,
	location?: string,
	forbiddenFinding = true,
): Promise<ScanResult & { object?: boolean }> {
	const first = await src.read(0, 12);
	let headLen = 4096;
	if (first.length >= 10 && first.subarray(0, 6).equals(MAGIC)) {
		const v = first[6];
		const declared = v === 1 ? first.readUInt16LE(8) + 10 : first.length >= 12 ? first.readUInt32LE(8) + 12 : 12;
		headLen = Math.min(declared, MAX_HEADER + 12);
	}
	const head = await src.read(0, headLen);
	const h = parseNpyHeader(head);
	const at = (m: string) => (location ? `${location}: ${m}` : m);
	if (typeof h === "string") return { findings: [], malformed: at(h) };
	const dataLen = src.size - h.dataOffset;
	if (h.object) {
		// np.load(allow_pickle=True) unpickles what follows the header.
		const r = await analyzeStream(src, {
			policy,
			offset: h.dataOffset,
			forbiddenFinding,
			...(location ? { location } : {}),
		});
		return r.malformed !== undefined
			? { findings: r.findings, malformed: at(r.malformed), object: true }
			: { findings: r.findings, object: true };
	}
	if (h.itemsize !== undefined) {
		let count = 1n;
		// Stop multiplying once past any file size: a header of thousands of huge dims must stay cheap.
		for (const d of h.shape) if (count <= 1n << 64n) count *= d;
		const expected = count * h.itemsize;
		if (expected !== BigInt(dataLen))
			return {
				findings: [],
				malformed: at(`data is ${dataLen} bytes, shape × itemsize says ${expected}`),
			};
	}
	return { findings: [] };
}

/** `.npy` arrays: object dtype means a pickle (judged by policy); anything else is safe if its size adds up. */
export const numpyScanner: Scanner = {
	format: "numpy",
	detect(head) {
		return head.length >= 8 && head.subarray(0, 6).equals(MAGIC);
	},
	async scan({ source, policy }: ScanInput) {
		try {
			const { object: _o, ...r } = await scanNpy(source, policy);
			return r;
		} catch (e) {
			return scanFailed(e);
		}
	},
};

function scanFailed(e: unknown): ScanResult {
	return {
		findings: [
			{
				id: "scan-incomplete",
				severity: "high",
				message: `scan stopped: ${e instanceof Error ? (e.message.split("\n", 1)[0] ?? "") : String(e)}`,
			},
		],
		malformed: "file could not be fully parsed",
	};
}

/** Member source: stored members are read in place; deflated ones are inflated (bounded). */
async function memberSource(src: ByteSource, e: ZipEntry): Promise<ByteSource | string> {
	if (e.method === 0) {
		const start = await entryDataOffset(src, e);
		if (typeof start === "string") return start;
		return new SliceSource(src, start, Math.min(e.compressedSize, src.size - start));
	}
	const r = await readEntry(src, e, MAX_MEMBER_BYTES);
	if ("error" in r) return r.error;
	return new BufferSource(r.data);
}

/** `.npz`: a zip of `.npy` members, each scanned as an `.npy` with the member name as location. */
export const npzScanner: Scanner = {
	format: "numpy-npz",
	detect(head) {
		if (!isZip(head) || head.length < 30) return false;
		const nameLen = head.readUInt16LE(26);
		return head.toString("utf8", 30, 30 + nameLen).endsWith(".npy");
	},
	async scan({ source, policy }: ScanInput) {
		try {
			const listing = await listZip(source);
			if (typeof listing === "string") return { findings: [], malformed: `not a zip: ${listing}` };
			const findings: Finding[] = [];
			let malformed: string | undefined = listing.fromLocalHeaders ? listing.problems[0] : undefined;
			let sawPickle = false;
			for (const e of listing.entries) {
				const ms = await memberSource(source, e);
				if (typeof ms === "string") {
					malformed ??= `${e.name}: ${ms}`;
					continue;
				}
				// np.load returns members without the magic as raw bytes: nothing runs.
				const magic = await ms.read(0, 6);
				if (!magic.equals(MAGIC)) continue;
				// pickle-forbidden is added once per file, below.
				const r = await scanNpy(ms, policy, e.name, false);
				if (r.object) sawPickle = true;
				findings.push(...r.findings);
				if (r.malformed !== undefined) malformed ??= r.malformed;
			}
			if (sawPickle && !policy.allowPickle) {
				findings.unshift({
					id: "pickle-forbidden",
					severity: "high",
					message: "pickle can run code on load; convert to safetensors or pass --allow-pickle",
				});
			}
			return malformed !== undefined ? { findings, malformed } : { findings };
		} catch (e) {
			return scanFailed(e);
		}
	},
};
