/**
 * The local demo's cases and their judging (lib/local/demo.ts): the clean model must be promoted on its scans
 * alone, the waived family only with its waiver in the notes, the unscanned checkpoint quarantined "not scanned".
 */
import { describe, expect, it } from "vitest";
import { parsePolicy } from "../../../lib/core/policy";
import { demoSetup, judge, renderDemoTable } from "../../../lib/local/demo";
import { REPO } from "../../helpers/cli";

const setup = demoSetup(REPO);
const byName = Object.fromEntries(setup.cases.map((c) => [c.name, c]));

describe("the pipeline demo", () => {
	it("has a scanned clean model, an unscanned checkpoint, a waived family, base models and datasets", () => {
		expect(setup.cases.map((c) => [c.name, c.expected])).toEqual([
			["clean", "PROMOTABLE"],
			["unscanned", "QUARANTINED"],
			["waived", "PROMOTABLE"],
			["tampered", "QUARANTINED"],
			["wrong-signer", "QUARANTINED"],
			["pickle", "QUARANTINED"],
			["backdoor", "QUARANTINED"],
			["two-models", "QUARANTINED"],
			["base-model", "PROMOTABLE"],
			["base-model-pickle", "QUARANTINED"],
			["dataset-clean", "PROMOTABLE"],
			["dataset-poisoned", "QUARANTINED"],
		]);
		expect(setup.cases.filter((c) => c.name.startsWith("dataset")).every((c) => c.bucket === "datasets")).toBe(true);
		expect(setup.cases.filter((c) => c.name.startsWith("base-model")).every((c) => c.bucket === "baseModels")).toBe(
			true,
		);
		// a valid policy that requires the backdoor scan and waives one family, with its reason
		const policy = parsePolicy(JSON.stringify(setup.policy));
		expect(policy.backdoor.required).toBe(true);
		// the text classifier's reference data: labelled texts and the tokenizer, for family bert
		expect(policy.referenceData.find((r) => r.family === "bert")).toMatchObject({
			tokenizerUri: expect.stringMatching(/tokenizer\.json$/),
			dataUri: expect.stringMatching(/ref\.jsonl$/),
		});
		expect(policy.backdoor.waivers).toEqual([
			expect.objectContaining({ family: "tiny-lm", reason: expect.any(String) }),
		]);
	});

	it("judges a promotion by its notes: none for the scanned model, the waiver for the waived family", () => {
		const clean = byName.clean;
		const waived = byName.waived;
		if (!clean || !waived) throw new Error("cases missing");
		const note =
			"backdoor: not scanned: no ONNX export to scan for backdoors; waived for family tiny-lm (demo; approved by x)";
		expect(judge(clean, { status: "PROMOTABLE", reasons: [] })).toBe(true);
		expect(judge(clean, { status: "PROMOTABLE", reasons: [], notes: [note] })).toBe(false);
		expect(judge(waived, { status: "PROMOTABLE", reasons: [], notes: [note] })).toBe(true);
		expect(judge(waived, { status: "PROMOTABLE", reasons: [] })).toBe(false);
		const unscanned = byName.unscanned;
		if (!unscanned) throw new Error("case missing");
		expect(
			judge(unscanned, { status: "QUARANTINED", reasons: ["not scanned: no ONNX export to scan for backdoors"] }),
		).toBe(true);
		expect(judge(unscanned, { status: "QUARANTINED", reasons: ["error: files"] })).toBe(false);
	});

	it("shows the notes beside the reasons in its table", () => {
		const table = renderDemoTable([
			{
				name: "waived",
				description: "",
				expected: "PROMOTABLE",
				status: "PROMOTABLE",
				reasons: [],
				notes: ["n1"],
				seconds: 1,
				ok: true,
			},
		]);
		expect(table).toMatch(/^name +status +check +time +reasons \/ notes$/m);
		expect(table).toMatch(/^waived +PROMOTABLE +as expected +1\.0 s +note: n1$/m);
	});
});
