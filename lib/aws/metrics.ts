/**
 * CloudWatch metrics as EMF lines (Powertools Metrics): namespace `ftguard`,
 * the one dimension `service=ftguard` the alarms match, names from
 * lib/core/pipeline/names.ts. Created once per container.
 */
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { METRIC_NAMESPACE, METRIC_SERVICE, type MetricPoint } from "../core/pipeline/names";

let metrics: Metrics | undefined;

export function pipelineMetrics(): Metrics {
	metrics ??= new Metrics({ namespace: METRIC_NAMESPACE, serviceName: METRIC_SERVICE });
	return metrics;
}

/** Adds the points and flushes them as one EMF document. */
export function emitMetrics(points: ReadonlyArray<MetricPoint>): void {
	if (points.length === 0) return;
	const m = pipelineMetrics();
	for (const p of points) m.addMetric(p.name, p.unit === "None" ? MetricUnit.NoUnit : MetricUnit.Count, p.value);
	m.publishStoredMetrics();
}

/**
 * Writes one EMF document built in the core (e.g. lib/core/pipeline/base-model.ts baseModelMetricDocument, whose two
 * dimension sets Powertools' one default set cannot express) as one stdout line, where Lambda's log agent reads EMF:
 * not through console.log, which Lambda's JSON log format would wrap.
 */
export function emitEmfDocument(doc: object): void {
	(emfOutput ?? process.stdout).write(`${JSON.stringify(doc)}\n`);
}

let emfOutput: Pick<NodeJS.WritableStream, "write"> | undefined;

/** Where {@link emitEmfDocument} writes instead of stdout (the local pipeline's handler log); undefined: stdout. */
export function setEmfOutput(out: Pick<NodeJS.WritableStream, "write"> | undefined): void {
	emfOutput = out;
}
