/**
 * The pipeline's verdict record (lib/core/pipeline/record.ts VerdictRecord): every stage's result as a check with
 * its evidence, the files report and each model's backdoor report when they were read alongside, and the objects
 * the verdict tags were (or were not) written on.
 */
import { backdoorDetails, backdoorVerdict } from "./backdoor";
import { filesSection } from "./files";
import { clip, type Html, html } from "./html";
import type { ImageMap } from "./images";
import { arr, bool, bounded, count, fmt, isObject, LIMITS, obj, str, text } from "./read";
import { badge, type Ctx, code, deeper, type Level, list, more, pairs, type Status, section, table } from "./widgets";

export interface ModelReport {
	/** the backdoor report.json of this model (absent: not read) */
	report?: unknown;
	/** its trigger images by name (`triggers/class-<k>-mask.png`, …) */
	images?: ImageMap;
}

type Obj = Record<string, unknown> | undefined;

interface Check {
	name: string;
	status: Status;
	result: string;
	evidence: Html;
}

function checks(stages: Obj): Check[] {
	const out: Check[] = [];
	const m = obj(stages?.manifest);
	if (m !== undefined)
		out.push({
			name: "manifest",
			status: "pass",
			result: "hashed",
			evidence: html`${count(m.files) ?? "?"} files, ${fmt(count(m.bytes))} bytes; root ${code(str(m.rootDigest) ?? "")}`,
		});
	const s = obj(stages?.signature);
	if (s !== undefined) {
		const ok = bool(s.verified) === true;
		out.push({
			name: "signature",
			status: ok ? "pass" : "fail",
			result: ok ? "verified" : "not verified",
			evidence: html`${str(s.identity) === undefined ? "" : html`signer ${code(str(s.identity) ?? "")}`}${str(s.code) === undefined ? "" : html` ${code(str(s.code) ?? "")}`}${str(s.reason) === undefined ? "" : html` ${clip(str(s.reason) ?? "", LIMITS.text)}`}`,
		});
	}
	const f = obj(stages?.files);
	if (f !== undefined) {
		const ok = bool(f.safe) === true;
		out.push({
			name: "files",
			status: ok ? "pass" : "fail",
			result: ok ? "every file safe" : "not safe",
			evidence: html`${count(f.unsafe) ?? 0} unsafe, ${count(f.malformed) ?? 0} malformed${list(arr(f.reasons), "reasons", 5)}`,
		});
	}
	const b = obj(stages?.backdoor);
	if (b !== undefined) {
		const results = arr(b.results).filter(isObject);
		if (bool(b.noWeights) === true)
			out.push({ name: "backdoor", status: "info", result: "not applicable", evidence: html`no model weights` });
		else if (str(b.notScanned) !== undefined)
			out.push({
				name: "backdoor",
				status: isObject(b.waiver) ? "warn" : "fail",
				result: isObject(b.waiver) ? "not scanned, waived" : "not scanned",
				evidence: html`${clip(str(b.notScanned) ?? "", LIMITS.text)}${isObject(b.waiver) ? html`; waiver: ${clip(text(obj(b.waiver)?.reason), LIMITS.text)}` : ""}`,
			});
		for (const r of results.slice(0, LIMITS.models)) {
			const verdict = str(r.verdict);
			const err = obj(r.error);
			out.push({
				name: `backdoor ${clip(str(r.modelKey) ?? `model ${count(r.index) ?? "?"}`, LIMITS.cell)}`,
				status: verdict === "clean" ? "pass" : "fail",
				result: verdict ?? "error",
				evidence: html`${str(r.finding) === undefined ? "" : clip(str(r.finding) ?? "", LIMITS.text)}${err === undefined || verdict !== undefined ? "" : html`${clip(str(err.state) ?? "", LIMITS.cell)}: ${clip(str(err.cause) ?? "", LIMITS.text)}`}`,
			});
		}
	}
	const e = obj(stages?.error);
	if (e !== undefined)
		out.push({
			name: "error",
			status: "fail",
			result: `state ${clip(str(e.state) ?? "?", LIMITS.cell)} failed`,
			evidence: html`${clip(str(e.cause) ?? "", LIMITS.text)}`,
		});
	return out;
}

