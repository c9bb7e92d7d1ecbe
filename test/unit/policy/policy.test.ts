import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
	defaultPolicy,
	parsePolicy,
	referenceDataFor,
	referenceObjectsOf,
	trustPoliciesOf,
} from "../../../lib/core/policy";
import { defaultBackdoorPolicy, withOverrides } from "../../../lib/core/policy/backdoor";
import { REPO } from "../../helpers/cli";

const pem = readFileSync(join(REPO, "examples/keys/signer.pub.pem"), "utf8");

describe("the pipeline's policy sections", () => {
	it("trusts nobody, refuses pickle and keeps the backdoor defaults when empty", () => {
		const p = defaultPolicy();
		expect(p.signers).toEqual([]);
		expect(p.files).toEqual({ allowPickle: false, strict: false, inert: [] });
		expect(p.referenceData).toEqual([]);
		expect(p.baseModelRegistry).toBeUndefined();
		expect(p.backdoor).toEqual(defaultBackdoorPolicy());
	});

	it("defaults to the calibrated verdict and its search, and refuses what that rule cannot judge (issue 20)", () => {
		const b = defaultBackdoorPolicy();
		expect(b.neuralCleanse).toMatchObject({ rule: "calibrated", steps: 100, restarts: 1, batch: 32 });
		expect(b.detectors).toEqual(["nc", "pairs", "mm", "strip"]);
		expect(b.calibrated).toEqual({ falseAlarmRate: 0.01 });
		const bad = (backdoor: unknown) => () => parsePolicy(JSON.stringify({ backdoor }), "p.json");
		expect(bad({ neuralCleanse: { steps: 300 } })).toThrow(
			/holds for the search it was fitted on .*not Neural Cleanse 300/,
		);
		expect(bad({ pairs: { steps: 61 } })).toThrow(/pairs 61 steps/);
		expect(bad({ detectors: ["nc", "strip"] })).toThrow(/needs detectors nc, pairs, mm \(missing pairs, mm\)/);
		// MM-BD counts in the localised_margin family: a calibrated scan without it is refused too
		expect(bad({ detectors: ["nc", "pairs", "strip"] })).toThrow(/\(missing mm\)/);
		// red team: a budget below every pair left a source-specific target judged without its pairs, and passed
		expect(bad({ pairs: { maxPairs: 9 } })).toThrow(/at most 400\), not .*at most 9/);
		expect(bad({ calibrated: { falseAlarmRate: 1 } })).toThrow();
		expect(bad({ calibrated: { falseAlarmRate: 1e-300 } })).toThrow();
		expect(bad({ calibrated: { falseAlarmRate: 0.01, extra: 1 } })).toThrow();
		// another search with Neural Cleanse's own rule is fine; flags are checked the same way
		expect(
			parsePolicy(JSON.stringify({ backdoor: { neuralCleanse: { steps: 300, rule: "ftguard" } } }), "p").backdoor
				.neuralCleanse.steps,
		).toBe(300);
		expect(() => withOverrides(b, { steps: 40 })).toThrow(/choose rule ftguard/);
		expect(withOverrides(b, { steps: 40, rule: "ftguard" }).neuralCleanse).toMatchObject({
			steps: 40,
			rule: "ftguard",
		});
		// the seed is not part of the search the calibration holds for
		expect(withOverrides(b, { seed: 7 }).neuralCleanse.seed).toBe(7);
	});

	it("reads keyless and public-key signers into trust policies", () => {
		const p = parsePolicy(
			JSON.stringify({
				signers: [
					{ kind: "keyless", identity: "ci@example.com", issuer: "https://token.actions.githubusercontent.com" },
					{ kind: "keyless", identityRegexp: "https://github.com/acme/.*", issuer: "https://accounts.google.com" },
					{ kind: "public-key", pem },
				],
			}),
		);
		expect(trustPoliciesOf(p.signers)).toEqual([
			{ kind: "keyless", identity: { exact: "ci@example.com" }, issuer: "https://token.actions.githubusercontent.com" },
			{ kind: "keyless", identity: { regexp: "https://github.com/acme/.*" }, issuer: "https://accounts.google.com" },
			{ kind: "public-key", pem },
		]);
	});

	it.each([
		[{ signers: [{ kind: "keyless", issuer: "https://x.example" }] }, /exactly one of identity, identityRegexp/],
		[
			{ signers: [{ kind: "keyless", identity: "a", identityRegexp: "b", issuer: "https://x.example" }] },
			/exactly one/,
		],
		[{ signers: [{ kind: "keyless", identityRegexp: "(", issuer: "https://x.example" }] }, /not a valid regular/],
		[{ signers: [{ kind: "public-key", pem: "abc" }] }, /PEM/],
		[{ files: { allowPickles: true } }, /allowPickles|Unrecognized/i],
		[{ referenceData: [{ dataUri: "s3://ref/x.npy", labelsUri: "s3://ref/y.npy" }] }, /family or inputShape/],
		[
			{ referenceData: [{ family: "bert", dataUri: "/local/x.npy", labelsUri: "s3://ref/y.npy" }] },
			/s3:\/\/bucket\/key/,
		],
		[{ referenceData: [{ family: "bert", dataUri: "s3://ref/t.jsonl" }] }, /give labelsUri .* or tokenizerUri/],
		[
			{
				referenceData: [
					{
						family: "bert",
						dataUri: "s3://ref/t.jsonl",
						labelsUri: "s3://ref/y.npy",
						tokenizerUri: "s3://ref/tok.json",
					},
				],
			},
			/not both/,
		],
		[
			{ referenceData: [{ family: "bert", dataUri: "s3://ref/x.npy", labelsUri: "s3://ref/y.npy", textField: "s" }] },
			/textField and labelsField are for text data/,
		],
	])("rejects %j", (doc, message) => {
		expect(() => parsePolicy(JSON.stringify(doc))).toThrow(message);
	});

	it("takes text reference data: labelled JSONL and the tokenizer, with the fields named", () => {
		const [r] = parsePolicy(
			JSON.stringify({
				referenceData: [
					{ family: "bert", dataUri: "s3://ref/t.jsonl", tokenizerUri: "s3://ref/tok.json", textField: "sentence" },
				],
			}),
		).referenceData;
		expect(r).toEqual({
			family: "bert",
			dataUri: "s3://ref/t.jsonl",
			tokenizerUri: "s3://ref/tok.json",
			textField: "sentence",
			dataKind: "reference",
		});
		expect(referenceObjectsOf(r as NonNullable<typeof r>)).toEqual(["s3://ref/t.jsonl", "s3://ref/tok.json"]);
	});

	it("picks reference data by family and input shape, most specific first", () => {
		const entries = parsePolicy(
			JSON.stringify({
				referenceData: [
					{ inputShape: "1x28x28", dataUri: "s3://ref/mnist-x.npy", labelsUri: "s3://ref/mnist-y.npy" },
					{ family: "lenet", dataUri: "s3://ref/lenet-x.npy", labelsUri: "s3://ref/lenet-y.npy" },
					{ family: "lenet", inputShape: "3x32x32", dataUri: "s3://ref/c10-x.npy", labelsUri: "s3://ref/c10-y.npy" },
				],
			}),
		).referenceData;
		expect(referenceDataFor(entries, { family: "lenet", inputShape: "3x32x32" })?.dataUri).toBe("s3://ref/c10-x.npy");
		expect(referenceDataFor(entries, { family: "lenet", inputShape: "1x28x28" })?.dataUri).toBe("s3://ref/lenet-x.npy");
		expect(referenceDataFor(entries, { inputShape: "1x28x28" })?.dataUri).toBe("s3://ref/mnist-x.npy");
		expect(referenceDataFor(entries, { family: "resnet", inputShape: "3x224x224" })).toBeUndefined();
	});
});
