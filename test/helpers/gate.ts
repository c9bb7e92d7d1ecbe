/**
 * What the input-gate tests share (base-model and dataset gates against a real S3-compatible server): the marker's
 * Object Created event, every object's status tag under a prefix, and a handler run with the EMF lines it emits.
 */
import { GetObjectTaggingCommand, HeadObjectCommand } from "@aws-sdk/client-s3";
import { expect } from "vitest";
import { setEmfOutput } from "../../lib/aws/metrics";
import type { GateTarget } from "../../lib/core/pipeline/input-gate";
import { SCAN_ID_TAG, STATUS_TAG } from "../../lib/core/pipeline/names";
import type { LocalS3 } from "./s3";

/** The EventBridge "Object Created" event of `key` as uploaded (its ETag read back). */
export async function markerEvent(s3: LocalS3, bucket: string, key: string, extra: { sequencer?: string } = {}) {
	const head = await s3.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
	return {
		source: "aws.s3",
		"detail-type": "Object Created",
		detail: { bucket: { name: bucket }, object: { key, etag: (head.ETag ?? "").replaceAll('"', ""), ...extra } },
	};
}

/** The gate target of a marker's event: its directory, the marker as uploaded, a fixed check id made of `digit`. */
export function targetOf(
	event: { detail: { bucket: { name: string }; object: { key: string; etag: string } } },
	artefact: string,
	digit: string,
): GateTarget {
	const { bucket, object } = event.detail;
	return {
		bucket: bucket.name,
		artefact,
		marker: { key: object.key, etag: object.etag },
		checkId: `ftg-${digit.repeat(64)}`,
	};
}

/** `ftguard:status` of every object under `prefix`, by its name under it; a status always comes with a scan id. */
export async function statuses(
	s3: LocalS3,
	bucket: string,
	prefix: string,
): Promise<Record<string, string | undefined>> {
	const out: Record<string, string | undefined> = {};
	for (const key of await s3.list(bucket, prefix)) {
		const r = await s3.client.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: key }));
		const tags = Object.fromEntries((r.TagSet ?? []).map((t) => [t.Key, t.Value]));
		out[key.slice(prefix.length)] = tags[STATUS_TAG];
		if (tags[STATUS_TAG]) expect(tags[SCAN_ID_TAG]).toMatch(/^ftg-[0-9a-f]{64}$/);
	}
	return out;
}

/** Runs `body`, returning its result or error and the EMF documents emitted meanwhile. */
export async function withMetrics<T>(body: () => Promise<T>) {
	const lines: string[] = [];
	setEmfOutput({ write: (s: string | Uint8Array) => lines.push(String(s)) > 0 });
	let result: T | undefined;
	let error: Error | undefined;
	try {
		result = await body();
	} catch (e) {
		error = e as Error;
	} finally {
		setEmfOutput(undefined);
	}
	return { result, error, metrics: lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}
