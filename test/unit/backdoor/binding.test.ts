/**
 * Export binding on real exports (torch.onnx.export, torch.save, safetensors written by
 * test/fixtures/binding/make_binding_fixtures.py): bound pairs in every form the exporter stores weights, and
 * every way a pair fails to bind or cannot be checked.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
	type ArtefactFile,
	type BindingReport,
	bindModel,
	planBinding,
} from "../../../lib/core/backdoor/binding-artefact";
import type { FileOpener } from "../../../lib/core/backdoor/binding-weights";
import { readSafetensorsTensors } from "../../../lib/core/backdoor/binding-weights";
import { type OnnxModel, type OnnxNode, readOnnxModel, writeOnnxModel } from "../../../lib/core/backdoor/onnx-model";
import { allBytes } from "../../../lib/core/backdoor/tensor-bytes";
import { FtguardError } from "../../../lib/core/errors";
import { DataType } from "../../../lib/core/formats/onnx-wire";
import { BufferSource } from "../../../lib/core/formats/source";

const FIXTURES = "test/fixtures/binding";
const fixture = (dir: string, name: string) => readFileSync(join(FIXTURES, dir, name));

/** An artefact in memory: name → bytes. */
type Files = Record<string, Uint8Array>;
const opener =
	(files: Files): FileOpener =>
	async (name) => {
		const b = files[name];
		if (b === undefined) throw new FtguardError("NOT_FOUND", `no ${name}`);
		return new BufferSource(Buffer.from(b));
	};

/** The formats the file scanners would give these names (enough for planBinding). */
const formatOf = (name: string) =>
	name.endsWith(".onnx")
		? "onnx"
		: name.endsWith(".safetensors")
			? "safetensors"
			: name.endsWith(".bin") || name.endsWith(".pt")
				? "pytorch-zip"
				: undefined;

/** Binds model.onnx to every checkpoint of the artefact; one report per checkpoint. */
async function bindAll(files: Files): Promise<BindingReport[]> {
	const list: ArtefactFile[] = Object.keys(files).map((name) => ({ name, format: formatOf(name) }));
	const plan = await planBinding(list, opener(files));
	return Promise.all(plan.sets.map((set) => bindModel("model.onnx", set, opener(files))));
}

/** A fixture directory as an in-memory artefact. */
function dirFiles(dir: string, names: string[]): Files {
	return Object.fromEntries(names.map((n) => [n, fixture(dir, n)]));
}

async function bindOne(files: Files): Promise<BindingReport> {
	const [r, ...rest] = await bindAll(files);
	expect(rest).toEqual([]);
	return r as BindingReport;
}

async function expectCode(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
	const e = await p.then(
		() => undefined,
		(x: unknown) => x,
	);
	expect(e).toBeInstanceOf(FtguardError);
	expect((e as FtguardError).code).toBe(code);
	if (message) expect((e as FtguardError).message).toMatch(message);
	expect((e as FtguardError).message).not.toContain("\n");
}

/** A safetensors file (the format by hand: 8-byte LE header length, JSON header, data). */
function safetensors(tensors: { name: string; dtype: string; shape: number[]; data: Buffer }[]): Buffer {
	const header: Record<string, unknown> = {};
	let at = 0;
	for (const t of tensors) {
		header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + t.data.length] };
		at += t.data.length;
	}
	let json = JSON.stringify(header);
	json += " ".repeat((8 - (json.length % 8)) % 8);
	const len = Buffer.alloc(8);
	len.writeBigUInt64LE(BigInt(json.length));
	return Buffer.concat([len, Buffer.from(json), ...tensors.map((t) => t.data)]);
}

/** The tensors of a fixture safetensors file with their bytes, to rebuild a changed copy. */
async function tensorsOf(dir: string) {
	const ts = await readSafetensorsTensors("x", new BufferSource(fixture(dir, "model.safetensors")));
	return Promise.all(
		ts.map(async (t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: await allBytes(t.bytes) })),
	);
}

const mlpOnnx = () => readOnnxModel(fixture("mlp", "model.onnx"));

