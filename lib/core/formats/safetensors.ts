/**
 * safetensors: the rules of the reference Rust parser (huggingface/safetensors,
 * `safetensors/src/tensor.rs`), applied to the header only. A file that breaks
 * one of them is `malformed` with the reference's error name, e.g.
 * "safetensors: InvalidOffset(model.w)". safetensors cannot run code on load, so
 * a valid file has no findings; the point of the checks is that a loader and
 * this scanner agree on what the file is (a header the reference rejects may be
 * read differently by a laxer loader).
 *
 * Tensor bytes are never read: only the 8-byte length and the JSON header. `readSafetensorsLayout` gives the
 * validated header (names, dtypes, shapes, byte ranges) to readers that do read tensors (export binding).
 */
import type { ByteSource, Scanner, ScanResult } from "./types";

/** The reference's MAX_HEADER_SIZE. */
export const MAX_HEADER_SIZE = 100_000_000;

/** Bits per element, as in the reference's `Dtype::bitsize` (sub-byte float types included). */
export const DTYPE_BITS: Readonly<Record<string, number>> = {
	BOOL: 8,
	F4: 4,
	F6_E2M3: 6,
	F6_E3M2: 6,
	U8: 8,
	I8: 8,
	F8_E5M2: 8,
	F8_E4M3: 8,
	F8_E8M0: 8,
	I16: 16,
	U16: 16,
	F16: 16,
	BF16: 16,
	I32: 32,
	U32: 32,
	F32: 32,
	C64: 64,
	F64: 64,
	I64: 64,
	U64: 64,
};

const U64_MAX = (1n << 64n) - 1n;

// ---------------------------------------------------------------------------
// A small strict JSON parser. JSON.parse would hide what the reference sees:
// it keeps the last of duplicate keys silently and turns 2^64-1 into a float.
// This one keeps number literals verbatim and refuses duplicate keys.

/** A JSON number, kept as its literal text so integers of any size survive. */
export class JsonNumber {
	constructor(readonly raw: string) {}
}
/** A JSON object, entries in file order. */
export class JsonObject {
	constructor(readonly entries: Array<[string, JsonValue]>) {}
	get(key: string): JsonValue | undefined {
		for (const [k, v] of this.entries) if (k === key) return v;
		return undefined;
	}
}
export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;

/** Thrown by parseStrictJson; `duplicate` is set for a repeated key. */
export class JsonSyntaxError extends Error {
	constructor(
		message: string,
		readonly duplicate?: string,
	) {
		super(message);
	}
}

/** serde_json's default recursion limit: deeper nesting is an error there too. */
const MAX_DEPTH = 128;

/**
 * Parses JSON strictly (RFC 8259), refusing duplicate keys and nesting deeper
 * than 128, allowing surrounding whitespace as serde_json does.
 */