export function verdictRecordSections(
	ctx: Ctx,
	doc: unknown,
	files: unknown,
	models: ReadonlyMap<number, ModelReport> | undefined,
	level: Level,
): Html {
	const d = obj(doc);
	const stages = obj(d?.stages);
	const marker = obj(d?.marker);
	const cs = checks(stages);
	const objects = bounded(arr(d?.objects).filter(isObject), LIMITS.rows);
	const b = obj(stages?.backdoor);
	const results = arr(b?.results).filter(isObject).slice(0, LIMITS.models);
	const plan = arr(b?.models).filter(isObject);
	const modelSections = results.map((r, i) => {
		const index = count(r.index) ?? i;
		const key = str(r.modelKey) ?? str(plan[index]?.modelKey) ?? `model ${index}`;
		const m = models?.get(index);
		const err = obj(r.error);
		const body =
			m?.report !== undefined
				? backdoorDetails(ctx, m.report, m.images, deeper(level), true)
				: html`<p>${badge(str(r.verdict) === "clean" ? "pass" : "fail", str(r.verdict) ?? "no report")}</p>${err === undefined ? "" : html`<p>${clip(str(err.cause) ?? "", LIMITS.text)}</p>`}${str(r.reportUri) === undefined ? "" : html`<p>Report: ${code(str(r.reportUri) ?? "", LIMITS.text)} (not read alongside this record)</p>`}`;
		return section(ctx, level, `Backdoor scan: ${clip(key, LIMITS.cell)}`, body);
	});
	const skipped = arr(b?.results).length - results.length;
	return html`${section(
		ctx,
		level,
		"Checks",
		html`${table(
			ctx,
			"Every check and its evidence",
			[{ label: "check" }, { label: "result" }, { label: "evidence" }],
			cs.map((c) => [c.name, badge(c.status, c.result), c.evidence]),
		)}${pairs([
			["scan id", code(str(d?.scanId) ?? "")],
			["artefact", code(`s3://${str(d?.bucket) ?? "?"}/${str(d?.artefact) ?? "?"}`, LIMITS.text)],
			[
				"commit marker",
				code(
					`${str(marker?.key) ?? "?"}${str(marker?.versionId) === undefined ? "" : ` (version ${str(marker?.versionId)})`}`,
					LIMITS.text,
				),
			],
			["root digest", str(d?.rootDigest) === undefined ? undefined : code(str(d?.rootDigest) ?? "")],
			["backdoor family", str(b?.family)],
			["recorded at", str(d?.recordedAt)],
		])}`,
	)}${
		files !== undefined
			? filesSection(ctx, files, level)
			: str(obj(stages?.files)?.reportUri) === undefined
				? ""
				: section(
						ctx,
						level,
						"File safety",
						html`${list(arr(obj(stages?.files)?.reasons), "reasons")}<p>Report: ${code(str(obj(stages?.files)?.reportUri) ?? "", LIMITS.text)} (not read alongside this record)</p>`,
					)
	}${modelSections}${more(skipped, "models")}${section(
		ctx,
		level,
		"Objects and verdict tags",
		html`<p>The verdict is written as tags on exactly the object versions scanned; an object that changed during the scan gets none.</p>${table(
			ctx,
			"Objects of the artefact",
			[{ label: "key" }, { label: "version or ETag" }, { label: "bytes", numeric: true }, { label: "tagged" }],
			objects.shown.map((o) => [
				code(str(o.key) ?? ""),
				code(str(o.versionId) ?? str(o.etag) ?? "", 80),
				count(o.size),
				bool(o.tagged) === true
					? badge("pass", "tagged")
					: badge("fail", `not tagged${str(o.skipped) ? `: ${clip(str(o.skipped) ?? "", LIMITS.cell)}` : ""}`),
			]),
			objects.more,
			"objects",
		)}`,
	)}`;
}

/** The verdict line of a verdict record. */
export function recordVerdict(doc: unknown): {
	status: Status;
	label: string;
	reasons: readonly unknown[];
	notes: readonly unknown[];
} {
	const d = obj(doc);
	const status = str(d?.status);
	const promotable = status === "PROMOTABLE";
	// only the two statuses the pipeline writes are shown as such: "PROMOTABLE " or a Cyrillic "PRОMOTABLE" must
	// not read as a pass in the badge, the tab title or the CLI's line (red team)
	return {
		status: promotable ? "pass" : "fail",
		label: promotable
			? "PROMOTABLE"
			: status === "QUARANTINED" || status === undefined
				? "QUARANTINED"
				: "INVALID STATUS",
		reasons: arr(d?.reasons),
		notes: arr(d?.notes),
	};
}

export { backdoorVerdict };
