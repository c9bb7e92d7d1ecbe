import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ggufScanner, scanGguf } from "../../../lib/core/formats/gguf";
import { BufferSource } from "../../../lib/core/formats/source";
import { verdictOf } from "../../../lib/core/formats/types";
import { fuzzScanner, scanBuffer } from "../../fixtures/formats/fuzz";

// A small GGUF writer (v2/v3 layout; v1 with u32 counts and lengths).
type V =
	| { t: "u8"; v: number }
	| { t: "u32"; v: number }
	| { t: "i32"; v: number }
	| { t: "f32"; v: number }
	| { t: "bool"; v: boolean }
	| { t: "u64"; v: bigint }
	| { t: "str"; v: string }
	| { t: "arr"; et: number; items: V[] };

function writer(version = 3) {
	const parts: Buffer[] = [];
	const v1 = version === 1;
	const u32 = (n: number) => {
		const b = Buffer.alloc(4);
		b.writeUInt32LE(n);
		parts.push(b);
	};
	const u64 = (n: bigint | number) => {
		const b = Buffer.alloc(8);
		b.writeBigUInt64LE(BigInt(n));
		parts.push(b);
	};
	const len = (n: number) => (v1 ? u32(n) : u64(n));
	const str = (s: string) => {
		const b = Buffer.from(s);
		len(b.length);
		parts.push(b);
	};
	const typeOf = (x: V) => ({ u8: 0, u32: 4, i32: 5, f32: 6, bool: 7, str: 8, arr: 9, u64: 10 })[x.t];
	const val = (x: V): void => {
		switch (x.t) {
			case "u8":
				parts.push(Buffer.from([x.v]));
				break;
			case "u32":
				u32(x.v);
				break;
			case "i32": {
				const b = Buffer.alloc(4);
				b.writeInt32LE(x.v);
				parts.push(b);
				break;
			}
			case "f32": {
				const b = Buffer.alloc(4);
				b.writeFloatLE(x.v);
				parts.push(b);
				break;
			}
			case "bool":
				parts.push(Buffer.from([x.v ? 1 : 0]));
				break;
			case "u64":
				u64(x.v);
				break;
			case "str":
				str(x.v);
				break;
			case "arr":
				u32(x.et);
				len(x.items.length);
				for (const i of x.items) val(i);
				break;
		}
	};
	return { parts, u32, u64, len, str, val, typeOf, v1 };
}

interface Tensor {
	name: string;
	dims: number[];
	type: number;
	bytes: number;
}

function gguf(kv: Array<[string, V]>, tensors: Tensor[], version = 3, alignment = 32): Buffer {
	const w = writer(version);
	w.parts.push(Buffer.from("GGUF"));
	w.u32(version);
	w.len(tensors.length);
	w.len(kv.length);
	for (const [k, v] of kv) {
		w.str(k);
		w.u32(w.typeOf(v));
		w.val(v);
	}
	let off = 0;
	for (const t of tensors) {
		w.str(t.name);
		w.u32(t.dims.length);
		for (const d of t.dims) w.v1 ? w.u32(d) : w.u64(d);
		w.u32(t.type);
		w.u64(off);
		off += Math.ceil(t.bytes / alignment) * alignment;
	}
	let head = Buffer.concat(w.parts);
	head = Buffer.concat([head, Buffer.alloc((alignment - (head.length % alignment)) % alignment)]);
	return Buffer.concat([head, Buffer.alloc(off)]);
}

const llama3 =
	"{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}";
const kvBase: Array<[string, V]> = [
	["general.architecture", { t: "str", v: "llama" }],
	["general.alignment", { t: "u32", v: 32 }],
	["llama.context_length", { t: "u32", v: 4096 }],
	["general.file_type", { t: "i32", v: 1 }],
	["llama.rope.freq_base", { t: "f32", v: 10000 }],
	["tokenizer.ggml.add_bos_token", { t: "bool", v: true }],
	[
		"tokenizer.ggml.tokens",
		{ t: "arr", et: 8, items: ["<s>", "</s>", "a", "b"].map((v) => ({ t: "str" as const, v })) },
	],
	["tokenizer.ggml.token_type", { t: "arr", et: 5, items: [1, 1, 1, 1].map((v) => ({ t: "i32" as const, v })) }],
	["tokenizer.chat_template", { t: "str", v: llama3 }],
];
const tensorsBase: Tensor[] = [
	{ name: "token_embd.weight", dims: [64, 4], type: 1, bytes: 64 * 4 * 2 },
	{ name: "blk.0.attn_q.weight", dims: [64, 64], type: 8, bytes: (64 * 64 * 34) / 32 },
	{ name: "output_norm.weight", dims: [64], type: 0, bytes: 256 },
];
const good = gguf(kvBase, tensorsBase);
const evil = gguf(
	[
		...kvBase.slice(0, 8),
		["tokenizer.chat_template", { t: "str", v: "{{ cycler.__init__.__globals__.os.popen('id').read() }}" }],
	],
	tensorsBase,
);

