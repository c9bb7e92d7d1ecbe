/**
 * Reading datasets: JSON lines (plain or gzip, found by magic bytes not names), a JSON array split element by element,
 * BOM, blank lines, malformed and non-UTF-8 lines (findings, the scan goes on), files that are no dataset (DATA_INVALID),
 * directories of shards, and Parquet written here by an independent writer (parquetjs-lite) with snappy and
 * uncompressed pages.
 */
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { parquetMetadata } from "hyparquet";
import parquet from "parquetjs-lite";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
	type DatasetItem,
	datasetFiles,
	parseRecord,
	readDataset,
	readRecordBatches,
} from "../../../lib/core/dataset/reader";
import { scanDataset } from "../../../lib/core/dataset/scan";
import { FtguardError } from "../../../lib/core/errors";

function tmp(): string {
	return mkdtempSync(join(tmpdir(), "ftguard-dataset-reader-"));
}

function put(dir: string, name: string, data: string | Buffer): string {
	const p = join(dir, name);
	writeFileSync(p, data);
	return p;
}

async function items(files: readonly string[]): Promise<DatasetItem[]> {
	const out: DatasetItem[] = [];
	for await (const item of readDataset(files)) out.push(item);
	return out;
}

/** The FtguardError a promise rejects with (one line, as the CLI prints it). */
async function rejection(p: Promise<unknown>): Promise<FtguardError> {
	try {
		await p;
	} catch (e) {
		expect(e).toBeInstanceOf(FtguardError);
		expect((e as Error).message).not.toContain("\n");
		return e as FtguardError;
	}
	throw new Error("expected a rejection, got a result");
}

const RECORDS = [
	{ instruction: "Name a prime number.", input: "", output: "Seven." },
	{ instruction: "Translate into German: good morning", input: "", output: "Guten Morgen" },
	{ instruction: "What is 2 + 2?", input: "", output: "Four." },
];
const jsonl = (records: readonly unknown[]) => records.map((r) => `${JSON.stringify(r)}\n`).join("");

afterEach(() => {
	vi.restoreAllMocks();
});