describe("export binding: an export and the checkpoint it was exported from", () => {
	it.each([
		["mlp", ["model.safetensors"]],
		["mlp", ["pytorch_model.bin"]],
		["conv", ["model.safetensors"]],
		["mlp-external", ["model.onnx.data", "model.safetensors"]],
	])("binds %s to %s with coverage 1.0, every constant as is", async (dir, weights) => {
		const r = await bindOne(dirFiles(dir, ["model.onnx", ...weights]));
		expect(r.verdict).toBe("bound");
		expect(r.findings).toEqual([]);
		expect(r.coverage.fraction).toBe(1);
		expect(r.unmatched).toEqual([]);
		expect(r.matched.every((m) => m.form === "as-is")).toBe(true);
		expect(r.matched.length).toBe(r.tensors.float);
	});

	it("matches the W^T initializers of MatMul (3-D inputs) as transposed, the rest as is", async () => {
		const r = await bindOne(dirFiles("seq", ["model.onnx", "model.safetensors"]));
		expect(r.verdict).toBe("bound");
		const transposed = r.matched.filter((m) => m.form === "transposed").map((m) => m.tensor);
		expect(transposed.sort()).toEqual(["ff1.weight", "ff2.weight"]);
		// Gemm with transB=1 (2-D input) keeps W as is
		expect(r.matched.find((m) => m.tensor === "head.weight")?.form).toBe("as-is");
	});

	it("matches nn.MultiheadAttention's in_proj_weight, which the exporter stores transposed", async () => {
		const r = await bindOne(dirFiles("mha", ["model.onnx", "model.safetensors"]));
		expect(r.verdict).toBe("bound");
		expect(r.matched.find((m) => m.tensor === "attn.in_proj_weight")?.form).toBe("transposed");
	});

	it.each(["mlp-f16", "mlp-bf16"])("binds a float32 export to the %s checkpoint it was widened from", async (dir) => {
		for (const weights of ["model.safetensors", "pytorch_model.bin"]) {
			const r = await bindOne(dirFiles(dir, ["model.onnx", weights]));
			expect(r.verdict).toBe("bound");
			expect(r.coverage.fraction).toBe(1);
			expect(r.matched.every((m) => m.widenedFrom === (dir === "mlp-f16" ? "F16" : "BF16"))).toBe(true);
		}
	});

	it("binds a sharded checkpoint through its index, as one checkpoint", async () => {
		const names = [
			"model.onnx",
			"model.safetensors.index.json",
			"model-00001-of-00002.safetensors",
			"model-00002-of-00002.safetensors",
		];
		const r = await bindOne(dirFiles("mlp-sharded", names));
		expect(r.weights).toEqual({
			kind: "safetensors",
			files: ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"],
			index: "model.safetensors.index.json",
		});
		expect(r.verdict).toBe("bound");
		expect(r.coverage.fraction).toBe(1);
	});

	it("binds a torch checkpoint listed by a pytorch_model.bin.index.json", async () => {
		const weightMap = Object.fromEntries(
			["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias", "net.4.weight", "net.4.bias"].map((n) => [
				n,
				"pytorch_model-00001-of-00001.bin",
			]),
		);
		const r = await bindOne({
			"model.onnx": fixture("mlp", "model.onnx"),
			"pytorch_model.bin.index.json": Buffer.from(JSON.stringify({ weight_map: weightMap })),
			"pytorch_model-00001-of-00001.bin": fixture("mlp", "pytorch_model.bin"),
		});
		expect(r.weights).toEqual({
			kind: "pytorch",
			files: ["pytorch_model-00001-of-00001.bin"],
			index: "pytorch_model.bin.index.json",
		});
		expect(r.verdict).toBe("bound");
	});

	it("reads a torch checkpoint's strided view, storage offset and tied tensor without unpickling", async () => {
		const r = await bindOne(dirFiles("mlp-views", ["model.onnx", "pytorch_model.bin"]));
		expect(r.verdict).toBe("bound");
		// tied.weight shares net.2.weight's storage: the same bytes, bound by the same constant
		expect(r.matched.filter((m) => m.constant === "net.2.weight").map((m) => m.tensor)).toEqual([
			"net.2.weight",
			"tied.weight",
		]);
		expect(r.coverage.fraction).toBe(1);
	});

	it("accepts a large constant held by a Constant node instead of an initializer", async () => {
		const m = await mlpOnnx();
		const w = m.graph.initializers.find((t) => t.name === "net.0.weight");
		m.graph.initializers = m.graph.initializers.filter((t) => t !== w);
		m.graph.nodes.unshift({
			opType: "Constant",
			domain: "",
			name: "w0",
			inputs: [],
			outputs: ["net.0.weight"],
			attributes: [{ name: "value", type: "tensor", value: w as NonNullable<typeof w> }],
		});
		const r = await bindOne({
			"model.onnx": writeOnnxModel(m),
			"model.safetensors": fixture("mlp", "model.safetensors"),
		});
		expect(r.verdict).toBe("bound");
		expect(r.matched.find((x) => x.tensor === "net.0.weight")?.constant).toBe('Constant "w0" value');
	});
});

