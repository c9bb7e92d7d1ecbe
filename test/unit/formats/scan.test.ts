/** The engine's fail-closed choices, with the real scanners and real fixture bytes. */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync, gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { defaultScanOptions } from "../../../lib/core/formats";
import { scanPaths, scanSource } from "../../../lib/core/formats/scan";
import { BufferSource, FileSource } from "../../../lib/core/formats/source";
import type { Scanner } from "../../../lib/core/formats/types";
import { member } from "../../helpers/tar";
import { zip } from "../../helpers/zip";

const PICKLES = join(__dirname, "../../fixtures/pickle");
const payload = readFileSync(join(PICKLES, "malicious-os-system.pkl"));
const benignNpy = readFileSync(join(PICKLES, "benign-float32.npy"));

function dir(files: Record<string, Buffer | string>): string {
	const d = mkdtempSync(join(tmpdir(), "ftguard-scan-"));
	for (const [name, data] of Object.entries(files)) {
		mkdirSync(join(d, name, ".."), { recursive: true });
		writeFileSync(join(d, name), data);
	}
	return d;
}

const scan = (paths: string[], extra: { allowPickle?: boolean; strict?: boolean; scanners?: Scanner[] } = {}) =>
	scanPaths(paths, {
		...defaultScanOptions(),
		...(extra.scanners ? { scanners: extra.scanners } : {}),
		policy: { allowPickle: extra.allowPickle ?? false },
		strict: extra.strict ?? false,
	});

describe("when a payload hides in an archive another scanner claims", () => {
	it("finds a torch pickle inside a 'Keras' archive (metadata.json first)", async () => {
		// The first entry is padded past the 64 KiB the engine looks at, so only the
		// Keras scanner claims the file by its head.
		const archive = zip([
			{ name: "metadata.json", data: Buffer.from(`{"keras_version":"3.3.3"}${" ".repeat(70_000)}`), method: 0 },
			{ name: "config.json", data: Buffer.from('{"class_name":"Sequential","config":{"layers":[]}}') },
			{ name: "archive/data.pkl", data: payload, method: 0 },
		]);
		const r = await scan([dir({ "model.keras": archive })], { allowPickle: true });
		expect(r.files[0]).toMatchObject({ format: "keras", verdict: "unsafe" });
		expect(r.files[0]?.findings.map((f) => f.id)).toContain("dangerous-global");
	});

	it("finds it in an archive no scanner claims, under a name that is not .pkl", async () => {
		const archive = zip([
			{ name: "README", data: Buffer.from("nothing to see") },
			{ name: "x/payload", data: payload, method: 0 },
		]);
		const r = await scan([dir({ "bundle.zip": archive })], { allowPickle: true });
		expect(r.files[0]?.verdict).toBe("unsafe");
		expect(r.files[0]?.findings.some((f) => f.id === "dangerous-global" && /system/.test(f.message))).toBe(true);
	});

	it("leaves a benign npz safe", async () => {
		const r = await scan([dir({ "arrays.npz": zip([{ name: "w.npy", data: benignNpy, method: 0 }]) })]);
		expect(r.files[0]).toMatchObject({ format: "numpy-npz", verdict: "safe", findings: [] });
	});
});

describe("when names lie", () => {
	it("recognises a pickle renamed .safetensors by its bytes", async () => {
		const r = await scan([dir({ "model.safetensors": payload })]);
		expect(r.files[0]).toMatchObject({ format: "pickle", verdict: "unsafe" });
	});

	it("raw bytes no loader explains are not safe; the same bytes referenced as an ONNX model's external data are", async () => {
		const raw = Buffer.alloc(4096);
		raw.writeFloatLE(0.5, 4);
		const alone = await scan([dir({ "weights.bin": raw })]);
		expect(alone.files[0]).toMatchObject({ format: "unknown", verdict: "unsafe" });
		expect(alone.files[0]?.findings).toContainEqual(
			expect.objectContaining({ id: "unknown-format", severity: "high" }),
		);
		// onnxruntime reads external data as raw bytes, never through a parser that could run code
		const onnx = join(__dirname, "../../fixtures/formats/onnx/external-ok");
		const model = dir({
			"model.onnx": readFileSync(join(onnx, "model.onnx")),
			"weights.bin": readFileSync(join(onnx, "weights.bin")),
		});
		const r = await scan([model]);
		expect(r.files.map((f) => [f.format, f.verdict])).toEqual([
			["onnx", "safe"],
			["raw-weights", "safe"],
		]);
	});

	it("a name claiming a format the bytes are not is malformed, not unknown", async () => {
		const junk = Buffer.from("these bytes are no model format at all \x01\x02\x03");
		const names = ["m.safetensors", "m.gguf", "m.onnx", "m.npy", "m.keras", "m.joblib"];
		const r = await scan([dir(Object.fromEntries(names.map((n) => [n, junk])))]);
		expect(r.files.map((f) => [f.path.split("/").pop(), f.verdict])).toEqual(
			[...names].sort().map((n) => [n, "malformed"]),
		);
	});

	it("analyses a pickle-named file that starts with a pickle opcode even when the heuristics doubt it", async () => {
		// Protocol 0: GLOBAL then garbage the heuristics would not call a pickle.
		const r = await scan([dir({ "evil.pt": Buffer.from("cposix\nsystem\n\x00\x00") })]);
		expect(r.files[0]?.verdict).toBe("unsafe");
	});
});