export function parseStrictJson(text: string): JsonValue {
	let i = 0;
	const n = text.length;
	const ws = () => {
		while (i < n) {
			const c = text.charCodeAt(i);
			if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
			else break;
		}
	};
	const fail = (what: string): never => {
		throw new JsonSyntaxError(`${what} at ${i}`);
	};
	const str = (): string => {
		// caller checked the opening quote
		i++;
		let out = "";
		let start = i;
		while (true) {
			if (i >= n) fail("unterminated string");
			const c = text.charCodeAt(i);
			if (c === 0x22) {
				out += text.slice(start, i);
				i++;
				return out;
			}
			if (c < 0x20) fail("control character in string");
			if (c === 0x5c) {
				out += text.slice(start, i);
				const e = text[i + 1];
				i += 2;
				switch (e) {
					case '"':
						out += '"';
						break;
					case "\\":
						out += "\\";
						break;
					case "/":
						out += "/";
						break;
					case "b":
						out += "\b";
						break;
					case "f":
						out += "\f";
						break;
					case "n":
						out += "\n";
						break;
					case "r":
						out += "\r";
						break;
					case "t":
						out += "\t";
						break;
					case "u": {
						const hex = text.slice(i, i + 4);
						if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("bad \\u escape");
						out += String.fromCharCode(Number.parseInt(hex, 16));
						i += 4;
						break;
					}
					default:
						fail("bad escape");
				}
				start = i;
				continue;
			}
			i++;
		}
	};
	const value = (depth: number): JsonValue => {
		if (depth > MAX_DEPTH) fail("nesting too deep");
		ws();
		const c = text[i];
		if (c === "{") {
			i++;
			const entries: Array<[string, JsonValue]> = [];
			const seen = new Set<string>();
			ws();
			if (text[i] === "}") {
				i++;
				return new JsonObject(entries);
			}
			while (true) {
				ws();
				if (text[i] !== '"') fail("expected key");
				const k = str();
				if (seen.has(k)) throw new JsonSyntaxError(`duplicate key ${JSON.stringify(k)}`, k);
				seen.add(k);
				ws();
				if (text[i] !== ":") fail("expected ':'");
				i++;
				entries.push([k, value(depth + 1)]);
				ws();
				if (text[i] === ",") {
					i++;
					continue;
				}
				if (text[i] === "}") {
					i++;
					return new JsonObject(entries);
				}
				fail("expected ',' or '}'");
			}
		}
		if (c === "[") {
			i++;
			const items: JsonValue[] = [];
			ws();
			if (text[i] === "]") {
				i++;
				return items;
			}
			while (true) {
				items.push(value(depth + 1));
				ws();
				if (text[i] === ",") {
					i++;
					continue;
				}
				if (text[i] === "]") {
					i++;
					return items;
				}
				fail("expected ',' or ']'");
			}
		}
		if (c === '"') return str();
		if (text.startsWith("true", i)) {
			i += 4;
			return true;
		}
		if (text.startsWith("false", i)) {
			i += 5;
			return false;
		}
		if (text.startsWith("null", i)) {
			i += 4;
			return null;
		}
		const m = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
		if (m === null) return fail("unexpected character");
		i += m[0].length;
		return new JsonNumber(m[0]);
	};
	const v = value(0);
	ws();
	if (i !== n) fail("trailing characters");
	return v;
}

// ---------------------------------------------------------------------------

class Malformed extends Error {}
const bad = (rule: string): never => {
	throw new Malformed(`safetensors: ${rule}`);
};

/** A usize as serde reads it from JSON: a non-negative integer literal up to 2^64-1. */
function usize(v: JsonValue | undefined): bigint {
	if (!(v instanceof JsonNumber) || !/^(0|[1-9][0-9]*)$/.test(v.raw)) return bad("InvalidHeaderDeserialization");
	const b = BigInt(v.raw);
	if (b > U64_MAX) bad("InvalidHeaderDeserialization");
	return b;
}

interface TensorInfo {
	name: string;
	dtype: string;
	shape: bigint[];
	begin: bigint;
	end: bigint;
}

/** Validates a parsed header the way `Metadata::deserialize` + `validate` do; returns the tensors and the buffer end. */
function validateHeader(root: JsonValue): { tensors: TensorInfo[]; end: bigint } {
	if (!(root instanceof JsonObject)) return bad("InvalidHeaderDeserialization");
	const tensors: TensorInfo[] = [];
	for (const [name, v] of root.entries) {
		if (name === "__metadata__") {
			// Option<HashMap<String, String>>: null or an object of strings.
			if (v === null) continue;
			if (!(v instanceof JsonObject)) bad("InvalidHeaderDeserialization");
			for (const [, mv] of (v as JsonObject).entries) if (typeof mv !== "string") bad("InvalidHeaderDeserialization");
			continue;
		}
		if (!(v instanceof JsonObject)) return bad("InvalidHeaderDeserialization");
		const dtype = v.get("dtype");
		const shape = v.get("shape");
		const offsets = v.get("data_offsets");
		if (typeof dtype !== "string" || DTYPE_BITS[dtype] === undefined) bad("InvalidHeaderDeserialization");
		if (!Array.isArray(shape) || !Array.isArray(offsets) || offsets.length !== 2) bad("InvalidHeaderDeserialization");
		const dims = (shape as JsonValue[]).map(usize);
		const [b, e] = (offsets as JsonValue[]).map(usize) as [bigint, bigint];
		tensors.push({ name, dtype: dtype as string, shape: dims, begin: b, end: e });
	}
	// The reference sorts by (begin, end) and then insists on contiguity from 0.
	tensors.sort((x, y) => (x.begin < y.begin ? -1 : x.begin > y.begin ? 1 : x.end < y.end ? -1 : x.end > y.end ? 1 : 0));
	let start = 0n;
	for (const t of tensors) {
		if (t.begin !== start || t.end < t.begin) bad(`InvalidOffset(${t.name})`);
		start = t.end;
		let elems = 1n;
		for (const d of t.shape) {
			elems *= d;
			if (elems > U64_MAX) bad("ValidationOverflow");
		}
		const bits = elems * BigInt(DTYPE_BITS[t.dtype] ?? 0);
		if (bits > U64_MAX) bad("ValidationOverflow");
		if (bits % 8n !== 0n) bad(`MisalignedSlice(${t.name})`);
		if (t.end - t.begin !== bits / 8n) bad(`TensorInvalidInfo(${t.name})`);
	}
	return { tensors, end: start };
}

