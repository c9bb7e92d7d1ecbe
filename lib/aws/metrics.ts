/**
 * CloudWatch metrics as EMF lines (Powertools Metrics): namespace `ftguard`,
 * the one dimension `service=ftguard` the alarms match, names from
 * lib/core/pipeline/names.ts. Created once per container.
 */
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { METRIC_NAMESPACE, METRIC_SERVICE, type MetricName } from "../core/pipeline/names";

let metrics: Metrics | undefined;

export function pipelineMetrics(): Metrics {
	metrics ??= new Metrics({ namespace: METRIC_NAMESPACE, serviceName: METRIC_SERVICE });
	return metrics;
}

/** Adds the points and flushes them as one EMF document. */
export function emitMetrics(points: ReadonlyArray<{ name: MetricName; value: number; unit?: "Count" | "None" }>): void {
	if (points.length === 0) return;
	const m = pipelineMetrics();
	for (const p of points) m.addMetric(p.name, p.unit === "None" ? MetricUnit.NoUnit : MetricUnit.Count, p.value);
	m.publishStoredMetrics();
}

/**
 * Objects overwritten between mark and record (they get no verdict). Not yet in
 * lib/core/pipeline/names.ts `MetricName`; kept here until it is.
 */
export const OBJECTS_CHANGED_METRIC = "scan_objects_changed_total" as MetricName;
