import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { takesTokenIds } from "../../../lib/core/backdoor/text-inputs";
import { BufferSource } from "../../../lib/core/formats/source";
import { onnxModelsOf } from "../../../lib/core/pipeline/files";
import { familyOf, onnxInputShape, onnxInputs } from "../../../lib/core/pipeline/model-info";
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

	it("lists a text classifier's token inputs (what makes the plan ask for texts and a tokenizer)", async () => {
		const bytes = readFileSync(join(REPO, "test/fixtures/backdoor-text/clean-s1/model.onnx"));
		const inputs = await onnxInputs(new BufferSource(bytes));
		expect(inputs?.names).toEqual(expect.arrayContaining(["input_ids", "attention_mask"]));
		expect(takesTokenIds(inputs?.names ?? [])).toBe(true);
		const image = await onnxInputs(
			new BufferSource(readFileSync(join(REPO, "test/fixtures/backdoor/digits8/cnn-clean-s1.onnx"))),
		);
		expect(image).toMatchObject({ shape: "1x8x8" });
		expect(takesTokenIds(image?.names ?? [])).toBe(false);
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
});
