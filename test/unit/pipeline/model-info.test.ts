import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BufferSource } from "../../../lib/core/formats/source";
import { backdoorModelOf, onnxModelsOf } from "../../../lib/core/pipeline/files";
import { familyOf, onnxInputShape } from "../../../lib/core/pipeline/model-info";
import { REPO } from "../../helpers/cli";

const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));

describe("model info for reference-data lookup", () => {
	it("reads the family from model_type, else architectures[0]", () => {
		expect(familyOf(enc({ model_type: "bert", architectures: ["BertModel"] }))).toBe("bert");
		expect(familyOf(enc({ architectures: ["TinyClassifier"] }))).toBe("TinyClassifier");
		expect(familyOf(enc({ hidden_size: 3 }))).toBeUndefined();
		expect(familyOf(new TextEncoder().encode("not json"))).toBeUndefined();
	});

	it("reads an ONNX model's input shape without the batch dimension, reading only a little of it", async () => {
		const bytes = readFileSync(join(REPO, "test/fixtures/backdoor/digits8/cnn-clean-s1.onnx"));
		const src = new BufferSource(bytes);
		expect(await onnxInputShape(src)).toBe("1x8x8");
	});

	it("gives no shape for bytes that are not an ONNX model", async () => {
		expect(await onnxInputShape(new BufferSource(Buffer.from("garbage that is not protobuf")))).toBeUndefined();
		expect(await onnxInputShape(new BufferSource(Buffer.alloc(0)))).toBeUndefined();
	});
});

describe("the ONNX model the backdoor scan searches", () => {
	const report = (format: string) => ({ format }) as never;
	it("finds ONNX models by name or by content, sorted", () => {
		expect(
			onnxModelsOf([
				{ key: "m/b.ONNX", report: report("onnx") },
				{ key: "m/config.json", report: report("hf-config") },
				{ key: "m/renamed.bin", report: report("onnx") },
				{ key: "m/a.onnx", report: report("onnx") },
			]),
		).toEqual(["m/a.onnx", "m/b.ONNX", "m/renamed.bin"]);
	});
	it("takes the one model; with several, none, and says why (naming at most five)", () => {
		expect(backdoorModelOf([])).toEqual({});
		expect(backdoorModelOf(["m/a.onnx"])).toEqual({ model: "m/a.onnx" });
		const two = backdoorModelOf(["m/a.onnx", "m/b.onnx"]);
		expect(two.model).toBeUndefined();
		expect(two.problem).toMatch(/^2 ONNX models \(m\/a\.onnx, m\/b\.onnx\): the backdoor scan covers one model/);
		const seven = backdoorModelOf(Array.from({ length: 7 }, (_, i) => `m/${i}.onnx`));
		expect(seven.problem).toContain("(m/0.onnx, m/1.onnx, m/2.onnx, m/3.onnx, m/4.onnx, … (7))");
	});
});
