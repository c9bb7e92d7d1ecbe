/** mark: pins every object of the artefact to its current version and tags that version SCANNING. */
import { listArtefactObjects } from "../lib/aws/artefact";
import { runHandler, s3Client, scanIdOf } from "../lib/aws/runtime";
import { putFtguardTags } from "../lib/aws/tagging";
import { mapLimit } from "../lib/core/pipeline/concurrency";
import { SCAN_ID_TAG, ScanStatus, STATUS_TAG } from "../lib/core/pipeline/names";
import { parseScanState } from "../lib/core/pipeline/schema";
import type { ScanObject, ScanState } from "../lib/core/pipeline/types";

export async function handler(event: unknown): Promise<ScanState & { objects: ScanObject[] }> {
	return runHandler("mark", scanIdOf(event), async (log) => {
		const state = parseScanState(event, "mark");
		const s3 = s3Client();
		const objects = await listArtefactObjects(s3, state);
		await mapLimit(objects, 8, (o) =>
			putFtguardTags(
				s3,
				{ bucket: state.bucket, ...o },
				{ [STATUS_TAG]: ScanStatus.SCANNING, [SCAN_ID_TAG]: state.scanId },
			),
		);
		log.info("objects marked", { objects: objects.length });
		return { ...state, objects };
	});
}