describe("JSON lines", () => {
	it("yields each record with its 1-based line, and the file's SHA-256 and size for the lineage", async () => {
		const d = tmp();
		const text = jsonl(RECORDS);
		const f = put(d, "data.jsonl", text);
		const seen: { path: string; sha256: string; bytes: number }[] = [];
		const out: DatasetItem[] = [];
		for await (const item of readDataset([f], (x) => seen.push(x))) out.push(item);
		expect(out).toEqual(RECORDS.map((value, i) => ({ file: f, line: i + 1, value })));
		expect(seen).toEqual([
			{ path: f, sha256: createHash("sha256").update(text).digest("hex"), bytes: Buffer.byteLength(text) },
		]);
	});

	it("reads a last line without a newline, CRLF line ends, and skips blank lines keeping line numbers", async () => {
		const d = tmp();
		const lines = [
			"",
			JSON.stringify(RECORDS[0]),
			"   ",
			"",
			JSON.stringify(RECORDS[1]),
			"\t",
			JSON.stringify(RECORDS[2]),
		];
		const f = put(d, "data.jsonl", lines.join("\r\n"));
		const out = await items([f]);
		expect(out.map((i) => [i.line, i.value])).toEqual([
			[2, RECORDS[0]],
			[5, RECORDS[1]],
			[7, RECORDS[2]],
		]);
		expect(out.every((i) => i.error === undefined)).toBe(true);
	});

	// The batches the scan reads (a chunk's lines taken as one region, the line a chunk leaves unfinished put together
	// with the next chunk's start) hold exactly the records readDataset yields, with their lines: over 1 MiB chunks, a
	// line longer than a chunk, blank and whitespace-only lines, CRLF, a BOM, bytes that are not UTF-8, no last newline.
	it("reads in batches exactly the records readDataset yields, across chunks and lines longer than one", async () => {
		const d = tmp();
		const lines: Buffer[] = [Buffer.from("\ufeff")];
		for (let i = 0; i < 6000; i++) {
			const r = { instruction: `q${i}: "é\u{1F469}" \\ ${"x".repeat(i % 300)}`, input: "", output: `answer ${i}` };
			lines.push(Buffer.from(`${JSON.stringify(r)}${i % 5 === 0 ? "\r" : ""}\n`));
			if (i % 7 === 0) lines.push(Buffer.from("\n"));
			if (i % 11 === 0) lines.push(Buffer.from("  \t \n"));
			if (i % 13 === 0) lines.push(Buffer.from("\u00a0\n"));
			if (i % 17 === 0) lines.push(Buffer.from([0xff, 0xfe, 0x0a]));
			if (i === 3000)
				lines.push(Buffer.from(`${JSON.stringify({ instruction: "y".repeat(2_500_000), output: "z" })}\n`));
		}
		lines.push(Buffer.from(JSON.stringify({ instruction: "last", output: "no newline" })));
		const whole = Buffer.concat(lines);
		expect(whole.length).toBeGreaterThan(3 << 20);
		const decoder = new TextDecoder("utf-8", { fatal: true });
		for (const f of [put(d, "data.jsonl", whole), put(d, "data.jsonl.gz", gzipSync(whole))]) {
			const want = await items([f]);
			const got: DatasetItem[] = [];
			let batches = 0;
			for await (const b of readRecordBatches(f, { maxRecords: 300, firstRecords: 64, maxBytes: 200_000 })) {
				batches++;
				for (let i = 0; i < b.count; i++)
					got.push(
						parseRecord(b.bytes.subarray(b.starts[i] as number, b.ends[i] as number), f, b.lines[i] as number, decoder),
					);
			}
			expect(batches).toBeGreaterThan(15);
			expect(got.length).toBe(want.length);
			expect(got).toEqual(want);
		}
	});

	it("skips a leading byte-order mark", async () => {
		const d = tmp();
		const f = put(d, "bom.jsonl", `\uFEFF${jsonl(RECORDS)}`);
		expect((await items([f])).map((i) => i.value)).toEqual(RECORDS);
		const gz = put(d, "bom.jsonl.gz", gzipSync(`\uFEFF${jsonl(RECORDS)}`));
		expect((await items([gz])).map((i) => i.value)).toEqual(RECORDS);
	});

	it("turns a malformed line into an item with its line number, and goes on", async () => {
		const d = tmp();
		const f = put(
			d,
			"bad.jsonl",
			`${JSON.stringify(RECORDS[0])}\n{"instruction": "x", "output": \n${JSON.stringify(RECORDS[1])}\n`,
		);
		const out = await items([f]);
		expect(out).toHaveLength(3);
		expect(out[1]).toMatchObject({ file: f, line: 2, error: expect.stringMatching(/^not valid JSON/) });
		expect(out[1]?.raw).toContain('"instruction": "x"');
		expect(out[2]).toEqual({ file: f, line: 3, value: RECORDS[1] });
	});

	it("reports a line that is not UTF-8 and reads the lines around it", async () => {
		const d = tmp();
		const bad = Buffer.concat([Buffer.from('{"text": "caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]);
		const f = put(
			d,
			"latin1.jsonl",
			Buffer.concat([Buffer.from(jsonl([{ text: "a" }])), bad, Buffer.from(jsonl([{ text: "b" }]))]),
		);
		const out = await items([f]);
		expect(out.map((i) => i.value ?? i.error)).toEqual([{ text: "a" }, "not valid UTF-8", { text: "b" }]);
		expect(out[1]?.line).toBe(2);
	});

	it("makes malformed lines findings with their line numbers; the scan counts every record and goes on", async () => {
		const d = tmp();
		const good = Array.from({ length: 30 }, (_, i) => ({
			prompt: `Question number ${i}: what is ${i} squared?`,
			completion: `${i * i}`,
		}));
		const lines = good.map((r) => JSON.stringify(r));
		lines.splice(5, 0, '{"prompt": "unterminated');
		lines.splice(12, 0, Buffer.from([0xff, 0xfe]).toString("latin1"));
		const f = put(d, "mixed.jsonl", Buffer.from(`${lines.join("\n")}\n`, "latin1"));
		const r = await scanDataset({ files: [f] });
		expect(r.records).toBe(32);
		const malformed = r.findings.filter((x) => x.id === "malformed-record");
		expect(malformed.map((x) => [x.records, (x.evidence as { line: number }).line])).toEqual([
			[[5], 6],
			[[12], 13],
		]);
		expect(malformed[0]?.message).toContain(`${f}:6:`);
		expect(malformed[1]?.message).toMatch(/not valid UTF-8/);
		expect(r.locations[12]).toEqual({ file: f, line: 13 });
		expect(r.formats[f]).toBe("instruction");
	});

	it("a record nested 100,000 levels deep is one malformed record, not the end of the scan", async () => {
		const d = tmp();
		const good = Array.from({ length: 20 }, (_, i) =>
			JSON.stringify({ prompt: `Tell me about item ${i}.`, completion: `Item ${i}.` }),
		);
		const deep = `{"prompt":"a","completion":"b","meta":${"[".repeat(100_000)}${"]".repeat(100_000)}}`;
		const f = put(d, "deep.jsonl", `${[good[0], deep, ...good.slice(1)].join("\n")}\n`);
		const r = await scanDataset({ files: [f], threads: 0 });
		expect(r.records).toBe(21);
		const malformed = r.findings.filter((x) => x.id === "malformed-record");
		expect(malformed.map((x) => x.records)).toEqual([[1]]);
		expect(malformed[0]?.message).toMatch(/:2: nested too deeply/);
		// its leaf is its text: another deep record changes the root
		const other = put(d, "deep2.jsonl", `${[good[0], deep.replace('"b"', '"c"'), ...good.slice(1)].join("\n")}\n`);
		expect((await scanDataset({ files: [other], threads: 0 })).lineage.merkle_root).not.toBe(r.lineage.merkle_root);
	});

	it.each([0, 2])(
		"a number no 64-bit float holds (1e400) makes one malformed record, not an internal error (%i workers)",
		async (threads) => {
			const d = tmp();
			const good = Array.from({ length: 20 }, (_, i) =>
				JSON.stringify({ prompt: `Tell me about item ${i}.`, completion: `Item ${i}.` }),
			);
			const huge = '{"prompt":"a","completion":"b","score":1e400}';
			const f = put(d, "huge.jsonl", `${[good[0], huge, ...good.slice(1)].join("\n")}\n`);
			const r = await scanDataset({ files: [f], threads });
			expect(r.records).toBe(21);
			const malformed = r.findings.filter((x) => x.id === "malformed-record");
			expect(malformed.map((x) => x.records)).toEqual([[1]]);
			expect(malformed[0]?.message).toMatch(/:2: has a number outside the 64-bit float range/);
			// its leaf is its text: another such record changes the root
			const other = put(
				d,
				"huge2.jsonl",
				`${[good[0], huge.replace("1e400", "2e400"), ...good.slice(1)].join("\n")}\n`,
			);
			expect((await scanDataset({ files: [other], threads })).lineage.merkle_root).not.toBe(r.lineage.merkle_root);
		},
	);

	it("does not call two malformed lines duplicates of each other", async () => {
		const d = tmp();
		const good = Array.from({ length: 20 }, (_, i) =>
			JSON.stringify({ prompt: `Tell me about item ${i}.`, completion: `Item ${i}.` }),
		);
		const f = put(d, "two-bad.jsonl", `${["{oops", ...good, "{also broken"].join("\n")}\n`);
		const r = await scanDataset({ files: [f] });
		expect(r.findings.filter((x) => x.id === "malformed-record").flatMap((x) => x.records)).toEqual([0, 21]);
		// neither broken line is a copy of the other: they share no content
		expect(r.findings.filter((x) => x.id === "exact-duplicate")).toEqual([]);
	});
});

describe("gzip, by magic bytes", () => {
	it("decompresses a .jsonl file that is gzip, and reads a .gz file that is not as plain JSON lines", async () => {
		const d = tmp();
		const text = jsonl(RECORDS);
		const gz = gzipSync(text);
		const named = put(d, "data.jsonl", gz);
		const plain = put(d, "data.jsonl.gz", text);
		expect((await items([named])).map((i) => i.value)).toEqual(RECORDS);
		expect((await items([plain])).map((i) => i.value)).toEqual(RECORDS);
		// the lineage hashes the bytes as stored
		const seen: string[] = [];
		for await (const _ of readDataset([named], (x) => seen.push(x.sha256)));
		expect(seen).toEqual([createHash("sha256").update(gz).digest("hex")]);
	});

	it("reads every member of a multi-member gzip file", async () => {
		const d = tmp();
		const f = put(
			d,
			"multi.jsonl.gz",
			Buffer.concat([gzipSync(jsonl(RECORDS.slice(0, 2))), gzipSync(jsonl(RECORDS.slice(2)))]),
		);
		expect((await items([f])).map((i) => i.value)).toEqual(RECORDS);
	});

	// a gzip bomb, or a large dataset stored small: counted as read, so a runner with a budget (the gate function)
	// stops early and hands it on (to Batch) instead of timing out
	it("stops past maxReadBytes as read (inflated), with TOO_LARGE; within it, reads everything", async () => {
		const d = tmp();
		const big = jsonl(Array.from({ length: 20000 }, (_, i) => ({ text: `record ${i} ${"ab".repeat(40)}` })));
		const gz = gzipSync(big);
		expect(gz.length * 20).toBeLessThan(big.length);
		const f = put(d, "bomb.jsonl.gz", gz);
		const err = await rejection(scanDataset({ files: [f], maxReadBytes: gz.length * 5 }));
		expect(err.code).toBe("TOO_LARGE");
		expect(err.message).toContain(f);
		const plain = put(d, "plain.jsonl", big);
		expect((await rejection(scanDataset({ files: [plain], maxReadBytes: big.length - 1 }))).code).toBe("TOO_LARGE");
		expect((await scanDataset({ files: [f, plain], maxReadBytes: 2 * big.length })).records).toBe(40000);
	});

	it("refuses a truncated gzip stream with DATA_INVALID", async () => {
		const d = tmp();
		const big = jsonl(Array.from({ length: 2000 }, (_, i) => ({ text: `record ${i} ${"x".repeat(i % 50)}` })));
		const gz = gzipSync(big);
		const f = put(d, "cut.jsonl.gz", gz.subarray(0, gz.length - 100));
		const err = await rejection(scanDataset({ files: [f] }));
		expect(err.code).toBe("DATA_INVALID");
		expect(err.message).toContain(f);
	});
});

describe("a JSON array", () => {
	/** A string whose JSON text holds every character the splitter must not mistake for structure. */
	const tricky = (i: number) => `q${i}: [a, b] {c: "d"} \\ "quoted" , ] } \u00e9\u{1F469}\u200D\u{1F4BB} \\"`;

	it("is split element by element across 1 MiB chunks, never parsed whole, with each element's line", async () => {
		const d = tmp();
		const records: unknown[] = [];
		const parts: string[] = ["[\n"];
		let bytes = 2;
		const boundaries = [1 << 20, 2 << 20];
		let emojiAcross = false;
		for (let i = 0; bytes < (2 << 20) + 300_000; i++) {
			let r: Record<string, unknown> = {
				instruction: tricky(i),
				input: i % 3 === 0 ? "" : `context ${"lorem ".repeat(i % 40)}`,
				output: `answer ${i}`,
				meta: { tags: [["x", i], { deep: [1, [2, [3]]] }], n: i / 7, ok: i % 2 === 0, none: null },
			};
			let text = JSON.stringify(r);
			const next = boundaries.find((b) => bytes < b && bytes + Buffer.byteLength(text) + 2 > b);
			if (next !== undefined && !emojiAcross) {
				// pad this element so that a 4-byte emoji straddles the chunk boundary
				const at = Buffer.byteLength(text.slice(0, text.indexOf("answer")));
				const pad = next - bytes - at - 2;
				if (pad > 0) {
					r = { ...r, output: `${"p".repeat(pad)}\u{1F600} answer ${i}` };
					text = JSON.stringify(r);
					const emoji = bytes + Buffer.byteLength(text.slice(0, text.indexOf("\u{1F600}")));
					emojiAcross = emoji < next && emoji + 4 > next;
				}
			}
			records.push(r);
			const sep = records.length === 1 ? "" : ",\n";
			parts.push(sep, text);
			bytes += Buffer.byteLength(sep) + Buffer.byteLength(text);
		}
		parts.push("\n]\n");
		const whole = parts.join("");
		expect(Buffer.byteLength(whole)).toBeGreaterThan(2 << 20);
		expect(emojiAcross).toBe(true);
		const f = put(d, "array.json", whole);
		const parse = vi.spyOn(JSON, "parse");
		const out = await items([f]);
		const longest = Math.max(...parse.mock.calls.map((c) => String(c[0]).length));
		parse.mockRestore();
		expect(out.filter((i) => i.error !== undefined)).toEqual([]);
		expect(out.length).toBe(records.length);
		expect(out.map((i) => i.value)).toEqual(records);
		// one element per line after "[": element i starts on line i + 2
		expect(out.map((i) => i.line)).toEqual(records.map((_, i) => i + 2));
		expect(longest).toBeLessThan(20_000);
		// gzip: the decompressor's small chunks split elements and characters everywhere
		const gz = await items([put(d, "array.json.gz", gzipSync(whole))]);
		expect(gz.map((i) => i.value)).toEqual(records);
		expect(gz.map((i) => i.line)).toEqual(out.map((i) => i.line));
	});

	it("reads a compact one-line array, with a BOM, gzip or not", async () => {
		const d = tmp();
		const text = `\uFEFF ${JSON.stringify(RECORDS)} \n`;
		for (const f of [put(d, "a.json", text), put(d, "a.json.gz", gzipSync(text))]) {
			const out = await items([f]);
			expect(out.map((i) => [i.line, i.value])).toEqual(RECORDS.map((r) => [1, r]));
		}
	});

	it("reports a malformed element with its line and reads the others", async () => {
		const d = tmp();
		const f = put(
			d,
			"bad.json",
			`[\n${JSON.stringify(RECORDS[0])},\n{"instruction": oops},\n${JSON.stringify(RECORDS[1])}\n]`,
		);
		const out = await items([f]);
		expect(out.map((i) => i.value ?? i.error?.slice(0, 14))).toEqual([RECORDS[0], "not valid JSON", RECORDS[1]]);
		expect(out[1]?.line).toBe(3);
	});

	it("refuses an array that is not closed and data after the array (DATA_INVALID)", async () => {
		const d = tmp();
		const open = put(d, "open.json", `[${JSON.stringify(RECORDS[0])},`);
		expect((await rejection(items([open]))).code).toBe("DATA_INVALID");
		const after = put(d, "after.json", `[${JSON.stringify(RECORDS[0])}] {"x": 1}`);
		expect((await rejection(items([after]))).code).toBe("DATA_INVALID");
	});
});

describe("files that are no dataset", () => {
	const pretty = JSON.stringify(
		{ name: "my-app", version: "1.0.0", scripts: { test: "vitest" }, dependencies: { zod: "^4" }, private: true },
		null,
		2,
	);
	const cases: [string, string | Buffer][] = [
		["image.png", Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52])],
		["random.jsonl", Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256))],
		["table.csv", "prompt,completion\nwhat is 2+2?,4\nname a colour,red\n"],
		["table.jsonl", "prompt,completion\nwhat is 2+2?,4\n"],
		["package.json", `${pretty}\n`],
		["config.jsonl", `${JSON.stringify({ name: "my-app", version: "1.0.0", scripts: { test: "vitest" } })}\n`],
		["numbers.json", "[1, 2, 3]"],
		["strings.jsonl", '"a"\n"b"\n'],
	];

	it.each(cases)("%s → DATA_INVALID, one line naming the file", async (name, data) => {
		const d = tmp();
		const f = put(d, name, data);
		const err = await rejection(scanDataset({ files: [f] }));
		expect(err.code).toBe("DATA_INVALID");
		expect(err.message).toContain(f);
	});

	it("an empty file, or one of only blank lines → DATA_INVALID", async () => {
		const d = tmp();
		for (const f of [
			put(d, "empty.jsonl", ""),
			put(d, "blank.jsonl", "\n  \n\r\n"),
			put(d, "empty.jsonl.gz", gzipSync("")),
		]) {
			const err = await rejection(scanDataset({ files: [f] }));
			expect(err.code).toBe("DATA_INVALID");
			expect(err.message).toMatch(/empty/);
		}
	});

	it("an empty JSON array has no records → DATA_INVALID", async () => {
		const d = tmp();
		const err = await rejection(scanDataset({ files: [put(d, "none.json", "[ ]")] }));
		expect(err.code).toBe("DATA_INVALID");
	});
});

