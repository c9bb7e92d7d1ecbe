/**
 * The start state's rules: the EventBridge "Object Created" event S3 sends, and
 * the first scan state it turns into when its key is a commit marker.
 */
import { z } from "zod";
import { FtguardError } from "../errors";
import { zodMessage } from "../schema";
import { resolveMarker, scanIdOf } from "./artefact";
import type { ScanState } from "./types";

const objectCreatedSchema = z.object({
	source: z.literal("aws.s3"),
	"detail-type": z.literal("Object Created"),
	detail: z.object({
		bucket: z.object({ name: z.string().min(1) }),
		object: z.object({
			key: z.string().min(1),
			etag: z.string().optional(),
			"version-id": z.string().optional(),
			sequencer: z.string().optional(),
		}),
	}),
});

export type ObjectCreated = z.infer<typeof objectCreatedSchema>["detail"];

/**
 * The bucket and object of an S3 "Object Created" event (also the base-model gate's trigger).
 * @throws FtguardError USAGE when the event is not one
 */
export function objectCreated(event: unknown): ObjectCreated {
	const parsed = objectCreatedSchema.safeParse(event);
	if (!parsed.success) throw new FtguardError("USAGE", `not an S3 Object Created event: ${zodMessage(parsed.error)}`);
	return parsed.data.detail;
}

/**
 * The initial state for an event, or undefined when its key is not a commit
 * marker. The event's key is used as given (EventBridge does not URL-encode it
 * the way S3 event notifications do).
 * @throws FtguardError USAGE when the event is not an S3 Object Created event
 */
export function initialState(event: unknown): ScanState | undefined {
	const { bucket, object } = objectCreated(event);
	const resolved = resolveMarker(object.key);
	if (!resolved) return undefined;
	const version = {
		...(object["version-id"] ? { versionId: object["version-id"] } : {}),
		...(object.etag ? { etag: object.etag } : {}),
	};
	return {
		scanId: scanIdOf(bucket.name, object.key, {
			...version,
			...(object.sequencer !== undefined ? { sequencer: object.sequencer } : {}),
		}),
		bucket: bucket.name,
		marker: { key: object.key, ...version },
		artefact: resolved.artefact,
	};
}
