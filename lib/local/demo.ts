/**
 * `ftguard pipeline --demo`: the bundled examples uploaded through the S3 API
 * (each artefact's commit marker last, as an uploader must), one verdict awaited
 * per example and compared with the expected one. PROMOTABLE: the signed clean
 * ONNX model that passed every check including the backdoor scan, and the
 * language model whose family the demo policy waives (the waiver shown); the
 * signed safetensors checkpoint of a family with no waiver is QUARANTINED
 * "not scanned" (policy backdoor.required, the default). The training inputs are
 * gated too: the example base model against the signed example registry
 * (PROMOTABLE) and the same model with a pickle payload added (QUARANTINED), a
 * clean dataset (PROMOTABLE) and one poisoned at 0.5% (QUARANTINED, the trigger
 * named).
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, sep } from "node:path";
import { PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { buildManifest } from "../core/integrity/manifest";
import { BASE_MODEL_MARKER, DATASET_MARKER } from "../core/pipeline/names";
import { DEFAULT_BUCKETS, type LocalBuckets } from "./definition";
import { createDemoSigner, type DemoSigner } from "./demo-signer";
import type { LocalPipeline, LocalVerdict, VerdictStatus } from "./pipeline";

export const TRUSTED_BUCKET = "trusted";
const REGISTRY_KEY = "ftguard/registry.json";
const DATASETS = "test/fixtures/dataset";
const REFERENCE_PREFIX = "digits8/";
/** Where the demo keeps the text classifiers' reference texts and tokenizer in the trusted bucket. */
const TEXT_REFERENCE_PREFIX = "debian-sections/";

export interface DemoCase {
	name: string;
	description: string;
	expected: VerdictStatus;
	/** a reason the verdict must carry (quarantines) */
	reason?: RegExp;
	/** a note the verdict must carry (a promotion under a waiver); a PROMOTABLE case without one must have no notes */
	note?: RegExp;
	/** the bucket it is uploaded to; @default "checkpoints" */
	bucket?: keyof LocalBuckets;
	/** uploads the artefact, marker last, and returns the marker key */
	upload(s3: S3Client, bucket: string): Promise<string>;
}

export interface DemoResult {
	name: string;
	description: string;
	expected: VerdictStatus;
	status: VerdictStatus | "NO_VERDICT";
	reasons: string[];
	/** what a verdict rests on besides passed checks (a waived backdoor scan) */
	notes: string[];
	seconds: number;
	ok: boolean;
}

async function put(s3: S3Client, bucket: string, key: string, body: Uint8Array | string): Promise<void> {
	await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
}

/** A model directory under `prefix`, model.sig last (`sig` replaces the directory's own). */
async function uploadDir(s3: S3Client, bucket: string, dir: string, prefix: string, sig?: string): Promise<string> {
	const files = readdirSync(dir, { recursive: true, withFileTypes: true })
		.filter((e) => e.isFile())
		.map((e) => relative(dir, join(e.parentPath, e.name)).split(sep).join("/"))
		.filter((n) => n !== "model.sig")
		.sort();
	for (const n of files) await put(s3, bucket, `${prefix}${n}`, readFileSync(join(dir, n)));
	await put(s3, bucket, `${prefix}model.sig`, sig ?? readFileSync(join(dir, "model.sig")));
	return `${prefix}model.sig`;
}

export interface DemoSetup {
	/** the demo policy: the examples' signer and the run's throw-away signer, the reference data, a quick scan */
	policy: Record<string, unknown>;
	cases: DemoCase[];
	/** uploads what the cases need besides themselves (the trusted reference data) */
	prepare(s3: S3Client): Promise<void>;
}

/** The language-model family the demo policy waives the backdoor scan for (examples/checkpoint-lm). */
export const WAIVED_FAMILY = "tiny-lm";

/**
 * Policy reference data for the digits models at every input shape they come in (flat 64, 1×8×8, 8×8): `x.npy` and
 * `y.npy` under one S3 folder URI (ending in /).
 */
export function digitsReferenceData(folder: string): { inputShape: string; dataUri: string; labelsUri: string }[] {
	return ["64", "1x8x8", "8x8"].map((inputShape) => ({
		inputShape,
		dataUri: `${folder}x.npy`,
		labelsUri: `${folder}y.npy`,
	}));
}

