/**
 * Markup that cannot carry a report's text out of its place. Every value interpolated into the `html` template is
 * escaped unless it is already `Html` (made by this template or by `trusted` from a literal), so a label, file path
 * or trigger text holding `<script>` or `" onerror=` is shown as text. The escaping covers text and quoted
 * attribute values alike (`& < > " '`); templates quote every attribute. Characters that would rearrange or hide
 * text on the page (bidi controls, zero-width and tag characters, controls) are written as visible `\u{…}` escapes.
 */

const SAFE = Symbol("ftguard.html");

export interface Html {
	readonly [SAFE]: true;
	readonly value: string;
}

export type Interpolated = Html | string | number | boolean | null | undefined | readonly Interpolated[];

function mark(value: string): Html {
	return { [SAFE]: true, value };
}

export function isHtml(v: unknown): v is Html {
	return typeof v === "object" && v !== null && (v as { [SAFE]?: unknown })[SAFE] === true;
}

/** Markup from a literal of ours (never from a report): the one way around escaping. */
export function trusted(literal: string): Html {
	return mark(literal);
}

// Format characters (bidi embeddings, overrides, isolates and marks; zero-width characters; the BOM; tag characters),
// controls, line and paragraph separators, lone surrogates and private-use characters.
const INVISIBLE = /[\p{Cf}\p{Cc}\p{Cs}\p{Co}\p{Zl}\p{Zp}]/gu;

/** The text as a reader should see it: invisible and reordering characters as `\u{…}`, lone surrogates as U+FFFD. */
export function visibleText(s: string): string {
	return s.replace(INVISIBLE, (c) => {
		if (c === "\t" || c === "\n") return c;
		const cp = c.codePointAt(0) ?? 0;
		if (cp >= 0xd800 && cp <= 0xdfff) return "\ufffd";
		return `\\u{${cp.toString(16).toUpperCase().padStart(4, "0")}}`;
	});
}

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escapes text for an element's content or a quoted attribute value. */
export function escapeHtml(s: string): string {
	return visibleText(s).replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c);
}

function piece(v: Interpolated): string {
	if (v === null || v === undefined || v === false) return "";
	if (isHtml(v)) return v.value;
	if (Array.isArray(v)) return (v as readonly Interpolated[]).map(piece).join("");
	return escapeHtml(String(v));
}

/** The template: literal parts are markup, interpolations are text unless already Html. */
export function html(strings: TemplateStringsArray, ...values: Interpolated[]): Html {
	let out = strings[0] ?? "";
	for (let i = 0; i < values.length; i++) out += piece(values[i] as Interpolated) + (strings[i + 1] ?? "");
	return mark(out);
}

/** Joins pieces (already markup or text to escape) into one. */
export function join(parts: readonly Interpolated[], separator = ""): Html {
	return mark(parts.map(piece).join(escapeHtml(separator)));
}

/** A string cut to `max` characters (by code point), with an ellipsis and how much was left out. */
export function clip(s: string, max: number): string {
	if (s.length <= max) return s;
	// Array.from over a 240 MB string took minutes and gigabytes (red team): past 100,000 code units, cut first
	const huge = s.length > 100_000;
	const chars = Array.from(huge ? s.slice(0, max * 2 + 2) : s);
	if (chars.length <= max) return s;
	return `${chars.slice(0, max).join("")}… (${huge ? `about ${s.length - max}` : chars.length - max} more characters)`;
}
/**
 * An id for an anchor from a counter of ours, never from report text (a report could otherwise collide with, or
 * smuggle markup into, the page's own anchors).
 */
export function anchorId(prefix: string, n: number): string {
	if (!/^[a-z][a-z0-9-]*$/.test(prefix)) throw new Error(`anchor prefix ${prefix}`);
	return `${prefix}-${Math.trunc(n)}`;
}

/** A data: URI for PNG bytes whose signature was checked; base64 holds nothing an attribute must escape. */
export function pngDataUri(bytes: Uint8Array): string {
	return `data:image/png;base64,${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64")}`;
}
