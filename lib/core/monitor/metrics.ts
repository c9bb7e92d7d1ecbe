/**
 * The output monitor's CloudWatch metrics as EMF documents (lib/aws/metrics.ts emitEmfDocument writes them): after
 * each batch of one model version's responses, its repetition rate and the alarms the batch raised by type. Each
 * is emitted under `{service}` — what the OutputMonitor construct's alarms watch, since versions come and go — and
 * under `{service, model_version[, issue_type]}` for dashboards.
 */
import { emfDocument } from "../pipeline/input-gate";
import { MetricName } from "../pipeline/names";
import type { MonitorAlarm, VersionMetrics } from "./window";

/** The dimension names of the per-version view. */
export const MONITOR_DIMENSION = { MODEL_VERSION: "model_version", ISSUE_TYPE: "issue_type" } as const;

export function monitorMetricDocuments(
	modelVersion: string,
	metrics: Pick<VersionMetrics, "repetition_rate">,
	alarms: readonly MonitorAlarm[],
	now: Date = new Date(),
): object[] {
	const docs: object[] = [
		emfDocument(now, MetricName.DEPLOYED_MODEL_OUTPUT_REPETITION_RATE, "None", [MONITOR_DIMENSION.MODEL_VERSION], {
			[MONITOR_DIMENSION.MODEL_VERSION]: modelVersion,
			[MetricName.DEPLOYED_MODEL_OUTPUT_REPETITION_RATE]: metrics.repetition_rate,
		}),
	];
	const byType = new Map<string, number>();
	for (const a of alarms) byType.set(a.type, (byType.get(a.type) ?? 0) + 1);
	// one point per batch even without an alarm: the anomaly band learns the version-independent baseline from it
	if (byType.size === 0) byType.set("none", 0);
	for (const [type, count] of byType) {
		docs.push(
			emfDocument(
				now,
				MetricName.DEPLOYED_MODEL_SUSPICIOUS_OUTPUT_TOTAL,
				"Count",
				[MONITOR_DIMENSION.MODEL_VERSION, MONITOR_DIMENSION.ISSUE_TYPE],
				{
					[MONITOR_DIMENSION.MODEL_VERSION]: modelVersion,
					[MONITOR_DIMENSION.ISSUE_TYPE]: type,
					[MetricName.DEPLOYED_MODEL_SUSPICIOUS_OUTPUT_TOTAL]: count,
				},
			),
		);
	}
	return docs;
}
