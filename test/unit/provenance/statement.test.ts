import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
	PROVENANCE_PREDICATE_TYPE,
	policyDigest,
	provenancePayload,
	provenanceStatement,
} from "../../../lib/core/provenance/statement";
import { backdoorReport, bareRecord, fullRecord } from "../../helpers/provenance";

const ROOT = `sha256:${"ab".repeat(32)}`;
const POLICY = { signers: [{ kind: "publicKey", pem: "x" }], backdoor: { required: true } };

describe("provenanceStatement", () => {
	it("names the artefact by its root digest and carries every field of a full record", () => {
		const s = provenanceStatement(fullRecord(ROOT), {
			policyDigest: policyDigest(POLICY),
			policyUri: "s3://acme-base/ftguard/policy/p.json",
			hashPlan: { method: "files" },
			backdoorReports: { "jobs/j1/model/model.onnx": backdoorReport() },
			baseModelResult: { status: "PROMOTABLE", reasons: [], uri: "s3://acme-base/bert/" },
			verdictRecord: { uri: "s3://acme-reports/scans/ftg-0123/verdict.json", sha256: "f".repeat(64) },
		});
		expect(s._type).toBe("https://in-toto.io/Statement/v1");
		expect(s.predicateType).toBe(PROVENANCE_PREDICATE_TYPE);
		expect(s.subject).toEqual([{ name: "s3://acme-checkpoints/jobs/j1/model/", digest: { sha256: "ab".repeat(32) } }]);
		const p = s.predicate;
		expect(p.scanId).toBe("ftg-0123");
		expect(p.recordedAt).toBe("2026-11-28T01:02:03.000Z");
		expect(p.verdict).toEqual({ status: "PROMOTABLE", reasons: [], notes: ["dp: ε 3.01 within 8"] });
		expect(p.checkpoint).toEqual({
			uri: "s3://acme-checkpoints/jobs/j1/model/",
			bucket: "acme-checkpoints",
			artefact: "jobs/j1/model/",
			marker: { key: "jobs/j1/model/model.sig", versionId: "m1" },
			rootDigest: ROOT,
			serialization: { method: "files" },
			files: 3,
			bytes: 4123,
			manifestUri: "s3://acme-reports/scans/ftg-0123/manifest.json",
			objects: [
				{ key: "jobs/j1/model/config.json", versionId: "v1", etag: '"e1"', size: 21, tagged: true },
				{ key: "jobs/j1/model/model.safetensors", versionId: "v2", size: 4096, tagged: true },
				{ key: "jobs/j1/model/model.sig", versionId: "m1", size: 24, tagged: true },
				{ key: "jobs/j1/model/tokenizer/vocab.txt", etag: '"e3"', size: 6, tagged: false, skipped: "changed" },
			],
		});
		expect(p.signer).toEqual({ verified: true, identity: "https://ci.example/job@refs/heads/main" });
		expect(p.training).toEqual({ jobId: "job-42", codeCommit: "0a1b2c3d" });
		expect(p.baseModel).toEqual({
			id: "bert-base@sha256:abc",
			result: { status: "PROMOTABLE", reasons: [], uri: "s3://acme-base/bert/" },
		});
		expect(p.dataset).toEqual({ lineageRoot: `sha256:${"d".repeat(64)}` });
		expect(p.checks.files).toEqual(fullRecord(ROOT).stages.files);
		expect(p.checks.dp).toMatchObject({ epsilon: 3.01, delta: 1e-5, claimedEpsilon: 3.1, problems: [] });
		expect(p.checks.backdoor).toEqual({
			required: true,
			family: "bert",
			models: [
				{
					modelKey: "jobs/j1/model/model.onnx",
					modelVersionId: "v9",
					result: "clean",
					reportUri: "s3://acme-reports/r0.json",
					figures: {
						verdict: "clean",
						suspectClasses: [],
						neuralCleanse: {
							rule: "ftguard",
							anomalyIndices: [0.5, null, 1.2],
							maxAnomalyIndex: 1.2,
							l1Norms: [10, 12, 11],
							flaggedClasses: [],
						},
						strip: {
							boundary: 0.2,
							frr: 0.01,
							cleanEntropy: { mean: 1.5, std: 0.2, min: 0.9, max: 2 },
							reversedTriggers: [{ cls: 0, fractionBelow: 0.02, meanEntropy: 1.4 }],
						},
						activationClustering: {
							decides: true,
							flaggedClasses: [],
							perClass: [{ cls: 0, n: 50, minorityFraction: 0.1, silhouette: 0.05, flagged: false }],
						},
					},
				},
				// no version on a store without versioning, no report passed, the job failed
				{ modelKey: "jobs/j1/model/head.onnx", result: "error", error: { state: "BackdoorScan", cause: "timeout" } },
			],
		});
		expect(p.policy).toEqual({ digest: policyDigest(POLICY), uri: "s3://acme-base/ftguard/policy/p.json" });
		expect(p.verdictRecord).toEqual({ uri: "s3://acme-reports/scans/ftg-0123/verdict.json", sha256: "f".repeat(64) });
	});

	it("carries the calibrated verdict's p-values when the scan used that rule (the default)", () => {
		const r = backdoorReport();
		const nc = r.detectors.neural_cleanse;
		if (nc === undefined) throw new Error("fixture");
		nc.rule = "calibrated";
		r.detectors.calibrated = {
			false_alarm_rate: 0.01,
			calibration: {
				families: ["neural_cleanse"],
				statistics: ["nc_relative"],
				models: 14,
				classes: 90,
				source: "fit",
				search: {
					nc: { steps: 100, restarts: 1, batch: 32 },
					pairs: { steps: 60, restarts: 1, maxPairs: 400 },
					mm: { steps: 300, restarts: 8 },
				},
				maskSizes: [256],
			},
			per_class: [0, 1, 2].map((c) => ({
				cls: c,
				score: 0,
				strongest: "neural_cleanse",
				stage: 1 as const,
				scores: {},
				p_value: c / 4 + 0.25,
				z: {},
				flagged: false,
			})),
			flagged_classes: [],
		};
		const s = provenanceStatement(fullRecord(ROOT), {
			policyDigest: policyDigest(POLICY),
			backdoorReports: { "jobs/j1/model/model.onnx": r },
		});
		expect(s.predicate.checks.backdoor?.models[0]?.figures).toMatchObject({
			neuralCleanse: { rule: "calibrated" },
			calibrated: { falseAlarmRate: 0.01, pValues: [0.25, 0.5, 0.75], flaggedClasses: [] },
		});
	});

	it("leaves out every optional part a bare record lacks", () => {
		const p = provenanceStatement(bareRecord(ROOT), { policyDigest: policyDigest(POLICY) }).predicate;
		expect(Object.keys(p).sort()).toEqual(["checkpoint", "checks", "policy", "recordedAt", "scanId", "verdict"]);
		expect(p.verdict).toEqual({ status: "QUARANTINED", reasons: ["error: signature"] });
		expect(p.checks).toEqual({ error: { state: "signature", cause: "boom" } });
		expect(Object.keys(p.checkpoint).sort()).toEqual(
			[
				"artefact",
				"bucket",
				"bytes",
				"files",
				"manifestUri",
				"marker",
				"objects",
				"rootDigest",
				"serialization",
				"uri",
			].sort(),
		);
		expect(p.policy).toEqual({ digest: policyDigest(POLICY) });
	});

	it("names the base model without a result, and no training part when the job declared neither id nor commit", () => {
		const r = fullRecord(ROOT);
		r.stages.training = { baseModel: "bert-base" };
		const p = provenanceStatement(r, { policyDigest: policyDigest(POLICY) }).predicate;
		expect(p.baseModel).toEqual({ id: "bert-base" });
		expect(p).not.toHaveProperty("training");
		expect(p).not.toHaveProperty("dataset");
		expect(p.checks.backdoor?.models[0]).not.toHaveProperty("figures");
	});

	it("marks a planned model without an outcome as not run", () => {
		const r = fullRecord(ROOT);
		if (r.stages.backdoor) r.stages.backdoor.results = [];
		const models = provenanceStatement(r, { policyDigest: policyDigest(POLICY) }).predicate.checks.backdoor?.models;
		expect(models?.map((m) => m.result)).toEqual(["not-run", "not-run"]);
	});

	it("refuses a record without a root digest: it describes no bytes", () => {
		const { rootDigest: _, ...r } = bareRecord(ROOT);
		expect(() => provenanceStatement(r, { policyDigest: policyDigest(POLICY) })).toThrow(
			expect.objectContaining({ code: "DATA_INVALID" }),
		);
	});
});