describe("export binding: an export that is not the checkpoint's", () => {
	it("names the tensor changed by one ulp: the constant matches nothing, the tensor is unbound", async () => {
		const r = await bindOne(dirFiles("mlp-ulp", ["model.onnx", "model.safetensors"]));
		expect(r.verdict).toBe("mismatch");
		expect(r.unmatched).toEqual([
			{
				constant: "net.2.weight",
				origin: "initializer",
				dtype: "F32",
				dims: [32, 32],
				elements: 1024,
				nearest: { tensor: "net.2.weight", shape: [32, 32] },
			},
		]);
		expect(r.unbound.map((u) => u.tensor)).toEqual(["net.2.weight"]);
		expect(r.findings.map((f) => f.id)).toEqual([
			"export-constant-unmatched",
			"export-tensor-unbound",
			"export-coverage-low",
		]);
		expect(r.findings[0]?.message).toMatch(/net\.2\.weight \[32, 32\] matches no checkpoint tensor/);
	});

	it("flags an extra layer the checkpoint lacks, though every checkpoint tensor is bound", async () => {
		const r = await bindOne(dirFiles("mlp-extra", ["model.onnx", "model.safetensors"]));
		expect(r.verdict).toBe("mismatch");
		expect(r.coverage.fraction).toBe(1);
		// its bias (32 elements) has no twin (the checkpoint's [32] tensors are bound elsewhere), but the graph
		// computes with it and it is more than a few numbers: a weight that is not the checkpoint's
		expect(r.unmatched.map((u) => u.constant)).toEqual(["net.4.weight", "net.4.bias"]);
		expect(r.ignored).toBe(0);
		expect(r.findings.every((f) => f.id === "export-constant-unmatched")).toBe(true);
	});

	it("flags a checkpoint tensor the export lacks: unbound, and coverage below 99%", async () => {
		const r = await bindOne(dirFiles("mlp-missing", ["model.onnx", "model.safetensors"]));
		expect(r.verdict).toBe("mismatch");
		expect(r.unmatched).toEqual([]);
		expect(r.unbound).toEqual([
			{ tensor: "unused.weight", file: "model.safetensors", dtype: "F32", shape: [64, 64], bytes: 16384 },
		]);
		expect(r.coverage.fraction).toBeLessThan(0.99);
		expect(r.findings.map((f) => f.id)).toEqual(["export-tensor-unbound", "export-coverage-low"]);
	});

	it("does not count an initializer no node reads: the checkpoint's tensor is still unbound", async () => {
		const m = await mlpOnnx();
		const unused = (await tensorsOf("mlp-missing")).find((t) => t.name === "unused.weight");
		const data = unused?.data as Buffer;
		m.graph.initializers.push({
			name: "unused.weight",
			dataType: DataType.FLOAT,
			dims: [64, 64],
			data: new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)),
		});
		const r = await bindOne({
			"model.onnx": writeOnnxModel(m),
			"model.safetensors": fixture("mlp-missing", "model.safetensors"),
		});
		expect(r.matched.some((x) => x.tensor === "unused.weight")).toBe(true);
		expect(r.unbound.map((u) => u.tensor)).toEqual(["unused.weight"]);
		expect(r.verdict).toBe("mismatch");
	});

	it("flags a changed bias (10 elements) by its name, and by its shape when the export renamed it", async () => {
		const tensors = await tensorsOf("mlp");
		const bias = tensors.find((t) => t.name === "net.4.bias") as { data: Buffer };
		bias.data = Buffer.from(bias.data);
		bias.data.writeFloatLE(bias.data.readFloatLE(0) + 0.5, 0);
		const weights = safetensors(tensors);
		const byName = await bindOne({ "model.onnx": fixture("mlp", "model.onnx"), "model.safetensors": weights });
		expect(byName.verdict).toBe("mismatch");
		expect(byName.unmatched.map((u) => [u.constant, u.nearest?.tensor])).toEqual([["net.4.bias", "net.4.bias"]]);
		expect(byName.findings[0]?.message).toMatch(/although one has its name/);
		// the same export with the bias initializer renamed: its unbound twin of the same shape still gives it away
		const m: OnnxModel = await mlpOnnx();
		for (const t of m.graph.initializers) if (t.name === "net.4.bias") t.name = "b";
		for (const n of m.graph.nodes) n.inputs = n.inputs.map((i) => (i === "net.4.bias" ? "b" : i));
		const renamed = await bindOne({ "model.onnx": writeOnnxModel(m), "model.safetensors": weights });
		expect(renamed.unmatched.map((u) => [u.constant, u.nearest?.tensor])).toEqual([["b", "net.4.bias"]]);
		expect(renamed.findings[0]?.message).toMatch(/although an unbound one has its shape/);
	});

	it("reports constants the exporter folded (BatchNorm into a convolution) as not checkpoint tensors", async () => {
		const r = await bindOne(dirFiles("convbn", ["model.onnx", "model.safetensors"]));
		expect(r.verdict).toBe("mismatch");
		// the folded weight and bias, each named with an unbound checkpoint tensor of its shape
		expect(r.unmatched.map((u) => [u.dims, u.nearest?.shape])).toEqual([
			[
				[8, 1, 3, 3],
				[8, 1, 3, 3],
			],
			[[8], [8]],
		]);
		expect(r.unmatched[0]?.nearest?.tensor).toBe("c1.weight");
		expect(r.unbound.map((u) => u.tensor).sort()).toEqual(
			["bn.bias", "bn.running_mean", "bn.running_var", "bn.weight", "c1.bias", "c1.weight"].sort(),
		);
	});
});

