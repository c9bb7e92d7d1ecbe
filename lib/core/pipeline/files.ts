/**
 * The file-safety stage over sources that are not files on disk (objects in S3):
 * the same scanners, detection and fail-closed rules as `scanPaths` in
 * lib/core/formats/scan.ts, one object at a time through a ByteSource, so a
 * scanner reads only the bytes it asks for.
 */
import { toFtguardError } from "../errors";
import { type FileReport, type ScanOptions, scanSource as scanEngine } from "../formats/scan";
import type { ByteSource, Finding } from "../formats/types";
import { verdictOf } from "../formats/types";
import type { ReferenceData } from "../policy";
import type { ScanState } from "./types";

/**
 * No local path exists for an object; ONNX external-data references resolve
 * under this directory, which can never exist (a path below /dev/null), so they
 * read as missing: fail closed rather than reading the Lambda's own disk.
 */
const NO_LOCAL_DIR = "/dev/null/ftguard-object";

/**
 * Scans one object with the engine `scanPaths` uses (lib/core/formats/scan.ts);
 * `path` is what the report names it by. A read that fails (the object changed or
 * vanished) is a finding, so the stage quarantines instead of stopping.
 */
export async function scanSource(
	source: ByteSource,
	path: string,
	name: string,
	options: ScanOptions,
): Promise<FileReport> {
	try {
		return await scanEngine(
			source,
			{ displayPath: path, name, path: `${NO_LOCAL_DIR}/${name}`, modelDir: NO_LOCAL_DIR },
			options,
		);
	} catch (e) {
		const finding: Finding = { id: "read-error", severity: "high", message: toFtguardError(e).message };
		return {
			path,
			format: "unknown",
			verdict: verdictOf({ findings: [finding] }),
			findings: [finding],
			size: source.size,
			bytesRead: source.bytesRead,
		};
	}
}

export interface FilesOutcome {
	safe: boolean;
	unsafe: number;
	malformed: number;
	/** one line per file that is not safe (at most {@link MAX_REASONS}, then a count) */
	reasons: string[];
}

export const MAX_REASONS = 20;

/** The stage's result: safe only when there is at least one file and every file is safe. */
export function summariseFiles(reports: readonly FileReport[]): FilesOutcome {
	const bad = reports.filter((r) => r.verdict !== "safe");
	const lines = bad.map((r) => {
		const f = r.findings.find((x) => x.severity === "critical" || x.severity === "high");
		const why = f ? `${f.id}: ${f.message}` : (r.malformed ?? r.verdict);
		return `${r.path}: ${r.verdict} (${why})`;
	});
	const reasons =
		lines.length > MAX_REASONS ? [...lines.slice(0, MAX_REASONS), `… and ${lines.length - MAX_REASONS} more`] : lines;
	if (reports.length === 0) reasons.push("no files to scan");
	return {
		safe: reports.length > 0 && bad.length === 0,
		unsafe: reports.filter((r) => r.verdict === "unsafe").length,
		malformed: reports.filter((r) => r.verdict === "malformed").length,
		reasons,
	};
}

/** Every ONNX model of the artefact (by name or by detected format), sorted. */
export function onnxModelsOf(reports: readonly { key: string; report: FileReport }[]): string[] {
	return reports
		.filter((r) => r.key.toLowerCase().endsWith(".onnx") || r.report.format === "onnx")
		.map((r) => r.key)
		.sort();
}

/**
 * The one ONNX model the backdoor scan searches. The scan covers one model per artefact, so an artefact with
 * several is not promotable (a second, unscanned model could carry the backdoor): the problem is a reason of the
 * files stage, and no backdoor scan is asked for.
 */
export function backdoorModelOf(models: readonly string[]): { model?: string; problem?: string } {
	if (models.length <= 1) return models[0] !== undefined ? { model: models[0] } : {};
	const shown = models.slice(0, 5).join(", ") + (models.length > 5 ? `, … (${models.length})` : "");
	return {
		problem: `${models.length} ONNX models (${shown}): the backdoor scan covers one model per artefact — commit each model as its own artefact`,
	};
}

/**
 * The files state's `backdoor` field: not required without an ONNX model;
 * otherwise the model, its pinned version, and the reference data the policy
 * names for its family / input shape (left out when none matches, which the
 * state machine treats as a scan that cannot run: quarantine).
 */
export function backdoorPlan(
	model: { key: string; versionId?: string } | undefined,
	reference: ReferenceData | undefined,
): NonNullable<ScanState["backdoor"]> {
	if (!model) return { required: false };
	return {
		required: true,
		modelKey: model.key,
		...(model.versionId !== undefined ? { modelVersionId: model.versionId } : {}),
		...(reference ? { dataUri: reference.dataUri, labelsUri: reference.labelsUri, dataKind: reference.dataKind } : {}),
	};
}
