import {
	copyFileSync,
	linkSync,
	mkdirSync,
	mkdtempSync,
	readFileSync,
	rmSync,
	symlinkSync,
	writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { onnxScanner } from "../../../lib/core/formats/onnx";
import { ProtoError, ProtoSource } from "../../../lib/core/formats/protobuf";
import { BufferSource } from "../../../lib/core/formats/source";
import { verdictOf } from "../../../lib/core/formats/types";
import { fuzzScanner, scanBuffer } from "../../fixtures/formats/fuzz";

const dir = join(__dirname, "../../fixtures/formats/onnx");
const fx = (name: string) => readFileSync(join(dir, name));
const scanFixture = (name: string, modelDir?: string) =>
	scanBuffer(onnxScanner, fx(name), name, { path: join(dir, name), modelDir: modelDir ?? join(dir, name, "..") });

/** Protobuf wire helpers for hand-built models: a varint, and a length-delimited field. */
const varint = (n: number) => {
	const out: number[] = [];
	do {
		out.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
		n >>>= 7;
	} while (n > 0);
	return Buffer.from(out);
};
const lenField = (field: number, body: Buffer) =>
	Buffer.concat([Buffer.from([(field << 3) | 2]), varint(body.length), body]);

const tmp = mkdtempSync(join(tmpdir(), "ftguard-onnx-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("onnx", () => {
	it("detects real ONNX files by content", () => {
		for (const n of ["clean.onnx", "nested-subgraph.onnx", "external-ok/model.onnx"]) {
			const b = fx(n);
			expect(onnxScanner.detect(b.subarray(0, 4096), "renamed.bin", b.length)).toBe(true);
		}
		expect(onnxScanner.detect(Buffer.from("GGUF\x03\x00\x00\x00"), "x.onnx", 8)).toBe(false);
		expect(onnxScanner.detect(Buffer.from([0x80, 0x02, 0x7d]), "x.onnx", 3)).toBe(false);
		const st = Buffer.alloc(16);
		st.writeBigUInt64LE(8n);
		st.write("{}      ", 8);
		expect(onnxScanner.detect(st, "x.bin", 16)).toBe(false);
	});

	it("clean model and a model-local function are safe", async () => {
		expect(await scanFixture("clean.onnx")).toEqual({ findings: [] });
		expect(await scanFixture("local-function.onnx")).toEqual({ findings: [] });
	});

	it("external data inside the model directory is safe; a range past its end is malformed", async () => {
		// the external file is named as raw bytes onnxruntime reads: the engine accepts it as raw weights of this model
		expect(await scanFixture("external-ok/model.onnx")).toEqual({
			findings: [],
			rawReferences: [join(dir, "external-ok", "weights.bin")],
		});
		const r = await scanFixture("external-ok/range.onnx");
		expect(r.malformed).toMatch(/beyond the end of weights.bin/);
		expect(verdictOf(r)).toBe("malformed");
	});

	it("external data with '..' or an absolute path → external-data-escape (critical)", async () => {
		for (const n of ["external-traversal.onnx", "external-absolute.onnx"]) {
			const r = await scanFixture(n);
			expect(r.findings).toEqual([
				expect.objectContaining({ id: "external-data-escape", severity: "critical", location: "tensor W" }),
			]);
			expect(verdictOf(r)).toBe("unsafe");
		}
	});

	it("missing external file → external-data-missing (medium)", async () => {
		const r = await scanFixture("external-missing.onnx");
		expect(r.findings).toEqual([expect.objectContaining({ id: "external-data-missing", severity: "medium" })]);
		expect(verdictOf(r)).toBe("safe");
	});

	it("a symlink or a hard link as external data → escape", async () => {
		const outside = join(tmp, "secret.txt");
		writeFileSync(outside, "0123456789abcdef0123");
		for (const kind of ["symlink", "hardlink"] as const) {
			const m = join(tmp, kind);
			mkdirSync(m);
			copyFileSync(join(dir, "external-ok/model.onnx"), join(m, "model.onnx")); // names "weights.bin"
			if (kind === "symlink") symlinkSync(outside, join(m, "weights.bin"));
			else linkSync(outside, join(m, "weights.bin"));
			const r = await scanBuffer(onnxScanner, readFileSync(join(m, "model.onnx")), "model.onnx", {
				path: join(m, "model.onnx"),
				modelDir: m,
			});
			expect(r.findings).toEqual([expect.objectContaining({ id: "external-data-escape", severity: "critical" })]);
			expect(r.findings[0]?.message).toMatch(kind === "symlink" ? /symlink/ : /hard link/);
		}
	});

	it("a location that leaves the model directory through a symlinked directory → escape", async () => {
		const outsideDir = join(tmp, "outside");
		mkdirSync(outsideDir);
		writeFileSync(join(outsideDir, "weights.bin"), Buffer.alloc(16));
		const m = join(tmp, "model-sub");
		mkdirSync(m);
		symlinkSync(outsideDir, join(m, "sub"));
		copyFileSync(join(dir, "external-subdir.onnx"), join(m, "model.onnx"));
		const r = await scanBuffer(onnxScanner, fx("external-subdir.onnx"), "model.onnx", {
			path: join(m, "model.onnx"),
			modelDir: m,
		});
		expect(r.findings).toEqual([expect.objectContaining({ id: "external-data-escape", severity: "critical" })]);
		expect(r.findings[0]?.message).toMatch(/symlink outside/);
		// the same layout with a real directory is fine
		const ok = join(tmp, "model-real");
		mkdirSync(join(ok, "sub"), { recursive: true });
		writeFileSync(join(ok, "sub", "weights.bin"), Buffer.alloc(16));
		const r2 = await scanBuffer(onnxScanner, fx("external-subdir.onnx"), "model.onnx", {
			path: join(ok, "model.onnx"),
			modelDir: ok,
		});
		expect(r2).toEqual({ findings: [], rawReferences: [join(ok, "sub", "weights.bin")] });
	});

	it("custom op domain → custom-op-domain (high); Python op → python-op (critical); contrib → low", async () => {
		const c = await scanFixture("custom-domain.onnx");
		expect(c.findings).toEqual([expect.objectContaining({ id: "custom-op-domain", severity: "high" })]);
		expect(c.findings[0]?.message).toContain("com.evil.ops::Backdoor");
		const p = await scanFixture("python-op.onnx");
		expect(p.findings).toEqual([expect.objectContaining({ id: "python-op", severity: "critical" })]);
		const m = await scanFixture("contrib-op.onnx");
		expect(m.findings).toEqual([expect.objectContaining({ id: "runtime-contrib-op", severity: "low" })]);
		expect(verdictOf(m)).toBe("safe");
	});

	it("follows If branches (Constant tensors with external data, PyOp) and function bodies", async () => {
		const r = await scanFixture("nested-subgraph.onnx");
		const ids = r.findings.map((f) => f.id).sort();
		expect(ids).toEqual(["external-data-escape", "python-op"]);
		expect(r.findings.find((f) => f.id === "python-op")?.location).toContain("if0");
		const f = await scanFixture("function-custom-op.onnx");
		expect(f.findings).toEqual([
			expect.objectContaining({ id: "custom-op-domain", location: expect.stringContaining("function local.fn::Wrap") }),
		]);
	});

	it("wire-format errors are malformed, not exceptions", async () => {
		const clean = fx("clean.onnx");
		expect((await scanBuffer(onnxScanner, clean.subarray(0, clean.length - 3), "m.onnx")).malformed).toMatch(/^onnx: /);
		expect((await scanBuffer(onnxScanner, Buffer.from([0x0b, 0x00]), "m.onnx")).malformed).toMatch(/wire type 3/);
		expect(
			(
				await scanBuffer(
					onnxScanner,
					Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
					"m.onnx",
				)
			).malformed,
		).toMatch(/varint/);
		expect((await scanBuffer(onnxScanner, Buffer.from([0x3a, 0xff, 0xff, 0xff, 0x0f]), "m.onnx")).malformed).toMatch(
			/length/,
		);
	});

	it("graph nesting is bounded", async () => {
		// graph{ node{ attribute{ g: graph{ ... } } } } nested 100 deep, built inside out
		let inner = Buffer.alloc(0);
		for (let i = 0; i < 100; i++) inner = lenField(1, lenField(5, lenField(6, inner)));
		const model = Buffer.concat([Buffer.from([0x08, 0x08]), lenField(7, inner)]);
		expect((await scanBuffer(onnxScanner, model, "deep.onnx")).malformed).toMatch(/nested deeper/);
	});

	it("skips tensor bytes: raw_data is never read", async () => {
		// an initializer with 4 MiB raw_data (field 9) inside the graph
		const raw = Buffer.alloc(4 << 20);
		const tensor = Buffer.concat([Buffer.from([0x42, 1, 0x57]), lenField(9, raw)]);
		const model = Buffer.concat([Buffer.from([0x08, 0x08]), lenField(7, lenField(5, tensor))]);
		const src = new BufferSource(model);
		const ps = new ProtoSource(src);
		expect(ProtoError).toBeDefined();
		expect(ps.size).toBe(model.length);
		const r = await onnxScanner.scan({
			source: src,
			name: "m.onnx",
			path: "/x/m.onnx",
			policy: { allowPickle: false },
		});
		expect(r).toEqual({ findings: [] });
		expect(src.bytesRead).toBeLessThan(140_000);
	});

	it("raw_data must match dims × element size, as onnxruntime requires", async () => {
		// initializer "w": FLOAT (1) with dims [2, 3] → 24 bytes of raw_data
		const tensor = (dims: Buffer, dataType: number, rawBytes: number) =>
			Buffer.concat([
				dims,
				Buffer.from([0x10, dataType]),
				lenField(8, Buffer.from("w")),
				lenField(9, Buffer.alloc(rawBytes)),
			]);
		const model = (t: Buffer) => Buffer.concat([Buffer.from([0x08, 0x08]), lenField(7, lenField(5, t))]);
		const packed = lenField(1, Buffer.from([2, 3]));
		const unpacked = Buffer.from([0x08, 2, 0x08, 3]);
		expect(await scanBuffer(onnxScanner, model(tensor(packed, 1, 24)), "m.onnx")).toEqual({ findings: [] });
		expect(await scanBuffer(onnxScanner, model(tensor(unpacked, 1, 24)), "m.onnx")).toEqual({ findings: [] });
		// INT4 (22): 6 elements in 3 bytes
		expect(await scanBuffer(onnxScanner, model(tensor(packed, 22, 3)), "m.onnx")).toEqual({ findings: [] });
		expect((await scanBuffer(onnxScanner, model(tensor(packed, 1, 20)), "m.onnx")).malformed).toBe(
			"onnx: tensor w raw_data is 20 bytes but dims [2, 3] of data type 1 need 24",
		);
		expect((await scanBuffer(onnxScanner, model(tensor(unpacked, 7, 24)), "m.onnx")).malformed).toMatch(/need 48$/);
		const negative = Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
		expect((await scanBuffer(onnxScanner, model(tensor(negative, 1, 4)), "m.onnx")).malformed).toMatch(/negative/);
	});

	it("fuzz: every mutant gets a result", async () => {
		const names = [
			"clean.onnx",
			"nested-subgraph.onnx",
			"local-function.onnx",
			"external-ok/model.onnx",
			"custom-domain.onnx",
		];
		await fuzzScanner(
			onnxScanner,
			names.map((n) => ({ name: n, bytes: fx(n) })),
			{ runs: 200, path: join(dir, "external-ok/model.onnx"), modelDir: join(dir, "external-ok") },
		);
	});
});
