/**
 * Template-injection check for Jinja chat templates (GGUF `tokenizer.chat_template`,
 * Hugging Face `tokenizer_config.json` `chat_template`, `chat_template.jinja`).
 *
 * Chat templates are rendered by a Jinja engine (jinja2's sandbox in
 * transformers, minja / Jinja2Cpp elsewhere, sometimes plain jinja2). Known
 * server-side template-injection escapes walk Python object internals
 * (`''.__class__.__mro__[1].__subclasses__()`, `cycler.__init__.__globals__.os`)
 * or reach framework globals (`lipsum`, `request`, `config`). Real chat templates
 * never need any of that: they loop over messages, test roles, concatenate
 * strings and raise exceptions. So the check is a deny-list over the *code*
 * parts of the template (text outside `{{ }}` / `{% %}` is output, never
 * evaluated), plus obfuscation patterns that only make sense when hiding one.
 */
import type { Finding } from "./types";

/** Attribute or name that reaches Python internals: critical wherever it appears in code. */
const DUNDER = /^__[A-Za-z0-9_]*__$/;
/** Names that are gadgets by themselves (roots of known escapes, or code execution). */
const CRITICAL_NAMES = new Set([
	"os",
	"popen",
	"subprocess",
	"eval",
	"exec",
	"execfile",
	"compile",
	"getattr",
	"setattr",
	"globals",
	"builtins",
	"importlib",
	"func_globals",
	"f_globals",
	"gi_frame",
	"_TemplateReference__context",
	"_module",
	"mro",
	"system",
]);
/** Jinja / Flask globals that are the usual first step of an escape; never used by chat templates. */
const HIGH_NAMES = new Set([
	"cycler",
	"joiner",
	"lipsum",
	"request",
	"config",
	"self",
	"url_for",
	"get_flashed_messages",
	"g",
	"session",
]);
/** Filters used to build attribute names or characters at run time. */
const HIGH_FILTERS = new Set(["attr"]);
/** Statements that pull in other templates or define macros calling back into Python. */
const HIGH_STATEMENTS = new Set(["import", "include", "extends", "from"]);

/** Dunder names looked for inside decoded string literals and their concatenation (`|attr('__class__')`). */
const STRING_DUNDERS =
	/__(?:class|globals|subclasses|mro|base|bases|builtins|import|init|getattribute|dict|code|reduce|reduce_ex|loader|spec|func__|self)__|_TemplateReference__context/;
/**
 * Whole string literals that name a gadget when used as a key (`x['popen']`,
 * `|attr('os')`). Matched exactly: prose in a system prompt ("never call eval()")
 * must not trip the check.
 */
const STRING_NAMES = new Set([
	"os",
	"popen",
	"subprocess",
	"eval",
	"exec",
	"builtins",
	"getattr",
	"import_module",
	"check_output",
	"globals",
	"mro",
]);

interface Token {
	kind: "name" | "string" | "op" | "number";
	text: string;
	/** decoded value for strings */
	value?: string;
	/** the raw literal used escapes */
	escaped?: boolean;
	offset: number;
}

/** Extracts the code spans of a Jinja template: expressions, statements; comments and raw blocks skipped. */
function codeSpans(tpl: string): Array<{ start: number; code: string; statement: boolean }> {
	const spans: Array<{ start: number; code: string; statement: boolean }> = [];
	let i = 0;
	while (i < tpl.length) {
		const open = tpl.indexOf("{", i);
		if (open < 0 || open + 1 >= tpl.length) break;
		const c = tpl[open + 1];
		if (c === "#") {
			const end = tpl.indexOf("#}", open + 2);
			i = end < 0 ? tpl.length : end + 2;
			continue;
		}
		if (c !== "{" && c !== "%") {
			i = open + 1;
			continue;
		}
		const close = c === "{" ? "}}" : "%}";
		// find the close outside string literals
		let j = open + 2;
		let quote: string | undefined;
		while (j < tpl.length) {
			const ch = tpl[j];
			if (quote !== undefined) {
				if (ch === "\\") j++;
				else if (ch === quote) quote = undefined;
			} else if (ch === "'" || ch === '"') quote = ch;
			else if (tpl.startsWith(close, j)) break;
			j++;
		}
		let code = tpl.slice(open + 2, j);
		// whitespace control markers
		code = code.replace(/^[-+]/, "").replace(/[-+]$/, "");
		spans.push({ start: open + 2, code, statement: c === "%" });
		i = j + 2;
		// {% raw %} ... {% endraw %}: literal text
		if (c === "%" && /^\s*raw\s*$/.test(code)) {
			// a global regex from lastIndex: no copy of the rest of the template per raw block
			const endraw = /\{%[-+]?\s*endraw\s*[-+]?%\}/g;
			endraw.lastIndex = i;
			const m = endraw.exec(tpl);
			i = m === null ? tpl.length : m.index + m[0].length;
		}
	}
	return spans;
}

/** Decodes a Python/Jinja string literal body; reports whether escapes were used. */
function decodeLiteral(body: string): { value: string; escaped: boolean } {
	let escaped = false;
	const value = body.replace(
		/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|N\{[^}]*\}|[0-7]{1,3}|.)/gs,
		(_m, e: string) => {
			const h = e[0];
			// a bare \x, \u or \U without its hex digits is matched by "." and kept as written
			if ((h === "x" || h === "u" || h === "U") && e.length > 1) {
				escaped = true;
				return String.fromCodePoint(Number.parseInt(e.slice(1), 16) % 0x110000);
			}
			if (/^[0-7]/.test(e)) {
				escaped = true;
				return String.fromCharCode(Number.parseInt(e, 8));
			}
			if (h === "N") {
				escaped = true;
				return e.toUpperCase().includes("LOW LINE") ? "_" : "?";
			}
			return ({ n: "\n", t: "\t", r: "\r", "\\": "\\", "'": "'", '"': '"' } as Record<string, string>)[e] ?? `\\${e}`;
		},
	);
	return { value, escaped };
}