describe("export binding: what cannot be checked (exit 2, one line)", () => {
	const mlp = () => dirFiles("mlp", ["model.onnx", "model.safetensors"]);

	it.each([
		["garbage", Buffer.from("this is not a model at all\n")],
		["empty", Buffer.alloc(0)],
		["a safetensors file", fixture("mlp", "model.safetensors")],
	])("an ONNX model that is %s is MODEL_MALFORMED", async (_, bytes) => {
		await expectCode(bindAll({ ...mlp(), "model.onnx": bytes }), "MODEL_MALFORMED", /^ONNX model: /);
	});

	it.each([
		["garbage", Buffer.from("garbage"), /HeaderTooSmall/],
		[
			"cut short",
			fixture("mlp", "model.safetensors").subarray(0, 9000),
			/MetadataIncompleteBuffer|InvalidHeaderLength/,
		],
	])("a safetensors file that is %s is MODEL_MALFORMED with the reference's rule", async (_, bytes, rule) => {
		await expectCode(bindAll({ ...mlp(), "model.safetensors": bytes }), "MODEL_MALFORMED", rule);
	});

	it("external data that leaves the model's directory is MODEL_UNSUPPORTED", async () => {
		const files = dirFiles("mlp-external-escape", ["model.onnx", "model.safetensors"]);
		await expectCode(bindAll(files), "MODEL_UNSUPPORTED", /leaves the model directory/);
	});

	it("a torch checkpoint whose pickle weights_only refuses is not read (MODEL_UNSUPPORTED)", async () => {
		const files = {
			"model.onnx": fixture("mlp", "model.onnx"),
			"pytorch_model.bin": readFileSync("test/fixtures/pickle/malicious-torch-zip-deflated.pt"),
		};
		await expectCode(bindAll(files), "MODEL_UNSUPPORTED", /weights_only=True/);
	});

	it("a quantized checkpoint (an I8 tensor of 1,024+ elements) is MODEL_UNSUPPORTED; an I64 buffer is left out", async () => {
		const tensors = await tensorsOf("mlp");
		const ids = { name: "position_ids", dtype: "I64", shape: [1, 64], data: Buffer.alloc(512) };
		const withIds = await bindOne({
			"model.onnx": fixture("mlp", "model.onnx"),
			"model.safetensors": safetensors([...tensors, ids]),
		});
		expect(withIds.verdict).toBe("bound");
		expect(withIds.tensors.skipped).toEqual(["position_ids"]);
		const q = { name: "q.weight", dtype: "I8", shape: [32, 64], data: Buffer.alloc(2048) };
		const quantized = { "model.onnx": fixture("mlp", "model.onnx"), "model.safetensors": safetensors([...tensors, q]) };
		await expectCode(bindAll(quantized), "MODEL_UNSUPPORTED", /q\.weight is I8 \[32, 64\]/);
	});

	it("an index that lists a shard the artefact lacks, or puts a tensor in the wrong shard, is MODEL_MALFORMED", async () => {
		const names = ["model.onnx", "model.safetensors.index.json", "model-00001-of-00002.safetensors"];
		await expectCode(bindAll(dirFiles("mlp-sharded", names)), "MODEL_MALFORMED", /not in the artefact/);
		const index = JSON.parse(fixture("mlp-sharded", "model.safetensors.index.json").toString());
		index.weight_map["net.0.weight"] = "model-00002-of-00002.safetensors";
		const files = {
			...dirFiles("mlp-sharded", [...names, "model-00002-of-00002.safetensors"]),
			"model.safetensors.index.json": Buffer.from(JSON.stringify(index)),
		};
		await expectCode(bindAll(files), "MODEL_MALFORMED", /net\.0\.weight is not in model-00002-of-00002/);
	});
});

