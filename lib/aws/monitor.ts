/**
 * The output monitor's AWS side (lambdas/monitor.ts): inference records from a CloudWatch Logs subscription event
 * or from a log object in S3 (SageMaker Data Capture, Bedrock invocation logs) — a Bedrock body delivered to S3
 * (`outputBodyS3Path` / `inputBodyS3Path`) read from its large-data bucket — and each model version's window
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
	type DeferredRecord,
	detectFormat,
	type LineResult,
	type ParsedRecord,
	parseLine,
	parseMessage,
	s3BodyText,
	sagemakerVersionFromPath,
} from "../core/monitor/formats";
import type { VersionMetrics } from "../core/monitor/window";
import { mapLimit } from "../core/pipeline/concurrency";
import type { MonitorPolicy } from "../core/policy/monitor";
import { getObjectBytes, parseS3Uri } from "./object-store";

/** A line or record that was not monitored (or was monitored without its input), and why. */
export interface RecordProblem {
	/** the log event's id (subscription) or the line number (object) */
	at: string;
	reason: string;
}

/** What one event carries: the records in order, and how many lines or messages were not records. */
export interface EventRecords {
	records: ParsedRecord[];
	/** lines or messages that are no record, and records whose body in S3 is no body this reader knows */
	malformed: number;
	/**
	 * records whose output body Bedrock delivered to S3 and that could not be fetched (no such object, access denied,
	 * over {@link MAX_S3_BODY_BYTES}, outside the configured large-data locations): counted, never monitored
	 */
	unread: number;
	/** records monitored without their input, its body in S3 not readable (the input only names a candidate trigger) */
	withoutInput: number;
	/** bodies read from S3 */
	bodiesRead: number;
	/** the first {@link MAX_PROBLEMS_LISTED} malformed, unread or input-less records, with why */
	problems: RecordProblem[];
	/** where they came from (log group, or s3://bucket/key), for the log */
	source: string;
}

/** A subscription event's payload is at most ~1 MB gzip; inflated, bounded well above what CloudWatch sends. */
const MAX_SUBSCRIPTION_BYTES = 64 << 20;
/** Data Capture and Bedrock log objects read whole (they are written in files of minutes of traffic). */
export const MAX_LOG_OBJECT_BYTES = 256 << 20;
/**
 * A Bedrock body in S3 (a request or response over 100 KB, or binary) is read up to this size, stored and
 * inflated; a larger one is unread (an output) or left out (an input). Model responses are text: a long answer
 * is hundreds of KB, a streamed one a few MB; a request carrying images or documents may be larger.
 */
export const MAX_S3_BODY_BYTES = 8 << 20;
/** The bodies one batch reads in all; past it the batch's further bodies are unread (outputs are read first). */
export const MAX_BATCH_BODY_BYTES = 256 << 20;
/** Bodies fetched at once. */
export const S3_BODY_CONCURRENCY = 8;
const MAX_PROBLEMS_LISTED = 10;

/**
 * Where Bedrock delivers large bodies (the deployment's `outputMonitor.bedrockLargeDataBuckets`, the logging
 * configuration's `largeDataDeliveryS3Config {bucketName, keyPrefix}`): the only places a body is read from. A log
 * line names its own body path, and a line of a log group can be written by whatever writes that group: without
 * this check it could have the monitor read (and quote in an alarm) any object its role may read.
 */
export interface LargeDataLocation {
	name: string;
	prefix?: string | undefined;
}

/** What reads the bodies a batch's Bedrock records left in S3. */
export interface BodyReader {
	s3: S3Client;
	locations: readonly LargeDataLocation[];
}

/** The large-data locations from the environment variable the construct sets (JSON `[{name, prefix?}]`). */
export function largeDataLocations(value: string | undefined): LargeDataLocation[] {
	if (value === undefined || value.trim() === "") return [];
	let v: unknown;
	try {
		v = JSON.parse(value);
	} catch (e) {
		throw new FtguardError("USAGE", `FTGUARD_MONITOR_LARGE_DATA is not JSON (${(e as Error).message})`);
	}
	const ok = (x: unknown): x is LargeDataLocation =>
		typeof x === "object" &&
		x !== null &&
		typeof (x as LargeDataLocation).name === "string" &&
		((x as LargeDataLocation).prefix === undefined || typeof (x as LargeDataLocation).prefix === "string");
	if (!Array.isArray(v) || !v.every(ok))
		throw new FtguardError("USAGE", "FTGUARD_MONITOR_LARGE_DATA is not a list of {name, prefix?}");
	return v.map((x) => ({ name: x.name, ...(x.prefix !== undefined ? { prefix: x.prefix } : {}) }));
}