function tokenize(code: string, base: number): Token[] {
	const out: Token[] = [];
	let i = 0;
	while (i < code.length) {
		const ch = code[i] as string;
		if (/\s/.test(ch)) {
			i++;
			continue;
		}
		if (ch === "'" || ch === '"') {
			let j = i + 1;
			while (j < code.length && code[j] !== ch) j += code[j] === "\\" ? 2 : 1;
			const body = code.slice(i + 1, j);
			const { value, escaped } = decodeLiteral(body);
			out.push({ kind: "string", text: code.slice(i, j + 1), value, escaped, offset: base + i });
			i = j + 1;
			continue;
		}
		const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(code.slice(i, i + 256));
		if (m !== null) {
			out.push({ kind: "name", text: m[0], offset: base + i });
			i += m[0].length;
			continue;
		}
		const num = /^[0-9][0-9_.eE]*/.exec(code.slice(i, i + 64));
		if (num !== null) {
			out.push({ kind: "number", text: num[0], offset: base + i });
			i += num[0].length;
			continue;
		}
		out.push({ kind: "op", text: ch, offset: base + i });
		i++;
	}
	return out;
}

/** Max template length examined; longer ones are themselves suspicious and are cut (a finding says so). */
const MAX_TEMPLATE = 4 * 1024 * 1024;

/**
 * Checks one Jinja template for injection gadgets. `where` prefixes locations
 * (e.g. "tokenizer.chat_template", "$.chat_template[1].template").
 * Returns at most one finding per distinct gadget so output stays readable.
 */
export function checkChatTemplate(template: string, where: string): Finding[] {
	const findings: Finding[] = [];
	const seen = new Set<string>();
	const add = (severity: "critical" | "high", what: string, offset: number) => {
		const key = `${severity}:${what}`;
		if (seen.has(key) || findings.length >= 50) return;
		seen.add(key);
		findings.push({
			id: "template-injection",
			severity,
			message:
				severity === "critical"
					? `chat template reaches ${what}: a known template-injection gadget that can run code when rendered`
					: `chat template uses ${what}: a pattern used to hide template-injection gadgets, never needed by a chat template`,
			location: `${where} @ char ${offset}`,
		});
	};
	const tpl = template.length > MAX_TEMPLATE ? template.slice(0, MAX_TEMPLATE) : template;
	if (template.length > MAX_TEMPLATE) add("high", "an oversized template (only the first 4 MiB checked)", MAX_TEMPLATE);
	const strings: string[] = [];
	for (const span of codeSpans(tpl)) {
		const toks = tokenize(span.code, span.start);
		const first = toks[0];
		if (span.statement && first?.kind === "name" && HIGH_STATEMENTS.has(first.text))
			add("high", `{% ${first.text} %} (loads another template)`, first.offset);
		for (let k = 0; k < toks.length; k++) {
			const t = toks[k] as Token;
			const prev = toks[k - 1];
			if (t.kind === "name") {
				if (DUNDER.test(t.text)) add("critical", t.text, t.offset);
				else if (CRITICAL_NAMES.has(t.text)) {
					// `system` / `mro` only as attribute access (`x.system`), not as a bare variable
					const attr = prev?.kind === "op" && prev.text === ".";
					if ((t.text !== "system" && t.text !== "mro") || attr) add("critical", t.text, t.offset);
				} else if (HIGH_NAMES.has(t.text) && !(prev?.kind === "op" && prev.text === ".")) {
					// a bare global, not `message.config`; `g`/`self` as loop variables are rare but possible:
					// require a following `.` or `[` for the one-letter / generic names
					const next = toks[k + 1];
					const accessed = next?.kind === "op" && (next.text === "." || next.text === "[" || next.text === "(");
					if (accessed || !["config", "self", "request"].includes(t.text)) add("high", t.text, t.offset);
				} else if (prev?.kind === "op" && prev.text === "|" && HIGH_FILTERS.has(t.text))
					add("high", `the |${t.text} filter`, t.offset);
			} else if (t.kind === "string" && t.value !== undefined) {
				// Prose (a system prompt explaining `__init__`) has whitespace; attribute names and keys never do.
				const prose = /\S\s+\S/.test(t.value);
				if (!prose) strings.push(t.value);
				const g = prose ? null : STRING_DUNDERS.exec(t.value);
				if (g !== null) add("critical", `'${g[0]}' (in a string)`, t.offset);
				else if (STRING_NAMES.has(t.value)) add("critical", `'${t.value}' (as a string key)`, t.offset);
				else if (/^__[a-z]|[a-z]__$|^__$/.test(t.value)) add("high", "a string piece of a dunder name", t.offset);
				if (
					t.escaped === true &&
					/[A-Za-z0-9_.]/.test(t.value.replace(/[\n\t\r]/g, "")) &&
					/\\(x|u|U|[0-7]|N\{)/.test(t.text)
				)
					add("high", "escaped characters in a string literal", t.offset);
				if (/%c/.test(t.value) && toks.slice(k + 1, k + 3).some((x) => x.text === "format"))
					add("high", "%c formatting (builds names from character codes)", t.offset);
			}
		}
	}
	// names split across literals and joined at run time ("__cla" ~ "ss__", [...]|join)
	if (!findings.some((f) => f.severity === "critical")) {
		const joined = strings.join("");
		const g = STRING_DUNDERS.exec(joined);
		if (g !== null) add("high", `'${g[0]}' built by concatenating strings`, 0);
	}
	return findings;
}
