/**
 * GGUF (llama.cpp / Ollama): structural bounds on the header and the chat template.
 *
 * Every count and length in a GGUF header is attacker-controlled, and parsers
 * have had heap overflows from trusting them (llama.cpp CVE-2024-34359 and
 * friends). This reader checks each one against the bytes left in the file
 * *before* allocating or looping, reads the header through the ByteSource in
 * chunks, skips values it does not need without reading them, and stops at the
 * tensor data. Layout (little-endian; v1 uses u32 where v2/v3 use u64):
 *
 *   "GGUF" u32 version, u64 tensor_count, u64 kv_count,
 *   kv_count × { string key, u32 type, value },
 *   tensor_count × { string name, u32 n_dims, n_dims × u64 dim, u32 ggml_type, u64 offset },
 *   padding to general.alignment (default 32), tensor data.
 *
 * `tokenizer.chat_template` (and `tokenizer.chat_template.<name>`) is Jinja,
 * rendered by llama.cpp / Ollama / transformers: it gets the template-injection check.
 */
import { checkChatTemplate } from "./chat-template";
import type { ByteSource, Finding, Scanner, ScanResult } from "./types";

/** llama.cpp's GGML_MAX_DIMS. */
export const GGUF_MAX_DIMS = 4;
/** Keys longer than this are refused rather than read (real keys are a few dozen bytes). */
const MAX_KEY = 1 << 16;
/** Tensor names: llama.cpp's GGML_MAX_NAME is 64; allow more, but bounded. */
const MAX_NAME = 1 << 16;
/** Chat templates above this are cut before checking (the check reports it). */
const MAX_TEMPLATE = 4 * 1024 * 1024;
/** Arrays nested deeper than this are refused (llama.cpp refuses any nesting). */
const MAX_ARRAY_DEPTH = 4;
const CHUNK = 64 * 1024;
const I64_MAX = (1n << 63n) - 1n;

/** GGUF value types used by name below (the fixed-size ones are in FIXED_SIZE). */
const T = { U32: 4, STRING: 8, ARRAY: 9 } as const;
const FIXED_SIZE: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** ggml types: [bytes per block, elements per block] (ggml.c type_traits; removed ids absent). */
export const GGML_TYPES: Readonly<Record<number, readonly [number, number]>> = {
	0: [4, 1], // F32
	1: [2, 1], // F16
	2: [18, 32], // Q4_0
	3: [20, 32], // Q4_1
	6: [22, 32], // Q5_0
	7: [24, 32], // Q5_1
	8: [34, 32], // Q8_0
	9: [36, 32], // Q8_1
	10: [84, 256], // Q2_K
	11: [110, 256], // Q3_K
	12: [144, 256], // Q4_K
	13: [176, 256], // Q5_K
	14: [210, 256], // Q6_K
	15: [292, 256], // Q8_K
	16: [66, 256], // IQ2_XXS
	17: [74, 256], // IQ2_XS
	18: [98, 256], // IQ3_XXS
	19: [50, 256], // IQ1_S
	20: [18, 32], // IQ4_NL
	21: [110, 256], // IQ3_S
	22: [82, 256], // IQ2_S
	23: [136, 256], // IQ4_XS
	24: [1, 1], // I8
	25: [2, 1], // I16
	26: [4, 1], // I32
	27: [8, 1], // I64
	28: [8, 1], // F64
	29: [56, 256], // IQ1_M
	30: [2, 1], // BF16
	34: [54, 256], // TQ1_0
	35: [66, 256], // TQ2_0
	39: [17, 32], // MXFP4
};

class Malformed extends Error {}
const bad = (rule: string): never => {
	throw new Malformed(`gguf: ${rule}`);
};

