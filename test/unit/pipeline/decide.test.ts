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
	dp: { declared: false, required: false, maxDelta: 1e-5, families: [], problems: [], notes: [] },
	backdoor: {
		required: true,
		models: [
			{
				modelKey: "c/model.onnx",
				modelVersionId: "",
				dataUri: "s3://r/x.npy",
				labelsUri: "s3://r/y.npy",
				tokenizerUri: "",
				textField: "",
				labelsField: "",
				dataKind: "reference",
			},
		],
		results: [{ index: 0, modelKey: "c/model.onnx", verdict: "clean" }],
	},
};
const MODELS = allPass.backdoor?.models ?? [];
const NO_DP = allPass.dp as NonNullable<ScanState["dp"]>;
const DP_RUN = { ...NO_DP, declared: true, maxEpsilon: 8, epsilon: 2.6, order: 8, delta: 1e-5 };

/** The DP gate's pass, written out independently of decide's dpReasons. */
function dpPassed(dp: unknown): boolean {
	if (typeof dp !== "object" || dp === null || Array.isArray(dp)) return false;
	const d = dp as Record<string, unknown>;
	if (!Array.isArray(d.problems) || d.problems.length > 0) return false;
	if (typeof d.declared !== "boolean" || typeof d.required !== "boolean") return false;
	const num = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x);
	if (!d.declared && d.required) return false;
	if (d.declared && !(num(d.epsilon) && d.epsilon >= 0)) return false;
	if (d.epsilon !== undefined && d.maxEpsilon !== undefined)
		if (!(num(d.epsilon) && num(d.maxEpsilon) && d.epsilon <= d.maxEpsilon)) return false;
	if (d.delta !== undefined && !(num(d.delta) && num(d.maxDelta) && d.delta <= d.maxDelta)) return false;
	return true;
}

