/**
 * NumPy `.npy` and `.npz` scanners. What `np.load(f, allow_pickle=True)` does with a file is mirrored from
 * numpy.lib.format (1.24 and 2.x agree wherever it matters; checked on 3,000 mutated headers by
 * test/fixtures/differential/make_differential.py):
 * - version exactly 1.0, 2.0 or 3.0; the header latin1 (1.0, 2.0) or strict UTF-8 (3.0) text;
 * - the header evaluated by `ast.literal_eval` — parsed here, never evaluated, by a parser of the literal
 *   forms Python accepts (strings with every prefix but f, escapes, implicit concatenation, triple quotes,
 *   comments, continuation lines, ints in every base with underscores, signs, tuples, lists, dicts with
 *   duplicate keys where the last value wins, sets) and, for 1.0 / 2.0, the Python 2 `L` suffix numpy's
 *   `_filter_header` drops. What it does not model (floats, complex, `\N{...}` escapes) it refuses: a header it
 *   cannot read exactly is malformed, never "no pickle";
 * - keys exactly {descr, fortran_order, shape}; shape a tuple of ints (bools count; negative and huge ones too:
 *   an object array is unpickled whatever its shape); fortran_order a bool;
 * - the dtype built as `descr_to_dtype` builds it: the data after the header is unpickled when it has an
 *   object field anywhere. Which dtype strings are object is numpy's call; here a string is object-free only
 *   when it has no `o`/`O` or is one of the plain numeric names that do: anything else that could be object is
 *   treated as object (its data analysed as a pickle) — cautious where numpy would refuse the spelling.
 * A file without the magic is unpickled from byte 0 by np.load(allow_pickle=True) (and a zip is an npz): that
 * is the engine's byte-0 pickle analysis, not this scanner's.
 */
import { analyzeStream } from "./pickle-stream";
import { PY_SIMPLE_ESCAPES } from "./python-escapes";
import { BufferSource, SliceSource } from "./source";
import type { ByteSource, Finding, ScanInput, Scanner, ScanPolicy, ScanResult } from "./types";
import { entryDataOffset, isZip, listZip, readEntry, type ZipEntry } from "./zip";

const MAGIC = Buffer.from("\x93NUMPY", "latin1");
/** numpy refuses headers over 10,000 bytes unless allow_pickle is passed; a bound on what is parsed here. */
const MAX_HEADER = 1024 * 1024;
/** Largest deflated npz member inflated (object members must be inflated whole to analyse their pickle). */
const MAX_MEMBER_BYTES = 256 * 1024 * 1024;

/** A Python literal value. */
export type PyValue =
	| { t: "str"; v: string }
	| { t: "bytes"; v: Buffer }
	| { t: "int"; v: bigint }
	| { t: "bool"; v: boolean }
	| { t: "none" }
	| { t: "tuple" | "list" | "set"; v: PyValue[] }
	| { t: "dict"; keys: PyValue[]; vals: PyValue[] };

class LiteralError extends Error {}

const isWs = (c: string | undefined) => c === " " || c === "\t" || c === "\f";
const isNl = (c: string | undefined) => c === "\n" || c === "\r";
const isIdent = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_\u0080-\uffff]/.test(c);

