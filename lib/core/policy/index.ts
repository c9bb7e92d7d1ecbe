/**
 * ftguard's policy file: one JSON document that configures every check — the
 * backdoor scan, the dataset scan, the DP-SGD gate, and the scan pipeline's sections: who may sign checkpoints,
 * whether pickles may be analysed instead of refused, where the trusted
 * reference data for backdoor scans lives, and where the signed base-model
 * registry lives. Unknown keys are rejected so that a misspelt threshold cannot
 * silently fall back to its default; a missing `signers` list trusts nobody.
 */
import { z } from "zod";
import { FtguardError } from "../errors";
import type { TrustPolicy } from "../integrity";
import { zodMessage } from "../schema";
import { backdoorPolicySchema } from "./backdoor";
import { datasetPolicySchema } from "./dataset";
import { dpPolicySchema } from "./dp";
import { monitorPolicySchema } from "./monitor";

const s3Uri = z.string().regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/.+$/, "must be s3://bucket/key");
const pem = z.string().includes("-----BEGIN ", { message: "must be PEM text" });

/**
 * One trusted signer. A checkpoint's signature must verify under at least one
 * entry. Keyless: a Fulcio certificate for exactly `identity` (or a SAN matching
 * the anchored `identityRegexp`) issued on `issuer`'s word, verified offline
 * against the public-good trust root shipped in @sigstore/tuf.
 */
export const signerSchema = z.discriminatedUnion("kind", [
	z
		.object({
			kind: z.literal("keyless"),
			identity: z.string().min(1).optional(),
			identityRegexp: z.string().min(1).optional(),
			issuer: z.url(),
		})
		.strict()
		.refine((s) => (s.identity === undefined) !== (s.identityRegexp === undefined), {
			message: "give exactly one of identity, identityRegexp",
		})
		.refine(
			(s) => {
				if (s.identityRegexp === undefined) return true;
				try {
					new RegExp(s.identityRegexp);
					return true;
				} catch {
					return false;
				}
			},
			{ message: "identityRegexp is not a valid regular expression", path: ["identityRegexp"] },
		),
	z.object({ kind: z.literal("public-key"), pem }).strict(),
	z.object({ kind: z.literal("certificate-chain"), pem }).strict(),
]);
export type Signer = z.infer<typeof signerSchema>;

/** The file-safety scan. Pickle is refused unless allowed; when allowed it is judged by an allow-list. */
export const filesPolicySchema = z
	.object({
		allowPickle: z.boolean().default(false),
		/**
		 * Accept only formats whose structure ftguard checks: text, JSON, images and other files inert by name and
		 * content are not accepted either.
		 */
		strict: z.boolean().default(false),
		/**
		 * Globs (relative names; `*`, `**`, `?`) of files the platform declares inert although ftguard cannot tell
		 * their format: accepted (low finding) when no modelled loader runs code from them. Never weakens a finding.
		 */
		inert: z.array(z.string().min(1).max(256)).max(100).default([]),
	})
	.strict();

/**
 * Trusted reference data for a backdoor scan, chosen by the model's family
 * (`config.json` `model_type`, else `architectures[0]`) or its input shape
 * (`"1x28x28"`, batch dimension left out). Never taken from the checkpoint.
 * Image models: `dataUri` is a float32 .npy of inputs and `labelsUri` an int64
 * .npy of their labels. Text models: `dataUri` is labelled JSONL (the text and
 * the label in `textField` / `labelsField` of each line), read with the
 * Hugging Face `tokenizer.json` at `tokenizerUri`; no `labelsUri`.
 */