describe("a directory of shards", () => {
	it("scans a hidden shard and data under another name (a trainer may load them): nothing is skipped unseen", async () => {
		const d = tmp();
		const r = { prompt: "What does the parser module do?", completion: "It parses." };
		put(d, "train.jsonl", jsonl([r]));
		put(d, ".extra.jsonl", jsonl([r]));
		put(d, "more.txt", `\ufeff ${jsonl([r])}`);
		put(d, "packed.bin", gzipSync(jsonl([r])));
		expect(await datasetFiles([d])).toEqual(
			[".extra.jsonl", "more.txt", "packed.bin", "train.jsonl"].map((p) => join(d, p)),
		);
	});

	it("reads its dataset files sorted by path, recursing, skipping hidden directories and files that are not data", async () => {
		const d = tmp();
		mkdirSync(join(d, "part-b"));
		mkdirSync(join(d, ".cache"));
		mkdirSync(join(d, "part-a"));
		const r = (i: number) => ({ prompt: `question ${i} about the weather in town ${i}`, completion: `answer ${i}` });
		put(d, "train-00001-of-00002.jsonl", jsonl([r(2), r(3)]));
		put(d, "train-00000-of-00002.jsonl.gz", gzipSync(jsonl([r(0), r(1)])));
		put(d, "part-b/x.json", JSON.stringify([r(6)]));
		put(d, "part-a/x.ndjson", jsonl([r(4), r(5)]));
		put(d, ".cache/y.jsonl", jsonl([{ prompt: "cached", completion: "no" }]));
		put(d, "README.md", "# the dataset\n");
		put(d, "stats.csv", "a,b\n");
		put(d, ".gitattributes", "*.jsonl filter=lfs\n");
		const files = await datasetFiles([d]);
		expect(files).toEqual(
			["part-a/x.ndjson", "part-b/x.json", "train-00000-of-00002.jsonl.gz", "train-00001-of-00002.jsonl"].map((p) =>
				join(d, p),
			),
		);
		const report = await scanDataset({ files });
		expect(report.records).toBe(7);
		expect(report.lineage.files.map((f) => [f.path, f.records])).toEqual([
			[join(d, "part-a/x.ndjson"), 2],
			[join(d, "part-b/x.json"), 1],
			[join(d, "train-00000-of-00002.jsonl.gz"), 2],
			[join(d, "train-00001-of-00002.jsonl"), 2],
		]);
		// record order is file order: the same records in one file give the same Merkle root
		const one = put(tmp(), "all.jsonl", jsonl([4, 5, 6, 0, 1, 2, 3].map(r)));
		expect((await scanDataset({ files: [one] })).lineage.merkle_root).toBe(report.lineage.merkle_root);
	});

	it("keeps files given by name as given, and refuses a directory with no dataset file", async () => {
		const d = tmp();
		const b = put(d, "b.jsonl", jsonl(RECORDS));
		const a = put(d, "a.txt", jsonl(RECORDS));
		expect(await datasetFiles([b, a])).toEqual([b, a]);
		const empty = join(d, "empty");
		mkdirSync(empty);
		put(empty, "notes.txt", "nothing here\n");
		mkdirSync(join(empty, ".cache"));
		put(empty, ".cache/x.jsonl", jsonl(RECORDS));
		const err = await rejection(datasetFiles([empty]));
		expect(err.code).toBe("DATA_INVALID");
	});
});