/** The MLP's export with `edit` applied to its graph, as bytes. */
async function editedMlp(edit: (g: OnnxModel["graph"]) => void): Promise<Uint8Array> {
	const m = await mlpOnnx();
	edit(m.graph);
	return writeOnnxModel(m);
}

const f32 = (values: number[]) => Float32Array.from(values);

describe("export binding: the ways around it a red team found (docs/backdoor.md, Export binding)", () => {
	it("A1: a torch tensor re-pointed by a pickle BUILD (Tensor.set_) after it is rebuilt is not read", async () => {
		// torch.load(weights_only=True) loads another model's tensors from this file (the generator asserts it)
		const files = { "model.onnx": fixture("mlp", "model.onnx"), ...dirFiles("mlp-torch-build", ["pytorch_model.bin"]) };
		await expectCode(
			bindAll(files),
			"MODEL_UNSUPPORTED",
			/net\.0\.weight is changed after it is rebuilt \(a pickle BUILD/,
		);
	});

	it("A1: a storage record no tensor uses is not read past (every record must be a tensor's)", async () => {
		const files = {
			"model.onnx": fixture("mlp", "model.onnx"),
			...dirFiles("mlp-torch-orphan", ["pytorch_model.bin"]),
		};
		await expectCode(bindAll(files), "MODEL_UNSUPPORTED", /storage record archive\/data\/99 is used by no tensor/);
	});

	it("A2: weights stored as integers and rebuilt at run time are refused; the checkpoint's, read by dead nodes, bind nothing", async () => {
		const files = {
			"model.onnx": fixture("mlp-intweights", "model.onnx"),
			"model.safetensors": fixture("mlp", "model.safetensors"),
		};
		await expectCode(
			bindAll(files),
			"MODEL_UNSUPPORTED",
			/float constant computed at run time from net\.0\.weight__m \[32, 64\] by Cast "net\.0\.weight__mf"/,
		);
	});

	it("A2: a constant read only by dead nodes or by Shape is not part of the computation: its tensor stays unbound", async () => {
		const unused = (await tensorsOf("mlp-missing")).find((t) => t.name === "unused.weight")?.data as Buffer;
		const bytes = await editedMlp((g) => {
			g.initializers.push({
				name: "carrier",
				dataType: DataType.FLOAT,
				dims: [64, 64],
				data: new Float32Array(unused.buffer.slice(unused.byteOffset, unused.byteOffset + unused.byteLength)),
			});
			g.nodes.push(
				{ opType: "Identity", domain: "", name: "dead", inputs: ["carrier"], outputs: ["dead"], attributes: [] },
				{ opType: "Shape", domain: "", name: "shape", inputs: ["carrier"], outputs: ["shape"], attributes: [] },
			);
			g.outputs.push({ name: "shape", elemType: DataType.INT64, shape: [2] });
		});
		const r = await bindOne({ "model.onnx": bytes, "model.safetensors": fixture("mlp-missing", "model.safetensors") });
		expect(r.matched.filter((m) => m.tensor === "unused.weight").map((m) => m.constant)).toEqual(["carrier"]);
		expect(r.unbound.map((u) => u.tensor)).toEqual(["unused.weight"]);
		expect(r.verdict).toBe("mismatch");
	});

	it("A2: a weight dequantized at run time, or ones of a shape, is refused; a scalar computed from constants is not", async () => {
		const quantized = await editedMlp((g) => {
			g.initializers = g.initializers.filter((t) => t.name !== "net.0.weight");
			g.initializers.push(
				{ name: "q", dataType: DataType.INT8, dims: [32, 64], data: new Int8Array(2048).fill(3) },
				{ name: "scale", dataType: DataType.FLOAT, dims: [], data: f32([0.01]) },
			);
			g.nodes.unshift({
				opType: "DequantizeLinear",
				domain: "",
				name: "dq",
				inputs: ["q", "scale"],
				outputs: ["net.0.weight"],
				attributes: [],
			});
		});
		const weights = fixture("mlp", "model.safetensors");
		await expectCode(
			bindAll({ "model.onnx": quantized, "model.safetensors": weights }),
			"MODEL_UNSUPPORTED",
			/computed at run time from q \[32, 64\], scale \[\] by DequantizeLinear "dq"/,
		);
		const ones = await editedMlp((g) => {
			g.initializers = g.initializers.filter((t) => t.name !== "net.4.bias");
			g.initializers.push({ name: "n", dataType: DataType.INT64, dims: [1], data: BigInt64Array.from([10n]) });
			g.nodes.unshift({
				opType: "ConstantOfShape",
				domain: "",
				name: "ones",
				inputs: ["n"],
				outputs: ["net.4.bias"],
				attributes: [
					{ name: "value", type: "tensor", value: { name: "", dataType: DataType.FLOAT, dims: [1], data: f32([1]) } },
				],
			});
		});
		await expectCode(
			bindAll({ "model.onnx": ones, "model.safetensors": weights }),
			"MODEL_UNSUPPORTED",
			/computed at run time from n \[1\] by ConstantOfShape "ones"/,
		);
		// 1/sqrt(4) computed at run time and applied to the logits: small, not a weight
		const scaled = await editedMlp((g) => {
			const gemm = g.nodes.find((n) => n.outputs[0] === "logits") as OnnxNode;
			gemm.outputs = ["raw"];
			g.nodes.push(
				{
					opType: "Constant",
					domain: "",
					name: "four",
					inputs: [],
					outputs: ["four"],
					attributes: [{ name: "value_float", type: "float", value: 4 }],
				},
				{ opType: "Sqrt", domain: "", name: "sqrt", inputs: ["four"], outputs: ["root"], attributes: [] },
				{ opType: "Div", domain: "", name: "div", inputs: ["raw", "root"], outputs: ["logits"], attributes: [] },
			);
		});
		expect((await bindOne({ "model.onnx": scaled, "model.safetensors": weights })).verdict).toBe("bound");
	});

	it("A3: token ids looked up, a mask made additive: bound; ids rewritten before the lookup: a finding", async () => {
		const weights = fixture("tok", "model.safetensors");
		const clean = await bindOne({ "model.onnx": fixture("tok", "model.onnx"), "model.safetensors": weights });
		expect(clean.findings).toEqual([]);
		expect(clean.coverage.fraction).toBe(1);
		// Where(input_ids == 7, 1, input_ids) in front of the embedding: every constant still the checkpoint's
		const filtered = await bindOne({ "model.onnx": fixture("tok-filter", "model.onnx"), "model.safetensors": weights });
		expect(filtered.verdict).toBe("mismatch");
		expect(filtered.coverage.fraction).toBe(1);
		expect(filtered.findings.map((f) => [f.id, f.location])).toEqual([["export-input-rewritten", "input_ids"]]);
		expect(filtered.findings[0]?.message).toMatch(
			/^the export rewrites its token inputs before the lookup: input_ids reaches Equal "is_trigger"/,
		);
	});

	it("A3: a mask tested against 0 (masked_fill's `mask == 0`) is still a mask", async () => {
		const m = await readOnnxModel(fixture("tok", "model.onnx"));
		for (const n of m.graph.nodes) n.inputs = n.inputs.map((i) => (i === "attention_mask" ? "kept" : i));
		m.graph.initializers.push({ name: "zero", dataType: DataType.INT64, dims: [], data: BigInt64Array.from([0n]) });
		m.graph.nodes.unshift(
			{
				opType: "Equal",
				domain: "",
				name: "pad",
				inputs: ["attention_mask", "zero"],
				outputs: ["pad"],
				attributes: [],
			},
			{ opType: "Not", domain: "", name: "not", inputs: ["pad"], outputs: ["not"], attributes: [] },
			{
				opType: "Cast",
				domain: "",
				name: "kept",
				inputs: ["not"],
				outputs: ["kept"],
				attributes: [{ name: "to", type: "int", value: DataType.INT64 }],
			},
		);
		const r = await bindOne({
			"model.onnx": writeOnnxModel(m),
			"model.safetensors": fixture("tok", "model.safetensors"),
		});
		expect(r.findings).toEqual([]);
	});

	it("A3: a mask input computed with beyond a mask (Mod) is a finding too", async () => {
		const m = await readOnnxModel(fixture("tok", "model.onnx"));
		for (const n of m.graph.nodes) n.inputs = n.inputs.map((i) => (i === "attention_mask" ? "odd" : i));
		m.graph.initializers.push({ name: "two", dataType: DataType.INT64, dims: [], data: BigInt64Array.from([2n]) });
		m.graph.nodes.unshift({
			opType: "Mod",
			domain: "",
			name: "mod",
			inputs: ["attention_mask", "two"],
			outputs: ["odd"],
			attributes: [],
		});
		const r = await bindOne({
			"model.onnx": writeOnnxModel(m),
			"model.safetensors": fixture("tok", "model.safetensors"),
		});
		expect(r.findings.map((f) => f.message)).toEqual([
			'the export computes with its integer input attention_mask at Mod "mod" (a mask may only be cast and combined with constants, then added, multiplied or selected with)',
		]);
	});

	it("A4: every checkpoint tensor of 2+ elements must be bound; a renamed [1, n] copy is named with its [n] twin", async () => {
		// the export stores every tensor under 1,024 elements as [1, ...] under another name, reshaped back at run time
		const same = await bindOne({
			"model.onnx": fixture("mlp-small", "model.onnx"),
			"model.safetensors": fixture("mlp", "model.safetensors"),
		});
		expect(same.verdict).toBe("bound");
		expect(same.matched.filter((m) => m.form === "reshaped")).toHaveLength(4);
		// beside a checkpoint whose head (330 elements, 2.4% of the bytes) is another model's
		const r = await bindOne(dirFiles("mlp-small", ["model.onnx", "model.safetensors"]));
		expect(r.verdict).toBe("mismatch");
		expect(r.unbound.map((u) => u.tensor).sort()).toEqual(["net.4.bias", "net.4.weight"]);
		expect(r.unmatched.map((u) => [u.dims, u.nearest?.tensor])).toEqual([
			[[1, 10, 32], "net.4.weight"],
			[[1, 10], "net.4.bias"],
		]);
		expect(r.findings.filter((f) => f.id === "export-tensor-unbound").map((f) => f.location)).toEqual([
			"net.4.bias",
			"net.4.weight",
		]);
	});

	it("A6: raw weights (Flax msgpack) beside an export cannot be bound; an export's own external data can", async () => {
		const plan = await planBinding(
			[
				{ name: "model.onnx", format: "onnx" },
				{ name: "flax_model.msgpack", format: "raw-weights" },
			],
			opener({ "model.onnx": fixture("mlp", "model.onnx"), ...dirFiles("mlp-flax", ["flax_model.msgpack"]) }),
		);
		expect(plan.unreadable).toEqual([{ name: "flax_model.msgpack", format: "raw-weights" }]);
		const files = dirFiles("mlp-external", ["model.onnx", "model.onnx.data", "model.safetensors"]);
		const external = await planBinding(
			[
				{ name: "model.onnx", format: "onnx" },
				{ name: "model.onnx.data", format: "raw-weights" },
				{ name: "model.safetensors", format: "safetensors" },
			],
			opener(files),
		);
		expect(external.unreadable).toEqual([]);
		expect(external.sets).toHaveLength(1);
	});

	it("A7: a tensor named twice in one torch file says so (torch.load keeps the last)", async () => {
		const files = { "model.onnx": fixture("mlp", "model.onnx"), ...dirFiles("mlp-dupkey", ["pytorch_model.bin"]) };
		await expectCode(bindAll(files), "MODEL_MALFORMED", /^tensor net\.4\.bias is in pytorch_model\.bin twice /);
	});
});