describe("decide", () => {
	it("promotes only the all-pass state", () => {
		expect(decide(allPass)).toEqual({ status: "PROMOTABLE", reasons: [] });
		expect(decide({ ...allPass, backdoor: { required: false, noWeights: true } }).status).toBe("PROMOTABLE");
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
		["the DP gate never ran", { ...allPass, dp: undefined } as unknown as ScanState, "missing: dp"],
		[
			"a DP gate problem",
			{ ...allPass, dp: { ...DP_RUN, problems: ["the claimed ε 1 understates the run"] } },
			"dp: the claimed ε 1 understates the run",
		],
		[
			"a required DP run not declared, its problem lost",
			{ ...allPass, dp: { ...NO_DP, required: true } },
			"dp: DP-SGD training is required but the artefact declares none",
		],
		[
			"an over-limit ε, its problem lost",
			{ ...allPass, dp: { ...DP_RUN, maxEpsilon: 2 } },
			"dp: ε 2.6 is above the policy's maxEpsilon 2",
		],
		[
			"a declared run with no ε",
			{ ...allPass, dp: { ...DP_RUN, epsilon: undefined } },
			"dp: the declared run was not accounted",
		],
		[
			"an ε over the limit on an outcome that declares no run (the red team's state)",
			{ ...allPass, dp: { ...NO_DP, epsilon: 100, maxEpsilon: 8 } },
			"dp: ε 100 is above the policy's maxEpsilon 8",
		],
		[
			"a δ over the limit",
			{ ...allPass, dp: { ...DP_RUN, delta: 0.5 } },
			"dp: δ 0.5 is above the policy's maxDelta 0.00001",
		],
		["a negative ε", { ...allPass, dp: { ...DP_RUN, epsilon: -5 } }, "dp: the declared run was not accounted"],
		[
			"a DP outcome without its problems",
			{ ...allPass, dp: { ...NO_DP, problems: "none" } } as unknown as ScanState,
			"dp: no list of problems",
		],
		["no backdoor decision", { ...allPass, backdoor: undefined } as unknown as ScanState, "missing: backdoor"],
		[
			"a required backdoor scan that never ran",
			{ ...allPass, backdoor: { required: true, models: MODELS } },
			"missing: backdoor scan",
		],
		[
			"a required backdoor scan with no model",
			{ ...allPass, backdoor: { required: true } },
			"backdoor: no model to scan",
		],
		[
			"a suspect model",
			{
				...allPass,
				backdoor: {
					required: true,
					models: MODELS,
					results: [{ index: 0, modelKey: "c/model.onnx", verdict: "suspect" }],
				},
			},
			"backdoor: suspect model.onnx",
		],
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
			"missing: dp",
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
			dp: near(
				p.dp,
				fc.record({
					declared: fc.oneof(fc.boolean(), junk),
					required: fc.oneof(fc.boolean(), junk),
					maxEpsilon: fc.oneof(fc.constant(undefined), fc.constantFrom(1, 8), junk),
					epsilon: fc.oneof(fc.constant(undefined), fc.constantFrom(2.6, 9, -1), junk),
					delta: fc.oneof(fc.constant(undefined), fc.constantFrom(1e-5, 0.5), junk),
					maxDelta: fc.oneof(fc.constant(1e-5), junk),
					problems: fc.oneof(fc.constant([]), fc.constant(["x"]), junk),
				}),
			),
			backdoor: near(
				p.backdoor,
				fc.record({
					required: fc.oneof(fc.boolean(), junk),
					models: fc.oneof(fc.constant(MODELS), fc.constant([]), junk),
					results: fc.oneof(
						fc.array(
							fc.record({
								index: fc.oneof(fc.constant(0), fc.nat(2), junk),
								modelKey: fc.oneof(fc.constant("c/model.onnx"), junk),
								verdict: fc.oneof(fc.constantFrom("clean", "suspect"), junk),
								error: fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: junk, weight: 1 }),
							}),
							{ maxLength: 2 },
						),
						junk,
					),
					notScanned: fc.oneof(fc.constantFrom(undefined, "no ONNX export to scan for backdoors"), junk),
					noWeights: fc.oneof(fc.boolean(), junk),
					waiver: fc.oneof(
						fc.constant(undefined),
						fc.record({ reason: fc.oneof(fc.constant("approved"), junk), family: fc.constant("llama") }),
						junk,
					),
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
					dpPassed(x.dp) &&
					x.backdoor !== undefined &&
					x.backdoor !== null &&
					((x.backdoor.required === true &&
						Array.isArray(x.backdoor.models) &&
						x.backdoor.models.length === 1 &&
						Array.isArray(x.backdoor.results) &&
						x.backdoor.results.length === 1 &&
						x.backdoor.results[0]?.index === 0 &&
						x.backdoor.results[0]?.modelKey === "c/model.onnx" &&
						x.backdoor.results[0]?.verdict === "clean" &&
						x.backdoor.results[0]?.error === undefined) ||
						(x.backdoor.required === false &&
							((x.backdoor.notScanned === undefined && x.backdoor.noWeights === true) ||
								(typeof x.backdoor.notScanned === "string" &&
									x.backdoor.notScanned !== "" &&
									typeof x.backdoor.waiver?.reason === "string" &&
									x.backdoor.waiver.reason.trim() !== ""))));
				if (allPassed) promoted++;
				expect(d.status === "PROMOTABLE").toBe(allPassed);
				expect(d.reasons.length === 0).toBe(allPassed);
			}),
			{ numRuns: 3000 },
		);
		expect(promoted).toBeGreaterThan(100); // the all-pass state is reached, so the property is not vacuous
	});
});