/** `ast.literal_eval(header)` (after `_filter_header` when `dropLongSuffix`), for the forms listed above. */
export function parseLiteral(text: string, dropLongSuffix: boolean): PyValue {
	let i = 0;
	let nodes = 0;
	let depth = 0; // bracket depth: inside brackets newlines are whitespace
	const err = (m: string): never => {
		throw new LiteralError(`header: ${m} at ${i}`);
	};
	if (text.includes("\0")) err("NUL byte");
	/** Whitespace, comments, continuation lines; newlines too inside brackets. */
	const ws = () => {
		for (;;) {
			const c = text[i];
			if (isWs(c)) i++;
			else if (c === "\\" && isNl(text[i + 1])) i += text[i + 1] === "\r" && text[i + 2] === "\n" ? 3 : 2;
			else if (c === "#") while (i < text.length && !isNl(text[i])) i++;
			else if (depth > 0 && isNl(c)) i++;
			else return;
		}
	};
	const str = (): PyValue => {
		const m = /^([rRuUbB]|[bB][rR]|[rR][bB])?('''|"""|'|")/.exec(text.slice(i, i + 5));
		if (!m) return err("expected a string");
		const prefix = (m[1] ?? "").toLowerCase();
		const q = m[2] as string;
		const raw = prefix.includes("r");
		const bytes = prefix.includes("b");
		i += m[0].length;
		let out = "";
		for (;;) {
			if (i >= text.length) err("unterminated string");
			if (text.startsWith(q, i)) {
				i += q.length;
				break;
			}
			const c = text[i] as string;
			if (isNl(c) && q.length === 1) err("newline in a string");
			if (bytes && c.charCodeAt(0) > 0x7f) err("non-ASCII character in bytes");
			if (c !== "\\") {
				// a newline in a triple-quoted string is "\n" whatever its spelling
				if (c === "\r") {
					out += "\n";
					i += text[i + 1] === "\n" ? 2 : 1;
				} else {
					out += c;
					i++;
				}
				continue;
			}
			const n = text[i + 1];
			if (n === undefined) return err("unterminated string");
			if (raw) {
				// the backslash stays, and the next character is taken whatever it is (even a quote)
				out += `\\${n === "\r" ? "\n" : n}`;
				i += n === "\r" && text[i + 2] === "\n" ? 3 : 2;
				continue;
			}
			i += 2;
			const simple = PY_SIMPLE_ESCAPES;
			if (n === "\n") continue;
			if (n === "\r") {
				if (text[i] === "\n") i++;
				continue;
			}
			if (n in simple) out += simple[n];
			else if (/[0-7]/.test(n)) {
				let v = Number.parseInt(n, 8);
				for (let k = 0; k < 2 && /[0-7]/.test(text[i] ?? ""); k++) v = v * 8 + Number.parseInt(text[i++] as string, 8);
				if (v > 0xff) err("octal escape above \\377");
				out += String.fromCharCode(v);
			} else if (n === "x" || (!bytes && (n === "u" || n === "U"))) {
				const w = n === "x" ? 2 : n === "u" ? 4 : 8;
				const hex = text.slice(i, i + w);
				if (!new RegExp(`^[0-9a-fA-F]{${w}}$`).test(hex)) err(`truncated \\${n} escape`);
				const cp = Number.parseInt(hex, 16);
				if (cp > 0x10ffff) err("escape beyond U+10FFFF");
				out += String.fromCodePoint(cp);
				i += w;
			} else if (n === "N" && !bytes) err("\\N{...} escapes are not modelled");
			else out += `\\${n}`; // an unknown escape keeps its backslash
		}
		return bytes ? { t: "bytes", v: Buffer.from(out, "latin1") } : { t: "str", v: out };
	};
	/** Adjacent string literals concatenate (str with str, bytes with bytes). */
	const strings = (): PyValue => {
		const first = str();
		let v = first;
		for (;;) {
			const save = i;
			ws();
			if (!/^([rRuUbB]|[bB][rR]|[rR][bB])?['"]/.test(text.slice(i, i + 3))) {
				i = save;
				return v;
			}
			const next = str();
			if (next.t !== v.t) err("cannot mix bytes and str literals");
			v =
				v.t === "str"
					? { t: "str", v: v.v + (next as { v: string }).v }
					: { t: "bytes", v: Buffer.concat([(v as { v: Buffer }).v, (next as { v: Buffer }).v]) };
		}
	};
	const number = (): bigint => {
		const m =
			/^(0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|[1-9](?:_?[0-9])*|0(?:_?0)*)(?![0-9A-Za-z_.\u0080-\uffff])/.exec(
				text.slice(i, i + 4096),
			) ??
			// "1L": to Python's tokenize module a NUMBER then a NAME, which _filter_header drops (1.0 and 2.0 only)
			(dropLongSuffix
				? /^(0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|[1-9](?:_?[0-9])*|0(?:_?0)*)(?=L(?![0-9A-Za-z_\u0080-\uffff]))/.exec(
						text.slice(i, i + 4096),
					)
				: null);
		if (!m) return err("not an integer literal (floats and complex numbers are not modelled)");
		i += (m[1] as string).length;
		const s = (m[1] as string).replaceAll("_", "");
		if (s.length > 4000) err("integer literal too long");
		const v = /^0[oO]/.test(s) ? BigInt(`0o${s.slice(2)}`) : BigInt(s);
		if (dropLongSuffix) {
			// _filter_header: a NAME token "L" right after a NUMBER is dropped
			const save = i;
			ws();
			if (text[i] === "L" && !isIdent(text[i + 1])) i++;
			else i = save;
		}
		return v;
	};
	const value = (): PyValue => {
		if (++nodes > 100_000 || depth > 64) err("too deeply nested or too large");
		ws();
		const c = text[i];
		if (c === "{" || c === "(" || c === "[") return container(c);
		if (c === "'" || c === '"' || /^([rRuUbB]|[bB][rR]|[rR][bB])['"]/.test(text.slice(i, i + 3))) return strings();
		if (c === "-" || c === "+") {
			// literal_eval: one sign on a number literal
			i++;
			ws();
			if (!/[0-9]/.test(text[i] ?? "")) err("a sign on something other than a number");
			const v = number();
			return { t: "int", v: c === "-" ? -v : v };
		}
		if (/[0-9]/.test(c ?? "")) return { t: "int", v: number() };
		const m = /^(True|False|None)(?![A-Za-z0-9_\u0080-\uffff])/.exec(text.slice(i, i + 6));
		if (m) {
			i += (m[1] as string).length;
			return m[1] === "None" ? { t: "none" } : { t: "bool", v: m[1] === "True" };
		}
		return err("not a literal");
	};
	const container = (open: string): PyValue => {
		const close = open === "{" ? "}" : open === "(" ? ")" : "]";
		i++;
		depth++;
		const items: PyValue[] = [];
		const vals: PyValue[] = [];
		let kind: "dict" | "set" | undefined;
		let commas = 0;
		for (;;) {
			ws();
			if (text[i] === close) break;
			items.push(value());
			ws();
			if (open === "{") {
				const isDict = text[i] === ":";
				if (kind === undefined) kind = isDict ? "dict" : "set";
				else if ((kind === "dict") !== isDict) err("mixed dict and set items");
				if (isDict) {
					i++;
					vals.push(value());
					ws();
				}
			}
			if (text[i] === ",") {
				i++;
				commas++;
			} else if (text[i] !== close) err(`expected ',' or '${close}'`);
		}
		i++;
		depth--;
		if (open === "[") return { t: "list", v: items };
		if (open === "(") {
			if (items.length === 1 && commas === 0) return items[0] as PyValue; // "(x)" is x
			return { t: "tuple", v: items };
		}
		if (kind === "set") {
			for (const k of items) if (!hashable(k)) err("unhashable set element");
			return { t: "set", v: items };
		}
		// a dict keeps the first key and the last value of duplicates
		const keys: PyValue[] = [];
		const out: PyValue[] = [];
		items.forEach((k, n) => {
			if (!hashable(k)) err("unhashable dict key");
			const at = keys.findIndex((x) => pyEqual(x, k));
			if (at >= 0) out[at] = vals[n] as PyValue;
			else {
				keys.push(k);
				out.push(vals[n] as PyValue);
			}
		});
		return { t: "dict", keys, vals: out };
	};

	// literal_eval strips leading spaces and tabs; then blank lines are allowed, indentation is not
	while (text[i] === " " || text[i] === "\t") i++;
	for (;;) {
		let j = i;
		while (isWs(text[j])) j++;
		if (isNl(text[j])) i = j + 1;
		else if (text[j] === "#") {
			while (j < text.length && !isNl(text[j])) j++;
			i = j;
		} else break;
	}
	while (text[i] === "\f") i++;
	if (isWs(text[i])) err("unexpected indent");
	const v = value();
	// then only whitespace, comments and newlines
	for (;;) {
		const c = text[i];
		if (c === undefined) break;
		if (isWs(c) || isNl(c)) i++;
		else if (c === "#") while (i < text.length && !isNl(text[i])) i++;
		else err("trailing characters");
	}
	return v;
}

function hashable(v: PyValue): boolean {
	if (v.t === "list" || v.t === "dict" || v.t === "set") return false;
	return v.t !== "tuple" || v.v.every(hashable);
}

/** Python `==` between hashable literals (True == 1, 0 == False). */
function pyEqual(a: PyValue, b: PyValue): boolean {
	const num = (x: PyValue) => (x.t === "int" ? x.v : x.t === "bool" ? (x.v ? 1n : 0n) : undefined);
	const na = num(a);
	const nb = num(b);
	if (na !== undefined || nb !== undefined) return na === nb;
	if (a.t !== b.t) return false;
	if (a.t === "str") return a.v === (b as { v: string }).v;
	if (a.t === "bytes") return a.v.equals((b as { v: Buffer }).v);
	if (a.t === "none") return true;
	if (a.t === "tuple") {
		const bv = (b as { v: PyValue[] }).v;
		return a.v.length === bv.length && a.v.every((x, n) => pyEqual(x, bv[n] as PyValue));
	}
	return false;
}

// ---------------------------------------------------------------- does the dtype hold objects?

/** Dtype names with an "o" in them that numpy resolves to plain numbers (anything else with one may be object). */
const PLAIN_WITH_O = new Set([
	"bool",
	"bool_",
	"bool8",
	"float",
	"float16",
	"float32",
	"float64",
	"float96",
	"float128",
	"double",
	"longdouble",
	"longfloat",
	"complex",
	"complex64",
	"complex128",
	"complex192",
	"complex256",
	"clongdouble",
	"clongfloat",
	"longcomplex",
	"longlong",
	"ulonglong",
	"long",
	"ulong",
	"short",
	"ushort",
	"float_",
	"complex_",
	"cdouble",
	"cfloat",
	"unicode",
	"unicode_",
	"void",
]);

/** `numpy.dtype(s).hasobject` may be true: numpy spells object with an O (O, |O, O8, object, "i4,O", "(2,)O" …). */
function stringMayBeObject(s: string): boolean {
	return /[oO]/.test(s) && !PLAIN_WITH_O.has(s);
}

const isIntLike = (v: PyValue) => v.t === "int" || v.t === "bool";
/** A subarray shape `numpy.dtype((base, shape))` takes as one (anything else there is another dtype: a union). */
const isShape = (v: PyValue) => isIntLike(v) || (v.t === "tuple" && v.v.every(isIntLike));

/** Any string anywhere in `v` that could make a dtype with objects (cautious: used off the well-trodden paths). */
function anyObjectInside(v: PyValue): boolean {
	switch (v.t) {
		case "str":
			return stringMayBeObject(v.v);
		case "tuple":
		case "list":
		case "set":
			return v.v.some(anyObjectInside);
		case "dict":
			return v.keys.some(anyObjectInside) || v.vals.some(anyObjectInside);
		default:
			return false;
	}
}

/** The items `for field in descr` walks (a dict: its keys; a str: its characters). */
function iterate(v: PyValue): PyValue[] | undefined {
	switch (v.t) {
		case "tuple":
		case "list":
		case "set":
			return v.v;
		case "dict":
			return v.keys;
		case "str":
			return [...v.v].map((c) => ({ t: "str", v: c }));
		default:
			return undefined;
	}
}

/** `descr_to_dtype(descr).hasobject`, cautiously: true wherever an object field cannot be ruled out. */
function descrMayHaveObject(d: PyValue, depth = 0): boolean {
	if (depth > 32) return true;
	if (d.t === "str") return stringMayBeObject(d.v);
	if (d.t === "tuple") {
		// numpy.dtype((descr_to_dtype(descr[0]), descr[1]))
		const [base, second] = d.v;
		if (base === undefined || second === undefined) return anyObjectInside(d);
		return descrMayHaveObject(base, depth + 1) || (!isShape(second) && anyObjectInside(second));
	}
	const fields = iterate(d);
	if (fields === undefined) return false; // not iterable: a TypeError
	for (const f of fields) {
		// a set or dict field is unpacked in an order numpy alone knows: judge all of it
		const parts = f.t === "set" || f.t === "dict" ? undefined : iterate(f);
		if (parts === undefined) {
			if (anyObjectInside(f)) return true;
			continue;
		}
		if (parts.length === 2) {
			if (descrMayHaveObject(parts[1] as PyValue, depth + 1)) return true;
		} else if (parts.length === 3) {
			const shape = parts[2] as PyValue;
			if (descrMayHaveObject(parts[1] as PyValue, depth + 1) || (!isShape(shape) && anyObjectInside(shape)))
				return true;
		} else if (anyObjectInside(f)) return true; // an unpacking error, or so we think
	}
	return false;
}

export interface NpyHeader {
	/** Offset of the array data (or the pickle, for object arrays). */
	dataOffset: number;
	/** The descr: a JS string when it is a string literal. */
	descr: string | PyValue;
	shape: bigint[];
	fortranOrder: boolean;
	/** The dtype may hold objects: np.load(allow_pickle=True) unpickles the data. */
	object: boolean;
	/** Bytes per element when computable from descr. */
	itemsize?: bigint;
}

/** Element size of a descr ("<f4", "|S10", "<U3", structured lists), or undefined if it cannot be told. */
function itemsizeOf(d: PyValue, depth = 0): bigint | undefined {
	if (depth > 16) return undefined;
	if (d.t === "str") {
		const m = /^[<>|=]?([biufcSUVaMm?])(\d*)(\[\w+\])?$/.exec(d.v);
		if (!m) return undefined;
		if (m[1] === "?") return 1n;
		const n = m[2] ? BigInt(m[2]) : undefined;
		if (n === undefined) return m[1] === "b" ? 1n : undefined;
		return m[1] === "U" ? n * 4n : n;
	}
	if (d.t !== "list") return undefined;
	let sum = 0n;
	for (const f of d.v) {
		if (f.t !== "tuple" && f.t !== "list") return undefined;
		const parts = f.v;
		if (parts.length < 2 || (parts[0] as PyValue).t !== "str") return undefined;
		const sz = itemsizeOf(parts[1] as PyValue, depth + 1);
		if (sz === undefined) return undefined;
		let count = 1n;
		const sub = parts[2];
		if (sub !== undefined) {
			const dims = sub.t === "tuple" ? sub.v : [sub];
			for (const x of dims) {
				if (x.t !== "int" || x.v < 0n) return undefined;
				count *= x.v;
			}
		}
		sum += sz * count;
	}
	return sum;
}

/** Parses and checks an .npy header from the file's first bytes (which must hold the whole header). */
export function parseNpyHeader(head: Buffer): NpyHeader | string {
	if (head.length < 10 || !head.subarray(0, 6).equals(MAGIC)) return "no \\x93NUMPY magic";
	const major = head[6] as number;
	const minor = head[7] as number;
	if ((major !== 1 && major !== 2 && major !== 3) || minor !== 0) return `unsupported .npy version ${major}.${minor}`;
	let len: number;
	let start: number;
	if (major === 1) {
		len = head.readUInt16LE(8);
		start = 10;
	} else {
		if (head.length < 12) return "truncated header length";
		len = head.readUInt32LE(8);
		start = 12;
	}
	if (len > MAX_HEADER) return `header of ${len} bytes (limit ${MAX_HEADER})`;
	if (start + len > head.length) return "truncated header";
	const raw = head.subarray(start, start + len);
	let text: string;
	if (major === 3) {
		try {
			text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(raw);
		} catch {
			return "header is not UTF-8";
		}
	} else text = raw.toString("latin1");
	let lit: PyValue;
	try {
		lit = parseLiteral(text, major <= 2);
	} catch (e) {
		if (e instanceof LiteralError) return e.message;
		throw e;
	}
	if (lit.t !== "dict") return "header is not a dict";
	const keyNames = lit.keys.map((k) => (k.t === "str" ? k.v : undefined));
	if (lit.keys.length !== 3 || ["descr", "fortran_order", "shape"].some((k) => !keyNames.includes(k)))
		return "header keys are not {descr, fortran_order, shape}";
	const get = (k: string) => lit.vals[keyNames.indexOf(k)] as PyValue;
	const descr = get("descr");
	const fortran = get("fortran_order");
	const shapeLit = get("shape");
	if (shapeLit.t !== "tuple" || !shapeLit.v.every(isIntLike)) return "shape is not a tuple of ints";
	if (fortran.t !== "bool") return "fortran_order is not a bool";
	const shape = shapeLit.v.map((d) => (d.t === "int" ? d.v : d.t === "bool" && d.v ? 1n : 0n));
	const out: NpyHeader = {
		dataOffset: start + len,
		descr: descr.t === "str" ? descr.v : descr,
		shape,
		fortranOrder: fortran.v,
		object: descrMayHaveObject(descr),
	};
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