describe("loaders no scanner stands for", () => {
	const PAY = Buffer.from("cos\nsystem\n(S'touch x'\ntR.");
	it('joblib\'s pre-0.10 zfile ("ZF" + hex length + zlib): decompressed and unpickled as joblib.load does', async () => {
		const z = Buffer.concat([
			Buffer.from("ZF"),
			Buffer.from(`0x${PAY.length.toString(16)}`.padEnd(19)),
			deflateSync(PAY),
		]);
		const r = await scan([dir({ "notes.txt": z })], { allowPickle: true });
		expect(r.files[0]).toMatchObject({ format: "zfile", verdict: "unsafe" });
		expect(r.files[0]?.findings.some((f) => f.id === "dangerous-global" && /system/.test(f.message))).toBe(true);
	});

	it("torch.load's legacy path reads the pickles after a first one that loads (the payload in the second)", async () => {
		// a magic number as a LONG1 pickle (no PROTO: not the legacy-torch layout), then the payload
		const magic = Buffer.from("8a0a6cfc9c46f9206aa850192e", "hex");
		const r = await scan([dir({ "params.msgpack": Buffer.concat([magic, PAY]) })], { allowPickle: true });
		expect(r.files[0]?.verdict).toBe("unsafe");
		expect(r.files[0]?.findings.some((f) => f.id === "dangerous-global")).toBe(true);
	});

	it("a load goes on wherever some loader goes on: pickle._Unpickler (joblib), torch's utf-8, numpy's latin1", async () => {
		const frame = Buffer.alloc(9);
		frame[0] = 0x95;
		frame.writeBigUInt64LE(BigInt(PAY.length + 50), 1);
		const magic = Buffer.from("8a0a6cfc9c46f9206aa850192e", "hex");
		const cases: [string, Buffer, boolean][] = [
			// BUILD with a falsy non-dict state: the C unpickler fails, pickle._Unpickler skips it
			["notes.txt", Buffer.concat([Buffer.from("N)b"), PAY]), false],
			// float() takes "1_0" and " 1"; PyOS_string_to_double does not
			["README.md", Buffer.concat([Buffer.from("F1_0\n0"), PAY]), false],
			["vocab.txt", Buffer.concat([Buffer.from("F 1\n0"), PAY]), false],
			// a FRAME longer than the file: pickle._Unpickler reads what is left
			["params.msgpack", Buffer.concat([Buffer.from("\x880", "latin1"), frame, PAY]), false],
			// a non-ASCII byte string: ASCII fails, torch's utf-8 and numpy's latin1 go on
			["merges.txt", Buffer.concat([Buffer.from("U\x02\xc3\xa90", "latin1"), PAY]), false],
			// the same in a later pickle of a plain pickle file, judged by the --allow-pickle rule
			["model.pt", Buffer.concat([magic, Buffer.from("U\x02\xc3\xa90", "latin1"), PAY]), true],
		];
		for (const [name, bytes, allowPickle] of cases) {
			const r = await scan([dir({ [name]: bytes })], { allowPickle });
			expect(
				r.files[0]?.findings.some((f) => f.id === "dangerous-global" && /system/.test(f.message)),
				`${name}: ${JSON.stringify(r.files[0]?.findings)}`,
			).toBe(true);
		}
	});

	it("a tar is judged as extractall leaves it: links under their own names, paths that leave the directory", async () => {
		const yaml = Buffer.from('model: !!python/object/apply:os.system ["touch x"]\n');
		const end = Buffer.alloc(1024);
		const links = Buffer.concat([
			member("notes.txt", yaml),
			member("config.yaml", Buffer.alloc(0), { type: "2", linkname: "notes.txt" }), // symlink
			member("hparams.yaml", Buffer.alloc(0), { type: "1", linkname: "notes.txt" }), // hard link
			end,
		]);
		const r = await scan([dir({ "model.tar": links })]);
		const where = r.files[0]?.findings.filter((f) => f.id === "yaml-python-tag").map((f) => f.location);
		expect(where).toEqual(["config.yaml", "hparams.yaml"]);
		const slip = Buffer.concat([
			member("../../.local/lib/python3.11/site-packages/x.pth", Buffer.from("import os\n")),
			member("ok/link", Buffer.alloc(0), { type: "2", linkname: "../../../etc/cron.d/x" }),
			member("abs", Buffer.alloc(0), { type: "2", linkname: "/home/user/.bashrc" }),
			end,
		]);
		const s = await scan([dir({ "model.tar": slip })]);
		expect(s.files[0]?.findings.filter((f) => f.id === "archive-path-escape").map((f) => f.location)).toEqual([
			"../../.local/lib/python3.11/site-packages/x.pth",
			"ok/link",
			"abs",
		]);
	});

	it("a gzip member header with a wrong CRC16 is read, as Python's gzip reads it (it never checks it)", async () => {
		const gz = gzipSync(PAY);
		const fh = Buffer.concat([
			gz.subarray(0, 3),
			Buffer.from([(gz[3] as number) | 0x02]),
			gz.subarray(4, 10),
			Buffer.from([0xde, 0xad]),
			gz.subarray(10),
		]);
		const r = await scan([dir({ "payload.pkl.gz": fh })], { allowPickle: true });
		expect(r.files[0]?.findings.some((f) => f.id === "dangerous-global")).toBe(true);
	});

	it("raw bytes a model names are still judged by their name's inert checks (a YAML python tag is not raw weights)", async () => {
		const yaml = Buffer.from('%TAG !p! tag:yaml.org,2002:\n---\nm: !p!python/object/apply:os.system ["x"]\n');
		const r = await scanSource(
			new BufferSource(yaml),
			{ displayPath: "config.yaml", name: "config.yaml", path: "/nowhere/config.yaml", modelDir: undefined, raw: true },
			{ ...defaultScanOptions(), policy: { allowPickle: false } },
		);
		expect(r).toMatchObject({ format: "text", verdict: "unsafe", findings: [{ id: "yaml-python-tag" }] });
	});

	it("a plain zip no scanner claims is opened member by member, not judged as a broken torch zip", async () => {
		const archive = zip([
			{ name: "README.md", data: Buffer.from("# model") },
			{ name: "w.npy", data: benignNpy },
		]);
		const r = await scan([dir({ "bundle.zip": archive })]);
		expect(r.files[0]).toMatchObject({ format: "zip", verdict: "safe" });
	});

	it("sentence-transformers modules.json: a module type outside the library is remote code", async () => {
		const modules = [
			{ idx: 0, name: "0", path: "", type: "sentence_transformers.models.Transformer" },
			{ idx: 1, name: "1", path: "1_Hook", type: "evil_pkg.Hook" },
		];
		const r = await scan([dir({ "modules.json": JSON.stringify(modules) })]);
		expect(r.files[0]).toMatchObject({ format: "hf-config", verdict: "unsafe", findings: [{ id: "remote-code" }] });
	});
});

