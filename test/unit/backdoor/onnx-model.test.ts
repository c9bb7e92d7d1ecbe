import { readFileSync } from "node:fs";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { type OnnxModel, readOnnxModel, writeOnnxModel } from "../../../lib/core/backdoor/onnx-model";
import { FtguardError } from "../../../lib/core/errors";
import { DataType } from "../../../lib/core/formats/onnx-wire";
import { ProtoWriter } from "../../../lib/core/formats/protobuf";
import { rng, size, uniform } from "./grad-check";

const FIXTURES = "test/fixtures/formats/onnx/torch";

async function outputs(bytes: Uint8Array, input: Float32Array, dims: number[]): Promise<Float32Array> {
	const s = await ort.InferenceSession.create(bytes);
	const r = await s.run({ input: new ort.Tensor("float32", input, dims) });
	await s.release();
	return r.logits?.data as Float32Array;
}

/** Wraps graph-level fields (already encoded) into a ModelProto with opset 17. */
function modelBytes(graph: (g: ProtoWriter) => void): Uint8Array {
	const g = new ProtoWriter();
	graph(g);
	const m = new ProtoWriter();
	m.varint(1, 8);
	m.message(7, g);
	const op = new ProtoWriter();
	op.string(1, "");
	op.varint(2, 17);
	m.message(8, op);
	return m.finish();
}

function identityNode(g: ProtoWriter, input: string): void {
	const n = new ProtoWriter();
	n.string(1, input);
	n.string(2, "y");
	n.string(4, "Identity");
	g.message(1, n);
	const out = new ProtoWriter();
	out.string(1, "y");
	g.message(12, out);
}

