/**
 * sweep: every SWEEP.intervalMinutes (EventBridge schedule), quarantine the objects that scans which ended FAILED,
 * TIMED_OUT or ABORTED left tagged SCANNING (lib/aws/sweep.ts), and emit `scans_stuck_in_scanning` on every run,
 * 0 included, and 1 before a run that cannot finish fails (lib/core/pipeline/sweep.ts runSweep).
 *
 * Input: the schedule's `{"lookbackMinutes": N}`; a manual invocation may pass a longer lookback after an outage.
 */
import type { Context } from "aws-lambda";
import { emitMetrics } from "../lib/aws/metrics";
import { requireEnv, runHandler, s3Client, sfnClient } from "../lib/aws/runtime";
import { sweep } from "../lib/aws/sweep";
import { runSweep, type SweepResult } from "../lib/core/pipeline/sweep";

export async function handler(
	event: unknown,
	context?: Pick<Context, "getRemainingTimeInMillis">,
): Promise<SweepResult> {
	return runHandler("sweep", undefined, async (log) => {
		const result = await runSweep({
			event,
			now: new Date(),
			remainingMs: context?.getRemainingTimeInMillis?.(),
			maxExecutionSeconds: () => Number(requireEnv("FTGUARD_MAX_EXECUTION_SECONDS")),
			sweep: async (window, deadline) => {
				const stateMachineArn = requireEnv("FTGUARD_STATE_MACHINE_ARN");
				return (await sweep({ sfn: sfnClient(), s3: s3Client(), stateMachineArn, window, deadline, log })).summary;
			},
			emit: emitMetrics,
		});
		if (result.metric > 0) log.warn("sweep found stuck or unchecked scans", { ...result });
		else log.info("sweep found nothing stuck", { ...result });
		return result;
	});
}