/** A parsed line: a record, one whose body is in S3, or (counted already) nothing. */
type Slot = { kind: "record"; record: ParsedRecord } | { kind: "deferred"; record: DeferredRecord; at: string };

interface Collected {
	slots: Slot[];
	malformed: number;
	problems: RecordProblem[];
}

function collect(results: Iterable<[at: string, r: LineResult]>): Collected {
	const slots: Slot[] = [];
	const problems: RecordProblem[] = [];
	let malformed = 0;
	for (const [at, r] of results) {
		if (r.kind === "record") slots.push(r);
		else if (r.kind === "deferred") slots.push({ kind: "deferred", record: r.record, at });
		else if (r.kind === "malformed") {
			malformed++;
			if (problems.length < MAX_PROBLEMS_LISTED) problems.push({ at, reason: r.reason });
		}
	}
	return { slots, malformed, problems };
}

/** One body fetched: its text, or why not — `unread` (could not be fetched) or `malformed` (fetched, not a body). */
type Body = { text: string } | { failed: "unread" | "malformed"; reason: string };

/**
 * Fetches the S3 bodies of the batch's deferred records (outputs first, at most {@link S3_BODY_CONCURRENCY} at
 * once, each under {@link MAX_S3_BODY_BYTES}, all under {@link MAX_BATCH_BODY_BYTES}) and completes the records
 * in their order. Nothing is dropped silently: an output that cannot be fetched is `unread`, one that is not a
 * body this reader knows is `malformed`, an input that cannot be read leaves its record without input; each is
 * listed with its reason. Runs before any window is touched: an error that escapes it leaves no partial batch.
 */
async function complete(c: Collected, reader: BodyReader | undefined, source: string): Promise<EventRecords> {
	const out: EventRecords = {
		records: [],
		malformed: c.malformed,
		unread: 0,
		withoutInput: 0,
		bodiesRead: 0,
		problems: c.problems,
		source,
	};
	const problem = (at: string, reason: string) => {
		if (out.problems.length < MAX_PROBLEMS_LISTED) out.problems.push({ at, reason });
	};
	const outputs: string[] = [];
	const inputs: string[] = [];
	for (const s of c.slots) {
		if (s.kind !== "deferred") continue;
		if (typeof s.record.output !== "string") outputs.push(s.record.output.s3Path);
		if (typeof s.record.input !== "string") inputs.push(s.record.input.s3Path);
	}
	const uris = [...new Set([...outputs, ...inputs])];
	const bodies = new Map<string, Body>();
	const budget = { spent: 0 };
	await mapLimit(uris, S3_BODY_CONCURRENCY, async (uri) => {
		const b = await fetchBody(reader, uri, budget);
		if ("text" in b) out.bodiesRead++;
		bodies.set(uri, b);
	});
	for (const s of c.slots) {
		if (s.kind === "record") {
			out.records.push(s.record);
			continue;
		}
		const d = s.record;
		let output: string;
		if (typeof d.output === "string") output = d.output;
		else {
			const b = bodies.get(d.output.s3Path) as Body;
			if (!("text" in b)) {
				out[b.failed]++;
				problem(s.at, `output body ${d.output.s3Path}: ${b.reason}`);
				continue;
			}
			output = b.text;
		}
		let input = "";
		if (typeof d.input === "string") input = d.input;
		else {
			const b = bodies.get(d.input.s3Path) as Body;
			if ("text" in b) input = b.text;
			else {
				out.withoutInput++;
				problem(s.at, `input body ${d.input.s3Path}: ${b.reason} (the record is monitored without its input)`);
			}
		}
		out.records.push({
			modelVersion: d.modelVersion,
			input,
			output,
			...(d.time !== undefined ? { time: d.time } : {}),
		});
	}
	return out;
}