describe("readOnnxModel / writeOnnxModel", () => {
	for (const [name, dims] of [
		["cnn.onnx", [1, 1, 8, 8]],
		["mlp.onnx", [1, 8]],
	] as const) {
		it(`write(read(${name})) runs in onnxruntime with the same outputs`, async () => {
			const original = readFileSync(`${FIXTURES}/${name}`);
			const model = await readOnnxModel(original);
			const written = writeOnnxModel(model);
			const x = uniform(size(dims), 3);
			expect(await outputs(written, x, [...dims])).toEqual(await outputs(original, x, [...dims]));
			expect(await readOnnxModel(written)).toEqual(model);
		});
	}

	it("reads the structure torch exported", async () => {
		const m = await readOnnxModel(readFileSync(`${FIXTURES}/cnn.onnx`));
		expect(m.opsetImports).toEqual([{ domain: "", version: 13 }]);
		expect(m.graph.inputs).toEqual([{ name: "input", elemType: DataType.FLOAT, shape: [1, 1, 8, 8] }]);
		expect(m.graph.nodes.map((n) => n.opType)).toEqual(["Conv", "Relu", "MaxPool", "Flatten", "Gemm"]);
		const conv = m.graph.nodes[0];
		expect(conv?.attributes).toContainEqual({ name: "pads", type: "ints", value: [1, 1, 1, 1] });
		const w = m.graph.initializers.find((t) => t.name === "fc.weight");
		expect(w?.dims).toEqual([3, 64]);
		expect(w?.data).toBeInstanceOf(Float32Array);
	});

	it("round-trips every attribute kind and tensor element type", async () => {
		const tensor = (dataType: number, data: OnnxModel["graph"]["initializers"][number]["data"]) => ({
			name: "",
			dataType,
			dims: [data.length],
			data,
		});
		const model: OnnxModel = {
			irVersion: 8,
			opsetImports: [
				{ domain: "", version: 17 },
				{ domain: "com.example", version: 1 },
			],
			producerName: "test",
			graph: {
				name: "g",
				nodes: [
					{
						opType: "Custom",
						domain: "com.example",
						name: "n",
						inputs: ["x", ""],
						outputs: ["y"],
						attributes: [
							{ name: "f", type: "float", value: 0.25 },
							{ name: "i", type: "int", value: -7 },
							{ name: "is", type: "ints", value: [1, -2, 2 ** 40] },
							{ name: "fs", type: "floats", value: [0.5, -1.5] },
							{ name: "s", type: "string", value: "héllo" },
							{ name: "ss", type: "strings", value: ["a", "b"] },
							{ name: "t", type: "tensor", value: tensor(DataType.DOUBLE, Float64Array.of(1.5, -2)) },
						],
					},
				],
				initializers: [
					{ ...tensor(DataType.INT64, BigInt64Array.of(-1n, 2n ** 40n)), name: "i64" },
					{ ...tensor(DataType.INT32, Int32Array.of(-3, 4)), name: "i32" },
					{ ...tensor(DataType.UINT8, Uint8Array.of(0, 255)), name: "u8" },
					{ ...tensor(DataType.BOOL, Uint8Array.of(1, 0)), name: "b" },
					{ ...tensor(DataType.INT8, Int8Array.of(-128, 127)), name: "i8" },
					{ ...tensor(DataType.FLOAT16, Uint16Array.of(0x3c00)), name: "h" },
					{ name: "scalar", dataType: DataType.FLOAT, dims: [], data: Float32Array.of(3) },
				],
				inputs: [{ name: "x", elemType: DataType.FLOAT, shape: ["N", 3, null] }],
				outputs: [{ name: "y", elemType: DataType.FLOAT, shape: null }],
			},
		};
		expect(await readOnnxModel(writeOnnxModel(model))).toEqual(model);
	});

	it("reads tensors stored in the typed fields, packed or not", async () => {
		const bytes = modelBytes((g) => {
			const f = new ProtoWriter();
			f.varint(1, 2);
			f.varint(2, DataType.FLOAT);
			const packed = new Uint8Array(8);
			new DataView(packed.buffer).setFloat32(0, 1.5, true);
			new DataView(packed.buffer).setFloat32(4, -2, true);
			f.bytes(4, packed);
			f.string(8, "f");
			g.message(5, f);
			const i = new ProtoWriter();
			i.varint(1, 3);
			i.varint(2, DataType.INT64);
			for (const v of [-1, 0, 5]) i.varint(7, v);
			i.string(8, "i");
			g.message(5, i);
			identityNode(g, "f");
		});
		const m = await readOnnxModel(bytes);
		expect(m.graph.initializers[0]?.data).toEqual(Float32Array.of(1.5, -2));
		expect(m.graph.initializers[1]?.data).toEqual(BigInt64Array.of(-1n, 0n, 5n));
	});

	it("refuses external data with MODEL_UNSUPPORTED", async () => {
		await expect(readOnnxModel(readFileSync(`${FIXTURES}/mlp-external/model.onnx`))).rejects.toMatchObject({
			code: "MODEL_UNSUPPORTED",
			message: expect.stringContaining("external data"),
		});
	});

	it("refuses a subgraph attribute (If / Loop) with MODEL_UNSUPPORTED naming the node", async () => {
		const bytes = modelBytes((g) => {
			const n = new ProtoWriter();
			n.string(1, "c");
			n.string(2, "y");
			n.string(3, "branch");
			n.string(4, "If");
			const a = new ProtoWriter();
			a.string(1, "then_branch");
			a.message(6, new ProtoWriter());
			a.varint(20, 5);
			n.message(5, a);
			g.message(1, n);
		});
		await expect(readOnnxModel(bytes)).rejects.toMatchObject({
			code: "MODEL_UNSUPPORTED",
			message: expect.stringMatching(/If "branch".*then_branch/),
		});
	});

	it("every truncation of a model is MODEL_MALFORMED", async () => {
		const original = readFileSync(`${FIXTURES}/cnn.onnx`);
		for (let n = 0; n < original.length; n++) {
			const e = await readOnnxModel(original.subarray(0, n)).catch((x: unknown) => x);
			expect(e, `prefix of ${n} bytes`).toBeInstanceOf(FtguardError);
			expect((e as FtguardError).code).toBe("MODEL_MALFORMED");
		}
	});

	it("garbage and corrupted bytes give FtguardError (MODEL_MALFORMED / MODEL_UNSUPPORTED) or a model, nothing else", async () => {
		const original = readFileSync(`${FIXTURES}/mlp.onnx`);
		const r = rng(5);
		for (let trial = 0; trial < 400; trial++) {
			let bytes: Uint8Array;
			if (trial < 100) bytes = Uint8Array.from({ length: Math.floor(r() * 200) }, () => Math.floor(r() * 256));
			else {
				bytes = Uint8Array.from(original);
				for (let k = 0; k < 1 + (trial % 4); k++) bytes[Math.floor(r() * bytes.length)] = Math.floor(r() * 256);
			}
			const e = await readOnnxModel(bytes).then(
				() => undefined,
				(x: unknown) => x,
			);
			if (e === undefined) continue;
			expect(e).toBeInstanceOf(FtguardError);
			expect(["MODEL_MALFORMED", "MODEL_UNSUPPORTED"]).toContain((e as FtguardError).code);
		}
	});
});
