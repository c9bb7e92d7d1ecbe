/** decide: the verdict from the state alone (lib/core/pipeline/decide.ts): PROMOTABLE only when every stage passed. */
import { runHandler, scanIdOf } from "../lib/aws/runtime";
import { decide } from "../lib/core/pipeline/decide";
import { parseScanState } from "../lib/core/pipeline/schema";
import type { ScanState } from "../lib/core/pipeline/types";

export async function handler(event: unknown): Promise<ScanState & Required<Pick<ScanState, "verdict">>> {
	return runHandler("decide", scanIdOf(event), async (log) => {
		const state = parseScanState(event, "decide");
		const verdict = decide(state);
		log.info("decided", { ...verdict });
		return { ...state, verdict };
	});
}
