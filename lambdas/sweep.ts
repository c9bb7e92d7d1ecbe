/**
 * sweep: every SWEEP.intervalMinutes (EventBridge schedule), quarantine the objects that scans which ended FAILED,
 * TIMED_OUT or ABORTED left tagged SCANNING (lib/core/pipeline/sweep.ts, lib/aws/sweep.ts), and emit
 * `scans_stuck_in_scanning` — always, 0 included, since the alarm treats silence as breaching. A run that cannot
 * finish still emits (at least 1: it could not look) before it fails.
 *
 * Input: the schedule's `{"lookbackMinutes": N}`; a manual invocation may pass a longer lookback after an outage.
 */
import type { Context } from "aws-lambda";
import { z } from "zod";
import { emitMetrics } from "../lib/aws/metrics";
import { requireEnv, runHandler, s3Client, sfnClient } from "../lib/aws/runtime";
import { sweep } from "../lib/aws/sweep";
import { FtguardError } from "../lib/core/errors";
import { MetricName, SWEEP } from "../lib/core/pipeline/names";
import { SWEEP_LIMITS, type SweepSummary, stuckMetricValue, sweepWindow } from "../lib/core/pipeline/sweep";
import { zodMessage } from "../lib/core/schema";

export type SweepResult = SweepSummary & { since: string; metric: number };

const eventSchema = z
	.object({ lookbackMinutes: z.number().int().min(1).max(SWEEP_LIMITS.maxLookbackMinutes).optional() })
	.loose();

/** Time kept back from the function's timeout to report before Lambda stops the run. */
const REPORT_MARGIN_MS = 60_000;

function report(value: number): void {
	emitMetrics([{ name: MetricName.SCANS_STUCK_IN_SCANNING, value, unit: "Count" }]);
}

export async function handler(
	event: unknown,
	context?: Pick<Context, "getRemainingTimeInMillis">,
): Promise<SweepResult> {
	return runHandler("sweep", undefined, async (log) => {
		try {
			const input = eventSchema.safeParse(event ?? {});
			if (!input.success) throw new FtguardError("USAGE", `sweep: invalid input: ${zodMessage(input.error)}`);
			const lookback = input.data.lookbackMinutes ?? SWEEP.intervalMinutes * SWEEP.lookbackIntervals;
			const maxExecutionSeconds = Number(requireEnv("FTGUARD_MAX_EXECUTION_SECONDS"));
			let window: ReturnType<typeof sweepWindow>;
			try {
				window = sweepWindow(new Date(), lookback, maxExecutionSeconds);
			} catch (e) {
				throw new FtguardError("USAGE", `sweep: ${(e as Error).message}`);
			}
			const remaining = context?.getRemainingTimeInMillis?.() ?? 5 * 60_000;
			const { summary } = await sweep({
				sfn: sfnClient(),
				s3: s3Client(),
				stateMachineArn: requireEnv("FTGUARD_STATE_MACHINE_ARN"),
				window,
				deadline: Date.now() + Math.max(0, remaining - REPORT_MARGIN_MS),
				log,
			});
			const metric = stuckMetricValue(summary);
			report(metric);
			const since = window.since.toISOString();
			if (metric > 0) log.warn("sweep found stuck or unchecked scans", { ...summary, since, metric });
			else log.info("sweep found nothing stuck", { ...summary, since, metric });
			return { ...summary, since, metric };
		} catch (e) {
			// Nothing was examined (listing or configuration failed): say "could not look" now rather than wait for
			// the alarm's silence rule, then fail so the invocation shows as an error.
			report(1);
			throw e;
		}
	});
}
