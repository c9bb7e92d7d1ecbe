/** The suspicious-output pattern list (policy `monitor.patterns`), compiled once per monitor. */
import { unobfuscated } from "../dataset/injected";
import type { MonitorPattern, MonitorPolicy } from "../policy/monitor";
import { BLANKS } from "./text";

export interface CompiledPatterns {
	ids: readonly string[];
	/** one alternation of every pattern: most outputs are cleared by a single regex scan */
	any: RegExp | null;
	each: readonly RegExp[];
}

export function compilePatterns(policy: MonitorPolicy["patterns"]): CompiledPatterns {
	if (!policy.enabled) return { ids: [], any: null, each: [] };
	const list: MonitorPattern[] = [...policy.patterns, ...policy.extraPatterns];
	if (list.length === 0) return { ids: [], any: null, each: [] };
	const each = list.map((p) => caseless(p.regex));
	return {
		ids: list.map((p) => p.id),
		any: new RegExp(each.map((r) => `(?:${r.source})`).join("|"), each.every((r) => r.flags === "u") ? "u" : "iu"),
		each,
	};
}

/**
 * The pattern for lower-cased text: its letters lower-cased (escapes such as \W and \p{Lu} kept), compiled without
 * the `i` flag, which costs V8 ten times more with `u`. The output is lower-cased before matching, so this matches
 * what the pattern with `iu` would. A pattern that no longer compiles so keeps `iu`.
 */
export function caseless(src: string): RegExp {
	let out = "";
	for (let i = 0; i < src.length; i++) {
		const c = src[i] as string;
		if (c !== "\\") {
			out += c.toLowerCase();
			continue;
		}
		const next = src[i + 1] ?? "";
		out += c + next;
		i++;
		if ((next === "p" || next === "P" || next === "u") && src[i + 1] === "{") {
			const end = src.indexOf("}", i);
			if (end < 0) break;
			out += src.slice(i + 1, end + 1);
			i = end;
		}
	}
	try {
		return new RegExp(out, "u");
	} catch {
		return new RegExp(src, "iu");
	}
}

/**
 * Latin letters that Cyrillic and Greek ones are drawn as (Unicode's confusables for the lower-case letters a
 * pattern spells): "ѕуѕtеm" reads as "system".
 */
const CONFUSABLE: Readonly<Record<string, string>> = {
	а: "a",
	в: "b",
	е: "e",
	ё: "e",
	һ: "h",
	і: "i",
	ї: "i",
	ј: "j",
	к: "k",
	м: "m",
	н: "h",
	о: "o",
	р: "p",
	с: "c",
	т: "t",
	у: "y",
	х: "x",
	ѕ: "s",
	ԁ: "d",
	ԛ: "q",
	ԝ: "w",
	ӏ: "l",
	ɡ: "g",
	α: "a",
	β: "b",
	ε: "e",
	η: "n",
	ι: "i",
	κ: "k",
	ν: "v",
	ο: "o",
	ρ: "p",
	τ: "t",
	υ: "u",
	χ: "x",
	ω: "w",
};
const CONFUSABLES = new RegExp(`[${Object.keys(CONFUSABLE).join("")}]`, "gu");
const MARKS = /\p{M}/gu;
/** a hyphen inside a word ("fil-ter") */
const INNER_HYPHEN = /(?<=\p{L})-(?=\p{L})/gu;
const NON_ASCII = /[\u0080-\uffff]/;

/**
 * The text as a reader would spell it, for pattern matching only: marks and variation selectors dropped, look-alike
 * letters mapped to Latin, leetspeak read as letters, spaced-out letters and hyphenated words joined. Undefined when the folded text has
 * nothing of the kind (most outputs: no second match).
 */
export function skeletonOf(folded: string): string | undefined {
	let s = folded;
	if (NON_ASCII.test(s)) {
		s = s.normalize("NFKD").replace(MARKS, "").replace(BLANKS, " ");
		s = s.replace(CONFUSABLES, (c) => CONFUSABLE[c] ?? c);
	}
	// spaced-out letters and leetspeak as the dataset scan reads them (lib/core/dataset/injected.ts)
	s = unobfuscated(s) ?? s; // (its own single pass decides, cheaply, whether there is anything to undo)
	if (s.includes("-")) s = s.replace(INNER_HYPHEN, "");
	return s === folded ? undefined : s;
}

/**
 * The patterns an output (already folded: NFKC, invisible characters removed, lower-cased) matches, with the matched
 * text: on the folded text, else on its skeleton (an output spelled to slip past the list).
 */
export function matchPatterns(p: CompiledPatterns, folded: string): { id: string; match: string }[] {
	if (p.any === null) return [];
	if (p.any.test(folded)) return hitsOf(p, folded);
	const skeleton = skeletonOf(folded);
	return skeleton !== undefined && p.any.test(skeleton) ? hitsOf(p, skeleton) : [];
}

function hitsOf(p: CompiledPatterns, folded: string): { id: string; match: string }[] {
	const hits: { id: string; match: string }[] = [];
	for (let i = 0; i < p.each.length; i++) {
		const m = (p.each[i] as RegExp).exec(folded);
		if (m !== null) hits.push({ id: p.ids[i] as string, match: m[0].slice(0, 200) });
	}
	return hits;
}
