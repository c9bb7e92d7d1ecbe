/**
 * Reading a report's JSON without trusting its shape: every accessor takes `unknown` and returns a value of the
 * type asked for or nothing, so a field of the wrong type (a string where a class number was, an object where a
 * message was) renders as absent or as text, never as markup and never as a crash. And the bounds every section
 * applies, so a hostile report cannot make an unbounded page.
 */

export type JsonObject = Record<string, unknown>;

export const LIMITS = {
	/** characters of one piece of text from a report (a reason, a message, a path) */
	text: 600,
	/** characters of a table cell */
	cell: 200,
	/** rows of one table (files, findings, classes, objects) */
	rows: 200,
	/** items of one list (reasons, notes, records named by a finding) */
	items: 50,
	/** findings shown under one file */
	findingsPerFile: 20,
	/** classes drawn in one chart */
	chartClasses: 100,
	/** classes whose reversed trigger images are shown (mask and trigger each) */
	imageClasses: 24,
	/** bytes of one embedded PNG, and of all of them on one page */
	imageBytes: 512 * 1024,
	imagesBytes: 8 * 1024 * 1024,
	/** backdoor scans of one verdict record (the pipeline scans at most 16 models per artefact) */
	models: 16,
	/** key/value pairs shown of an object of free shape (evidence, provenance) and its depth */
	pairs: 40,
	depth: 3,
} as const;

export function isObject(v: unknown): v is JsonObject {
	return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function obj(v: unknown): JsonObject | undefined {
	return isObject(v) ? v : undefined;
}

export function arr(v: unknown): readonly unknown[] {
	return Array.isArray(v) ? v : [];
}

export function str(v: unknown): string | undefined {
	return typeof v === "string" ? v : undefined;
}

/** A finite number, or nothing (JSON has no NaN, but a string "1e999" is no number here either). */
export function num(v: unknown): number | undefined {
	return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

/** A non-negative integer (a class, an index, a count), or nothing. */
export function count(v: unknown): number | undefined {
	return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

export function bool(v: unknown): boolean | undefined {
	return typeof v === "boolean" ? v : undefined;
}

/** Any value as one line of text: scalars as they are, anything else as (bounded) JSON. */
export function text(v: unknown): string {
	if (typeof v === "string") return v;
	if (typeof v === "number" || typeof v === "boolean") return String(v);
	if (v === null || v === undefined) return "";
	try {
		const s = JSON.stringify(v);
		return s.length > LIMITS.text * 4 ? `${s.slice(0, LIMITS.text * 4)}…` : s;
	} catch {
		return "";
	}
}

/** Numbers of an array (others dropped). */
export function nums(v: unknown): number[] {
	return arr(v).flatMap((x) => (num(x) === undefined ? [] : [x as number]));
}

/** Class numbers of an array (others dropped). */
export function counts(v: unknown): number[] {
	return arr(v).flatMap((x) => (count(x) === undefined ? [] : [x as number]));
}

/** `n` as a short human number: 3 significant digits, no exponent for common magnitudes. */
export function fmt(n: number | undefined, digits = 3): string {
	if (n === undefined) return "–";
	if (Number.isInteger(n) && Math.abs(n) < 1e15) return String(n);
	const a = Math.abs(n);
	if (a !== 0 && (a < 1e-3 || a >= 1e6)) return n.toExponential(digits - 1);
	return String(Number(n.toPrecision(digits)));
}

export function pct(n: number | undefined): string {
	return n === undefined ? "–" : `${Number((n * 100).toPrecision(3))}%`;
}

/** The first `max` items and how many were left out. */
export function bounded<T>(items: readonly T[], max: number): { shown: readonly T[]; more: number } {
	return { shown: items.slice(0, max), more: Math.max(0, items.length - max) };
}
