import { describe, expect, it } from "vitest";
import type { FileReport } from "../../../lib/core/formats/scan";
import { judgeBaseModel, REGISTRY_SCHEMA, type Registry } from "../../../lib/core/integrity/registry";
import {
	baseModelDirOf,
	baseModelMetricDocument,
	judgeGate,
	parseBaseModelMarker,
} from "../../../lib/core/pipeline/base-model";
import { gateTags } from "../../../lib/core/pipeline/input-gate";
import {
	BASE_MODEL_MARKER,
	METRIC_NAMESPACE,
	MetricName,
	SCAN_ID_TAG,
	STATUS_TAG,
} from "../../../lib/core/pipeline/names";

const A = "a".repeat(64);
const B = "b".repeat(64);
const ID = "acme/tiny@v1";
const registry: Registry = {
	schema: REGISTRY_SCHEMA,
	models: [
		{
			id: ID,
			files: [
				{ path: "config.json", sha256: A },
				{ path: "model.safetensors", sha256: B },
			],
		},
	],
};
const present = new Map([
	["config.json", A],
	["model.safetensors", B],
]);

function report(path: string, over: Partial<FileReport> = {}): { name: string; report: FileReport } {
	return {
		name: path,
		report: { path, format: "safetensors", verdict: "safe", findings: [], size: 1, bytesRead: 1, ...over },
	};
}
const safe = [report("config.json", { format: "hf-config" as FileReport["format"] }), report("model.safetensors")];

describe("marker", () => {
	it("names its directory; other keys are not markers", () => {
		expect(baseModelDirOf(`models/x/${BASE_MODEL_MARKER}`)).toBe("models/x/");
		expect(baseModelDirOf(`a/b/c/${BASE_MODEL_MARKER}`)).toBe("a/b/c/");
		expect(baseModelDirOf(BASE_MODEL_MARKER)).toBeUndefined();
		expect(baseModelDirOf(`/${BASE_MODEL_MARKER}`)).toBeUndefined();
		expect(baseModelDirOf("models/x/model.sig")).toBeUndefined();
		expect(baseModelDirOf(`models/x/${BASE_MODEL_MARKER}.bak`)).toBeUndefined();
	});

	it("holds exactly {id}", () => {
		expect(parseBaseModelMarker(Buffer.from(JSON.stringify({ id: ID })), "m")).toBe(ID);
		expect(() => parseBaseModelMarker(Buffer.from("nope"), "m")).toThrow(/not JSON/);
		expect(() => parseBaseModelMarker(Buffer.from("{}"), "m")).toThrow(
			expect.objectContaining({ code: "DATA_INVALID" }),
		);
		expect(() => parseBaseModelMarker(Buffer.from(JSON.stringify({ id: ID, x: 1 })), "m")).toThrow();
	});
});

describe("judgeGate", () => {
	it("passes when every digest matches and every file is safe", () => {
		const r = judgeGate(registry, ID, present, safe);
		expect(r).toMatchObject({ approved: true, status: "PROMOTABLE", reasons: [], notes: [] });
		// the same rule as the directory check
		expect(r.files).toEqual(judgeBaseModel(registry.models[0] as Registry["models"][0], present).files);
	});

	it("refuses an unknown id, a changed, missing or extra file", () => {
		expect(judgeGate(registry, "x/y@z", present, safe)).toMatchObject({
			status: "QUARANTINED",
			reasons: ["x/y@z is not in the registry"],
		});
		expect(judgeGate(registry, ID, new Map([...present, ["config.json", B]]), safe).reasons).toEqual([
			"1 fail file(s)",
		]);
		expect(judgeGate(registry, ID, new Map([["config.json", A]]), safe).reasons).toEqual(["1 missing file(s)"]);
		expect(judgeGate(registry, ID, new Map([...present, ["x.txt", A]]), safe).reasons).toEqual(["1 extra file(s)"]);
	});

	it("refuses pickle weights beside listed safetensors, even when their digest is listed", () => {
		const pickled = judgeGate(registry, ID, present, [
			safe[0] as ReturnType<typeof report>,
			report("model.safetensors", {
				format: "pytorch-zip" as FileReport["format"],
				verdict: "unsafe",
				findings: [{ id: "pickle-forbidden", severity: "high", message: "pickle" }],
			}),
		]);
		expect(pickled.status).toBe("QUARANTINED");
		expect(pickled.reasons).toEqual([
			"pickle-format weights present where the registry lists safetensors: model.safetensors",
		]);
		expect(pickled.files.find((f) => f.path === "model.safetensors")?.pickle).toBe("pytorch-zip");
	});

	it("flags remote code as a note; a listed file with it still passes", () => {
		const r = judgeGate(registry, ID, present, [
			report("config.json", {
				verdict: "unsafe",
				findings: [{ id: "remote-code", severity: "high", message: "auto_map names modeling_x.py" }],
			}),
			safe[1] as ReturnType<typeof report>,
		]);
		expect(r).toMatchObject({
			status: "PROMOTABLE",
			notes: ["remote code: config.json: auto_map names modeling_x.py"],
		});
	});

	it("refuses any other unsafe or malformed file", () => {
		const r = judgeGate(registry, ID, present, [
			report("config.json", {
				verdict: "unsafe",
				findings: [
					{ id: "remote-code", severity: "high", message: "auto_map" },
					{ id: "dangerous-global", severity: "critical", message: "os.system" },
				],
			}),
			report("model.safetensors", { verdict: "malformed", malformed: "header too long" }),
		]);
		expect(r.status).toBe("QUARANTINED");
		expect(r.reasons).toEqual([
			"config.json: unsafe (remote-code: auto_map)",
			"model.safetensors: malformed (header too long)",
		]);
	});
});

describe("tags and metric", () => {
	it("tags the status with the check id", () => {
		expect(gateTags("PROMOTABLE", "ftg-1")).toEqual({ [STATUS_TAG]: "PROMOTABLE", [SCAN_ID_TAG]: "ftg-1" });
	});

	it("is one EMF document: 1/0 under {service} and {service, model_id, result}", () => {
		const at = new Date("2026-01-01T00:00:00Z");
		expect(baseModelMetricDocument(ID, true, at)).toEqual({
			_aws: {
				Timestamp: at.getTime(),
				CloudWatchMetrics: [
					{
						Namespace: METRIC_NAMESPACE,
						Dimensions: [["service"], ["service", "model_id", "result"]],
						Metrics: [{ Name: MetricName.BASE_MODEL_VERIFICATION_RESULT, Unit: "None" }],
					},
				],
			},
			service: "ftguard",
			model_id: ID,
			result: "pass",
			[MetricName.BASE_MODEL_VERIFICATION_RESULT]: 1,
		});
		expect(baseModelMetricDocument(ID, false, at)).toMatchObject({ result: "fail", base_model_verification_result: 0 });
	});
});
