/**
 * The base-model gate's rules (lambdas/base-model.ts; the S3 side is lib/aws/base-model.ts). A base model committed
 * to the base-model bucket (`<dir>/ftguard-base-model.json` naming its registry id, written last) is judged against
 * the signed registry entry by the same rule `ftguard base-model check` applies to a directory
 * (lib/core/integrity/registry.ts judgeBaseModel: every file's digest, pickle weights beside listed safetensors),
 * plus the file-safety scan of every object: remote code is flagged (a note; the registry signer approved those
 * exact bytes), any other unsafe or malformed file refuses the model. Only a passed model is tagged PROMOTABLE, the
 * one status training-job roles may read.
 */
import { z } from "zod";
import type { FileReport } from "../formats/scan";
import { type BaseModelCheck, findEntry, judgeBaseModel, type Registry, unknownModel } from "../integrity/registry";
import { emfDocument, type GateStatus, markerDirOf, parseMarkerJson } from "./input-gate";
import { BASE_MODEL_DIMENSION, BASE_MODEL_MARKER_SUFFIX, BaseModelResult, MetricName, ScanStatus } from "./names";

/** The largest marker read: it holds one id. */
export const MAX_MARKER_BYTES = 64 * 1024;

/** Stands for the model id in the metric when the marker could not be read. */
export const UNKNOWN_MODEL_ID = "unknown";

const markerSchema = z.object({ id: z.string().min(1).max(256) }).strict();

/** The model directory (`<dir>/`) of a marker key, or undefined when the key is not a base-model marker. */
export function baseModelDirOf(key: string): string | undefined {
	return markerDirOf(key, BASE_MODEL_MARKER_SUFFIX);
}

/** The registry id the marker names. @throws FtguardError DATA_INVALID when it is not `{"id": "…"}` */
export function parseBaseModelMarker(bytes: Uint8Array, where: string): string {
	return parseMarkerJson(bytes, where, markerSchema).id;
}

/** Findings judged elsewhere: pickles by the registry rule, remote code flagged as a note. */
const PICKLE_FINDING = "pickle-forbidden";
const REMOTE_CODE_FINDING = "remote-code";

/** One object's file-safety report, named by its path relative to the model directory. */
export interface NamedReport {
	name: string;
	report: FileReport;
}

export interface BaseModelGateResult extends BaseModelCheck {
	status: GateStatus;
	/** What the pass rests on besides matched digests: remote code the registry approved. */
	notes: string[];
}

function serious(r: FileReport) {
	return r.findings.filter((f) => f.severity === "high" || f.severity === "critical");
}

/**
 * The verdict on a model version: `present` maps each file (relative path, marker excluded) to its SHA-256 hex,
 * `reports` are the file-safety scans of the same objects (pickles refused: `allowPickle: false`).
 */
export function judgeGate(
	registry: Registry,
	id: string,
	present: ReadonlyMap<string, string>,
	reports: readonly NamedReport[],
): BaseModelGateResult {
	const entry = findEntry(registry, id);
	const pickles = new Map(
		reports.filter((r) => r.report.findings.some((f) => f.id === PICKLE_FINDING)).map((r) => [r.name, r.report.format]),
	);
	const check = entry ? judgeBaseModel(entry, present, pickles) : unknownModel(id);
	const reasons = [...check.reasons];
	const notes: string[] = [];
	for (const { name, report } of reports) {
		for (const f of report.findings) if (f.id === REMOTE_CODE_FINDING) notes.push(`remote code: ${name}: ${f.message}`);
		if (report.verdict === "safe") continue;
		const high = serious(report);
		// unsafe only through a pickle (the registry rule above decides) or remote code (flagged): not refused here
		const judgedElsewhere =
			report.verdict === "unsafe" &&
			high.length > 0 &&
			high.every((f) => f.id === PICKLE_FINDING || f.id === REMOTE_CODE_FINDING);
		if (judgedElsewhere) continue;
		const f = high[0];
		reasons.push(`${name}: ${report.verdict} (${f ? `${f.id}: ${f.message}` : (report.malformed ?? report.verdict)})`);
	}
	const approved = reasons.length === 0;
	return {
		...check,
		approved,
		reasons,
		notes,
		status: approved ? ScanStatus.PROMOTABLE : ScanStatus.QUARANTINED,
	};
}

/**
 * `base_model_verification_result` as one CloudWatch EMF document: 1 pass / 0 fail, under the dimension sets
 * `{service}` (what the alarm watches) and `{service, model_id, result}`. The Lambda writes it to its log; the CLI
 * with `--metrics` to stderr.
 */
export function baseModelMetricDocument(modelId: string, pass: boolean, now: Date = new Date()): object {
	return emfDocument(
		now,
		MetricName.BASE_MODEL_VERIFICATION_RESULT,
		"None",
		[BASE_MODEL_DIMENSION.MODEL_ID, BASE_MODEL_DIMENSION.RESULT],
		{
			[BASE_MODEL_DIMENSION.MODEL_ID]: modelId,
			[BASE_MODEL_DIMENSION.RESULT]: pass ? BaseModelResult.PASS : BaseModelResult.FAIL,
			[MetricName.BASE_MODEL_VERIFICATION_RESULT]: pass ? 1 : 0,
		},
	);
}