/** Sequential reader over a ByteSource with a read-ahead window; never reads past what it is asked for by more than a chunk. */
class Reader {
	pos = 0;
	private winStart = 0;
	private win: Buffer = Buffer.alloc(0);
	constructor(private readonly src: ByteSource) {}
	get remaining(): number {
		return this.src.size - this.pos;
	}
	/** Makes `n` bytes at `pos` available (n ≤ remaining checked by the caller's rule). */
	private async ensure(n: number, what: string): Promise<Buffer> {
		if (n > this.remaining) bad(`${what} runs past end of file`);
		const off = this.pos - this.winStart;
		if (off >= 0 && off + n <= this.win.length) return this.win.subarray(off, off + n);
		this.win = await this.src.read(this.pos, Math.max(n, Math.min(CHUNK, this.remaining)));
		this.winStart = this.pos;
		if (this.win.length < n) bad(`${what} runs past end of file`);
		return this.win.subarray(0, n);
	}
	async u32(what: string): Promise<number> {
		const b = await this.ensure(4, what);
		this.pos += 4;
		return b.readUInt32LE(0);
	}
	async u64(what: string): Promise<bigint> {
		const b = await this.ensure(8, what);
		this.pos += 8;
		return b.readBigUInt64LE(0);
	}
	async bytes(n: number, what: string): Promise<Buffer> {
		const b = await this.ensure(n, what);
		this.pos += n;
		return Buffer.from(b); // copy: the window is replaced on the next read
	}
	skip(n: bigint, what: string): void {
		if (n > BigInt(this.remaining)) bad(`${what} runs past end of file`);
		this.pos += Number(n);
	}
}

/** Reads a count (u32 in v1, u64 after) and checks `count × minSize` fits in what is left. */
async function count(r: Reader, v1: boolean, minSize: number, what: string): Promise<number> {
	const c = v1 ? BigInt(await r.u32(what)) : await r.u64(what);
	if (c * BigInt(minSize) > BigInt(r.remaining)) bad(`${what} ${c} exceeds the file size`);
	return Number(c);
}

async function stringLen(r: Reader, v1: boolean, what: string): Promise<number> {
	return count(r, v1, 1, `${what} length`);
}

/** Reads a string it needs (keys, names), bounded by `max`. */
async function readString(r: Reader, v1: boolean, max: number, what: string): Promise<string> {
	const n = await stringLen(r, v1, what);
	if (n > max) bad(`${what} longer than ${max} bytes`);
	return (await r.bytes(n, what)).toString("utf8");
}

interface KvOut {
	alignment?: number;
	/** [key, text, cut]: cut when the template was longer than MAX_TEMPLATE. */
	templates: Array<[string, string, boolean]>;
}

/** Reads or skips one typed value. Only chat templates and the alignment are kept. */
async function value(r: Reader, v1: boolean, type: number, key: string, depth: number, out: KvOut): Promise<void> {
	const fixed = FIXED_SIZE[type];
	if (fixed !== undefined) {
		if (key === "general.alignment" && depth === 0) {
			if (type !== T.U32) bad("general.alignment is not a u32");
			const a = await r.u32(key);
			if (a === 0 || (a & (a - 1)) !== 0) bad(`general.alignment ${a} is not a power of two`);
			out.alignment = a;
		} else r.skip(BigInt(fixed), key);
		return;
	}
	if (type === T.STRING) {
		const n = await stringLen(r, v1, `value of ${key}`);
		if (depth === 0 && (key === "tokenizer.chat_template" || key.startsWith("tokenizer.chat_template."))) {
			const take = Math.min(n, MAX_TEMPLATE);
			const text = (await r.bytes(take, key)).toString("utf8");
			r.skip(BigInt(n - take), key);
			out.templates.push([key, text, n > take]);
		} else r.skip(BigInt(n), key);
		return;
	}
	if (type === T.ARRAY) {
		if (depth >= MAX_ARRAY_DEPTH) bad(`arrays nested deeper than ${MAX_ARRAY_DEPTH} in ${key}`);
		const et = await r.u32(`array type of ${key}`);
		const es = FIXED_SIZE[et];
		if (es === undefined && et !== T.STRING && et !== T.ARRAY) bad(`unknown array element type ${et} in ${key}`);
		// minimum bytes per element: fixed size, a string length, or a nested array's type + count
		const min = es ?? (et === T.STRING ? (v1 ? 4 : 8) : v1 ? 8 : 12);
		const c = await count(r, v1, min, `array count of ${key}`);
		if (es !== undefined) {
			r.skip(BigInt(c) * BigInt(es), key);
			return;
		}
		for (let i = 0; i < c; i++) await value(r, v1, et, key, depth + 1, out);
		return;
	}
	bad(`unknown value type ${type} for ${key}`);
}