/** One tensor of a valid file: `begin`/`end` are absolute file offsets. */
export interface SafetensorsTensor {
	name: string;
	dtype: string;
	shape: number[];
	begin: number;
	end: number;
}

/** A valid file's tensors, in data order. */
export interface SafetensorsLayout {
	tensors: SafetensorsTensor[];
}

/** Checks a safetensors file against the reference rules; returns the broken rule or undefined. */
export async function checkSafetensors(source: ByteSource): Promise<string | undefined> {
	const layout = await readSafetensorsLayout(source);
	return typeof layout === "string" ? layout : undefined;
}

/** Reads and validates the header as the reference does; returns the tensors, or the broken rule. */
export async function readSafetensorsLayout(source: ByteSource): Promise<SafetensorsLayout | string> {
	try {
		if (source.size < 8) bad("HeaderTooSmall");
		const lenBuf = await source.read(0, 8);
		if (lenBuf.length < 8) bad("HeaderTooSmall");
		const n = lenBuf.readBigUInt64LE(0);
		if (n > BigInt(MAX_HEADER_SIZE)) bad("HeaderTooLarge");
		const hlen = Number(n);
		if (8 + hlen > source.size) bad("InvalidHeaderLength");
		const header = await source.read(8, hlen);
		if (header.length !== hlen) bad("InvalidHeaderLength");
		let text: string;
		try {
			text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(header);
		} catch {
			return bad("InvalidHeader");
		}
		if (!text.startsWith("{")) bad("InvalidHeaderStart");
		let root: JsonValue;
		try {
			root = parseStrictJson(text);
		} catch (e) {
			const dup = e instanceof JsonSyntaxError ? e.duplicate : undefined;
			return bad(dup === undefined ? "InvalidHeaderDeserialization" : `DuplicateKey(${dup})`);
		}
		const { tensors, end } = validateHeader(root);
		if (end + 8n + n !== BigInt(source.size)) bad("MetadataIncompleteBuffer");
		// every offset is below the file size here, so Number() is exact
		const base = 8 + hlen;
		return {
			tensors: tensors.map((t) => ({
				name: t.name,
				dtype: t.dtype,
				shape: t.shape.map(Number),
				begin: base + Number(t.begin),
				end: base + Number(t.end),
			})),
		};
	} catch (e) {
		if (e instanceof Malformed) return e.message;
		throw e;
	}
}

/** Scanner for `.safetensors` files: structure only, never tensor bytes. */
export const safetensorsScanner: Scanner = {
	format: "safetensors",
	detect(head: Buffer, _name: string, size: number): boolean {
		// Content, not name: a plausible header length and a JSON object right after it.
		if (head.length < 9 || size < 10) return false;
		const n = head.readBigUInt64LE(0);
		return n >= 2n && n <= BigInt(MAX_HEADER_SIZE) && 8n + n <= BigInt(size) && head[8] === 0x7b;
	},
	async scan({ source }): Promise<ScanResult> {
		const malformed = await checkSafetensors(source);
		return malformed === undefined ? { findings: [] } : { findings: [], malformed };
	},
};
