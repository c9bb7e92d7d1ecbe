/**
 * Which ftguard document a JSON value is, by its shape: the pipeline's verdict record (lib/core/pipeline/record.ts),
 * a backdoor report of an image or a text classifier (`ftguard backdoor --out` / `--json`, the batch job's
 * report.json), a files report (`ftguard files --json`, or the pipeline's files.json), a dataset report (`ftguard
 * dataset --json`, the dataset gate's ftguard-dataset-report.json). Anything else is a usage error naming what
 * it is not.
 */
import { FtguardError } from "../errors";
import { VERDICT_RECORD_SCHEMA } from "../pipeline/record";
import { arr, isObject, obj, str } from "./read";

export type ReportKind = "verdict-record" | "backdoor-image" | "backdoor-text" | "files" | "pipeline-files" | "dataset";

const KNOWN =
	"a verdict record, a backdoor report (ftguard backdoor --out), a files report (ftguard files --json) or a dataset report (ftguard dataset --json)";

/** The kind of `doc`, or undefined. */
export function reportKind(doc: unknown): ReportKind | undefined {
	const d = obj(doc);
	if (d === undefined) return undefined;
	if (d.schema === VERDICT_RECORD_SCHEMA && typeof d.status === "string") return "verdict-record";
	if ((d.verdict === "clean" || d.verdict === "suspect") && isObject(d.model)) {
		if (isObject(d.detectors)) return "backdoor-image";
		if (Array.isArray(d.labels)) return "backdoor-text";
	}
	if (Array.isArray(d.files) && isObject(d.summary)) {
		const first = arr(d.files).slice(0, 16);
		if (first.every((f) => isObject(f) && typeof f.path === "string")) return "files";
		if (first.every((f) => isObject(f) && typeof f.key === "string" && isObject(f.report))) return "pipeline-files";
	}
	if (typeof d.records === "number" && Array.isArray(d.findings) && isObject(d.lineage)) return "dataset";
	return undefined;
}

/** The kind of `doc`, or a USAGE error (exit 2) saying what it is instead when ftguard wrote it. */
export function requireReportKind(doc: unknown, source: string): ReportKind {
	const kind = reportKind(doc);
	if (kind !== undefined) return kind;
	const d = obj(doc);
	const err = obj(d?.error);
	if (d?.ok === false && err !== undefined)
		throw new FtguardError(
			"USAGE",
			`${source}: an error document (${str(err.code) ?? "error"}: ${str(err.message)?.slice(0, 200) ?? ""}), not a scan report`,
		);
	throw new FtguardError("USAGE", `${source}: not a report ftguard renders (expected ${KNOWN})`);
}
