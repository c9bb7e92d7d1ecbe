/**
 * files: every object of the artefact through the format scanners, read by
 * ranged GETs of the pinned version (only the bytes a scanner asks for); the
 * report goes to the report bucket. Also says whether a backdoor scan is needed.
 */

import { modelInfoOf } from "../lib/aws/artefact";
import { putObject } from "../lib/aws/object-store";
import { loadPolicy, reportLocation, runHandler, s3Client, scanIdOf } from "../lib/aws/runtime";
import { S3Source } from "../lib/aws/s3-source";
import { defaultScanOptions } from "../lib/core/formats";
import { resourceNameOf } from "../lib/core/pipeline/artefact";
import { mapLimit } from "../lib/core/pipeline/concurrency";
import { backdoorPlan, onnxModelOf, scanSource, summariseFiles } from "../lib/core/pipeline/files";
import { reportKey } from "../lib/core/pipeline/record";
import { parseScanState, requireFields } from "../lib/core/pipeline/schema";
import type { ScanState } from "../lib/core/pipeline/types";
import { referenceDataFor } from "../lib/core/policy";

export async function handler(event: unknown): Promise<ScanState & Required<Pick<ScanState, "files" | "backdoor">>> {
	return runHandler("files", scanIdOf(event), async (log) => {
		const state = requireFields(parseScanState(event, "files"), "files", "objects");
		const { bucket: reportBucket, prefix } = reportLocation();
		const policy = await loadPolicy();
		const s3 = s3Client();
		const options = {
			...defaultScanOptions(),
			policy: { allowPickle: policy.files.allowPickle },
			strict: policy.files.strict,
		};
		const content = state.objects.filter((o) => o.key !== state.marker.key);
		const scanned = await mapLimit(content, 4, async (o) => {
			const source = new S3Source(s3, { bucket: state.bucket, ...o });
			const name = resourceNameOf(state.artefact, o.key) ?? o.key;
			const report = await scanSource(source, `s3://${state.bucket}/${o.key}`, name === "." ? o.key : name, options);
			return { key: o.key, versionId: o.versionId, etag: o.etag, report, bytesFetched: source.bytesFetched };
		});
		const summary = summariseFiles(scanned.map((s) => s.report));
		const key = reportKey(state.scanId, "files", prefix);
		const doc = { scanId: state.scanId, bucket: state.bucket, artefact: state.artefact, summary, files: scanned };
		await putObject(s3, { bucket: reportBucket, key }, JSON.stringify(doc, null, 2), "application/json");
		const modelKey = onnxModelOf(scanned);
		const model = content.find((o) => o.key === modelKey);
		const info = model ? await modelInfoOf(s3, state, state.objects, model) : {};
		const backdoor = backdoorPlan(model, referenceDataFor(policy.referenceData, info));
		log.info("files scanned", {
			backdoor,
			...summary,
			bytesFetched: scanned.reduce((n, s) => n + s.bytesFetched, 0),
			bytes: content.reduce((n, o) => n + o.size, 0),
		});
		return {
			...state,
			files: { ...summary, reportUri: `s3://${reportBucket}/${key}` },
			backdoor,
		};
	});
}
