/** One backdoor report, image or text classifier: its verdict and reasons, the scan's facts, each detector's evidence. */
import { backdoorImage } from "./backdoor-image";
import { backdoorText } from "./backdoor-text";
import { clip, type Html, html } from "./html";
import type { ImageMap } from "./images";
import { arr, count, counts, fmt, LIMITS, num, obj, str, text } from "./read";
import { badge, type Ctx, code, type Level, list, pairs } from "./widgets";

type Obj = Record<string, unknown> | undefined;

/** Model, data and run figures shared by both backdoor report kinds. */
export function scanFacts(r: Obj): Html {
	const model = obj(r?.model);
	const data = obj(r?.data);
	const scannedModel = obj(obj(r?.scanned)?.model);
	const timings = obj(r?.timings);
	const shape = arr(model?.input_shape);
	const samples = count(data?.samples) ?? count(data?.texts);
	const total = num(timings?.total_ms);
	return pairs([
		["model", str(scannedModel?.uri) === undefined ? undefined : code(str(scannedModel?.uri) ?? "", LIMITS.text)],
		["model version", str(scannedModel?.version_id) ?? str(scannedModel?.etag)],
		["model SHA-256", str(model?.sha256) === undefined ? undefined : code(str(model?.sha256) ?? "")],
		["input shape", shape.length > 0 ? `[${clip(shape.map(text).join(", "), LIMITS.cell)}]` : undefined],
		["classes", count(model?.num_classes)],
		[
			"reference data",
			data === undefined
				? undefined
				: `${str(data.kind) ?? "labelled texts"}${samples === undefined ? "" : `, ${samples} samples`}`,
		],
		["data SHA-256", str(data?.sha256) === undefined ? undefined : code(str(data?.sha256) ?? "")],
		["ran on", str(r?.provider)],
		["time", total === undefined ? undefined : `${fmt(total / 1000)} s`],
	]);
}

/** The verdict line of a backdoor report, for a page's or a model's summary. */
export function backdoorVerdict(report: unknown): {
	status: "pass" | "fail";
	label: string;
	reasons: readonly unknown[];
} {
	const r = obj(report);
	const suspect = str(r?.verdict) !== "clean";
	const classes = counts(r?.suspect_classes);
	return {
		status: suspect ? "fail" : "pass",
		label: suspect ? `SUSPECT${classes.length > 0 ? ` (class ${classes.slice(0, 10).join(", ")})` : ""}` : "CLEAN",
		reasons: arr(r?.reasons),
	};
}

/** Facts and detector sections; `withVerdict` adds the verdict and reasons (a model inside a verdict record). */
export function backdoorDetails(
	ctx: Ctx,
	report: unknown,
	images: ImageMap | undefined,
	level: Level,
	withVerdict: boolean,
): Html {
	const r = obj(report);
	const v = backdoorVerdict(report);
	const head = withVerdict ? html`<p>${badge(v.status, v.label)}</p>${list(v.reasons, "reasons")}` : html``;
	const body =
		Array.isArray(r?.labels) && obj(r?.detectors) === undefined
			? backdoorText(ctx, report, level)
			: backdoorImage(ctx, report, images, level);
	return html`${head}${scanFacts(r)}${body}`;
}
