/**
 * monitor: the production output monitor (docs/monitor.md). Input: a CloudWatch Logs subscription event (the
 * inference service's log group) or an EventBridge "Object Created" event (a SageMaker Data Capture or Bedrock
 * invocation-log object); a Bedrock body delivered to S3 is read from the large-data locations named by
 * FTGUARD_MONITOR_LARGE_DATA (JSON `[{name, prefix?}]`), and a record whose output body cannot be read is counted
 * (`unread`) and logged, never applied as if read. The records of each model version are applied to its window in
 * DynamoDB (FTGUARD_MONITOR_TABLE; lib/aws/monitor.ts WindowTable), each alarm is logged, and the batch's metrics
 * go out as EMF (`deployed_model_output_repetition_rate`, `deployed_model_suspicious_output_total`, and
 * `output_monitor_unwatched_records_total` by `reason` for the records it could not watch), which the OutputMonitor
 * construct's alarms watch.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { emitEmfDocument } from "../lib/aws/metrics";
import {
	byVersion,
	type EventRecords,
	isSubscriptionEvent,
	largeDataLocations,
	objectOfEvent,
	type RecordProblem,
	recordsOfObject,
	recordsOfSubscription,
	WindowTable,
} from "../lib/aws/monitor";
import { loadPolicy, requireEnv, runHandler, s3Client } from "../lib/aws/runtime";
import type { MonitorAlarm } from "../lib/core/monitor";
import { monitorMetricDocuments } from "../lib/core/monitor/metrics";
import { emfDocument } from "../lib/core/pipeline/input-gate";
import { MetricName, MONITOR_UNWATCHED_DIMENSION, MonitorUnwatchedReason } from "../lib/core/pipeline/names";

let dynamo: DynamoDBClient | undefined;

/** The container's DynamoDB client (FTGUARD_DYNAMODB_ENDPOINT: a local server); tests may replace it. */
export function dynamoClient(client?: DynamoDBClient): DynamoDBClient {
	if (client !== undefined) dynamo = client;
	const endpoint = process.env.FTGUARD_DYNAMODB_ENDPOINT;
	dynamo ??= new DynamoDBClient(endpoint ? { endpoint } : {});
	return dynamo;
}

/** An alarm as the result names it (the log line has it whole). */
export type MonitorAlarmSummary = Pick<
	MonitorAlarm,
	"type" | "model_version" | "at_record" | "detail" | "candidate_trigger"
>;

export interface MonitorResult {
	source: string;
	records: number;
	malformed: number;
	/** Bedrock records whose output body in S3 could not be fetched: not monitored (lib/aws/monitor.ts EventRecords) */
	unread: number;
	/** records monitored without their input (its body in S3 not readable) */
	withoutInput: number;
	/** Bedrock bodies read from S3 */
	bodiesRead: number;
	/** the first malformed, unread or input-less lines, with why */
	problems: RecordProblem[];
	versions: number;
	alarms: number;
	/** the first MAX_ALARMS_LISTED alarms */
	alarmList: MonitorAlarmSummary[];
}

const MAX_ALARMS_LISTED = 20;

/**
 * The batch's records the monitor could not watch, as EMF documents: one point per reason, 0 included (the series
 * stays continuous, and an alarm on it tells "none" from "no data"), under `{service}` and `{service, reason}`.
 */
export function unwatchedMetricDocuments(
	batch: Pick<EventRecords, "unread" | "malformed">,
	now: Date = new Date(),
): object[] {
	const counts: [MonitorUnwatchedReason, number][] = [
		[MonitorUnwatchedReason.UNREAD, batch.unread],
		[MonitorUnwatchedReason.MALFORMED, batch.malformed],
	];
	return counts.map(([reason, count]) =>
		emfDocument(now, MetricName.OUTPUT_MONITOR_UNWATCHED_RECORDS_TOTAL, "Count", [MONITOR_UNWATCHED_DIMENSION.REASON], {
			[MONITOR_UNWATCHED_DIMENSION.REASON]: reason,
			[MetricName.OUTPUT_MONITOR_UNWATCHED_RECORDS_TOTAL]: count,
		}),
	);
}

export async function handler(event: unknown): Promise<MonitorResult> {
	return runHandler("monitor", undefined, async (log) => {
		const policy = (await loadPolicy()).monitor;
		// Bedrock bodies delivered to S3 are read from the configured large-data locations only
		const reader = { s3: s3Client(), locations: largeDataLocations(process.env.FTGUARD_MONITOR_LARGE_DATA) };
		const batch: EventRecords = isSubscriptionEvent(event)
			? await recordsOfSubscription(event, reader)
			: await recordsOfObject(s3Client(), objectOfEvent(event), reader);
		const table = new WindowTable(dynamoClient(), {
			tableName: requireEnv("FTGUARD_MONITOR_TABLE"),
			ttlDays: Number(process.env.FTGUARD_MONITOR_TTL_DAYS ?? "30"),
		});
		const groups = byVersion(batch.records);
		let alarms = 0;
		const alarmList: MonitorAlarmSummary[] = [];
		// one version after another: the versions of one batch are few, and each write is a read-modify-write
		for (const [version, records] of groups) {
			const r = await table.apply(version, records, policy);
			for (const a of r.alarms) log.warn(`output monitor: ${a.type} alarm for ${version}: ${a.detail}`, { ...a });
			for (const doc of monitorMetricDocuments(version, r.metrics, r.alarms)) emitEmfDocument(doc);
			alarms += r.alarms.length;
			for (const a of r.alarms.slice(0, MAX_ALARMS_LISTED - alarmList.length)) {
				const { type, model_version, at_record, detail, candidate_trigger } = a;
				alarmList.push({ type, model_version, at_record, detail, ...(candidate_trigger ? { candidate_trigger } : {}) });
			}
		}
		// after the windows are written: a batch retried after a failed write is counted once, by the run that applies
		// it (one that never applies ends in the dead-letter queue, whose own alarm tells)
		for (const doc of unwatchedMetricDocuments(batch)) emitEmfDocument(doc);
		const result = {
			source: batch.source,
			records: batch.records.length,
			malformed: batch.malformed,
			unread: batch.unread,
			withoutInput: batch.withoutInput,
			bodiesRead: batch.bodiesRead,
			problems: batch.problems,
			versions: groups.size,
			alarms,
			alarmList,
		};
		// not all of the batch was read: say so (the result and the log carry the count and the first reasons)
		if (batch.unread > 0)
			log.warn("output monitor: Bedrock records whose output body in S3 could not be read (not monitored)", {
				...result,
			});
		else if (batch.malformed > 0 || batch.withoutInput > 0)
			log.warn("output monitor: lines that are no inference record, or records read without their input", {
				...result,
			});
		else log.info("output monitor: batch applied", { ...result });
		return result;
	});
}