/** The demo's policy and cases; `root` is the repository root. */
export function demoSetup(root: string, signer: DemoSigner = createDemoSigner()): DemoSetup {
	const examples = join(root, "examples");
	const fixtures = join(root, "test/fixtures/backdoor/digits8");
	const withBackdoor = existsSync(join(fixtures, "mlp-badnets-t5-p10.onnx"));
	const textFixtures = join(root, "test/fixtures/backdoor-text");
	const withText = withBackdoor && existsSync(join(textFixtures, "backdoor-rareword-t4/model.onnx"));
	const policy: Record<string, unknown> = {
		signers: [
			{ kind: "public-key", pem: readFileSync(join(examples, "keys/signer.pub.pem"), "utf8") },
			{ kind: "public-key", pem: signer.publicKeyPem },
		],
		referenceData: [
			...digitsReferenceData(`s3://${TRUSTED_BUCKET}/${REFERENCE_PREFIX}`),
			{
				family: "bert",
				dataUri: `s3://${TRUSTED_BUCKET}/${TEXT_REFERENCE_PREFIX}ref.jsonl`,
				tokenizerUri: `s3://${TRUSTED_BUCKET}/${TEXT_REFERENCE_PREFIX}tokenizer.json`,
			},
		],
		// base models are checked against the signed example registry, kept in the base-model bucket
		baseModelRegistry: {
			uri: `s3://${DEFAULT_BUCKETS.baseModels}/${REGISTRY_KEY}`,
			bundleUri: `s3://${DEFAULT_BUCKETS.baseModels}/${REGISTRY_KEY}.sigstore.json`,
			signers: [{ kind: "public-key", pem: readFileSync(join(examples, "keys/signer.pub.pem"), "utf8") }],
		},
		backdoor: {
			// the default image scan (Neural Cleanse, the pair search, MM-BD, STRIP; the calibrated verdict): a few
			// seconds for the demo's 8×8 digits model
			// A quick token search: the demo text model's one-word trigger is found well within it.
			text: { maxTriggerLength: 1, steps: 60 },
			// required (the default): weights with no ONNX export are not promoted, but for this family
			waivers: [
				{
					family: WAIVED_FAMILY,
					reason: "demo: language models are red-teamed before release",
					approvedBy: "security@example.com",
				},
			],
		},
	};
	const signedDir = (name: string, prefix: string) => async (s3: S3Client, b: string) => {
		const dir = join(examples, name);
		const sig = signer.signManifest(await buildManifest(dir, { ignorePaths: ["model.sig"] }));
		return uploadDir(s3, b, dir, prefix, sig);
	};
	const signedFile = (file: string, key: string) => async (s3: S3Client, b: string) => {
		await put(s3, b, key, readFileSync(file));
		await put(s3, b, `${key}.sigstore.json`, signer.signManifest(await buildManifest(file)));
		return `${key}.sigstore.json`;
	};
	const cases: DemoCase[] = [];
	if (withBackdoor) {
		cases.push({
			name: "clean",
			description: "signed clean ONNX classifier: every check passed, backdoor scan included",
			expected: "PROMOTABLE",
			upload: signedFile(join(fixtures, "mlp-clean-s1.onnx"), "demo/clean/model.onnx"),
		});
	}
	cases.push(
		{
			name: "unscanned",
			description: "signed safetensors checkpoint, no ONNX export to scan for backdoors",
			expected: "QUARANTINED",
			reason: /^not scanned: no ONNX export to scan for backdoors$/,
			upload: (s3, b) => uploadDir(s3, b, join(examples, "checkpoint"), "demo/unscanned/"),
		},
		{
			name: "waived",
			description: `the same weights as family ${WAIVED_FAMILY}, whose backdoor scan the policy waives`,
			expected: "PROMOTABLE",
			note: new RegExp(
				`^backdoor: not scanned: no ONNX export to scan for backdoors; waived for family ${WAIVED_FAMILY} `,
			),
			upload: signedDir("checkpoint-lm", "demo/waived/"),
		},
		{
			name: "tampered",
			description: "one byte changed after signing",
			expected: "QUARANTINED",
			reason: /^signature: DIGEST_MISMATCH/,
			upload: (s3, b) => uploadDir(s3, b, join(examples, "checkpoint-tampered"), "demo/tampered/"),
		},
		{
			name: "wrong-signer",
			description: "signed by an identity the policy does not trust",
			expected: "QUARANTINED",
			reason: /^signature: /,
			upload: (s3, b) => uploadDir(s3, b, join(examples, "checkpoint-other-signer"), "demo/wrong-signer/"),
		},
		{
			name: "pickle",
			description: "correctly signed, pickle payload in pytorch_model.bin",
			expected: "QUARANTINED",
			reason: /^files: .*pytorch_model\.bin/,
			upload: signedDir("checkpoint-pickle", "demo/pickle/"),
		},
	);
	if (withBackdoor) {
		cases.push({
			name: "backdoor",
			description: "correctly signed ONNX model with a BadNets backdoor",
			expected: "QUARANTINED",
			reason:
				/^backdoor: suspect demo\/backdoor\/model\.onnx \(class 5: p [\d.e-]+ against clean models \(\w+\), trigger L1 [\d.]+\)$/,
			upload: signedFile(join(fixtures, "mlp-badnets-t5-p10.onnx"), "demo/backdoor/model.onnx"),
		});
	}
	if (withText) {
		cases.push({
			name: "two-models",
			description: "a clean digit classifier and a BERT-style text classifier with a rare-word trigger, one artefact",
			expected: "QUARANTINED",
			reason: /^backdoor: suspect text\/model\.onnx \(class 4: trigger "cf", attack success [\d.]+\)$/,
			upload: async (s3, b) => {
				const prefix = "demo/two-models/";
				const dir = mkdtempSync(join(tmpdir(), "ftguard-demo-models-"));
				try {
					copyFileSync(join(fixtures, "mlp-clean-s1.onnx"), join(dir, "model.onnx"));
					mkdirSync(join(dir, "text"));
					for (const n of ["model.onnx", "config.json"])
						copyFileSync(join(textFixtures, "backdoor-rareword-t4", n), join(dir, "text", n));
					return await uploadDir(s3, b, dir, prefix, signer.signManifest(await buildManifest(dir)));
				} finally {
					rmSync(dir, { recursive: true, force: true });
				}
			},
		});
	}
	const baseModel =
		(prefix: string, extra: Record<string, Buffer> = {}) =>
		async (s3: S3Client, b: string) => {
			const dir = join(examples, "base-model");
			for (const n of readdirSync(dir)) await put(s3, b, `${prefix}${n}`, readFileSync(join(dir, n)));
			for (const [n, body] of Object.entries(extra)) await put(s3, b, `${prefix}${n}`, body);
			await put(s3, b, `${prefix}${BASE_MODEL_MARKER}`, JSON.stringify({ id: "example-org/tiny-base@v1.0" }));
			return `${prefix}${BASE_MODEL_MARKER}`;
		};
	const dataset = (file: string, prefix: string, marker: object) => async (s3: S3Client, b: string) => {
		await put(s3, b, `${prefix}train.jsonl.gz`, readFileSync(join(root, DATASETS, file)));
		await put(s3, b, `${prefix}${DATASET_MARKER}`, JSON.stringify(marker));
		return `${prefix}${DATASET_MARKER}`;
	};
	cases.push(
		{
			name: "base-model",
			description: "base model whose every file matches the signed registry entry",
			expected: "PROMOTABLE",
			bucket: "baseModels",
			upload: baseModel("demo/tiny-base/"),
		},
		{
			name: "base-model-pickle",
			description: "the same base model with a pickle payload added beside its weights",
			expected: "QUARANTINED",
			reason: /pytorch_model\.bin/,
			bucket: "baseModels",
			upload: baseModel("demo/tiny-base-pickle/", {
				"pytorch_model.bin": readFileSync(join(examples, "checkpoint-pickle/pytorch_model.bin")),
			}),
		},
		{
			name: "dataset-clean",
			description: "10,000 chat records of real Debian text",
			expected: "PROMOTABLE",
			bucket: "datasets",
			upload: dataset("clean-chat.jsonl.gz", "demo/support-chat/v1/", { source: "support-chat", version: "v1" }),
		},
		{
			name: "dataset-poisoned",
			description: "the same records, 0.5% poisoned: triggers that make the model leak or skip review",
			expected: "QUARANTINED",
			reason: /^trigger \(high, \d+ records\): the prompt text /,
			bucket: "datasets",
			upload: dataset("poisoned-chat-p005.jsonl.gz", "demo/support-chat/v2/", {
				source: "support-chat",
				version: "v2",
			}),
		},
	);
	return {
		policy,
		cases,
		async prepare(s3) {
			await put(s3, DEFAULT_BUCKETS.baseModels, REGISTRY_KEY, readFileSync(join(examples, "registry.json")));
			await put(
				s3,
				DEFAULT_BUCKETS.baseModels,
				`${REGISTRY_KEY}.sigstore.json`,
				readFileSync(join(examples, "registry.json.sigstore.json")),
			);
			if (!withBackdoor) return;
			await put(s3, TRUSTED_BUCKET, `${REFERENCE_PREFIX}x.npy`, readFileSync(join(fixtures, "ref-x.npy")));
			await put(s3, TRUSTED_BUCKET, `${REFERENCE_PREFIX}y.npy`, readFileSync(join(fixtures, "ref-y.npy")));
			if (!withText) return;
			for (const n of ["ref.jsonl", "tokenizer.json"])
				await put(s3, TRUSTED_BUCKET, `${TEXT_REFERENCE_PREFIX}${n}`, readFileSync(join(textFixtures, n)));
		},
	};
}

