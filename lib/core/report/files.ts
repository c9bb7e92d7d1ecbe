/**
 * A files report: `ftguard files --json` ({files: [{path, format, verdict, findings, malformed?}], summary}) or the
 * pipeline's files.json ({summary, files: [{key, versionId?, etag?, report: FileReport}], binding}). Files that are
 * not safe come first, each with its findings; paths are the uploader's and hostile.
 */
import { clip, type Html, html } from "./html";
import { arr, bounded, count, isObject, LIMITS, obj, str, text } from "./read";
import { badge, type Ctx, code, type Level, list, more, pairs, section, table } from "./widgets";

interface Row {
	path: string;
	version: string | undefined;
	format: string;
	verdict: string;
	malformed: string | undefined;
	findings: readonly unknown[];
}

function rowsOf(doc: Record<string, unknown> | undefined): Row[] {
	return arr(doc?.files).flatMap((f): Row[] => {
		if (!isObject(f)) return [];
		// the pipeline's entries wrap the scanner's FileReport with the object's key and version
		const rep = isObject(f.report) ? f.report : f;
		const path = str(f.key) ?? str(rep.path);
		if (path === undefined) return [];
		return [
			{
				path,
				version: str(f.versionId) ?? str(f.etag),
				format: str(rep.format) ?? "unknown",
				verdict: str(rep.verdict) ?? "unknown",
				malformed: str(rep.malformed),
				findings: arr(rep.findings),
			},
		];
	});
}

const RANK: Record<string, number> = { unsafe: 0, malformed: 1 };
const SEVERITY: Record<string, "fail" | "warn" | "info"> = {
	critical: "fail",
	high: "fail",
	medium: "warn",
	low: "info",
};

/** The files report's sections, headings at `level`. */
export function filesSection(ctx: Ctx, doc: unknown, level: Level, title = "File safety"): Html {
	const d = obj(doc);
	const rows = rowsOf(d).sort((a, b) => (RANK[a.verdict] ?? 2) - (RANK[b.verdict] ?? 2));
	const s = obj(d?.summary);
	const bad = rows.filter((r) => r.verdict !== "safe");
	const shown = bounded(rows, LIMITS.rows);
	const badShown = bounded(bad, LIMITS.items);
	const verdictCell = (v: string) => badge(v === "safe" ? "pass" : "fail", v);
	const findings = badShown.shown.map((r) => {
		const f = bounded(r.findings, LIMITS.findingsPerFile);
		return html`<li><p>${code(r.path, LIMITS.text)} — ${verdictCell(r.verdict)} ${r.format}${r.malformed === undefined ? "" : html`; malformed: ${clip(r.malformed, LIMITS.text)}`}</p>${
			f.shown.length === 0
				? ""
				: html`<ul>${f.shown.map((x) => {
						const o = obj(x);
						const sev = str(o?.severity) ?? "";
						return html`<li>${badge(SEVERITY[sev] ?? "info", sev || "finding")} <strong>${clip(str(o?.id) ?? "", LIMITS.cell)}</strong>: ${clip(text(o?.message), LIMITS.text)}${str(o?.location) === undefined ? "" : html` <span class="loc">(${clip(str(o?.location) ?? "", LIMITS.cell)})</span>`}</li>`;
					})}</ul>${more(f.more, "findings")}`
		}</li>`;
	});
	const binding = obj(d?.binding);
	return section(
		ctx,
		level,
		title,
		html`${pairs([
			["files", count(s?.files) ?? rows.length],
			["safe", count(s?.safe)],
			["unsafe", count(s?.unsafe)],
			["malformed", count(s?.malformed)],
			["of unknown format", count(s?.unknown)],
		])}${
			bad.length === 0
				? html`<p>${badge("pass", "every file safe")} No loader a user may run on these files runs code.</p>`
				: html`<p>${badge("fail", `${bad.length} not safe`)} Files a loader may run code from, or that are not valid files of their format:</p><ul class="findings">${findings}</ul>${more(badShown.more, "files not safe")}`
		}${arr(binding?.reasons).length > 0 ? html`<p>Export binding:</p>${list(arr(binding?.reasons), "reasons")}` : ""}${table(
			ctx,
			"Every file",
			[{ label: "path" }, { label: "format" }, { label: "verdict" }, { label: "findings", numeric: true }],
			shown.shown.map((r) => [
				html`${code(r.path)}${r.version === undefined ? "" : html`<br><span class="loc">version ${clip(r.version, 80)}</span>`}`,
				r.format,
				verdictCell(r.verdict),
				r.findings.length,
			]),
			shown.more,
			"files",
		)}`,
	);
}
