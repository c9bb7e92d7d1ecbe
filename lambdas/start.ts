/**
 * start: EventBridge "Object Created" (S3) → a scan execution, when the key is a
 * commit marker (lib/core/pipeline/artefact.ts). The execution name is the scan
 * id, a hash of (bucket, key, version), so a redelivered event starts nothing.
 */
import { requireEnv, runHandler, sfnClient } from "../lib/aws/runtime";
import { startScanExecution } from "../lib/aws/start";
import { initialState } from "../lib/core/pipeline/start";

export type StartResult =
	| { started: true; scanId: string; executionArn: string }
	| { started: false; scanId?: string; reason: "not-a-marker" | "duplicate" };

export async function handler(event: unknown): Promise<StartResult> {
	return runHandler("start", undefined, async (log) => {
		const state = initialState(event);
		if (!state) return { started: false, reason: "not-a-marker" };
		log.appendKeys({ scanId: state.scanId });
		const r = await startScanExecution(sfnClient(), requireEnv("FTGUARD_STATE_MACHINE_ARN"), state.scanId, state);
		if (!r.started) {
			log.info("duplicate event: the scan already exists", { key: state.marker.key });
			return { started: false, scanId: state.scanId, reason: "duplicate" };
		}
		log.info("scan started", { key: state.marker.key, artefact: state.artefact });
		return { started: true, scanId: state.scanId, executionArn: r.executionArn };
	});
}