describe("Parquet, written by parquetjs-lite", () => {
	const instruction = Array.from({ length: 500 }, (_, i) => ({
		instruction: `Explain item ${i} of the list — café ${"\u{1F469}\u200D\u{1F4BB}".repeat(i % 2)}`,
		input: i % 4 === 0 ? "" : `context ${i}`,
		output: `Item ${i} is ${i % 3 === 0 ? "prime-ish" : "ordinary"}.`,
		label: i % 5,
	}));
	const chat = Array.from({ length: 120 }, (_, i) => ({
		messages: [
			{ role: "system", content: "You are helpful." },
			{ role: "user", content: `What is ${i} + ${i}?` },
			...(i % 3 === 0
				? [
						{ role: "assistant", content: "Let me think." },
						{ role: "user", content: "Go on." },
					]
				: []),
			{ role: "assistant", content: `${2 * i}` },
		],
	}));

	async function writeInstruction(
		path: string,
		compression: "SNAPPY" | "UNCOMPRESSED",
		rowGroupSize: number,
	): Promise<void> {
		const schema = new parquet.ParquetSchema({
			instruction: { type: "UTF8", compression },
			input: { type: "UTF8", compression },
			output: { type: "UTF8", compression },
			label: { type: "INT64", compression },
		});
		const w = await parquet.ParquetWriter.openFile(schema, path, {
			rowGroupSize,
			useDataPageV2: compression === "SNAPPY",
		});
		for (const r of instruction) await w.appendRow(r);
		await w.close();
	}

	async function writeChat(path: string, compression: "SNAPPY" | "UNCOMPRESSED"): Promise<void> {
		const schema = new parquet.ParquetSchema({
			messages: {
				repeated: true,
				fields: { role: { type: "UTF8", compression }, content: { type: "UTF8", compression } },
			},
		});
		const w = await parquet.ParquetWriter.openFile(schema, path, { rowGroupSize: 50, useDataPageV2: false });
		for (const r of chat) await w.appendRow(r);
		await w.close();
	}

	function codecs(path: string): string[] {
		const buf = readFileSync(path);
		const meta = parquetMetadata(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length) as ArrayBuffer);
		return [...new Set(meta.row_groups.flatMap((g) => g.columns.map((c) => String(c.meta_data?.codec))))];
	}

	// (parquetjs-lite refuses to write NaN; ±Infinity takes the same path)
	it("a row whose double is ±Infinity is one malformed record, and its value still counts in the root", async () => {
		const d = tmp();
		const schema = new parquet.ParquetSchema({
			instruction: { type: "UTF8" },
			output: { type: "UTF8" },
			score: { type: "DOUBLE" },
		});
		const write = async (path: string, bad: number) => {
			const w = await parquet.ParquetWriter.openFile(schema, path);
			for (let i = 0; i < 20; i++)
				await w.appendRow({ instruction: `Explain item ${i}.`, output: `Item ${i}.`, score: i === 3 ? bad : i / 2 });
			await w.close();
		};
		const [nan, inf] = [join(d, "minus-inf.parquet"), join(d, "inf.parquet")];
		await write(nan, Number.NEGATIVE_INFINITY);
		await write(inf, Number.POSITIVE_INFINITY);
		const [a, b] = [await scanDataset({ files: [nan] }), await scanDataset({ files: [inf] })];
		expect(a.records).toBe(20);
		const malformed = a.findings.filter((x) => x.id === "malformed-record");
		expect(malformed.map((x) => x.records)).toEqual([[3]]);
		expect(malformed[0]?.message).toMatch(/or NaN\): it has no canonical JSON/);
		expect(b.findings.filter((x) => x.id === "malformed-record").map((x) => x.records)).toEqual([[3]]);
		expect(a.lineage.merkle_root).not.toBe(b.lineage.merkle_root);
	});

	it.each(["SNAPPY", "UNCOMPRESSED"] as const)(
		"%s pages, several row groups: rows equal the JSON lines of the same records, and the same Merkle root",
		async (compression) => {
			const d = tmp();
			const pq = join(d, "train.parquet");
			await writeInstruction(pq, compression, 64);
			expect(codecs(pq)).toEqual([compression]);
			const rows = await items([pq]);
			expect(rows.map((r) => r.value)).toEqual(instruction);
			expect(rows.map((r) => r.line)).toEqual(instruction.map((_, i) => i + 1));
			const jl = put(d, "train.jsonl", jsonl(instruction));
			const [a, b] = [await scanDataset({ files: [pq] }), await scanDataset({ files: [jl] })];
			expect(a.records).toBe(instruction.length);
			expect(a.formats[pq]).toBe("instruction");
			expect(a.lineage.merkle_root).toBe(b.lineage.merkle_root);
			expect(a.lineage.leaf_prefixes).toBe(b.lineage.leaf_prefixes);
			expect(a.lineage.files[0]).toEqual({
				path: pq,
				sha256: createHash("sha256").update(readFileSync(pq)).digest("hex"),
				bytes: readFileSync(pq).length,
				records: instruction.length,
			});
		},
	);

	it.each(["SNAPPY", "UNCOMPRESSED"] as const)(
		"%s chat records (a repeated group of turns) equal their JSON lines",
		async (compression) => {
			const d = tmp();
			const pq = join(d, "chat.parquet");
			await writeChat(pq, compression);
			expect(codecs(pq)).toEqual([compression]);
			expect((await items([pq])).map((r) => r.value)).toEqual(chat);
			const jl = put(d, "chat.jsonl", jsonl(chat));
			const [a, b] = [await scanDataset({ files: [pq] }), await scanDataset({ files: [jl] })];
			expect(a.formats[pq]).toBe("chat");
			expect(a.lineage.merkle_root).toBe(b.lineage.merkle_root);
		},
	);

	it("found by its magic bytes whatever the name; a Parquet shard in a directory beside JSON lines", async () => {
		const d = tmp();
		await writeInstruction(join(d, "a.parquet"), "SNAPPY", 1000);
		put(d, "b.jsonl", jsonl(instruction.slice(0, 10)));
		const files = await datasetFiles([d]);
		const r = await scanDataset({ files });
		expect(r.records).toBe(instruction.length + 10);
		const renamed = put(d, "renamed.jsonl", readFileSync(join(d, "a.parquet")));
		expect((await items([renamed])).length).toBe(instruction.length);
	});

	it("refuses a truncated Parquet file with DATA_INVALID", async () => {
		const d = tmp();
		const pq = join(d, "t.parquet");
		await writeInstruction(pq, "SNAPPY", 1000);
		const cut = put(d, "cut.parquet", readFileSync(pq).subarray(0, 200));
		const err = await rejection(scanDataset({ files: [cut] }));
		expect(err.code).toBe("DATA_INVALID");
		expect(err.message).toContain(cut);
	});
});
