/**
 * The files state's S3 side: every object of the artefact (not the marker)
 * through the format scanners via an S3Source of its pinned version, and the
 * backdoor-scan plan (ONNX model, version, reference data from the policy, or why no scan runs and the
 * waiver that covers it).
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { defaultScanOptions } from "../core/formats";
import type { FileReport } from "../core/formats/scan";
import { resourceNameOf } from "../core/pipeline/artefact";
import { mapLimit } from "../core/pipeline/concurrency";
import {
	backdoorModelOf,
	backdoorPlan,
	type FilesOutcome,
	onnxModelsOf,
	scanSource,
	summariseFiles,
} from "../core/pipeline/files";
import type { ScanObject, ScanState } from "../core/pipeline/types";
import { type Policy, referenceDataFor } from "../core/policy";
import { modelInfoOf } from "./artefact";
import { S3Source } from "./s3-source";

export interface ScannedObject {
	key: string;
	versionId?: string | undefined;
	etag?: string | undefined;
	report: FileReport;
	/** bytes transferred from S3 for this object (the scanners read only what they need) */
	bytesFetched: number;
}

export async function scanArtefact(
	s3: S3Client,
	state: ScanState & { objects: ScanObject[] },
	policy: Policy,
	now: Date = new Date(),
): Promise<{ scanned: ScannedObject[]; summary: FilesOutcome; backdoor: NonNullable<ScanState["backdoor"]> }> {
	const options = {
		...defaultScanOptions(),
		policy: { allowPickle: policy.files.allowPickle, inertNames: policy.files.inert },
		strict: policy.files.strict,
	};
	const content = state.objects.filter((o) => o.key !== state.marker.key);
	const scanned = await mapLimit(content, 4, async (o): Promise<ScannedObject> => {
		const source = new S3Source(s3, { bucket: state.bucket, ...o });
		const name = resourceNameOf(state.artefact, o.key);
		// a single-file artefact's resource is "."; scanners want a file name
		const report = await scanSource(
			source,
			`s3://${state.bucket}/${o.key}`,
			!name || name === "." ? o.key : name,
			options,
		);
		const { size: _, ...pin } = o;
		return { ...pin, report, bytesFetched: source.bytesFetched };
	});
	const models = onnxModelsOf(scanned);
	const chosen = backdoorModelOf(models);
	const model = content.find((o) => o.key === chosen.model);
	const info = await modelInfoOf(s3, state, state.objects, model);
	const summary = summariseFiles(scanned.map((s) => s.report));
	return {
		scanned,
		summary: chosen.problem ? { ...summary, safe: false, reasons: [...summary.reasons, chosen.problem] } : summary,
		backdoor: backdoorPlan({
			artefact: state.artefact,
			files: scanned.map((s) => ({ key: s.key, format: s.report.format })),
			model,
			onnxModels: models.length,
			...info,
			reference: model ? referenceDataFor(policy.referenceData, info) : undefined,
			policy: policy.backdoor,
			now,
		}),
	};
}
