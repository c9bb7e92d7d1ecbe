/**
 * EventBridge "Object Created" (S3) → a scan execution, when the key is a
 * commit marker (lib/core/pipeline/artefact.ts). The execution name is the scan
 * id, a hash of (bucket, key, version), so a redelivered event starts nothing.
 */
import { z } from "zod";
import { requireEnv, runHandler, sfnClient } from "../lib/aws/runtime";
import { startScanExecution } from "../lib/aws/sfn";
import { FtguardError } from "../lib/core/errors";
import { resolveMarker, scanIdOf } from "../lib/core/pipeline/artefact";
import type { ScanState } from "../lib/core/pipeline/types";
import { zodMessage } from "../lib/core/schema";

const eventSchema = z.object({
	source: z.literal("aws.s3"),
	"detail-type": z.literal("Object Created"),
	detail: z.object({
		bucket: z.object({ name: z.string().min(1) }),
		object: z.object({ key: z.string().min(1), etag: z.string().optional(), "version-id": z.string().optional() }),
	}),
});

export type StartResult =
	| { started: true; scanId: string; executionArn: string }
	| { started: false; scanId?: string; reason: "not-a-marker" | "duplicate" };

export async function handler(event: unknown): Promise<StartResult> {
	return runHandler("start", undefined, async (log) => {
		const parsed = eventSchema.safeParse(event);
		if (!parsed.success) throw new FtguardError("USAGE", `not an S3 Object Created event: ${zodMessage(parsed.error)}`);
		const { bucket, object } = parsed.data.detail;
		const resolved = resolveMarker(object.key);
		if (!resolved) return { started: false, reason: "not-a-marker" };
		const version = {
			...(object["version-id"] ? { versionId: object["version-id"] } : {}),
			...(object.etag ? { etag: object.etag } : {}),
		};
		const scanId = scanIdOf(bucket.name, object.key, version);
		log.appendKeys({ scanId });
		const input: ScanState = {
			scanId,
			bucket: bucket.name,
			marker: { key: object.key, ...version },
			artefact: resolved.artefact,
		};
		const r = await startScanExecution(sfnClient(), requireEnv("FTGUARD_STATE_MACHINE_ARN"), scanId, input);
		if (!r.started) {
			log.info("duplicate event: the scan already exists", { key: object.key });
			return { started: false, scanId, reason: "duplicate" };
		}
		log.info("scan started", { key: object.key, artefact: resolved.artefact });
		return { started: true, scanId, executionArn: r.executionArn };
	});
}
