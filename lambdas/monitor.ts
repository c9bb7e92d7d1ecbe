/**
 * monitor: the production output monitor (docs/monitor.md). Input: a CloudWatch Logs subscription event (the
 * inference service's log group) or an EventBridge "Object Created" event (a SageMaker Data Capture or Bedrock
 * invocation-log object). The records of each model version are applied to its window in DynamoDB
 * (FTGUARD_MONITOR_TABLE; lib/aws/monitor.ts WindowTable), each alarm is logged, and the batch's metrics go out as
 * EMF (`deployed_model_output_repetition_rate`, `deployed_model_suspicious_output_total`), which the OutputMonitor
 * construct's alarms watch.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { emitEmfDocument } from "../lib/aws/metrics";
import {
	byVersion,
	type EventRecords,
	isSubscriptionEvent,
	objectOfEvent,
	recordsOfObject,
	recordsOfSubscription,
	WindowTable,
} from "../lib/aws/monitor";
import { loadPolicy, requireEnv, runHandler, s3Client } from "../lib/aws/runtime";
import type { MonitorAlarm } from "../lib/core/monitor";
import { monitorMetricDocuments } from "../lib/core/monitor/metrics";

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
	versions: number;
	alarms: number;
	/** the first MAX_ALARMS_LISTED alarms */
	alarmList: MonitorAlarmSummary[];
}

const MAX_ALARMS_LISTED = 20;

export async function handler(event: unknown): Promise<MonitorResult> {
	return runHandler("monitor", undefined, async (log) => {
		const policy = (await loadPolicy()).monitor;
		const batch: EventRecords = isSubscriptionEvent(event)
			? recordsOfSubscription(event)
			: await recordsOfObject(s3Client(), objectOfEvent(event));
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
		const result = {
			source: batch.source,
			records: batch.records.length,
			malformed: batch.malformed,
			versions: groups.size,
			alarms,
			alarmList,
		};
		if (batch.malformed > 0) log.warn("output monitor: lines that are no inference record", { ...result });
		else log.info("output monitor: batch applied", { ...result });
		return result;
	});
}
