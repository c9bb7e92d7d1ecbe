/**
 * What the training-input gates share (the base-model gate, lambdas/base-model.ts, and the dataset gate,
 * lambdas/dataset.ts): a directory committed by a marker written last, every object version under it tagged with
 * one verdict. Only PROMOTABLE is readable by training-job roles; an untagged version is unreadable too.
 */
import { z } from "zod";
import { FtguardError } from "../errors";
import { zodMessage } from "../schema";
import { METRIC_DIMENSIONS, METRIC_NAMESPACE, SCAN_ID_TAG, type ScanStatus, STATUS_TAG } from "./names";

/** The verdict an input gate writes. */
export type GateStatus = typeof ScanStatus.PROMOTABLE | typeof ScanStatus.QUARANTINED;

/** The tags written on every object version of a gated input: the status, and the check id (marker version hash). */
export function gateTags(status: GateStatus, checkId: string): Record<string, string> {
	return { [STATUS_TAG]: status, [SCAN_ID_TAG]: checkId };
}

/** The directory (`<dir>/`) of a marker key ending in `suffix` (`/<marker name>`), or undefined when it is not one. */
export function markerDirOf(key: string, suffix: string): string | undefined {
	if (!key.endsWith(suffix) || key.length === suffix.length) return undefined;
	return key.slice(0, key.length - suffix.length + 1);
}

const str = z.string().min(1).max(2048);

/** The input being checked: its bucket and directory, the marker version that started the check, and the check id. */
export const gateTargetSchema = z
	.object({
		bucket: str,
		artefact: str,
		marker: z.object({ key: str, versionId: str.optional(), etag: str.optional() }).strict(),
		checkId: str,
	})
	.strict();
export type GateTarget = z.infer<typeof gateTargetSchema>;

/**
 * A marker's JSON, checked against its schema. @throws FtguardError DATA_INVALID (not JSON, or not the schema)
 */
export function parseMarkerJson<T>(bytes: Uint8Array, where: string, schema: z.ZodType<T>): T {
	let json: unknown;
	try {
		json = JSON.parse(Buffer.from(bytes).toString("utf8"));
	} catch {
		throw new FtguardError("DATA_INVALID", `${where} is not JSON`);
	}
	const r = schema.safeParse(json);
	if (!r.success) throw new FtguardError("DATA_INVALID", `${where}: ${zodMessage(r.error)}`);
	return r.data;
}

/** A target passed as JSON (a Batch job's environment). @throws FtguardError USAGE */
export function parseGateTarget(json: string | undefined, where: string): GateTarget {
	let v: unknown;
	try {
		v = JSON.parse(json ?? "");
	} catch {
		throw new FtguardError("USAGE", `${where} is not JSON`);
	}
	const r = gateTargetSchema.safeParse(v);
	if (!r.success) throw new FtguardError("USAGE", `${where}: ${zodMessage(r.error)}`);
	return r.data;
}

/**
 * One metric point as a CloudWatch EMF document under two dimension sets: `{service}` (what an alarm watches: it
 * cannot aggregate over a dimension) and `{service, ...extra}` (the per-input view); `values` holds the extra
 * dimensions' values and the metric's own.
 */
export function emfDocument(
	now: Date,
	metric: string,
	unit: "None" | "Count",
	extra: readonly string[],
	values: Record<string, string | number>,
): object {
	const service = Object.keys(METRIC_DIMENSIONS);
	return {
		_aws: {
			Timestamp: now.getTime(),
			CloudWatchMetrics: [
				{
					Namespace: METRIC_NAMESPACE,
					Dimensions: [service, [...service, ...extra]],
					Metrics: [{ Name: metric, Unit: unit }],
				},
			],
		},
		...METRIC_DIMENSIONS,
		...values,
	};
}
