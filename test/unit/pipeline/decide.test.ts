import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decide, finalDecision } from "../../../lib/core/pipeline/decide";
import type { ScanState } from "../../../lib/core/pipeline/types";

const base: ScanState = { scanId: "ftg-1", bucket: "b", marker: { key: "c/model.sig", etag: "e" }, artefact: "c/" };
const allPass: ScanState = {
	...base,
	objects: [{ key: "c/model.safetensors", etag: "e", size: 1 }],
	manifest: { rootDigest: `sha256:${"0".repeat(64)}`, files: 1, bytes: 1, uri: "s3://r/m.json" },
	signature: { verified: true, identity: "key" },
	files: { safe: true, unsafe: 0, malformed: 0, reportUri: "s3://r/f.json", reasons: [] },
	backdoor: { required: false },
};

describe("decide", () => {
	it("promotes only the all-pass state", () => {
		expect(decide(allPass)).toEqual({ status: "PROMOTABLE", reasons: [] });
		expect(decide({ ...allPass, backdoor: { required: true, modelKey: "c/m.onnx", verdict: "clean" } }).status).toBe(
			"PROMOTABLE",
		);
	});

	it.each<[string, ScanState, string]>([
		["an error in any state", { ...allPass, error: { state: "files", cause: "boom" } }, "error: files"],
		["mark never ran", { ...allPass, objects: undefined } as unknown as ScanState, "missing: mark"],
		["no objects", { ...allPass, objects: [] }, "mark: no objects"],
		["manifest never ran", { ...allPass, manifest: undefined } as unknown as ScanState, "missing: manifest"],
		["signature never ran", { ...allPass, signature: undefined } as unknown as ScanState, "missing: signature"],
		[
			"a failed signature",
			{ ...allPass, signature: { verified: false, code: "DIGEST_MISMATCH", reason: "digest mismatch: w" } },
			"signature: DIGEST_MISMATCH (digest mismatch: w)",
		],
		["files never ran", { ...allPass, files: undefined } as unknown as ScanState, "missing: files"],
		[
			"an unsafe file",
			{ ...allPass, files: { safe: false, unsafe: 1, malformed: 0, reportUri: "u", reasons: ["x: unsafe"] } },
			"files: x: unsafe",
		],
		[
			"safe: true contradicted by a count",
			{ ...allPass, files: { safe: true, unsafe: 0, malformed: 1, reportUri: "u", reasons: [] } },
			"files: 0 unsafe, 1 malformed",
		],
		["no backdoor decision", { ...allPass, backdoor: undefined } as unknown as ScanState, "missing: backdoor"],
		["a required backdoor scan that never ran", { ...allPass, backdoor: { required: true } }, "missing: backdoor scan"],
		["a suspect model", { ...allPass, backdoor: { required: true, verdict: "suspect" } }, "backdoor: suspect"],
	])("quarantines %s", (_, state, reason) => {
		const d = decide(state);
		expect(d.status).toBe("QUARANTINED");
		expect(d.reasons).toContain(reason);
	});

	it("lists every problem, not just the first", () => {
		const d = decide({ ...base, error: { state: "mark", cause: "x" } });
		expect(d.reasons).toEqual([
			"error: mark",
			"missing: mark",
			"missing: manifest",
			"missing: signature",
			"missing: files",
			"missing: backdoor",
		]);
	});

	it("never promotes a state other than an all-pass one (property)", () => {
		// Each field is mostly its passing value, so runs land near the all-pass state
		// where a wrong rule would show, and otherwise anything JSON could carry.
		const junk = fc.constantFrom(undefined, null, 0, 1, "", "true", "clean", [], {});
		const near = <T>(pass: T, other: fc.Arbitrary<unknown>) =>
			fc.oneof({ arbitrary: fc.constant(pass), weight: 6 }, { arbitrary: fc.oneof(other, junk), weight: 1 });
		const p = allPass as Required<ScanState>;
		const state = fc.record({
			error: fc.oneof(
				{ arbitrary: fc.constant(undefined), weight: 6 },
				{
					arbitrary: fc.record({ state: fc.constantFrom("mark", "files", "backdoor"), cause: fc.string() }),
					weight: 1,
				},
			),
			objects: near(
				p.objects,
				fc.array(fc.record({ key: fc.string({ minLength: 1 }), size: fc.nat() }), { maxLength: 2 }),
			),
			manifest: near(p.manifest, fc.constant(undefined)),
			signature: near(p.signature, fc.record({ verified: fc.oneof(fc.boolean(), junk), code: fc.string() })),
			files: near(
				p.files,
				fc.record({
					safe: fc.oneof(fc.boolean(), junk),
					unsafe: fc.nat(2),
					malformed: fc.nat(2),
					reportUri: fc.constant("u"),
					reasons: fc.array(fc.string(), { maxLength: 2 }),
				}),
			),
			backdoor: near(
				p.backdoor,
				fc.record({
					required: fc.oneof(fc.boolean(), junk),
					verdict: fc.oneof(fc.constantFrom("clean", "suspect"), junk),
				}),
			),
		});
		let promoted = 0;
		fc.assert(
			fc.property(state, (s) => {
				const input = { ...base, ...s } as unknown as ScanState;
				const d = decide(input);
				const x = input as Partial<Record<keyof ScanState, unknown>> & ScanState;
				const allPassed =
					x.error === undefined &&
					Array.isArray(x.objects) &&
					x.objects.length > 0 &&
					x.manifest !== undefined &&
					x.manifest !== null &&
					typeof x.manifest === "object" &&
					!Array.isArray(x.manifest) &&
					x.signature?.verified === true &&
					x.files?.safe === true &&
					x.files.unsafe === 0 &&
					x.files.malformed === 0 &&
					x.backdoor !== undefined &&
					x.backdoor !== null &&
					(x.backdoor.required === false || (x.backdoor.required === true && x.backdoor.verdict === "clean"));
				if (allPassed) promoted++;
				expect(d.status === "PROMOTABLE").toBe(allPassed);
				expect(d.reasons.length === 0).toBe(allPassed);
			}),
			{ numRuns: 3000 },
		);
		expect(promoted).toBeGreaterThan(100); // the all-pass state is reached, so the property is not vacuous
	});
});

describe("finalDecision (the record state)", () => {
	it("keeps the all-pass state PROMOTABLE when nothing changed", () => {
		expect(finalDecision({ ...allPass, verdict: { status: "PROMOTABLE", reasons: [] } }, [])).toEqual({
			status: "PROMOTABLE",
			reasons: [],
		});
	});
	it("quarantines when an object changed since mark", () => {
		expect(finalDecision(allPass, ["c/model.safetensors"])).toEqual({
			status: "QUARANTINED",
			reasons: ["changed during scan: c/model.safetensors"],
		});
	});
	it("lets a QUARANTINED verdict in the input stand, whatever the stages say", () => {
		const d = finalDecision({ ...allPass, verdict: { status: "QUARANTINED", reasons: [] } }, []);
		expect(d.status).toBe("QUARANTINED");
	});
	it("does not take a PROMOTABLE verdict in the input on trust", () => {
		const d = finalDecision({ ...base, verdict: { status: "PROMOTABLE", reasons: [] } }, []);
		expect(d.status).toBe("QUARANTINED");
		expect(d.reasons).toContain("missing: signature");
	});
});
