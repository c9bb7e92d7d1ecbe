/**
 * The files step's backdoor plan (lib/core/pipeline/files.ts) and the policy's `backdoor.required` / waivers
 * (lib/core/policy/backdoor.ts): an artefact holding model weights is scanned, or says why it is not and which
 * waiver — if any — lets it through.
 */
import { describe, expect, it } from "vitest";
import { type BackdoorPlanInput, backdoorPlan, MAX_BACKDOOR_MODELS, weightsOf } from "../../../lib/core/pipeline/files";
import { parsePolicy } from "../../../lib/core/policy";
import { waiverActive, waiverExpiry, waiverFor } from "../../../lib/core/policy/backdoor";

const NOW = new Date("2026-06-15T12:00:00Z");
const REF = { inputShape: "1x8x8", dataUri: "s3://t/x.npy", labelsUri: "s3://t/y.npy", dataKind: "reference" as const };
const DEFAULT = { required: true, waivers: [] };
const safetensorsDir = [
	{ key: "m/config.json", format: "hf-config" },
	{ key: "m/model.safetensors", format: "safetensors" },
	{ key: "m/tokenizer_config.json", format: "hf-tokenizer-config" },
];
const plan = (p: Partial<BackdoorPlanInput>) =>
	backdoorPlan({
		artefact: "m/",
		files: safetensorsDir,
		models: [],
		versioned: false,
		policy: DEFAULT,
		now: NOW,
		...p,
	});
const TEXT_REF = {
	family: "bert",
	dataUri: "s3://t/texts.jsonl",
	tokenizerUri: "s3://t/tokenizer.json",
	textField: "sentence",
	dataKind: "reference" as const,
};

describe("weightsOf: does an artefact hold model weights (fail closed)", () => {
	it.each([
		"safetensors",
		"pickle",
		"pytorch-zip",
		"pytorch-legacy",
		"pytorch-tar",
		"numpy",
		"numpy-npz",
		"onnx",
		"gguf",
		"keras",
		"keras-h5",
		"raw-weights",
	])("%s is weights", (format) => {
		expect(
			weightsOf([
				{ key: "a", format: "hf-config" },
				{ key: "w", format },
			]),
		).toEqual({ weights: "yes" });
	});

	it("none only when every file is of a format known to hold no weights", () => {
		expect(
			weightsOf([
				{ key: "t/tokenizer_config.json", format: "hf-tokenizer-config" },
				{ key: "t/config.json", format: "hf-config" },
				{ key: "t/tokenizer.json", format: "json" },
				{ key: "t/README.md", format: "text" },
			]),
		).toEqual({ weights: "none" });
	});

	it("an unknown format, a format it does not know, a missing format or no files at all may be weights", () => {
		expect(weightsOf([{ key: "t/vocab.tokdata", format: "unknown" }])).toEqual({
			weights: "maybe",
			unrecognised: ["t/vocab.tokdata"],
		});
		expect(weightsOf([{ key: "t/model.joblib", format: "joblib-from-a-newer-scanner" }]).weights).toBe("maybe");
		expect(weightsOf([{ key: "t/x" }]).weights).toBe("maybe");
		expect(weightsOf([{ key: "t/model.tar.gz", format: "gzip" }]).weights).toBe("maybe");
		expect(weightsOf([])).toEqual({ weights: "maybe", unrecognised: [] });
	});
});