export const referenceDataSchema = z
	.object({
		family: z.string().min(1).optional(),
		inputShape: z
			.string()
			.regex(/^\d+(x\d+)*$/, 'dimensions joined by "x", e.g. "1x28x28"')
			.optional(),
		dataUri: s3Uri,
		labelsUri: s3Uri.optional(),
		tokenizerUri: s3Uri.optional(),
		textField: z.string().min(1).max(256).optional(),
		labelsField: z.string().min(1).max(256).optional(),
		dataKind: z.enum(["reference", "training"]).default("reference"),
	})
	.strict()
	.refine((r) => r.family !== undefined || r.inputShape !== undefined, {
		message: "give family or inputShape (or both)",
	})
	.refine((r) => (r.tokenizerUri === undefined) !== (r.labelsUri === undefined), {
		message:
			"give labelsUri (image data: .npy inputs and labels) or tokenizerUri (text data: labelled JSONL), not both",
	})
	.refine((r) => r.tokenizerUri !== undefined || (r.textField === undefined && r.labelsField === undefined), {
		message: "textField and labelsField are for text data (with tokenizerUri)",
	});
/** The reference data's S3 objects (what the backdoor job may read). */
export const referenceObjectsOf = (r: ReferenceData): string[] =>
	[r.dataUri, r.labelsUri, r.tokenizerUri].filter((u): u is string => u !== undefined);
export type ReferenceData = z.infer<typeof referenceDataSchema>;

/** The signed base-model registry (see lib/core/integrity/registry.ts) and its cosign bundle. */
export const baseModelRegistrySchema = z
	.object({
		uri: s3Uri,
		bundleUri: s3Uri,
		signers: z.array(signerSchema).min(1),
	})
	.strict();

export const policySchema = z
	.object({
		version: z.literal(1).default(1),
		/** Who may sign checkpoints; empty means no signature verifies. */
		signers: z.array(signerSchema).default([]),
		files: filesPolicySchema.default(filesPolicySchema.parse({})),
		referenceData: z.array(referenceDataSchema).default([]),
		baseModelRegistry: baseModelRegistrySchema.optional(),
		backdoor: backdoorPolicySchema.default(backdoorPolicySchema.parse({})),
		dataset: datasetPolicySchema.default(datasetPolicySchema.parse({})),
		monitor: monitorPolicySchema.default(monitorPolicySchema.parse({})),
		dp: dpPolicySchema.default(dpPolicySchema.parse({})),
	})
	.strict();

export type Policy = z.infer<typeof policySchema>;

/** Parses a policy document; any problem is a USAGE error naming the field. */
export function parsePolicy(text: string, source = "policy"): Policy {
	let json: unknown;
	try {
		json = JSON.parse(text);
	} catch (e) {
		throw new FtguardError("USAGE", `${source}: not JSON (${(e as Error).message})`, { cause: e });
	}
	const r = policySchema.safeParse(json);
	if (!r.success) throw new FtguardError("USAGE", `${source}: ${zodMessage(r.error)}`);
	return r.data;
}

export function defaultPolicy(): Policy {
	return policySchema.parse({});
}

/** The signers as trust policies for lib/core/integrity (keyless uses the shipped public-good root: offline). */
export function trustPoliciesOf(signers: readonly Signer[]): TrustPolicy[] {
	return signers.map((s): TrustPolicy => {
		if (s.kind === "public-key") return { kind: "public-key", pem: s.pem };
		if (s.kind === "certificate-chain") return { kind: "certificate-chain", pem: s.pem };
		const identity = s.identity !== undefined ? { exact: s.identity } : { regexp: s.identityRegexp as string };
		return { kind: "keyless", identity, issuer: s.issuer };
	});
}

/**
 * The reference data for a model: an entry matching both family and input shape
 * first, then one matching the family, then one matching the shape.
 */
export function referenceDataFor(
	entries: readonly ReferenceData[],
	model: { family?: string; inputShape?: string },
): ReferenceData | undefined {
	const fam = (r: ReferenceData) => r.family !== undefined && r.family === model.family;
	const shape = (r: ReferenceData) => r.inputShape !== undefined && r.inputShape === model.inputShape;
	return (
		entries.find((r) => fam(r) && shape(r)) ??
		entries.find((r) => fam(r) && r.inputShape === undefined) ??
		entries.find((r) => shape(r) && r.family === undefined)
	);
}