describe("policyDigest", () => {
	it("is the SHA-256 of the canonical JSON: key order and spacing do not matter, content does", () => {
		expect(policyDigest({ b: 1, a: [1, 2] })).toBe(
			`sha256:${createHash("sha256").update('{"a":[1,2],"b":1}').digest("hex")}`,
		);
		expect(policyDigest(JSON.parse('{ "a": [1,2],\n "b": 1 }'))).toBe(policyDigest({ b: 1, a: [1, 2] }));
		expect(policyDigest({ a: [2, 1], b: 1 })).not.toBe(policyDigest({ a: [1, 2], b: 1 }));
	});
});

describe("provenancePayload", () => {
	it("is canonical JSON: the same record always gives the same bytes", () => {
		const a = provenancePayload(provenanceStatement(fullRecord(ROOT), { policyDigest: policyDigest(POLICY) }));
		const b = provenancePayload(provenanceStatement(fullRecord(ROOT), { policyDigest: policyDigest({ ...POLICY }) }));
		expect(a.equals(b)).toBe(true);
		expect(a.toString()).toMatch(/^\{"_type":"https:\/\/in-toto.io\/Statement\/v1","predicate":\{/);
		expect(JSON.parse(a.toString()).predicate.scanId).toBe("ftg-0123");
	});
});