describe("backdoorPlan", () => {
	it("scans the one ONNX model with its reference data", () => {
		expect(
			plan({
				files: [{ key: "m.onnx", format: "onnx" }],
				artefact: "m.onnx",
				models: [{ key: "m.onnx", versionId: "v1", inputShape: "1x8x8", reference: REF }],
				versioned: true,
			}),
		).toEqual({
			required: true,
			models: [
				{
					modelKey: "m.onnx",
					modelVersionId: "v1",
					dataUri: "s3://t/x.npy",
					labelsUri: "s3://t/y.npy",
					tokenizerUri: "",
					textField: "",
					labelsField: "",
					dataKind: "reference",
				},
			],
		});
	});

	it("scans every ONNX model of the artefact, each with its own reference data (image and text)", () => {
		const files = [
			{ key: "m/vision/model.onnx", format: "onnx" },
			{ key: "m/text/model.onnx", format: "onnx" },
		];
		const p = plan({
			files,
			family: "multimodal",
			models: [
				{ key: "m/text/model.onnx", family: "bert", takesTokenIds: true, reference: TEXT_REF },
				{ key: "m/vision/model.onnx", inputShape: "1x8x8", reference: REF },
			],
		});
		expect(p).toMatchObject({ required: true, family: "multimodal" });
		expect(p.models).toEqual([
			{
				modelKey: "m/text/model.onnx",
				modelVersionId: "",
				dataUri: "s3://t/texts.jsonl",
				labelsUri: "",
				tokenizerUri: "s3://t/tokenizer.json",
				textField: "sentence",
				labelsField: "",
				dataKind: "reference",
			},
			expect.objectContaining({ modelKey: "m/vision/model.onnx", labelsUri: "s3://t/y.npy", tokenizerUri: "" }),
		]);
	});

	it("a model whose reference data is of the other kind is not scanned: a text model needs a tokenizer, an image model tensors", () => {
		const textWithTensors = plan({
			models: [{ key: "m/model.onnx", family: "bert", takesTokenIds: true, reference: { ...REF, family: "bert" } }],
		});
		expect(textWithTensors).toMatchObject({
			required: false,
			modelKey: "m/model.onnx",
			notScanned:
				"m/model.onnx: the reference data for family bert is tensors (.npy), but the model takes token ids (input_ids): give a text entry with tokenizerUri",
		});
		const imageWithTexts = plan({ models: [{ key: "m/model.onnx", inputShape: "64", reference: TEXT_REF }] });
		expect(imageWithTexts.notScanned).toBe(
			"m/model.onnx: the reference data for family bert is text (a tokenizer), but the model takes no token ids (input_ids)",
		);
		expect(plan({ models: [{ key: "m/model.onnx", takesTokenIds: true, reference: TEXT_REF }] }).required).toBe(true);
	});

	it("refuses to plan an unpinned model on a versioned store (the job would read whatever version is current)", () => {
		expect(() => plan({ models: [{ key: "m/model.onnx", reference: REF }], versioned: true })).toThrow(
			/m\/model\.onnx has no VersionId on a versioned store/,
		);
	});

	it("weights without an ONNX export: not scanned (a safetensors language model)", () => {
		expect(plan({ family: "llama" })).toEqual({
			required: false,
			notScanned: "no ONNX export to scan for backdoors",
			family: "llama",
		});
	});

	it("an ONNX model without reference data for its family: not scanned, naming the family", () => {
		const files = [...safetensorsDir, { key: "m/model.onnx", format: "onnx" }];
		expect(plan({ files, models: [{ key: "m/model.onnx", family: "bert" }], family: "bert" })).toEqual({
			required: false,
			notScanned: "no reference data for family bert",
			modelKey: "m/model.onnx",
			family: "bert",
		});
		expect(plan({ files, models: [{ key: "m/model.onnx", inputShape: "3x32x32" }] }).notScanned).toBe(
			"no reference data for input shape 3x32x32 (no family in config.json)",
		);
		expect(plan({ files, models: [{ key: "m/model.onnx" }] }).notScanned).toBe(
			"no reference data for this model (no family in config.json, no readable input shape)",
		);
	});

	it("several ONNX models, one without reference data: none is scanned, and the reason names that model", () => {
		const p = plan({
			models: [
				{ key: "m/a.onnx", reference: REF },
				{ key: "m/b.onnx", family: "t5" },
			],
		});
		expect(p).toMatchObject({
			required: false,
			modelKey: "m/b.onnx",
			notScanned: "m/b.onnx: no reference data for family t5",
		});
		expect(p).not.toHaveProperty("models");
	});

	it(`more than ${MAX_BACKDOOR_MODELS} ONNX models: not scanned (one commit cannot queue unbounded GPU jobs)`, () => {
		const models = Array.from({ length: MAX_BACKDOOR_MODELS + 1 }, (_, i) => ({ key: `m/${i}.onnx`, reference: REF }));
		expect(plan({ models }).notScanned).toBe(
			`${MAX_BACKDOOR_MODELS + 1} ONNX models (m/0.onnx, m/1.onnx, m/2.onnx, m/3.onnx, m/4.onnx, … (${MAX_BACKDOOR_MODELS + 1})): more than the ${MAX_BACKDOOR_MODELS} one scan covers`,
		);
		expect(plan({ models: models.slice(0, MAX_BACKDOOR_MODELS) }).models).toHaveLength(MAX_BACKDOOR_MODELS);
	});

	it("no weights at all (a tokenizer): nothing to scan", () => {
		const files = [{ key: "t/tokenizer_config.json", format: "hf-tokenizer-config" }];
		expect(plan({ artefact: "t/", files })).toEqual({ required: false, noWeights: true });
	});

	it("files of unrecognised format only: may be weights, not scanned, and named", () => {
		const files = [
			{ key: "t/tokenizer_config.json", format: "hf-tokenizer-config" },
			{ key: "t/vocab.tokdata", format: "unknown" },
		];
		expect(plan({ artefact: "t/", files }).notScanned).toBe(
			"no ONNX export to scan for backdoors (files of unrecognised format may hold weights: t/vocab.tokdata)",
		);
	});

	it("records the waiver for the artefact's family, or the expired one that no longer applies", () => {
		const waivers = parsePolicy(
			JSON.stringify({
				backdoor: {
					waivers: [
						{ family: "gpt2", reason: "old", expires: "2026-01-31" },
						{ family: "llama", prefix: "lm/", reason: "red-team eval instead", approvedBy: "sec@example.com" },
						{ family: "gpt2", reason: "renewed", expires: "2026-12-31" },
					],
				},
			}),
		).backdoor.waivers;
		const policy = { required: true, waivers };
		expect(plan({ artefact: "lm/run-7/", family: "llama", policy })).toMatchObject({
			notScanned: "no ONNX export to scan for backdoors",
			waiver: { family: "llama", prefix: "lm/", reason: "red-team eval instead", approvedBy: "sec@example.com" },
		});
		// the prefix narrows the family waiver
		expect(plan({ artefact: "other/run-7/", family: "llama", policy })).not.toHaveProperty("waiver");
		// the first waiver that still applies
		expect(plan({ family: "gpt2", policy }).waiver).toMatchObject({ reason: "renewed" });
		const later = plan({ family: "gpt2", policy, now: new Date("2027-01-01T00:00:00Z") });
		expect(later).not.toHaveProperty("waiver");
		expect(later.expiredWaiver).toMatchObject({ reason: "old", expires: "2026-01-31" });
		// a waiver never covers an artefact without the family it names
		expect(plan({ policy })).not.toHaveProperty("waiver");
		// nor a scan that can run
		expect(
			plan({ models: [{ key: "m/model.onnx", family: "llama", reference: REF }], family: "llama", policy }),
		).not.toHaveProperty("waiver");
	});

	it("backdoor.required false: recorded as a waiver by policy", () => {
		expect(plan({ policy: { required: false, waivers: [] } }).waiver).toEqual({
			reason: "the policy's backdoor.required is false",
		});
	});
});

