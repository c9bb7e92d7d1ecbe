/**
 * The zod schema of the scan state ({@link ScanState} is its type), so that every
 * handler parses its input instead of trusting it. Unknown fields are kept (the
 * state machine may carry its own, e.g. the Batch task's raw output), but every
 * known field must have its documented shape.
 */
import { z } from "zod";
import { FtguardError } from "../errors";
import { zodMessage } from "../schema";
import { ScanStatus } from "./names";
import type { ScanState, ScanStateWith } from "./types";

const str = z.string().min(1);
const opt = <T extends z.ZodType>(t: T) => t.optional();

export const scanObjectSchema = z.object({
	key: str,
	/** S3 VersionId (absent on a store without versioning, e.g. the local server) */
	versionId: opt(str),
	/** the ETag, to bind verdicts where there is no VersionId */
	etag: opt(str),
	size: z.number().int().min(0),
});

export const waiverSchema = z.object({
	reason: str,
	family: opt(str),
	prefix: opt(str),
	approvedBy: opt(str),
	expires: opt(str),
});

/**
 * One model the backdoor Map state scans: the job's inputs. Every field is present (the state machine passes each
 * to the job's environment, and a JSONPath to a missing field fails the state); "" means not applicable: no
 * version on a store without versioning, no labels object for text data (labels are in the JSONL), no tokenizer,
 * text or labels field for image data.
 */
export const backdoorModelSchema = z
	.object({
		modelKey: str,
		/** the pinned VersionId ("" on a store without versioning: the state machine refuses "" on a versioned one) */
		modelVersionId: z.string(),
		dataUri: str,
		labelsUri: z.string(),
		tokenizerUri: z.string(),
		textField: z.string(),
		labelsField: z.string(),
		dataKind: z.enum(["reference", "training"]),
	})
	.strict();

/**
 * One iteration of the Map state: `verdict: "clean"` (the job exited 0), or `error` (the job failed: exit 1 is a
 * suspect model, whose report decide reads and turns into `verdict: "suspect"` with its `finding`; anything else
 * is an error), or an input the state machine refused (`error`, no `modelKey`).
 */
export const backdoorResultSchema = z
	.object({
		index: z.number().int().min(0),
		modelKey: opt(str),
		verdict: opt(z.enum(["clean", "suspect"])),
		reportUri: opt(str),
		finding: opt(z.string()),
		error: opt(z.object({ state: str, cause: z.string() })),
	})
	.loose();