describe("when a scanner fails", () => {
	it("reports scanner-error: unsafe, never a pass", async () => {
		const broken: Scanner = {
			format: "safetensors",
			detect: () => true,
			scan: async () => {
				throw new TypeError("cannot read properties of undefined");
			},
		};
		const r = await scan([dir({ "a.safetensors": "x" })], { scanners: [broken] });
		expect(r.files[0]).toMatchObject({ verdict: "unsafe", findings: [{ id: "scanner-error", severity: "high" }] });
	});
});

describe("reporting", () => {
	it("lists files sorted, joined under the directory given, with a summary", async () => {
		const d = dir({ "b.pkl": payload, "a/x.npy": benignNpy, "notes.txt": "hello" });
		const r = await scan([d]);
		expect(r.files.map((f) => f.path)).toEqual([join(d, "a/x.npy"), join(d, "b.pkl"), join(d, "notes.txt")]);
		expect(r.summary).toMatchObject({ files: 3, safe: 2, unsafe: 1, malformed: 0, unknown: 0 });
		expect(r.files.map((f) => f.format)).toEqual(["numpy", "pickle", "text"]);
	});

	it("reads only a pickle's bytes from a large legacy checkpoint, not its tensor data", async () => {
		const legacy = readFileSync(join(PICKLES, "benign-state-dict-legacy.pt"));
		const big = Buffer.concat([legacy, Buffer.alloc(8 * 1024 * 1024)]);
		const r = await scan([dir({ "model.pt": big })], { allowPickle: true });
		expect(r.files[0]?.format).toBe("pytorch-legacy");
		expect(r.files[0]?.bytesRead).toBeLessThan(256 * 1024);
	});
});

describe("opening files", () => {
	it("refuses a FIFO without blocking on it (a file swapped for a pipe after the walk)", async () => {
		const dir = mkdtempSync(join(tmpdir(), "ftguard-fifo-"));
		const fifo = join(dir, "weights.bin");
		execFileSync("mkfifo", [fifo]);
		// nothing ever writes to the pipe: a blocking open would hang the test
		const e = await FileSource.open(fifo).then(
			() => undefined,
			(err: unknown) => err,
		);
		expect((e as { code?: string }).code).toBe("SPECIAL_FILE");
	});

	it("reads what it opened and counts the bytes", async () => {
		const dir = mkdtempSync(join(tmpdir(), "ftguard-src-"));
		const p = join(dir, "x.bin");
		writeFileSync(p, Buffer.from("0123456789"));
		const src = await FileSource.open(p);
		expect(src.size).toBe(10);
		expect((await src.read(2, 3)).toString()).toBe("234");
		expect((await src.read(8, 100)).toString()).toBe("89");
		expect(src.bytesRead).toBe(5);
		await src.close();
	});
});
