/** The page's building blocks: headings, tables, definition lists, badges, bounded lists. */
import { clip, type Html, html, type Interpolated } from "./html";
import { arr, bounded, isObject, LIMITS, text } from "./read";

/** Per-render state: unique ids for anchors and chart labels, and the embedded image budget. */
export class Ctx {
	private n = 0;
	imageBytesLeft: number = LIMITS.imagesBytes;
	readonly toc: Array<{ id: string; title: string }> = [];

	id(prefix: string): string {
		this.n += 1;
		return `${prefix}-${this.n}`;
	}
}

export type Level = 2 | 3 | 4 | 5 | 6;

/** The heading level below `level` (h6 stays h6: HTML has no h7). */
export function deeper(level: Level): Level {
	return level >= 6 ? 6 : ((level + 1) as Level);
}

export function heading(level: Level, title: Interpolated, id?: string): Html {
	return html`<h${level}${id === undefined ? "" : html` id="${id}"`}>${title}</h${level}>`;
}

/** A section with a heading; level-2 sections are listed in the page's contents. */
export function section(ctx: Ctx, level: Level, title: string, body: Interpolated): Html {
	const id = ctx.id("s");
	if (level === 2) ctx.toc.push({ id, title });
	return html`<section aria-labelledby="${id}">${heading(level, title, id)}${body}</section>`;
}

export type Status = "pass" | "fail" | "warn" | "info";

const SYMBOL: Record<Status, string> = { pass: "✔", fail: "✖", warn: "!", info: "i" };

/** A status word with a symbol and a colour: the word alone carries the meaning (color is not the only signal). */
export function badge(status: Status, label: string): Html {
	return html`<span class="badge ${status}"><span aria-hidden="true">${SYMBOL[status]}</span> ${label}</span>`;
}

export function more(n: number, what: string): Html {
	return n > 0 ? html`<p class="more">… and ${n.toLocaleString("en-US")} more ${what}</p>` : html``;
}

/** A bulleted list of text items, bounded. */
export function list(items: readonly unknown[], what: string, max: number = LIMITS.items): Html {
	if (items.length === 0) return html``;
	const { shown, more: left } = bounded(items, max);
	return html`<ul>${shown.map((i) => html`<li>${clip(text(i), LIMITS.text)}</li>`)}</ul>${more(left, what)}`;
}

export function code(s: string, max: number = LIMITS.cell): Html {
	return html`<code>${clip(s, max)}</code>`;
}

/** Key/value pairs; absent values are left out. */
export function pairs(items: ReadonlyArray<readonly [string, Interpolated]>): Html {
	const present = items.filter(([, v]) => v !== undefined && v !== null && v !== "");
	if (present.length === 0) return html``;
	return html`<dl class="kv">${present.map(([k, v]) => html`<div><dt>${k}</dt><dd>${v}</dd></div>`)}</dl>`;
}

/** An object of free shape (evidence, provenance) as nested key/value pairs, bounded in size and depth. */
export function freeForm(v: unknown, depth = 0): Html {
	if (Array.isArray(v)) {
		if (depth >= LIMITS.depth || v.every((x) => !isObject(x) && !Array.isArray(x)))
			return html`<span class="mono">${clip(text(v), LIMITS.text)}</span>`;
		const { shown, more: left } = bounded(v, LIMITS.items);
		return html`<ol start="0">${shown.map((x) => html`<li>${freeForm(x, depth + 1)}</li>`)}</ol>${more(left, "items")}`;
	}
	if (isObject(v)) {
		if (depth >= LIMITS.depth) return html`<span class="mono">${clip(text(v), LIMITS.text)}</span>`;
		const { shown, more: left } = bounded(Object.entries(v), LIMITS.pairs);
		return html`${pairs(shown.map(([k, x]) => [clip(k, LIMITS.cell), freeForm(x, depth + 1)] as const))}${more(left, "fields")}`;
	}
	return html`${clip(text(v), LIMITS.text)}`;
}

export interface Column {
	label: string;
	/** right-aligned figures */
	numeric?: boolean;
}

/**
 * A table with a caption, column headers and (first cell) row headers, in a region that scrolls sideways on a narrow
 * screen instead of widening the page. Rows are bounded by the caller (`bounded`); `left` rows are named below.
 */
export function table(
	ctx: Ctx,
	caption: string,
	columns: readonly Column[],
	rows: ReadonlyArray<readonly Interpolated[]>,
	left = 0,
	what = "rows",
): Html {
	const id = ctx.id("t");
	const cls = (c: Column | undefined) => (c?.numeric ? html` class="num"` : html``);
	return html`<div class="scroll" role="region" aria-labelledby="${id}" tabindex="0"><table>
<caption id="${id}">${caption}</caption>
<thead><tr>${columns.map((c) => html`<th scope="col"${cls(c)}>${c.label}</th>`)}</tr></thead>
<tbody>${rows.map(
		(r) =>
			html`<tr>${r.map((cell, i) =>
				i === 0 ? html`<th scope="row"${cls(columns[i])}>${cell}</th>` : html`<td${cls(columns[i])}>${cell}</td>`,
			)}</tr>`,
	)}</tbody></table></div>${more(left, what)}`;
}

/** The array under `v`, bounded: its first `max` items and how many more there were. */
export function boundedArray(v: unknown, max: number): { shown: readonly unknown[]; more: number } {
	return bounded(arr(v), max);
}
