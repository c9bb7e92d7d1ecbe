/**
 * The HTML scan report (`ftguard report`, and the page the pipeline writes beside each verdict record): one
 * self-contained page from a report ftguard wrote. Pure: the caller reads the documents and images (from disk or
 * S3) and writes the page; `wantedImages` says which images a backdoor report's page embeds.
 */
import { backdoorDetails, backdoorVerdict } from "./backdoor";
import { datasetSection } from "./dataset";
import { type ReportKind, requireReportKind } from "./detect";
import { filesSection } from "./files";
import { clip, type Html, html } from "./html";
import type { ImageMap } from "./images";
import { page } from "./page";
import { provenanceSection } from "./provenance";
import { arr, isObject, LIMITS, obj, str, text } from "./read";
import { type ModelReport, recordVerdict, verdictRecordSections } from "./verdict-record";
import { badge, Ctx, code, list, type Status } from "./widgets";

export { type ReportKind, reportKind, requireReportKind } from "./detect";
export { type ImageMap, isEmbeddablePng, triggerImageName, wantedImages } from "./images";
export { CONTENT_SECURITY_POLICY } from "./page";
export { LIMITS } from "./read";
export type { ModelReport } from "./verdict-record";

export interface ReportInput {
	/** the document: a verdict record, a backdoor, files or dataset report (parsed JSON, any shape) */
	doc: unknown;
	/** where it came from, shown in the footer (a path, an s3:// URI) */
	source: string;
	/** a backdoor report's trigger images by name (`triggers/class-<k>-mask.png`, …) */
	images?: ImageMap;
	/** a verdict record's files report (files.json), when it was read alongside */
	files?: unknown;
	/** a verdict record's backdoor reports by model index, when they were read alongside */
	models?: ReadonlyMap<number, ModelReport>;
	/** "ftguard 0.1.0" */
	generator?: string;
	generatedAt?: Date;
}

export interface RenderedReport {
	html: string;
	kind: ReportKind;
	status: Status;
	/** the verdict as a word: PROMOTABLE, QUARANTINED, SUSPECT (class 5), CLEAN, … */
	verdict: string;
}

const TITLES: Record<ReportKind, string> = {
	"verdict-record": "Pipeline verdict",
	"backdoor-image": "Backdoor scan",
	"backdoor-text": "Backdoor scan (text classifier)",
	files: "File safety scan",
	"pipeline-files": "File safety scan",
	dataset: "Dataset scan",
};

interface Summary {
	status: Status;
	label: string;
	reasons: readonly unknown[];
	notes?: readonly unknown[];
	/** what the page is about, for the heading (artefact, model) */
	subject?: string;
}

function summary(kind: ReportKind, doc: unknown): Summary {
	const d = obj(doc);
	switch (kind) {
		case "verdict-record":
			return { ...recordVerdict(doc), subject: `s3://${str(d?.bucket) ?? "?"}/${str(d?.artefact) ?? "?"}` };
		case "backdoor-image":
		case "backdoor-text": {
			const uri = str(obj(obj(d?.scanned)?.model)?.uri);
			return { ...backdoorVerdict(doc), ...(uri === undefined ? {} : { subject: uri }) };
		}
		case "files":
		case "pipeline-files": {
			const files = arr(d?.files).filter(isObject);
			const bad = files.flatMap((f) => {
				const r = obj(f.report) ?? f;
				const v = str(r.verdict);
				if (v === "safe") return [];
				const top = arr(r.findings).map(obj)[0];
				return [
					`${str(f.key) ?? str(r.path) ?? "?"}: ${v ?? "unknown"}${top ? ` (${text(top.id)}: ${text(top.message)})` : ""}`,
				];
			});
			const subject = str(d?.artefact);
			return {
				status: bad.length > 0 || files.length === 0 ? "fail" : "pass",
				label: bad.length > 0 ? "UNSAFE" : files.length === 0 ? "NO FILES" : "SAFE",
				reasons: files.length === 0 ? ["no files were scanned"] : bad,
				...(subject === undefined ? {} : { subject }),
			};
		}
		case "dataset": {
			const findings = arr(d?.findings).filter(isObject);
			const ok = d?.ok === true;
			return {
				status: ok ? "pass" : "fail",
				label: ok ? "NO POISONING FOUND" : "FINDINGS",
				reasons: findings.map((f) => `${text(f.severity)} ${text(f.id)}: ${text(f.message)}`),
			};
		}
	}
}

function details(ctx: Ctx, kind: ReportKind, input: ReportInput): Html {
	switch (kind) {
		case "verdict-record":
			return verdictRecordSections(ctx, input.doc, input.files, input.models, 2);
		case "backdoor-image":
		case "backdoor-text":
			return backdoorDetails(ctx, input.doc, input.images, 2, false);
		case "files":
		case "pipeline-files":
			return filesSection(ctx, input.doc, 2);
		case "dataset":
			return datasetSection(ctx, input.doc, 2);
	}
}

/** The page for `input.doc`; a document of no known kind is a USAGE error (exit 2). */
export function renderReport(input: ReportInput): RenderedReport {
	const kind = requireReportKind(input.doc, input.source);
	const ctx = new Ctx();
	const s = summary(kind, input.doc);
	const verdictId = ctx.id("s");
	ctx.toc.push({ id: verdictId, title: "Verdict" });
	const why =
		s.reasons.length > 0
			? html`<p>Why:</p>${list(s.reasons, "reasons", LIMITS.items)}`
			: s.status === "pass"
				? html`<p>Every check passed.</p>`
				: html``;
	const notes = s.notes && s.notes.length > 0 ? html`<p>Notes:</p>${list(s.notes, "notes")}` : html``;
	const verdict = html`<section class="verdict ${s.status}" aria-labelledby="${verdictId}"><h2 id="${verdictId}">Verdict</h2><p>${badge(s.status, s.label)}</p>${why}${notes}</section>`;
	const body = html`<h1>${TITLES[kind]}${s.subject === undefined ? "" : html`: ${code(s.subject, LIMITS.cell)}`}</h1>${verdict}${details(ctx, kind, input)}${provenanceSection(ctx, input.doc, 2)}`;
	const footer = html`Generated${input.generator === undefined ? "" : ` by ${input.generator}`}${input.generatedAt === undefined ? "" : ` at ${input.generatedAt.toISOString()}`} from ${code(input.source, LIMITS.text)}. This page is self-contained: it loads nothing and runs no script.`;
	const title = `ftguard: ${s.label} — ${TITLES[kind]}${s.subject === undefined ? "" : ` ${clip(s.subject, 80)}`}`;
	return { html: page(ctx, title, body, footer), kind, status: s.status, verdict: s.label };
}
