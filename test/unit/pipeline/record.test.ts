import { describe, expect, it } from "vitest";
import { decide } from "../../../lib/core/pipeline/decide";
import {
	changedWhileTagged,
	recordMetrics,
	reportKey,
	VERDICT_RECORD_SCHEMA,
	verdictRecord,
	verdictTags,
} from "../../../lib/core/pipeline/record";
import type { ScanState } from "../../../lib/core/pipeline/types";

const state: ScanState = {
	scanId: "ftg-abc",
	bucket: "ckpts",
	marker: { key: "c/model.sig", versionId: "v9" },
	artefact: "c/",
	objects: [
		{ key: "c/model.sig", versionId: "v9", size: 10 },
		{ key: "c/w.safetensors", versionId: "v3", size: 100 },
	],
	manifest: { rootDigest: `sha256:${"a".repeat(64)}`, files: 1, bytes: 100, uri: "s3://r/scans/ftg-abc/manifest.json" },
	signature: { verified: true, identity: "key sha256:ff" },
	error: { state: "files", cause: "timeout" },
};

describe("verdictRecord", () => {
	it("binds the verdict to the exact versions and the root digest, with every stage's result", () => {
		const d = decide(state);
		const objects = [
			{ key: "c/model.sig", versionId: "v9", size: 10, tagged: true },
			{ key: "c/w.safetensors", versionId: "v3", size: 100, tagged: false, skipped: "current version is v4" },
		];
		const rec = verdictRecord(state, d, objects, new Date("2026-11-28T01:02:03Z"));
		expect(rec).toEqual({
			schema: VERDICT_RECORD_SCHEMA,
			scanId: "ftg-abc",
			bucket: "ckpts",
			artefact: "c/",
			marker: { key: "c/model.sig", versionId: "v9" },
			rootDigest: `sha256:${"a".repeat(64)}`,
			status: "QUARANTINED",
			reasons: ["error: files", "missing: files", "missing: dp", "missing: backdoor"],
			objects,
			stages: { manifest: state.manifest, signature: state.signature, error: state.error },
			recordedAt: "2026-11-28T01:02:03.000Z",
		});
		expect(JSON.parse(JSON.stringify(rec))).toEqual(rec);
	});

	it("names the waiver a skipped backdoor scan passed under, and the verdict's notes", () => {
		const waiver = { family: "llama", reason: "red-team eval", approvedBy: "sec@example.com" };
		const { error: _, ...passed } = state;
		const waived: ScanState = {
			...passed,
			files: { safe: true, unsafe: 0, malformed: 0, reportUri: "s3://r/f.json", reasons: [] },
			dp: { declared: false, required: false, maxDelta: 1e-5, families: [], problems: [], notes: [] },
			backdoor: { required: false, notScanned: "no ONNX export to scan for backdoors", family: "llama", waiver },
		};
		const d = decide(waived);
		expect(d.status).toBe("PROMOTABLE");
		const rec = verdictRecord(waived, d, [], new Date(0));
		expect(rec.waiver).toEqual(waiver);
		expect(rec.notes).toEqual([expect.stringMatching(/^backdoor: not scanned: .*; waived for family llama/)]);
		expect(rec.stages.backdoor).toMatchObject({ waiver });
		// past its expiry: no waiver in the record, the reason says not scanned
		const expired: ScanState = {
			...waived,
			backdoor: { required: false, notScanned: "no ONNX export", waiver: { ...waiver, expires: "2020-01-01" } },
		};
		const e = verdictRecord(expired, decide(expired, new Date()), [], new Date(0));
		expect(e.status).toBe("QUARANTINED");
		expect(e).not.toHaveProperty("waiver");
	});

	it("has no root digest when the manifest never ran", () => {
		const { manifest: _, ...noManifest } = state;
		expect(verdictRecord(noManifest, decide(noManifest), [], new Date(0))).not.toHaveProperty("rootDigest");
	});

	it("keeps each scan's reports under its own prefix", () => {
		expect(reportKey("ftg-abc", "verdict")).toBe("scans/ftg-abc/verdict.json");
	});
});

describe("verdictTags", () => {
	it("binds the verdict to the scan and to the root digest, when the manifest ran", () => {
		expect(verdictTags(state, "QUARANTINED")).toEqual({
			"ftguard:status": "QUARANTINED",
			"ftguard:scan-id": "ftg-abc",
			"ftguard:digest": `sha256:${"a".repeat(64)}`,
		});
		const { manifest: _, ...noManifest } = state;
		expect(verdictTags(noManifest, "QUARANTINED")).toEqual({
			"ftguard:status": "QUARANTINED",
			"ftguard:scan-id": "ftg-abc",
		});
	});
});

describe("changedWhileTagged", () => {
	it("names the objects refused their tag that the re-check had found unchanged", () => {
		const tagged = [
			{ key: "c/a", size: 1, tagged: true },
			{ key: "c/b", size: 1, tagged: false, skipped: "ETag changed" },
			{ key: "c/c", size: 1, tagged: false, skipped: "changed while tagged" },
		];
		expect(changedWhileTagged(tagged, ["c/b"])).toEqual(["c/c"]);
		expect(changedWhileTagged(tagged, ["c/b", "c/c"])).toEqual([]);
	});
});

describe("recordMetrics", () => {
	const { error: _, ...ok } = state;
	const promotable = { status: "PROMOTABLE" as const, reasons: [] };
	const quarantined = { status: "QUARANTINED" as const, reasons: ["x"] };
	const tagged = [{ key: "c/w.safetensors", size: 100, tagged: true }];

	it("counts each verdict once, by outcome", () => {
		expect(recordMetrics(ok, promotable, tagged)).toEqual([{ name: "scan_promoted_total", value: 1 }]);
		expect(recordMetrics(ok, quarantined, tagged)).toEqual([{ name: "scan_quarantined_total", value: 1 }]);
	});
	it("counts a state that failed as a scan error", () => {
		expect(recordMetrics(state, quarantined, tagged)).toEqual([
			{ name: "scan_quarantined_total", value: 1 },
			{ name: "scan_errors_total", value: 1 },
		]);
	});
	it("does not count a detected backdoor (the Batch task's error) as a scan error; a failed model scan is one", () => {
		const error = { state: "backdoor", cause: "exit 1" };
		const found: ScanState = {
			...ok,
			backdoor: {
				required: true,
				results: [{ index: 0, modelKey: "c/m.onnx", error, verdict: "suspect", finding: "class 3" }],
			},
		};
		expect(recordMetrics(found, quarantined, tagged)).toEqual([{ name: "scan_quarantined_total", value: 1 }]);
		const failed: ScanState = { ...found, backdoor: { required: true, results: [{ index: 0, error }] } };
		expect(recordMetrics(failed, quarantined, tagged)).toEqual([
			{ name: "scan_quarantined_total", value: 1 },
			{ name: "scan_errors_total", value: 1 },
		]);
	});
	it("counts the objects that got no verdict tag because they changed", () => {
		const some = [
			...tagged,
			{ key: "c/a", size: 1, tagged: false, skipped: "deleted" },
			{ key: "c/b", size: 1, tagged: false, skipped: "changed while tagged" },
		];
		expect(recordMetrics(ok, quarantined, some)).toEqual([
			{ name: "scan_quarantined_total", value: 1 },
			{ name: "scan_objects_changed_total", value: 2 },
		]);
	});
});
