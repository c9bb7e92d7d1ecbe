/**
 * The zod schema of {@link ScanState}, so that every handler parses its input
 * instead of trusting it. Unknown fields are kept (the state machine may carry
 * its own, e.g. the Batch task's raw output), but every known field must have
 * its documented shape.
 */
import { z } from "zod";
import { FtguardError } from "../errors";
import { zodMessage } from "../schema";
import type { ScanState } from "./types";

const str = z.string().min(1);
const opt = <T extends z.ZodType>(t: T) => t.optional();

export const scanObjectSchema = z.object({
	key: str,
	versionId: opt(str),
	etag: opt(str),
	size: z.number().int().min(0),
});

const waiverSchema = z.object({
	reason: str,
	family: opt(str),
	prefix: opt(str),
	approvedBy: opt(str),
	expires: opt(str),
});

export const scanStateSchema = z
	.object({
		scanId: z.string().regex(/^[A-Za-z0-9_-]{1,80}$/, "an execution name"),
		bucket: str,
		marker: z.object({ key: str, versionId: opt(str), etag: opt(str) }),
		artefact: str,
		objects: opt(z.array(scanObjectSchema)),
		manifest: opt(
			z.object({ rootDigest: str, files: z.number().int().min(0), bytes: z.number().int().min(0), uri: str }),
		),
		signature: opt(
			z.object({ verified: z.boolean(), identity: opt(z.string()), code: opt(z.string()), reason: opt(z.string()) }),
		),
		files: opt(
			z.object({
				safe: z.boolean(),
				unsafe: z.number().int().min(0),
				malformed: z.number().int().min(0),
				reportUri: str,
				reasons: z.array(z.string()),
			}),
		),
		backdoor: opt(
			z
				.object({
					required: z.boolean(),
					modelKey: opt(str),
					verdict: opt(z.enum(["clean", "suspect"])),
					reportUri: opt(str),
					modelVersionId: opt(str),
					dataUri: opt(str),
					labelsUri: opt(str),
					dataKind: opt(z.enum(["reference", "training"])),
					family: opt(str),
					notScanned: opt(str),
					noWeights: opt(z.boolean()),
					waiver: opt(waiverSchema),
					expiredWaiver: opt(waiverSchema),
				})
				.loose(),
		),
		error: opt(z.object({ state: str, cause: z.string() })),
		verdict: opt(
			z.object({
				status: z.enum(["PROMOTABLE", "QUARANTINED"]),
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
	// zod's optional fields infer `T | undefined`; JSON has no undefined, so the shapes agree.
	return r.data as ScanState;
}

/** Requires fields an earlier state must have added. */
export function requireFields<K extends keyof ScanState>(
	state: ScanState,
	where: string,
	...keys: K[]
): ScanState & Required<Pick<ScanState, K>> {
	for (const k of keys) {
		if (state[k] === undefined) throw new FtguardError("USAGE", `${where}: the scan state has no ${String(k)}`);
	}
	return state as ScanState & Required<Pick<ScanState, K>>;
}
