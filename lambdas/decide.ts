/**
 * decide: the verdict from the state (lib/core/pipeline/decide.ts): PROMOTABLE only when every stage passed. When
 * a model's backdoor job failed with exit 1 (suspect), the job's report.json is read so that the reason names the
 * finding ("backdoor: suspect model.onnx (class 3: …)") instead of "error: backdoor model.onnx"; the status is
 * QUARANTINED either way.
 */
import { readBackdoorEvidence } from "../lib/aws/decide";
import { reportLocation, runHandler, s3Client, scanIdOf } from "../lib/aws/runtime";
import { decideWithEvidence } from "../lib/core/pipeline/decide";
import { parseScanState } from "../lib/core/pipeline/schema";
import type { ScanStateWith } from "../lib/core/pipeline/types";

export async function handler(event: unknown): Promise<ScanStateWith<"verdict">> {
	return runHandler("decide", scanIdOf(event), async (log) => {
		const parsed = parseScanState(event, "decide");
		const evidence = await readBackdoorEvidence(s3Client(), parsed, reportLocation);
		for (const e of evidence) if (e.kind === "unreadable") log.warn("backdoor report not usable", { ...e });
		const { state, verdict } = decideWithEvidence(parsed, evidence, new Date());
		log.info("decided", { ...verdict });
		return { ...state, verdict };
	});
}