const scan = (b: Buffer) => scanGguf(new BufferSource(b));

describe("gguf", () => {
	it("accepts a valid v3 file with a benign template; v1 and v2 too", async () => {
		const r = await scanBuffer(ggufScanner, good, "model.gguf");
		expect(r).toEqual({ findings: [] });
		expect(verdictOf(await scan(gguf(kvBase, tensorsBase, 2)))).toBe("safe");
		expect(verdictOf(await scan(gguf(kvBase, tensorsBase, 1)))).toBe("safe");
		expect(verdictOf(await scan(gguf([], [])))).toBe("safe");
	});

	it("files written by make_fixtures.py", async () => {
		const fxd = join(__dirname, "../../fixtures/formats/gguf");
		expect(await scan(readFileSync(join(fxd, "clean.gguf")))).toEqual({ findings: [] });
		expect(await scan(readFileSync(join(fxd, "clean-v1.gguf")))).toEqual({ findings: [] });
		const r = await scan(readFileSync(join(fxd, "template-injection.gguf")));
		expect(verdictOf(r)).toBe("unsafe");
	});

	it("detects by magic", () => {
		expect(ggufScanner.detect(good.subarray(0, 16), "x.bin", good.length)).toBe(true);
		expect(ggufScanner.detect(Buffer.from("GGML"), "x.gguf", 4)).toBe(false);
	});

	it("flags a chat template with injection gadgets", async () => {
		const r = await scan(evil);
		expect(verdictOf(r)).toBe("unsafe");
		expect(r.findings).toContainEqual(expect.objectContaining({ id: "template-injection", severity: "critical" }));
		expect(r.findings[0]?.location).toContain("tokenizer.chat_template");
		const named = gguf([["tokenizer.chat_template.tool_use", { t: "str", v: "{{ x.__subclasses__() }}" }]], []);
		expect(verdictOf(await scan(named))).toBe("unsafe");
	});

	it("reads only the header, in chunks", async () => {
		const big = gguf(kvBase, [{ name: "w", dims: [1 << 20], type: 0, bytes: 4 << 20 }]);
		const src = new BufferSource(big);
		expect((await scanGguf(src)).malformed).toBeUndefined();
		expect(src.bytesRead).toBeLessThan(70_000);
	});

	// Each malformed rule, by patching the header or writing a bad one.
	const withU64At = (b: Buffer, at: number, v: bigint) => {
		const c = Buffer.from(b);
		c.writeBigUInt64LE(v, at);
		return c;
	};
	const cases: Array<[string, Buffer, RegExp]> = [
		["bad magic", Buffer.from("GGUX\x03\x00\x00\x00"), /bad magic/],
		["version 0", Buffer.concat([Buffer.from("GGUF"), Buffer.from([0, 0, 0, 0])]), /unsupported version/],
		["version 4", Buffer.concat([Buffer.from("GGUF"), Buffer.from([4, 0, 0, 0])]), /unsupported version/],
		["truncated header", good.subarray(0, 10), /past end of file/],
		["huge tensor count", withU64At(good, 8, (1n << 64n) - 1n), /tensor count .* exceeds the file size/],
		["huge kv count", withU64At(good, 16, 1n << 40n), /kv count .* exceeds the file size/],
		["huge key length", withU64At(good, 24, 1n << 62n), /key 0 length .* exceeds/],
		[
			"string value too long",
			gguf([["a", { t: "str", v: "x" }]], []).fill(0xff, 24 + 8 + 1 + 4, 24 + 8 + 1 + 4 + 8),
			/value of a length/,
		],
		[
			"huge array count",
			(() => {
				const b = gguf([["a", { t: "arr", et: 0, items: [{ t: "u8", v: 1 }] }]], []);
				return withU64At(b, 24 + 8 + 1 + 4 + 4, 1n << 50n);
			})(),
			/array count of a/,
		],
		[
			"unknown value type",
			(() => {
				const b = gguf([["a", { t: "u8", v: 1 }]], []);
				b.writeUInt32LE(13, 24 + 8 + 1);
				return b;
			})(),
			/unknown value type 13/,
		],
		[
			"unknown array element type",
			(() => {
				const b = gguf([["a", { t: "arr", et: 0, items: [] }]], []);
				b.writeUInt32LE(77, 24 + 8 + 1 + 4);
				return b;
			})(),
			/unknown array element type 77/,
		],
		[
			"deeply nested arrays",
			gguf(
				[
					[
						"a",
						{
							t: "arr",
							et: 9,
							items: [
								{
									t: "arr",
									et: 9,
									items: [{ t: "arr", et: 9, items: [{ t: "arr", et: 9, items: [{ t: "arr", et: 0, items: [] }] }] }],
								},
							],
						},
					],
				],
				[],
			),
			/nested deeper/,
		],
		[
			"duplicate key",
			gguf(
				[
					["a", { t: "u8", v: 1 }],
					["a", { t: "u8", v: 2 }],
				],
				[],
			),
			/duplicate key a/,
		],
		["alignment not a power of two", gguf([["general.alignment", { t: "u32", v: 24 }]], []), /power of two/],
		["alignment wrong type", gguf([["general.alignment", { t: "u64", v: 32n }]], []), /not a u32/],
		["too many dims", gguf([], [{ name: "w", dims: [1, 1, 1, 1, 1], type: 0, bytes: 4 }]), /5 dimensions/],
		[
			"negative dim",
			gguf([], [{ name: "w", dims: [1], type: 0, bytes: 4 }]).fill(0xff, 24 + 8 + 1 + 4, 24 + 8 + 1 + 4 + 8),
			/negative dimension/,
		],
		[
			"element count overflow",
			(() => {
				const b = gguf([], [{ name: "w", dims: [1, 1], type: 0, bytes: 4 }]);
				b.writeBigUInt64LE(1n << 40n, 24 + 8 + 1 + 4);
				b.writeBigUInt64LE(1n << 40n, 24 + 8 + 1 + 4 + 8);
				return b;
			})(),
			/overflows/,
		],
		["invalid ggml type", gguf([], [{ name: "w", dims: [1], type: 1000, bytes: 4 }]), /invalid ggml type/],
		["block size", gguf([], [{ name: "w", dims: [33], type: 2, bytes: 36 }]), /block size/],
		[
			"misaligned offset",
			gguf(
				[],
				[
					{ name: "a", dims: [1], type: 0, bytes: 4 },
					{ name: "b", dims: [1], type: 0, bytes: 4 },
				],
				3,
				32,
			).fill(0, 0, 0),
			/./,
		],
		[
			"duplicate tensor",
			gguf(
				[],
				[
					{ name: "w", dims: [1], type: 0, bytes: 4 },
					{ name: "w", dims: [1], type: 0, bytes: 4 },
				],
			),
			/duplicate tensor name w/,
		],
		["data past end", gguf([], [{ name: "w", dims: [64], type: 0, bytes: 256 }]).subarray(0, 100), /past end of file/],
	];
	for (const [what, buf, re] of cases) {
		it(`malformed: ${what}`, async () => {
			const r = await scan(buf);
			if (what === "misaligned offset") {
				// patch b's offset (at the end of its tensor info) to 4: not a multiple of 32
				const b = Buffer.from(buf);
				const at = b.indexOf(Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 98])); // name length 1, "b"
				b.writeBigUInt64LE(4n, at + 9 + 4 + 8 + 4);
				expect((await scan(b)).malformed).toMatch(/not a multiple of the alignment/);
				b.writeBigUInt64LE(64n, at + 9 + 4 + 8 + 4);
				expect((await scan(b)).malformed).toMatch(/expected 32/);
				return;
			}
			expect(r.malformed).toMatch(re);
			expect(verdictOf(r)).toBe("malformed");
		});
	}

	it("unknown (future) ggml type: low finding, not malformed", async () => {
		const r = await scan(gguf([], [{ name: "w", dims: [1], type: 45, bytes: 4 }]));
		expect(r.malformed).toBeUndefined();
		expect(r.findings[0]).toMatchObject({ id: "gguf-unknown-tensor-type", severity: "low" });
	});

	it("fuzz: every mutant gets a result", async () => {
		await fuzzScanner(
			ggufScanner,
			[
				{ name: "model.gguf", bytes: good },
				{ name: "evil.gguf", bytes: evil },
				{ name: "v1.gguf", bytes: gguf(kvBase, tensorsBase, 1) },
				{ name: "clean.gguf", bytes: readFileSync(join(__dirname, "../../fixtures/formats/gguf/clean.gguf")) },
			],
			{ runs: 200 },
		);
	});
});