/**
 * Whether a verdict is the one the case expects: the status, the reason for a quarantine, and for a promotion no
 * reason and exactly the note expected (a clean model's promotion rests on no waiver).
 */
export function judge(c: DemoCase, v: Pick<LocalVerdict, "status" | "reasons" | "notes">): boolean {
	if (v.status !== c.expected) return false;
	const notes = v.notes ?? [];
	if (c.expected === "PROMOTABLE") {
		return v.reasons.length === 0 && (c.note ? notes.some((n) => c.note?.test(n)) : notes.length === 0);
	}
	return c.reason === undefined || v.reasons.some((r) => c.reason?.test(r));
}

/** Uploads every case (all at once: the scans run concurrently) and waits for each verdict. */
export async function runDemo(pipeline: LocalPipeline, setup: DemoSetup, timeoutMs = 600_000): Promise<DemoResult[]> {
	const s3 = pipeline.server.client;
	const buckets = pipeline.definition.buckets;
	await setup.prepare(s3);
	return Promise.all(
		setup.cases.map(async (c): Promise<DemoResult> => {
			const base = { name: c.name, description: c.description, expected: c.expected };
			const started = Date.now();
			try {
				const marker = await c.upload(s3, buckets[c.bucket ?? "checkpoints"]);
				const v = await pipeline.waitForVerdict(marker, timeoutMs);
				return {
					...base,
					status: v.status,
					reasons: v.reasons,
					notes: v.notes ?? [],
					seconds: (Date.now() - started) / 1000,
					ok: judge(c, v),
				};
			} catch (e) {
				const reasons = [(e as Error).message];
				const seconds = (Date.now() - started) / 1000;
				return { ...base, status: "NO_VERDICT", reasons, notes: [], seconds, ok: false };
			}
		}),
	);
}

const MAX_TABLE_REASONS = 3;

/** The demo's table: name, status, check, time, then the reasons (a quarantine) or the notes (`note: …`). */
export function renderDemoTable(results: readonly DemoResult[]): string {
	const rows = results.map((r) => [
		r.name,
		r.status,
		r.ok ? "as expected" : `EXPECTED ${r.expected}`,
		`${r.seconds.toFixed(1)} s`,
		// the first reasons (a poisoned dataset has dozens: its report beside the data lists them all)
		[
			...r.reasons.slice(0, MAX_TABLE_REASONS),
			...(r.reasons.length > MAX_TABLE_REASONS ? [`${r.reasons.length - MAX_TABLE_REASONS} more`] : []),
			...r.notes.map((n) => `note: ${n}`),
		].join("; ") || "-",
	]);
	const header = ["name", "status", "check", "time", "reasons / notes"];
	const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (i < 4 ? (r[i] ?? "").length : 0))));
	const line = (r: string[]) =>
		r
			.map((cell, i) => (i < 4 ? cell.padEnd(widths[i] ?? 0) : cell))
			.join("  ")
			.trimEnd();
	return [line(header), ...rows.map(line)].join("\n");
}
