import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BufferSource } from "../../../lib/core/formats/source";
import { backdoorPlan } from "../../../lib/core/pipeline/files";
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

	it("plans a backdoor scan only for an ONNX model, with its version and reference data when the policy has some", () => {
		expect(backdoorPlan(undefined, undefined)).toEqual({ required: false });
		expect(backdoorPlan({ key: "m.onnx" }, undefined)).toEqual({ required: true, modelKey: "m.onnx" });
		expect(
			backdoorPlan(
				{ key: "m.onnx", versionId: "v1" },
				{ inputShape: "1x8x8", dataUri: "s3://t/x.npy", labelsUri: "s3://t/y.npy", dataKind: "reference" },
			),
		).toEqual({
			required: true,
			modelKey: "m.onnx",
			modelVersionId: "v1",
			dataUri: "s3://t/x.npy",
			labelsUri: "s3://t/y.npy",
			dataKind: "reference",
		});
	});
});
