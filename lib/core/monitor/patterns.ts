/** The suspicious-output pattern list (policy `monitor.patterns`), compiled once per monitor. */
import type { MonitorPattern, MonitorPolicy } from "../policy/monitor";

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

/** The patterns an output (already folded: NFKC, invisible characters removed, lower-cased) matches, with the matched text. */
export function matchPatterns(p: CompiledPatterns, folded: string): { id: string; match: string }[] {
	if (p.any === null || !p.any.test(folded)) return [];
	const hits: { id: string; match: string }[] = [];
	for (let i = 0; i < p.each.length; i++) {
		const m = (p.each[i] as RegExp).exec(folded);
		if (m !== null) hits.push({ id: p.ids[i] as string, match: m[0].slice(0, 200) });
	}
	return hits;
}