describe("decide: no promotion without the backdoor scan the policy requires", () => {
	const skipped = (backdoor: Record<string, unknown>, now?: Date) =>
		decide({ ...allPass, backdoor: { required: false, ...backdoor } }, now);
	const NOT_SCANNED = "no ONNX export to scan for backdoors";

	it("quarantines weights that were not scanned, with the files step's reason", () => {
		expect(skipped({ notScanned: NOT_SCANNED })).toEqual({
			status: "QUARANTINED",
			reasons: ["not scanned: no ONNX export to scan for backdoors"],
		});
		expect(skipped({ notScanned: "no reference data for family bert", modelKey: "c/m.onnx" }).reasons).toEqual([
			"not scanned: no reference data for family bert",
		]);
	});

	it("promotes an unscanned artefact under a waiver, and says so in the notes", () => {
		const waiver = { family: "llama", reason: "red-team eval", approvedBy: "sec@example.com", expires: "2026-12-31" };
		expect(skipped({ notScanned: NOT_SCANNED, waiver }, new Date("2026-06-01T00:00:00Z"))).toEqual({
			status: "PROMOTABLE",
			reasons: [],
			notes: [
				"backdoor: not scanned: no ONNX export to scan for backdoors; waived for family llama (red-team eval; approved by sec@example.com; expires 2026-12-31)",
			],
		});
		expect(skipped({ notScanned: NOT_SCANNED, waiver: { reason: "the policy's backdoor.required is false" } })).toEqual(
			{
				status: "PROMOTABLE",
				reasons: [],
				notes: [
					"backdoor: not scanned: no ONNX export to scan for backdoors; waived by policy (the policy's backdoor.required is false)",
				],
			},
		);
	});

	it("an expired waiver is no waiver (re-checked against the clock it is given)", () => {
		const waiver = { family: "llama", reason: "r", expires: "2026-01-31" };
		const d = skipped({ notScanned: NOT_SCANNED, waiver }, new Date("2026-02-01T00:00:00Z"));
		expect(d.status).toBe("QUARANTINED");
		expect(d.reasons).toEqual([
			"not scanned: no ONNX export to scan for backdoors",
			"backdoor: waiver for family llama (r; expires 2026-01-31) has expired",
		]);
		// as the files step found it
		expect(skipped({ notScanned: NOT_SCANNED, expiredWaiver: waiver }).reasons).toContain(
			"backdoor: waiver for family llama (r; expires 2026-01-31) has expired",
		);
	});

	it("a waiver without its reason, or with junk for an expiry, waives nothing", () => {
		expect(skipped({ notScanned: NOT_SCANNED, waiver: { family: "llama" } }).status).toBe("QUARANTINED");
		expect(skipped({ notScanned: NOT_SCANNED, waiver: { family: "llama", reason: " " } }).status).toBe("QUARANTINED");
		expect(skipped({ notScanned: NOT_SCANNED, waiver: { reason: "r", expires: 20991231 } }).status).toBe("QUARANTINED");
		expect(skipped({ notScanned: NOT_SCANNED, waiver: "yes" }).status).toBe("QUARANTINED");
	});

	it("no weights at all: nothing to scan, PROMOTABLE with a note", () => {
		expect(skipped({ noWeights: true })).toEqual({
			status: "PROMOTABLE",
			reasons: [],
			notes: ["backdoor: not applicable (no model weights)"],
		});
	});

	it("fail closed: a skipped scan without a reason is not 'no weights'", () => {
		for (const b of [{}, { noWeights: "true" }, { noWeights: false }, { notScanned: "" }, { notScanned: 3 }]) {
			expect(skipped(b)).toEqual({
				status: "QUARANTINED",
				reasons: ["not scanned: no reason recorded for skipping the backdoor scan"],
			});
		}
		// a reason to skip outweighs "no weights"
		expect(skipped({ noWeights: true, notScanned: NOT_SCANNED }).status).toBe("QUARANTINED");
	});

	it("a waiver never covers a scan that ran and found something", () => {
		const waiver = { family: "llama", reason: "r" };
		expect(decide({ ...allPass, backdoor: { required: true, verdict: "suspect", waiver } }).status).toBe("QUARANTINED");
	});

	it("finalDecision keeps the notes", () => {
		const state: ScanState = { ...allPass, backdoor: { required: false, noWeights: true } };
		expect(finalDecision(state, [])).toEqual(decide(state));
		expect(finalDecision(state, ["c/model.safetensors"])).toMatchObject({
			status: "QUARANTINED",
			notes: ["backdoor: not applicable (no model weights)"],
		});
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