describe("the policy's backdoor.required and waivers", () => {
	it("requires the scan by default, with no waivers", () => {
		const p = parsePolicy("{}");
		expect(p.backdoor.required).toBe(true);
		expect(p.backdoor.waivers).toEqual([]);
	});

	it.each([
		[{ backdoor: { required: "yes" } }, /backdoor\.required/],
		[{ backdoor: { waivers: [{ family: "llama" }] } }, /waivers\.0\.reason/],
		[{ backdoor: { waivers: [{ family: "llama", reason: "  " }] } }, /a waiver must give its reason/],
		[{ backdoor: { waivers: [{ reason: "all of them" }] } }, /a waiver names a family or a prefix/],
		[{ backdoor: { waivers: [{ family: "llama", reason: "r", expires: "next year" }] } }, /waivers\.0\.expires/],
		[{ backdoor: { waivers: [{ family: "llama", reason: "r", expires: "2026-01-01T00:00:00" }] } }, /an offset/],
		[{ backdoor: { waivers: [{ family: "llama", reason: "r", expiry: "2026-01-01" }] } }, /expiry|Unrecognized/i],
	])("refuses %j at load", (doc, message) => {
		expect(() => parsePolicy(JSON.stringify(doc), "policy.json")).toThrow(message);
	});

	it("a date expires at the end of that day (UTC), a date-time at that instant", () => {
		expect(waiverExpiry("2026-06-15").toISOString()).toBe("2026-06-16T00:00:00.000Z");
		expect(waiverActive({ expires: "2026-06-15" }, NOW)).toBe(true);
		expect(waiverActive({ expires: "2026-06-14" }, NOW)).toBe(false);
		expect(waiverActive({ expires: "2026-06-15T14:00:00+02:00" }, NOW)).toBe(false);
		expect(waiverActive({ expires: "2026-06-15T14:00:01+02:00" }, NOW)).toBe(true);
		expect(waiverActive({}, NOW)).toBe(true);
		expect(waiverActive({ expires: "garbage" }, NOW)).toBe(false);
	});

	it("matches family and prefix, each only when given", () => {
		const w = [{ prefix: "tok/", reason: "tokenizers" }];
		expect(waiverFor(w, { key: "tok/a/" }, NOW).active).toBe(w[0]);
		expect(waiverFor(w, { key: "tokens/a/" }, NOW)).toEqual({});
	});
});