async function fetchBody(reader: BodyReader | undefined, uri: string, budget: { spent: number }): Promise<Body> {
	let ref: { bucket: string; key: string };
	try {
		ref = parseS3Uri(uri);
	} catch {
		return { failed: "unread", reason: "not an s3://bucket/key path" };
	}
	const allowed = reader?.locations.some((l) => l.name === ref.bucket && ref.key.startsWith(l.prefix ?? "")) ?? false;
	if (reader === undefined || !allowed)
		return {
			failed: "unread",
			reason: "not under a configured Bedrock large-data location (outputMonitor.bedrockLargeDataBuckets)",
		};
	// checked before each fetch: the bodies in flight may pass it by S3_BODY_CONCURRENCY × MAX_S3_BODY_BYTES at most
	if (budget.spent >= MAX_BATCH_BODY_BYTES)
		return { failed: "unread", reason: `the batch's bodies in S3 passed ${MAX_BATCH_BODY_BYTES >> 20} MiB` };
	let raw: Buffer;
	try {
		raw = Buffer.from((await getObjectBytes(reader.s3, ref, MAX_S3_BODY_BYTES)).bytes);
	} catch (e) {
		return { failed: "unread", reason: (e as Error).message };
	}
	let content: string;
	try {
		const inflated = raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw, { maxOutputLength: MAX_S3_BODY_BYTES }) : raw;
		budget.spent += inflated.length;
		content = inflated.toString("utf8");
	} catch (e) {
		const over = (e as { code?: string }).code === "ERR_BUFFER_TOO_LARGE";
		return over
			? { failed: "unread", reason: `inflates past ${MAX_S3_BODY_BYTES} bytes` }
			: { failed: "malformed", reason: `not gzip or text (${(e as Error).message})` };
	}
	const r = s3BodyText(content);
	return "text" in r ? r : { failed: "malformed", reason: r.reason };
}

/** A CloudWatch Logs subscription event (`{awslogs: {data}}`); its log group is the version of records naming none. */
export function isSubscriptionEvent(event: unknown): event is { awslogs: { data: string } } {
	const a = (event as { awslogs?: { data?: unknown } } | null)?.awslogs;
	return typeof a?.data === "string";
}

/**
 * The records of a subscription event; a Bedrock record whose body is in S3 is completed through `reader` (absent:
 * such a record's output is unread).
 */
export async function recordsOfSubscription(
	event: { awslogs: { data: string } },
	reader?: BodyReader,
): Promise<EventRecords> {
	let doc: { messageType?: unknown; logGroup?: unknown; logEvents?: unknown };
	try {
		const json = gunzipSync(Buffer.from(event.awslogs.data, "base64"), { maxOutputLength: MAX_SUBSCRIPTION_BYTES });
		doc = JSON.parse(json.toString("utf8")) as typeof doc;
	} catch (e) {
		throw new FtguardError("DATA_INVALID", `not a CloudWatch Logs subscription payload (${(e as Error).message})`);
	}
	const group = typeof doc.logGroup === "string" ? doc.logGroup : "unknown";
	// CloudWatch's test message when the filter is created
	if (doc.messageType === "CONTROL_MESSAGE") return complete({ slots: [], malformed: 0, problems: [] }, reader, group);
	const events = Array.isArray(doc.logEvents) ? doc.logEvents : [];
	const ctx = { defaultVersion: group };
	return complete(
		collect(
			events.map((e: { id?: unknown; message?: unknown; timestamp?: unknown }, i): [string, LineResult] => [
				`event ${typeof e?.id === "string" ? e.id : `#${i}`}`,
				typeof e?.message === "string"
					? parseMessage(
							e.message,
							ctx,
							typeof e.timestamp === "number" ? new Date(e.timestamp).toISOString() : undefined,
						)
					: { kind: "malformed", reason: "no message" },
			]),
		),
		reader,
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

/**
 * The records of a log object (JSON lines, gzip or not), in the format its first record has; a Bedrock record
 * whose body is in S3 is completed through `reader` (absent: such a record's output is unread).
 */
export async function recordsOfObject(
	s3: S3Client,
	ref: { bucket: string; key: string },
	reader?: BodyReader,
): Promise<EventRecords> {
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
	if (format === undefined) {
		const malformed = first === undefined ? 0 : lines.length;
		const problems = malformed > 0 ? [{ at: "line 1", reason: "format not recognised" }] : [];
		return complete({ slots: [], malformed, problems }, reader, source);
	}
	const ctx = { defaultVersion: sagemakerVersionFromPath(ref.key) };
	return complete(
		collect(lines.map((l, i): [string, LineResult] => [`line ${i + 1}`, parseLine(format, l, ctx)])),
		reader,
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
