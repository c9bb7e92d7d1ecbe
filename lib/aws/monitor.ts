/**
 * The output monitor's AWS side (lambdas/monitor.ts): inference records from a CloudWatch Logs subscription event
 * or from a log object in S3 (SageMaker Data Capture, Bedrock invocation logs), and each model version's window
 * kept in DynamoDB — one item per version, updated with optimistic concurrency so that concurrent invocations
 * never lose each other's records, and expired by TTL when a version stops serving.
 */
import { gunzipSync, gzipSync } from "node:zlib";
import {
	ConditionalCheckFailedException,
	type DynamoDBClient,
	GetItemCommand,
	PutItemCommand,
} from "@aws-sdk/client-dynamodb";
import type { S3Client } from "@aws-sdk/client-s3";
import { FtguardError } from "../core/errors";
import { type MonitorAlarm, type MonitorRecord, observeRecords, type WindowState } from "../core/monitor";
import {
	detectFormat,
	type LineResult,
	type ParsedRecord,
	parseLine,
	parseMessage,
	sagemakerVersionFromPath,
} from "../core/monitor/formats";
import type { VersionMetrics } from "../core/monitor/window";
import type { MonitorPolicy } from "../core/policy/monitor";
import { getObjectBytes } from "./object-store";

/** What one event carries: the records in order, and how many lines or messages were not records. */
export interface EventRecords {
	records: ParsedRecord[];
	malformed: number;
	/** where they came from (log group, or s3://bucket/key), for the log */
	source: string;
}

/** A subscription event's payload is at most ~1 MB gzip; inflated, bounded well above what CloudWatch sends. */
const MAX_SUBSCRIPTION_BYTES = 64 << 20;
/** Data Capture and Bedrock log objects read whole (they are written in files of minutes of traffic). */
export const MAX_LOG_OBJECT_BYTES = 256 << 20;

function collect(results: Iterable<LineResult>, source: string): EventRecords {
	const records: ParsedRecord[] = [];
	let malformed = 0;
	for (const r of results) {
		if (r.kind === "record") records.push(r.record);
		else if (r.kind === "malformed") malformed++;
	}
	return { records, malformed, source };
}

/** A CloudWatch Logs subscription event (`{awslogs: {data}}`); its log group is the version of records naming none. */
export function isSubscriptionEvent(event: unknown): event is { awslogs: { data: string } } {
	const a = (event as { awslogs?: { data?: unknown } } | null)?.awslogs;
	return typeof a?.data === "string";
}

export function recordsOfSubscription(event: { awslogs: { data: string } }): EventRecords {
	let doc: { messageType?: unknown; logGroup?: unknown; logEvents?: unknown };
	try {
		const json = gunzipSync(Buffer.from(event.awslogs.data, "base64"), { maxOutputLength: MAX_SUBSCRIPTION_BYTES });
		doc = JSON.parse(json.toString("utf8")) as typeof doc;
	} catch (e) {
		throw new FtguardError("DATA_INVALID", `not a CloudWatch Logs subscription payload (${(e as Error).message})`);
	}
	const group = typeof doc.logGroup === "string" ? doc.logGroup : "unknown";
	// CloudWatch's test message when the filter is created
	if (doc.messageType === "CONTROL_MESSAGE") return { records: [], malformed: 0, source: group };
	const events = Array.isArray(doc.logEvents) ? doc.logEvents : [];
	const ctx = { defaultVersion: group };
	return collect(
		events.map((e: { message?: unknown; timestamp?: unknown }) =>
			typeof e?.message === "string"
				? parseMessage(
						e.message,
						ctx,
						typeof e.timestamp === "number" ? new Date(e.timestamp).toISOString() : undefined,
					)
				: ({ kind: "malformed", reason: "no message" } as const),
		),
		group,
	);
}

/** The bucket and key of an EventBridge "Object Created" event. */
export function objectOfEvent(event: unknown): { bucket: string; key: string } {
	const d = (event as { detail?: { bucket?: { name?: unknown }; object?: { key?: unknown } } } | null)?.detail;
	if (typeof d?.bucket?.name !== "string" || typeof d.object?.key !== "string")
		throw new FtguardError("USAGE", "neither a CloudWatch Logs subscription event nor an S3 Object Created event");
	return { bucket: d.bucket.name, key: d.object.key };
}

