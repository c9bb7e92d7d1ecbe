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
import { defaultBackdoorPolicy } from "../../../lib/core/policy/backdoor";
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
