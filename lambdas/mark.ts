/** mark: pins every object of the artefact to its current version and tags that version SCANNING. */
import { listArtefactObjects, markScanning } from "../lib/aws/mark";
import { runHandler, s3Client, scanIdOf } from "../lib/aws/runtime";
import { parseScanState } from "../lib/core/pipeline/schema";
import type { ScanObject, ScanState } from "../lib/core/pipeline/types";

export async function handler(event: unknown): Promise<ScanState & { objects: ScanObject[] }> {
	return runHandler("mark", scanIdOf(event), async (log) => {
		const state = parseScanState(event, "mark");
		const s3 = s3Client();
		const objects = await listArtefactObjects(s3, state);
		await markScanning(s3, state, objects);
		log.info("objects marked", { objects: objects.length });
		return { ...state, objects };
	});
}
