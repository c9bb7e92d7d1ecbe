/**
 * Provenance test data: a directory artefact with its pipeline root digest (computed here independently of
 * lib/: SHA-256 of each file, sorted by name, SHA-256 over the raw digests — the OMS rule), verdict records around
 * it, and a backdoor report with every detector's figures.
 */
import { createHash, generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import type { VerdictRecord } from "../../lib/core/pipeline/record";
import type { BackdoorReportFigures } from "../../lib/core/provenance/statement";

const sha256 = (b: Uint8Array | string) => createHash("sha256").update(b).digest();

/** A model directory: weights, config, a nested file, and the commit marker (never part of the digest). */
export function artefactDir(): string {
	const dir = join(mkdtempSync(join(tmpdir(), "ftguard-prov-")), "model");
	mkdirSync(join(dir, "tokenizer"), { recursive: true });
	writeFileSync(join(dir, "config.json"), '{"model_type":"bert"}');
	writeFileSync(join(dir, "model.safetensors"), Buffer.alloc(4096, 7));
	writeFileSync(join(dir, "tokenizer", "vocab.txt"), "a\nb\nc\n");
	writeFileSync(join(dir, "model.sig"), "not part of the artefact");
	return dir;
}

/** `sha256:<hex>` root of every file under `dir` but the top-level model.sig (the pipeline's manifest). */
export function rootOf(dir: string): string {
	const files: string[] = [];
	const walk = (d: string) => {
		for (const name of readdirSync(d)) {
			const p = join(d, name);
			if (statSync(p).isDirectory()) walk(p);
			else files.push(relative(dir, p).split("\\").join("/"));
		}
	};
	walk(dir);
	const names = files.filter((f) => f !== "model.sig").sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
	const h = createHash("sha256");
	for (const n of names) h.update(sha256(readFileSync(join(dir, n))));
	return `sha256:${h.digest("hex")}`;
}

export function p256(): { privateKey: KeyObject; publicKey: KeyObject; publicPem: string; privatePem: string } {
	const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
	return {
		privateKey,
		publicKey,
		publicPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
		privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
	};
}

/** A PROMOTABLE record with every stage a scan can have. */
export function fullRecord(rootDigest: string): VerdictRecord {
	return {
		schema: "https://ftguard.dev/schemas/verdict-record/v1",
		scanId: "ftg-0123",
		bucket: "acme-checkpoints",
		artefact: "jobs/j1/model/",
		marker: { key: "jobs/j1/model/model.sig", versionId: "m1" },
		rootDigest,
		status: "PROMOTABLE",
		reasons: [],
		notes: ["dp: ε 3.01 within 8"],
		objects: [
			{ key: "jobs/j1/model/config.json", versionId: "v1", etag: '"e1"', size: 21, tagged: true },
			{ key: "jobs/j1/model/model.safetensors", versionId: "v2", size: 4096, tagged: true },
			{ key: "jobs/j1/model/model.sig", versionId: "m1", size: 24, tagged: true },
			{ key: "jobs/j1/model/tokenizer/vocab.txt", etag: '"e3"', size: 6, tagged: false, skipped: "changed" },
		],
		stages: {
			manifest: { rootDigest, files: 3, bytes: 4123, uri: "s3://acme-reports/scans/ftg-0123/manifest.json" },
			signature: { verified: true, identity: "https://ci.example/job@refs/heads/main" },
			files: {
				safe: true,
				unsafe: 0,
				malformed: 0,
				reportUri: "s3://acme-reports/scans/ftg-0123/files.json",
				reasons: [],
			},
			backdoor: {
				required: true,
				family: "bert",
				models: [
					{
						modelKey: "jobs/j1/model/model.onnx",
						modelVersionId: "v9",
						dataUri: "s3://trusted/data.npy",
						labelsUri: "s3://trusted/labels.npy",
						tokenizerUri: "",
						textField: "",
						labelsField: "",
						dataKind: "reference",
					},
					{
						modelKey: "jobs/j1/model/head.onnx",
						modelVersionId: "",
						dataUri: "s3://trusted/data.npy",
						labelsUri: "s3://trusted/labels.npy",
						tokenizerUri: "",
						textField: "",
						labelsField: "",
						dataKind: "reference",
					},
				],
				results: [
					{ index: 0, modelKey: "jobs/j1/model/model.onnx", verdict: "clean", reportUri: "s3://acme-reports/r0.json" },
					{ index: 1, modelKey: "jobs/j1/model/head.onnx", error: { state: "BackdoorScan", cause: "timeout" } },
				],
			},
			training: {
				jobId: "job-42",
				codeCommit: "0a1b2c3d",
				baseModel: "bert-base@sha256:abc",
				datasetLineageRoot: `sha256:${"d".repeat(64)}`,
			},
			dp: {
				declared: true,
				required: true,
				maxEpsilon: 8,
				maxDelta: 1e-5,
				families: ["bert"],
				epsilon: 3.01,
				order: 14,
				delta: 1e-5,
				steps: 14063,
				sampleRate: 256 / 60000,
				noiseMultiplier: 1.1,
				claimedEpsilon: 3.1,
				accountant: "rdp",
				problems: [],
				notes: [],
			},
		},
		recordedAt: "2026-11-28T01:02:03.000Z",
	};
}

/** A QUARANTINED record with only the manifest and an error: none of the optional parts. */
export function bareRecord(rootDigest: string): VerdictRecord {
	return {
		schema: "https://ftguard.dev/schemas/verdict-record/v1",
		scanId: "ftg-bare",
		bucket: "acme-checkpoints",
		artefact: "jobs/j2/model/",
		marker: { key: "jobs/j2/model/model.sig" },
		rootDigest,
		status: "QUARANTINED",
		reasons: ["error: signature"],
		// the files of artefactDir(): what the verifier compares the directory's names with
		objects: ["config.json", "model.safetensors", "model.sig", "tokenizer/vocab.txt"].map((n) => ({
			key: `jobs/j2/model/${n}`,
			size: 1,
			tagged: true,
		})),
		stages: {
			manifest: { rootDigest, files: 1, bytes: 1, uri: "s3://r/m.json" },
			error: { state: "signature", cause: "boom" },
		},
		recordedAt: "2026-11-28T00:00:00.000Z",
	};
}

export function backdoorReport(): BackdoorReportFigures {
	return {
		verdict: "clean",
		suspect_classes: [],
		detectors: {
			neural_cleanse: {
				rule: "ftguard",
				l1_norms: [10, 12, 11],
				anomaly_indices: [0.5, null, 1.2],
				log_anomaly_indices: [0, 0, 0],
				relative_l1: [1, 1, 1],
				flagged_classes: [],
				flagged_classes_vanilla: [],
				max_anomaly_index: 1.2,
				mask_size: 4,
				attack_success: [0.1, 0.1, 0.1],
				restarts: 1,
				steps: 100,
			},
			strip: {
				boundary: 0.2,
				frr: 0.01,
				superimpositions: 10,
				clean_entropy: { mean: 1.5, std: 0.2, min: 0.9, max: 2 },
				reversed_triggers: [{ cls: 0, fraction_below: 0.02, mean_entropy: 1.4 }],
			},
			activation_clustering: {
				data_kind: "reference",
				decides: true,
				flagged_classes: [],
				per_class: [
					{ cls: 0, n: 50, minority_fraction: 0.1, silhouette: 0.05, flagged: false, minority_indices: [1, 2] },
				],
			},
		},
	};
}