/** The records of a log object (JSON lines, gzip or not), in the format its first record has. */
export async function recordsOfObject(s3: S3Client, ref: { bucket: string; key: string }): Promise<EventRecords> {
	const source = `s3://${ref.bucket}/${ref.key}`;
	const { bytes } = await getObjectBytes(s3, ref, MAX_LOG_OBJECT_BYTES);
	let text: string;
	try {
		const raw = Buffer.from(bytes);
		const inflated =
			raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw, { maxOutputLength: 4 * MAX_LOG_OBJECT_BYTES }) : raw;
		text = inflated.toString("utf8");
	} catch (e) {
		throw new FtguardError("DATA_INVALID", `${source}: not gzip or text (${(e as Error).message})`);
	}
	const lines = text.split("\n");
	const first = lines.find((l) => l.trim() !== "");
	const format = first === undefined ? undefined : detectFormat(first);
	if (format === undefined) return { records: [], malformed: first === undefined ? 0 : lines.length, source };
	const ctx = { defaultVersion: sagemakerVersionFromPath(ref.key) };
	return collect(
		lines.map((l) => parseLine(format, l, ctx)),
		source,
	);
}

/** The records grouped by model version, each group in arrival order. */
export function byVersion(records: readonly ParsedRecord[]): Map<string, MonitorRecord[]> {
	const groups = new Map<string, MonitorRecord[]>();
	for (const [i, r] of records.entries()) {
		let g = groups.get(r.modelVersion);
		if (g === undefined) {
			g = [];
			groups.set(r.modelVersion, g);
		}
		g.push({ modelVersion: r.modelVersion, input: r.input, output: r.output, ref: { index: i } });
	}
	return groups;
}

/** DynamoDB's item limit is 400 KB; the gzip'd state of the largest window stays far below (docs/monitor.md). */
const MAX_STATE_BYTES = 380 * 1024;
const MAX_ATTEMPTS = 12;

export interface WindowTableOptions {
	tableName: string;
	/** days an idle version's window is kept (the TTL attribute `expiresAt`) */
	ttlDays: number;
	/** for tests: the wait before retrying after a concurrent write */
	backoffMs?: (attempt: number) => number;
}

/**
 * The per-version windows: item `{modelVersion (key), revision, seen, state (gzip'd JSON), updatedAt, expiresAt}`.
 * A batch reads the item (strongly consistent), applies the records (the pure core) and writes it back only if
 * its revision is still the one it read; otherwise another invocation got there first, and the batch is applied
 * again on top of that. Nothing is held in the Lambda's memory between invocations.
 */
export class WindowTable {
	constructor(
		private readonly client: DynamoDBClient,
		private readonly options: WindowTableOptions,
	) {}

	async apply(
		modelVersion: string,
		records: readonly MonitorRecord[],
		policy: MonitorPolicy,
		now: Date = new Date(),
	): Promise<{ alarms: MonitorAlarm[]; metrics: VersionMetrics; attempts: number }> {
		const { tableName, ttlDays } = this.options;
		const backoff = this.options.backoffMs ?? ((a: number) => Math.random() * Math.min(1000, 20 * 2 ** a));
		for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
			const got = await this.client.send(
				new GetItemCommand({ TableName: tableName, Key: { modelVersion: { S: modelVersion } }, ConsistentRead: true }),
			);
			const revision = got.Item?.revision?.N !== undefined ? Number(got.Item.revision.N) : undefined;
			const stored = got.Item?.state?.B;
			let state: WindowState | undefined;
			if (stored !== undefined) {
				try {
					state = JSON.parse(gunzipSync(stored).toString("utf8")) as WindowState;
				} catch (e) {
					throw new FtguardError("DATA_INVALID", `the stored window of ${modelVersion} is unreadable`, { cause: e });
				}
			}
			const next = observeRecords(state, records, policy);
			const body = gzipSync(JSON.stringify(next.state));
			if (body.length > MAX_STATE_BYTES)
				throw new FtguardError("DATA_INVALID", `the window of ${modelVersion} is ${body.length} bytes gzip'd`);
			try {
				await this.client.send(
					new PutItemCommand({
						TableName: tableName,
						Item: {
							modelVersion: { S: modelVersion },
							revision: { N: String((revision ?? 0) + 1) },
							seen: { N: String(next.state.seen) },
							state: { B: body },
							updatedAt: { S: now.toISOString() },
							expiresAt: { N: String(Math.floor(now.getTime() / 1000) + ttlDays * 86_400) },
						},
						...(revision === undefined
							? { ConditionExpression: "attribute_not_exists(modelVersion)" }
							: {
									ConditionExpression: "revision = :read",
									ExpressionAttributeValues: { ":read": { N: String(revision) } },
								}),
					}),
				);
				return { alarms: next.alarms, metrics: next.metrics, attempts: attempt };
			} catch (e) {
				if (!(e instanceof ConditionalCheckFailedException)) throw e;
				await new Promise((r) => setTimeout(r, backoff(attempt)));
			}
		}
		throw new FtguardError(
			"IO_ERROR",
			`the window of ${modelVersion} kept changing under ${MAX_ATTEMPTS} attempts (too many concurrent writers)`,
		);
	}
}
