/**
 * files: every object of the artefact through the format scanners, read by
 * ranged GETs of the pinned version (only the bytes a scanner asks for); the
 * report goes to the report bucket. Also plans the backdoor scan and runs the
 * DP-SGD gate over the training job's declaration (ftguard-training.json).
 */
import { scanArtefact } from "../lib/aws/files";
import { loadPolicy, runHandler, s3Client, scanIdOf, writeReport } from "../lib/aws/runtime";
import { parseScanState, requireFields } from "../lib/core/pipeline/schema";
import type { ScanStateWith } from "../lib/core/pipeline/types";
import { policyDigest } from "../lib/core/provenance/statement";

export async function handler(event: unknown): Promise<ScanStateWith<"files" | "backdoor" | "dp">> {
	return runHandler("files", scanIdOf(event), async (log) => {
		const state = requireFields(parseScanState(event, "files"), "files", "objects");
		const policy = await loadPolicy();
		const { scanned, summary, backdoor, binding, training, dp } = await scanArtefact(s3Client(), state, policy);
		const doc = {
			scanId: state.scanId,
			bucket: state.bucket,
			artefact: state.artefact,
			summary,
			files: scanned,
			binding,
			training,
			dp,
		};
		const reportUri = await writeReport(state.scanId, "files", doc);
		const bytesFetched = scanned.reduce((n, s) => n + s.bytesFetched, 0);
		log.info("files scanned", { ...summary, backdoor, dp, bytesFetched });
		return {
			...state,
			files: { ...summary, reportUri },
			backdoor,
			...(training ? { training } : {}),
			dp,
			policyDigest: policyDigest(policy),
		};
	});
}