export const scanStateSchema = z
	.object({
		/** deterministic id of (bucket, marker key, marker version/etag): the execution name */
		scanId: z.string().regex(/^[A-Za-z0-9_-]{1,80}$/, "an execution name"),
		bucket: str,
		/** the commit marker whose upload started the scan: `<dir>/model.sig` or `<key>.sigstore.json` */
		marker: z.object({ key: str, versionId: opt(str), etag: opt(str) }),
		/** the artefact: a key prefix ending in "/" (a model directory) or a single key */
		artefact: str,
		/** mark: the objects tagged SCANNING, with their versions */
		objects: opt(z.array(scanObjectSchema)),
		/** manifest: OMS-compatible digests of `objects` */
		manifest: opt(
			z.object({ rootDigest: str, files: z.number().int().min(0), bytes: z.number().int().min(0), uri: str }),
		),
		/** signature: the Sigstore bundle verified against the policy's identities and the manifest */
		signature: opt(
			z.object({ verified: z.boolean(), identity: opt(z.string()), code: opt(z.string()), reason: opt(z.string()) }),
		),
		/** files: the format scanners over every object */
		files: opt(
			z.object({
				safe: z.boolean(),
				unsafe: z.number().int().min(0),
				malformed: z.number().int().min(0),
				reportUri: str,
				reasons: z.array(z.string()),
			}),
		),
		/**
		 * backdoor: the files step's plan (scan every ONNX model of the artefact with the policy's reference data, or
		 * why no scan runs) and, from the state machine's Map over `models`, each model's scan outcome
		 */
		backdoor: opt(
			z
				.object({
					/** a scan runs: `models` lists what the Map state scans (the state machine's BackdoorRequired choice) */
					required: z.boolean(),
					/** files, required true: every ONNX model with its reference data, in key order */
					models: opt(z.array(backdoorModelSchema)),
					/** the Map state: one outcome per model, in the order of `models` */
					results: opt(z.array(backdoorResultSchema)),
					/** files, required false: the ONNX model left unscanned (no reference data for it) */
					modelKey: opt(str),
					/** files: the artefact's model family (config.json `model_type`, else `architectures[0]`) */
					family: opt(str),
					/**
					 * files, required false: why the artefact holding (or possibly holding) model weights is not scanned —
					 * "no ONNX export to scan for backdoors", "no reference data for family X", … QUARANTINED with
					 * "not scanned: <this>" unless `waiver` lets it through.
					 */
					notScanned: opt(str),
					/** files, required false: every file is of a format known to hold no model weights (nothing to scan) */
					noWeights: opt(z.boolean()),
					/** files: the policy waiver that lets the unscanned artefact be promoted (recorded in its verdict) */
					waiver: opt(waiverSchema),
					/** files: a waiver that matched the artefact but had expired (named in the reason) */
					expiredWaiver: opt(waiverSchema),
				})
				.loose(),
		),
		/** files: the digest of the policy the scan ran under (lib/core/provenance policyDigest: canonical JSON, defaults filled in) */
		policyDigest: opt(z.string().regex(/^sha256:[0-9a-f]{64}$/)),
		/**
		 * files: the training job's declaration (ftguard-training.json at the top of the artefact), what the verdict
		 * record names; absent when the artefact has none
		 */
		training: opt(
			z.object({
				jobId: opt(str),
				codeCommit: opt(str),
				baseModel: opt(str),
				datasetLineageRoot: opt(str),
			}),
		),
		/**
		 * files: the DP-SGD gate (lib/core/dp/gate.ts): the declared run re-accounted and the policy's limits for the
		 * artefact's families; every problem quarantines ("dp: …")
		 */
		dp: opt(
			z
				.object({
					declared: z.boolean(),
					required: z.boolean(),
					maxEpsilon: opt(z.number()),
					maxDelta: z.number(),
					families: z.array(z.string()),
					epsilon: opt(z.number()),
					order: opt(z.number()),
					delta: opt(z.number()),
					steps: opt(z.number()),
					sampleRate: opt(z.number()),
					noiseMultiplier: opt(z.number()),
					claimedEpsilon: opt(z.number()),
					accountant: opt(z.string()),
					problems: z.array(z.string()),
					notes: z.array(z.string()),
				})
				.loose(),
		),
		/** set by a Catch: which state failed and why (the execution then goes to decide → QUARANTINED) */
		error: opt(z.object({ state: str, cause: z.string() })),
		/** decide: the verdict, its reasons (none when PROMOTABLE) and notes (what a PROMOTABLE verdict rests on, e.g. a waiver) */
		verdict: opt(
			z.object({
				status: z.enum(ScanStatus).exclude([ScanStatus.SCANNING]),
				reasons: z.array(z.string()),
				notes: opt(z.array(z.string())),
			}),
		),
	})
	.loose();

/**
 * Parses a state; a bad one is a USAGE error naming the field. The result is
 * the input with its known fields checked (unknown fields pass through).
 */
export function parseScanState(input: unknown, where: string): ScanState {
	const r = scanStateSchema.safeParse(input);
	if (!r.success) throw new FtguardError("USAGE", `${where}: invalid scan state: ${zodMessage(r.error)}`);
	return r.data;
}

/** Requires fields an earlier state must have added. */
export function requireFields<K extends keyof ScanState>(
	state: ScanState,
	where: string,
	...keys: K[]
): ScanStateWith<K> {
	for (const k of keys) {
		if (state[k] === undefined) throw new FtguardError("USAGE", `${where}: the scan state has no ${String(k)}`);
	}
	return state as ScanStateWith<K>;
}