/** Parses a GGUF header; returns findings and the first broken rule. */
export async function scanGguf(source: ByteSource): Promise<ScanResult> {
	const findings: Finding[] = [];
	const r = new Reader(source);
	try {
		const magic = await r.bytes(4, "magic");
		if (magic.toString("latin1") !== "GGUF") bad("bad magic");
		const version = await r.u32("version");
		if (version < 1 || version > 3) bad(`unsupported version ${version}`);
		const v1 = version === 1;
		// minimum sizes: a tensor info is name len + n_dims + type + offset; a kv is key len + type + 1 byte
		const nTensors = await count(r, v1, v1 ? 4 + 4 + 4 + 8 : 8 + 4 + 4 + 8, "tensor count");
		const nKv = await count(r, v1, v1 ? 4 + 4 + 1 : 8 + 4 + 1, "kv count");
		const out: KvOut = { templates: [] };
		const keys = new Set<string>();
		for (let i = 0; i < nKv; i++) {
			const key = await readString(r, v1, MAX_KEY, `key ${i}`);
			if (keys.has(key)) bad(`duplicate key ${key}`);
			keys.add(key);
			const type = await r.u32(`type of ${key}`);
			await value(r, v1, type, key, 0, out);
		}
		for (const [key, tpl, cut] of out.templates) {
			findings.push(...checkChatTemplate(tpl, key));
			if (cut)
				findings.push({
					id: "template-injection",
					severity: "high",
					message: `chat template over ${MAX_TEMPLATE} bytes: only the start was checked`,
					location: key,
				});
		}
		const alignment = BigInt(out.alignment ?? 32);
		const names = new Set<string>();
		let expected = 0n;
		let allKnown = true;
		const extents: Array<[string, bigint, bigint]> = [];
		for (let i = 0; i < nTensors; i++) {
			const name = await readString(r, v1, MAX_NAME, `tensor ${i} name`);
			if (names.has(name)) bad(`duplicate tensor name ${name}`);
			names.add(name);
			const nDims = await r.u32(`n_dims of ${name}`);
			if (nDims > GGUF_MAX_DIMS) bad(`tensor ${name} has ${nDims} dimensions (max ${GGUF_MAX_DIMS})`);
			let elems = 1n;
			const dims: bigint[] = [];
			for (let d = 0; d < nDims; d++) {
				const dim = v1 ? BigInt(await r.u32(`dim of ${name}`)) : await r.u64(`dim of ${name}`);
				if (dim > I64_MAX) bad(`tensor ${name} has a negative dimension`);
				dims.push(dim);
				elems *= dim;
				if (elems > I64_MAX) bad(`tensor ${name} element count overflows`);
			}
			const type = await r.u32(`type of ${name}`);
			const offset = await r.u64(`offset of ${name}`);
			if (offset % alignment !== 0n)
				bad(`tensor ${name} offset ${offset} is not a multiple of the alignment ${alignment}`);
			const traits = GGML_TYPES[type];
			if (traits === undefined) {
				if (type > 255) bad(`tensor ${name} has invalid ggml type ${type}`);
				allKnown = false;
				if (findings.length < 200)
					findings.push({
						id: "gguf-unknown-tensor-type",
						severity: "low",
						message: `ggml type ${type} is unknown here: its size is not checked`,
						location: `tensor ${name}`,
					});
				continue;
			}
			const [typeSize, blck] = traits;
			if ((dims[0] ?? 1n) % BigInt(blck) !== 0n)
				bad(`tensor ${name}: first dimension ${dims[0]} is not a multiple of the block size ${blck}`);
			const size = (elems / BigInt(blck)) * BigInt(typeSize);
			if (allKnown && offset !== expected)
				bad(`tensor ${name} has offset ${offset}, expected ${expected} (tensor data must be packed in order)`);
			expected += ((size + alignment - 1n) / alignment) * alignment;
			extents.push([name, offset, size]);
		}
		// tensor data starts at the next multiple of the alignment; every tensor must lie inside the file
		const dataStart = ((BigInt(r.pos) + alignment - 1n) / alignment) * alignment;
		for (const [name, offset, size] of extents) {
			if (dataStart + offset + size > BigInt(source.size)) bad(`tensor ${name} data runs past end of file`);
		}
		return { findings };
	} catch (e) {
		if (e instanceof Malformed) return { findings, malformed: e.message };
		throw e;
	}
}

/** Scanner for GGUF model files (header only). */
export const ggufScanner: Scanner = {
	format: "gguf",
	detect(head: Buffer): boolean {
		return head.length >= 4 && head.subarray(0, 4).toString("latin1") === "GGUF";
	},
	scan({ source }): Promise<ScanResult> {
		return scanGguf(source);
	},
};
