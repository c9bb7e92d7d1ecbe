/**
 * Chat-template check by allow-list (GGUF `tokenizer.chat_template[.<name>]`, Hugging Face
 * `chat_template` in tokenizer / processor configs, `chat_template.jinja`, `additional_chat_templates/*.jinja`).
 *
 * A chat template is Jinja; some engines render it in jinja2's sandbox, others in a plain
 * `jinja2.Environment`, where a template can walk Python object internals and run code. A
 * deny-list of known gadget strings misses escapes written without them (names built at render
 * time, subscript lookups), so the template is parsed and every construct in it must be on an
 * allow-list of what real chat templates use: loops and conditionals over the messages, the
 * filters, tests and string methods they call, member access by listed names, subscripts whose
 * key cannot be a name chosen at render time. Anything else — and anything that cannot be parsed,
 * or that the parser and jinja2 would read differently — makes the template not safe.
 *
 * How the template is read:
 * 1. A port of jinja2's lexer (default delimiters, as in transformers and plain Environment())
 *    splits the source into text and code tokens with their positions.
 * 2. @huggingface/jinja tokenizes it too; the two code-token streams must agree token for token
 *    (kind and decoded value), so the tree checked below is built from exactly what jinja2 sees.
 * 3. @huggingface/jinja parses the tokens into a tree (identifiers and strings carry markers
 *    that point back to the jinja2 tokens, for their exact values and positions).
 * 4. A flow-insensitive value analysis over every binding (set, for, macro parameters, namespace
 *    attributes) says which subscript keys are known constants, numbers or other non-strings.
 * 5. Every node is checked against the allow-lists.
 */
import { parse, tokenize } from "@huggingface/jinja";
import type { Finding } from "./types";

/** Max template length examined; a longer one is refused (fail closed), not cut and half-checked. */
const MAX_TEMPLATE = 4 * 1024 * 1024;
/** Nesting bound for the tree walk and the value analysis (the parser's own recursion is caught). */
const MAX_DEPTH = 400;
/** Findings per template: enough to name every distinct problem, bounded for output. */
const MAX_FINDINGS = 50;
/** Integer literals above this in a template are reported (a render-time DoS, not code execution). */
const DOS_INT = 10_000_000;

// ───────────────────────────── allow-lists ─────────────────────────────

/**
 * Free names a template may read: what transformers, vLLM, llama.cpp and TGI pass to the renderer,
 * the keyword arguments real templates document, and the safe jinja2 globals. Names a template
 * binds itself (set, for, macro) are its own. Everything else (`cycler`, `joiner`, `lipsum`, `self`,
 * `request`, `config`, …) is refused.
 */
const CONTEXT_NAMES = new Set([
	// data and flags passed by apply_chat_template and servers
	"messages",
	"tools",
	"documents",
	"add_generation_prompt",
	"continue_final_message",
	"bos_token",
	"eos_token",
	"pad_token",
	"unk_token",
	"sep_token",
	"cls_token",
	"mask_token",
	"additional_special_tokens",
	// keyword arguments real templates read (apply_chat_template passes any extra kwargs through)
	"enable_thinking",
	"reasoning_effort",
	"thinking",
	"thinking_budget",
	"keep_past_thinking",
	"clear_thinking",
	"truncate_history_thinking",
	"preserve_thinking",
	"custom_tools",
	"builtin_tools",
	"tools_in_user_message",
	"date_string",
	"xml_tools",
	"python_tools",
	"response_format",
	"json_schema",
	"system_message",
	"default_system_message",
	"system_prompt",
	"add_vision_id",
	"use_json_tooldef",
	"reasoning_mode",
	"custom_instructions",
	"enable_citations",
	"citation_mode",
	"safety_mode",
	"knobs",
	"model_identity",
	"categories",
	"excluded_category_keys",
	"current_date",
	"current_location",
	"USE_DEFAULT_PROMPT",
	"available_tools",
	"tool_choice",
	"parallel_tool_calls",
	"functions",
	"datetime",
	"controls",
	"add_thoughts",
	"generation_preamble",
	// safe callables
	"raise_exception",
	"strftime_now",
	"range",
	"namespace",
	"dict",
	"loop",
	"caller",
	// constants (jinja2 parses these as constants whatever the context holds)
	"true",
	"false",
	"none",
	"True",
	"False",
	"None",
]);

/** Names a template may not bind: jinja2's own globals and specials, and the constants. */
const RESERVED = new Set([
	"loop",
	"self",
	"caller",
	"varargs",
	"kwargs",
	"range",
	"dict",
	"namespace",
	"lipsum",
	"cycler",
	"joiner",
	"raise_exception",
	"strftime_now",
	"true",
	"false",
	"none",
	"True",
	"False",
	"None",
	// globals of the web frameworks jinja2 is embedded in: a binding must not stand in for them
	"request",
	"config",
	"session",
	"g",
	"url_for",
	"get_flashed_messages",
]);

/** Free names that may be called (besides the template's own macros). */
const CALLABLE_GLOBALS = new Set(["namespace", "raise_exception", "strftime_now", "range", "dict", "caller"]);

/** Attributes of jinja2's `loop` object. */
const LOOP_ATTRS = new Set([
	"index",
	"index0",
	"revindex",
	"revindex0",
	"first",
	"last",
	"length",
	"previtem",
	"nextitem",
	"depth",
	"depth0",
	"cycle",
	"changed",
]);

/**
 * Methods a template may call: the string, list and dict methods real templates use. None of them
 * reaches anything outside the data it is called on.
 */
const METHODS = new Set([
	"strip",
	"lstrip",
	"rstrip",
	"split",
	"rsplit",
	"splitlines",
	"startswith",
	"endswith",
	"upper",
	"lower",
	"title",
	"capitalize",
	"replace",
	"find",
	"rfind",
	"count",
	"index",
	"join",
	"isdigit",
	"isalpha",
	"isalnum",
	"isspace",
	"items",
	"keys",
	"values",
	"get",
	"append",
	"extend",
	"insert",
	"pop",
]);
/** The methods above that add elements to a list (the value analysis follows them). */
const MUTATORS = new Set(["append", "extend", "insert"]);

/**
 * Attribute names (`x.name`, `x['name']`) a template may read on data: the fields of chat messages,
 * tool calls, tool JSON schemas and documents, and the methods above. Reading one of these on any
 * Python object reaches no code; names like `gi_frame`, `f_globals`, `mro`, `format` are simply
 * absent. Attributes of `namespace()` objects are the template's own and free (any name not
 * starting with `_`).
 */
const DATA_ATTRS = new Set([
	// messages
	"role",
	"content",
	"name",
	"text",
	"type",
	"image",
	"image_url",
	"url",
	"video",
	"audio",
	"input_audio",
	"data",
	"file",
	"path",
	"tool_calls",
	"tool_call_id",
	"tool_call",
	"function_call",
	"function",
	"functions",
	"arguments",
	"id",
	"reasoning_content",
	"reasoning",
	"thinking",
	"thought",
	"thoughts",
	"tool_plan",
	"tool_responses",
	"tool_results",
	"response",
	"result",
	"results",
	"output",
	"outputs",
	"metadata",
	"prefix",
	"chosen",
	"recipient",
	"channel",
	"citations",
	"documents",
	"tools",
	"calls",
	"parts",
	"blocks",
	"value",
	"tool_name",
	// tool and JSON-schema fields
	"parameters",
	"properties",
	"description",
	"required",
	"enum",
	"items",
	"default",
	"nullable",
	"oneOf",
	"anyOf",
	"allOf",
	"additionalProperties",
	"format",
	"pattern",
	"minimum",
	"maximum",
	"minLength",
	"maxLength",
	"minItems",
	"maxItems",
	"examples",
	"example",
	"title",
	"return",
	"returns",
	"response_format",
	"json_schema",
	"schema",
	"strict",
	"defer_loading",
	"parameter_definitions",
	"const",
	"definitions",
	// documents
	"doc_id",
	"document_id",
	"snippet",
	"source",
	// response formats and templates' kwargs objects
	"date",
	"system",
	"user",
	"assistant",
	"browser",
	"python",
	"lastuser",
	"citation_mode",
	"is_set",
	"current_date",
	"current_location",
	"content_type",
	// list / string helpers read without a call
	...METHODS,
]);

/** jinja2 tests a template may use. */
const TESTS = new Set([
	"defined",
	"undefined",
	"none",
	"string",
	"mapping",
	"iterable",
	"sequence",
	"number",
	"integer",
	"float",
	"boolean",
	"true",
	"false",
	"odd",
	"even",
	"divisibleby",
	"eq",
	"equalto",
	"ne",
	"lt",
	"le",
	"gt",
	"ge",
	"greaterthan",
	"lessthan",
	"in",
	"lower",
	"upper",
	"sameas",
	"escaped",
	"==",
	"!=",
	"<",
	"<=",
	">",
	">=",
]);

/** How a filter's arguments are checked. */
interface FilterSpec {
	/** keyword arguments accepted (others are refused: `tojson(default=…)` would call anything) */
	kw?: readonly string[];
	/** positional argument indexes that are attribute paths (looked up by name on the items) */
	attrPos?: readonly number[];
	/** positional argument index that is a test name */
	testPos?: number;
}
/** jinja2's built-in filters that real templates use, with their argument roles (jinja2 3.1 signatures). */
const FILTERS: Record<string, FilterSpec> = {
	abs: {},
	batch: { kw: ["linecount", "fill_with"] },
	capitalize: {},
	center: { kw: ["width"] },
	count: {},
	d: { kw: ["default_value", "boolean"] },
	default: { kw: ["default_value", "boolean"] },
	dictsort: { kw: ["case_sensitive", "by", "reverse"] },
	e: {},
	escape: {},
	first: {},
	float: { kw: ["default"] },
	from_json: {},
	groupby: { kw: ["attribute", "default", "case_sensitive"], attrPos: [0] },
	indent: { kw: ["width", "first", "blank"] },
	int: { kw: ["default", "base"] },
	items: {},
	join: { kw: ["d", "attribute"], attrPos: [1] },
	last: {},
	length: {},
	list: {},
	lower: {},
	map: {}, // checked on its own: a filter name, or attribute=
	max: { kw: ["case_sensitive", "attribute"], attrPos: [1] },
	min: { kw: ["case_sensitive", "attribute"], attrPos: [1] },
	reject: { testPos: 0 },
	rejectattr: { attrPos: [0], testPos: 1 },
	replace: { kw: ["old", "new", "count"] },
	reverse: {},
	round: { kw: ["precision", "method"] },
	safe: {},
	select: { testPos: 0 },
	selectattr: { attrPos: [0], testPos: 1 },
	slice: { kw: ["slices", "fill_with"] },
	sort: { kw: ["reverse", "case_sensitive", "attribute"], attrPos: [2] },
	string: {},
	sum: { kw: ["attribute", "start"], attrPos: [0] },
	title: {},
	tojson: { kw: ["indent", "ensure_ascii", "separators", "sort_keys"] },
	trim: { kw: ["chars"] },
	truncate: { kw: ["length", "killwords", "end", "leeway"] },
	unique: { kw: ["case_sensitive", "attribute"], attrPos: [1] },
	upper: {},
	wordcount: {},
};
/** Filters `map('<name>', …)` may apply: ones whose arguments name no attribute, test or filter. */
const MAP_FILTERS = new Set([
	"abs",
	"capitalize",
	"e",
	"escape",
	"first",
	"float",
	"int",
	"last",
	"length",
	"list",
	"lower",
	"replace",
	"round",
	"safe",
	"string",
	"title",
	"tojson",
	"trim",
	"upper",
	"wordcount",
	"count",
	"default",
	"d",
	"items",
]);

const ARITH_OPS = new Set(["+", "-", "*", "/", "//", "%", "~"]);
const COMPARE_OPS = new Set(["==", "!=", "<", ">", "<=", ">=", "in", "not in"]);

// ───────────────────────────── jinja2's lexer ─────────────────────────────

/** A code token as jinja2 yields it (text, comments and whitespace dropped). */
interface JToken {
	kind:
		| "block_begin"
		| "block_end"
		| "variable_begin"
		| "variable_end"
		| "name"
		| "string"
		| "integer"
		| "float"
		| "op";
	/** name text, decoded string (undefined: an escape jinja2 and the parser decode differently), number text, operator */
	value: string | undefined;
	offset: number;
}

class LexError extends Error {
	constructor(
		message: string,
		readonly offset: number,
	) {
		super(message);
	}
}

/** Python's `\s` for str patterns (jinja2's whitespace rule); a string, as a regex literal may not hold control characters. */
const PY_WS = "[\\t\\n\\v\\f\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
const PY_SPACES = new RegExp(`${PY_WS}+`, "y");
const FLOAT_RE = /(?<!\.)(?:\d+_)*\d+(?:(?:\.(?:\d+_)*\d+)?e[+-]?(?:\d+_)*\d+|\.(?:\d+_)*\d+)/iy;
const INTEGER_RE = /(?:0b(?:_?[01])+|0o(?:_?[0-7])+|0x(?:_?[\da-f])+|[1-9](?:_?\d)*|0(?:_?0)*)/iy;
const NAME_RE = /[A-Za-z0-9_]+/y;
const STRING_RE = /'([^'\\]*(?:\\[\s\S][^'\\]*)*)'|"([^"\\]*(?:\\[\s\S][^"\\]*)*)"/y;
const OPERATORS = [
	"//",
	"**",
	"==",
	"!=",
	">=",
	"<=",
	"+",
	"-",
	"/",
	"*",
	"%",
	"~",
	"[",
	"]",
	"(",
	")",
	"{",
	"}",
	">",
	"<",
	"=",
	".",
	":",
	"|",
	",",
	";",
];
const RAW_BEGIN = new RegExp(`\\{%[-+]?${PY_WS}*raw${PY_WS}*(?:-%\\}|%\\})`, "y");
const RAW_END = new RegExp(`\\{%[-+]?${PY_WS}*endraw${PY_WS}*(?:\\+%\\}|-%\\}|%\\})`, "g");

const sticky = (re: RegExp, s: string, pos: number): string | undefined => {
	re.lastIndex = pos;
	return re.exec(s)?.[0];
};

/**
 * Decodes a string literal's body as jinja2 does (Python's unicode-escape after backslashreplace),
 * for the escapes @huggingface/jinja also accepts; any other escape gives undefined, so the two
 * readings never silently disagree.
 */
function decodeString(body: string): string | undefined {
	let out = "";
	for (let i = 0; i < body.length; i++) {
		const c = body[i] as string;
		if (c !== "\\") {
			out += c;
			continue;
		}
		const e = body[++i];
		const simple: Record<string, string> = {
			n: "\n",
			t: "\t",
			r: "\r",
			b: "\b",
			f: "\f",
			v: "\v",
			"'": "'",
			'"': '"',
			"\\": "\\",
		};
		if (e !== undefined && simple[e] !== undefined) out += simple[e];
		else if (e === "x" || e === "u") {
			const n = e === "x" ? 2 : 4;
			const hex = body.slice(i + 1, i + 1 + n);
			if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) return undefined;
			out += String.fromCharCode(Number.parseInt(hex, 16));
			i += n;
		} else return undefined;
	}
	return out;
}

/**
 * jinja2's lexer (lexer.py, default environment), code tokens only. Non-ASCII characters in code
 * outside strings are refused: jinja2 accepts Unicode names and digits, the parser does not, and
 * the two must agree.
 */
function jinjaTokens(src: string): JToken[] {
	const out: JToken[] = [];
	let pos = 0;
	while (pos < src.length) {
		// root state: text up to the first {{, {% or {#
		let open = -1;
		for (let i = src.indexOf("{", pos); i >= 0 && i < src.length - 1; i = src.indexOf("{", i + 1)) {
			const n = src[i + 1];
			if (n === "{" || n === "%" || n === "#") {
				open = i;
				break;
			}
		}
		if (open < 0) break;
		const kind = src[open + 1];
		if (kind === "%" && sticky(RAW_BEGIN, src, open) !== undefined) {
			RAW_END.lastIndex = open + (sticky(RAW_BEGIN, src, open) as string).length;
			const m = RAW_END.exec(src);
			if (m === null) throw new LexError("missing end of raw directive", open);
			pos = m.index + m[0].length;
			continue;
		}
		let p = open + 2;
		if (src[p] === "-" || src[p] === "+") p++;
		if (kind === "#") {
			const end = src.indexOf("#}", p);
			if (end < 0) throw new LexError("missing end of comment tag", open);
			pos = end + 2;
			continue;
		}
		out.push({ kind: kind === "%" ? "block_begin" : "variable_begin", value: undefined, offset: open });
		const balance: string[] = [];
		for (;;) {
			// jinja2's lexer stops quietly at the end inside a tag; its parser (and ours) then refuses the template
			if (p >= src.length) break;
			if (balance.length === 0) {
				const end =
					kind === "%"
						? src.startsWith("+%}", p)
							? "+%}"
							: src.startsWith("-%}", p)
								? "-%}"
								: src.startsWith("%}", p)
									? "%}"
									: undefined
						: src.startsWith("-}}", p)
							? "-}}"
							: src.startsWith("}}", p)
								? "}}"
								: undefined;
				if (end !== undefined) {
					out.push({ kind: kind === "%" ? "block_end" : "variable_end", value: undefined, offset: p });
					p += end.length;
					break;
				}
			}
			const ws = sticky(PY_SPACES, src, p);
			if (ws !== undefined) {
				p += ws.length;
				continue;
			}
			const fl = sticky(FLOAT_RE, src, p);
			if (fl !== undefined) {
				out.push({ kind: "float", value: fl, offset: p });
				p += fl.length;
				continue;
			}
			const int = sticky(INTEGER_RE, src, p);
			if (int !== undefined) {
				out.push({ kind: "integer", value: int, offset: p });
				p += int.length;
				continue;
			}
			const name = sticky(NAME_RE, src, p);
			if (name !== undefined) {
				out.push({ kind: "name", value: name, offset: p });
				p += name.length;
				continue;
			}
			STRING_RE.lastIndex = p;
			const sm = STRING_RE.exec(src);
			if (sm !== null) {
				out.push({ kind: "string", value: decodeString(sm[1] ?? sm[2] ?? ""), offset: p });
				p += sm[0].length;
				continue;
			}
			const op = OPERATORS.find((o) => src.startsWith(o, p));
			if (op !== undefined) {
				if (op === "{" || op === "(" || op === "[") balance.push(op === "{" ? "}" : op === "(" ? ")" : "]");
				else if (op === "}" || op === ")" || op === "]") {
					if (balance.pop() !== op) throw new LexError(`unexpected '${op}'`, p);
				}
				out.push({ kind: "op", value: op, offset: p });
				p += op.length;
				continue;
			}
			throw new LexError(`unexpected character ${JSON.stringify(src[p])}`, p);
		}
		pos = p;
	}
	// transformers' {% generation %} / {% endgeneration %} markers: @huggingface/jinja drops them before lexing
	const drop = new Set<number>();
	out.forEach((t, i) => {
		const n = out[i + 1];
		if (
			t.kind === "block_begin" &&
			n?.kind === "name" &&
			(n.value === "generation" || n.value === "endgeneration") &&
			out[i + 2]?.kind === "block_end"
		)
			for (const k of [i, i + 1, i + 2]) drop.add(k);
	});
	return drop.size === 0 ? out : out.filter((_t, i) => !drop.has(i));
}

/** Numeric value of a jinja2 integer/float token or a parser number, for comparing the two readings. */
function numberKey(text: string, kind: "integer" | "float"): string {
	const t = text.replace(/_/g, "");
	if (kind === "float") return `f${Number(t)}`;
	const lower = t.toLowerCase();
	const v = lower.startsWith("0o") ? BigInt(`0o${lower.slice(2)}`) : BigInt(lower);
	return `i${v}`;
}

// ───────────────────────────── the parser's view ─────────────────────────────

type HfToken = ReturnType<typeof tokenize>[number];

/** Identifier values the parser compares against; they are left as they are, every other name is marked. */
const PARSER_KEYWORDS = new Set([
	"set",
	"endset",
	"if",
	"elif",
	"else",
	"endif",
	"for",
	"endfor",
	"macro",
	"endmacro",
	"call",
	"endcall",
	"filter",
	"endfilter",
	"break",
	"continue",
	"in",
	"not",
	"and",
	"or",
	"is",
]);
/** Marks carried by identifiers and strings in the tree: private-use code points around the jinja2 token index. */
const MARK_OPEN = "\u{F0000}";
const MARK_CLOSE = "\u{F0001}";
const MARK_RE = /\u{F0000}(\d+)\u{F0001}/gu;
const mark = (i: number) => `${MARK_OPEN}${i}${MARK_CLOSE}`;

/** The parser's tokens in the canonical form of jinja2's, with the index of the jinja2 token each starts at. */
function alignTokens(hf: readonly HfToken[], jt: readonly JToken[]): { map: number[] } | { mismatch: number } {
	const map: number[] = [];
	let j = 0;
	const expect = (kind: JToken["kind"], value: string | undefined): boolean => {
		const t = jt[j];
		if (t === undefined || t.kind !== kind) return false;
		if (kind === "integer" || kind === "float") {
			if (value === undefined || numberKey(t.value ?? "", kind) !== value) return false;
		} else if (value !== undefined && t.value !== value) return false;
		else if (kind === "string" && t.value === undefined) return false;
		j++;
		return true;
	};
	for (let i = 0; i < hf.length; i++) {
		const t = hf[i] as HfToken;
		map.push(j);
		let ok: boolean;
		switch (t.type) {
			case "Text":
			case "Comment":
				ok = true;
				break;
			case "OpenStatement":
				ok = expect("block_begin", undefined);
				break;
			case "CloseStatement":
				ok = expect("block_end", undefined);
				break;
			case "OpenExpression":
				ok = expect("variable_begin", undefined);
				break;
			case "CloseExpression":
				ok = expect("variable_end", undefined);
				break;
			case "Identifier":
				ok = expect("name", t.value);
				break;
			case "StringLiteral":
				ok = expect("string", t.value);
				break;
			case "NumericLiteral": {
				// the parser folds a sign into the number after an operator; jinja2 keeps it an operator
				let v = t.value;
				if (v.startsWith("-") || v.startsWith("+")) {
					ok = expect("op", v[0]);
					v = v.slice(1);
					if (!ok) break;
				}
				const kind = v.includes(".") ? "float" : "integer";
				ok = /^\d+(\.\d+)?$/.test(v) && expect(kind, numberKey(v, kind));
				break;
			}
			default:
				ok = expect("op", t.value);
		}
		if (!ok) return { mismatch: jt[j]?.offset ?? jt[jt.length - 1]?.offset ?? 0 };
	}
	if (j !== jt.length) return { mismatch: jt[j]?.offset ?? 0 };
	return { map };
}

// ───────────────────────────── tree ─────────────────────────────

/** A node of @huggingface/jinja's tree, read structurally (its classes are not exported). */
interface Node {
	type: string;
	[k: string]: unknown;
}
const isNode = (x: unknown): x is Node => x !== null && typeof x === "object" && typeof (x as Node).type === "string";
const child = (n: Node, k: string): Node | undefined => (isNode(n[k]) ? (n[k] as Node) : undefined);
const children = (n: Node, k: string): Node[] => (Array.isArray(n[k]) ? (n[k] as unknown[]).filter(isNode) : []);

// ───────────────────────────── value analysis ─────────────────────────────

type Prim = string | number | boolean | null;
/**
 * What an expression may evaluate to, as far as subscript keys and callees matter:
 * a finite set of constants, some number, a list/tuple/dict literal's shape, macros of this template,
 * a namespace() object, the loop object, or anything (top).
 */
type Abs =
	| { k: "bot" }
	| { k: "consts"; v: ReadonlySet<Prim>; num?: true }
	| { k: "num" }
	| { k: "list"; e: Abs }
	| { k: "tuple"; items: readonly Abs[] }
	| { k: "dict"; key: Abs; val: Abs }
	| { k: "macros"; names: ReadonlySet<string> }
	| { k: "ns" }
	| { k: "loop" }
	| { k: "top" };
const BOT: Abs = { k: "bot" };
const TOP: Abs = { k: "top" };
const NUM: Abs = { k: "num" };
const BOOLS: Abs = { k: "consts", v: new Set<Prim>([true, false]) };
/**
 * jinja2's Undefined, as far as keys go: it prints as "" (so `undefined ~ 'x'` is 'x') and as a key
 * finds nothing. Bottom is kept for "never has a value" (raise_exception(), iterating a number).
 */
const UNDEF: Abs = { k: "consts", v: new Set<Prim>([""]) };
const MAX_CONSTS = 32;
const MAX_SHAPE = 6;

/** A set of constants, plus (num) any number. */
const consts = (v: Iterable<Prim>, num = false): Abs => {
	const s = new Set(v);
	const allNum = [...s].every((x) => typeof x === "number");
	if (s.size > MAX_CONSTS) return allNum ? NUM : TOP;
	if (num && allNum) return NUM;
	return num ? { k: "consts", v: s, num: true } : { k: "consts", v: s };
};
const isNumLike = (a: Abs) => a.k === "num" || (a.k === "consts" && [...a.v].every((x) => typeof x === "number"));

function join(a: Abs, b: Abs, depth = 0): Abs {
	if (a.k === "bot") return b;
	if (b.k === "bot") return a;
	if (depth > MAX_SHAPE) return TOP;
	if (a.k === "consts" && b.k === "consts") {
		// nothing new (the common case in the fixpoint): keep a, without building a set
		if ((b.num !== true || a.num === true) && [...b.v].every((x) => a.v.has(x))) return a;
		return consts([...a.v, ...b.v], a.num === true || b.num === true);
	}
	if (isNumLike(a) && isNumLike(b)) return NUM;
	if (a.k === "num" && b.k === "consts") return consts(b.v, true);
	if (b.k === "num" && a.k === "consts") return consts(a.v, true);
	if (a.k === "top" || b.k === "top") return TOP;
	if (a.k === "list" && b.k === "list") return { k: "list", e: join(a.e, b.e, depth + 1) };
	if (a.k === "tuple" && b.k === "tuple" && a.items.length === b.items.length)
		return { k: "tuple", items: a.items.map((x, i) => join(x, b.items[i] as Abs, depth + 1)) };
	if ((a.k === "list" || a.k === "tuple") && (b.k === "list" || b.k === "tuple"))
		return { k: "list", e: join(elemOf(a), elemOf(b), depth + 1) };
	if (a.k === "dict" && b.k === "dict")
		return { k: "dict", key: join(a.key, b.key, depth + 1), val: join(a.val, b.val, depth + 1) };
	if (a.k === "macros" && b.k === "macros") return { k: "macros", names: new Set([...a.names, ...b.names]) };
	if (a.k === b.k && (a.k === "ns" || a.k === "loop")) return a;
	return TOP;
}
const joinAll = (xs: Abs[]) => xs.reduce((a, b) => (a.k === "top" ? a : join(a, b)), BOT);

/** What iterating a value yields. */
function elemOf(a: Abs): Abs {
	switch (a.k) {
		case "list":
			return a.e;
		case "tuple":
			return joinAll([...a.items]);
		case "dict":
			return a.key;
		case "consts":
			// iterating a string yields its code points (Python and JS agree on code points)
			return consts([...a.v].flatMap((x) => (typeof x === "string" ? [...x] : [])));
		case "top":
		case "loop":
			return TOP;
		default:
			return BOT;
	}
}
/** Element `pos` of a value unpacked into a tuple target. */
function unpack(a: Abs, pos: number): Abs {
	if (a.k === "tuple") return a.items[pos] ?? BOT;
	if (a.k === "list") return a.e;
	if (a.k === "bot") return BOT;
	if (a.k === "consts") return elemOf(a);
	return TOP;
}
const absKey = (a: Abs): string => {
	switch (a.k) {
		case "consts":
			return `c${a.num === true ? "n" : ""}${JSON.stringify([...a.v].map((x) => [typeof x, x]).sort())}`;
		case "list":
			return `l(${absKey(a.e)})`;
		case "tuple":
			return `t(${a.items.map(absKey).join(",")})`;
		case "dict":
			return `d(${absKey(a.key)},${absKey(a.val)})`;
		case "macros":
			return `m${JSON.stringify([...a.names].sort())}`;
		default:
			return a.k;
	}
};

/** One way a name gets a value. */
type Source =
	| { how: "value"; expr: Node }
	| { how: "elem"; expr: Node; pos?: number }
	| { how: "unpack"; expr: Node; pos: number }
	| { how: "macro"; name: string }
	| { how: "undef" }
	| { how: "top" };

// ───────────────────────────── the check ─────────────────────────────

interface Ctx {
	where: string;
	src: string;
	jt: readonly JToken[];
	findings: Finding[];
	/** source offset of each finding (by index), for ordering */
	offsets: Map<number, number>;
	seen: Set<string>;
	/** the real text of identifier and string nodes, once read */
	texts: Map<Node, string | undefined>;
	/** own-key lookups already judged (variable + object reference) */
	selfKeyed: Map<string, boolean>;
	/** every binding of every name the template binds */
	bindings: Map<string, Source[]>;
	/** every value given to a namespace attribute (by attribute name: namespaces alias freely) */
	nsAttrs: Map<string, Source[]>;
	/** a namespace() call took positional or spread arguments: its attributes are unknown */
	nsOpen: boolean;
	/** values added to lists by append/extend/insert anywhere */
	mutations: Source[];
	macros: Map<string, Node[]>;
	/** binding key of each identifier: its name, or a macro / call-block parameter's own key inside that body */
	keys: Map<Node, string>;
	/** key prefix of each macro's parameters */
	paramScope: Map<Node, string>;
	env: Map<string, Abs>;
	nsEnv: Map<string, Abs>;
	mutEnv: Abs;
}

const lineCol = (src: string, offset: number): string => {
	let line = 1;
	let last = -1;
	for (let i = src.indexOf("\n"); i >= 0 && i < offset; i = src.indexOf("\n", i + 1)) {
		line++;
		last = i;
	}
	return `line ${line} col ${offset - last}`;
};

/** The jinja2 token indexes a node's marks point to (identifiers: one; strings: one per adjacent literal). */
const marks = (v: unknown): number[] =>
	typeof v === "string" ? [...v.matchAll(MARK_RE)].map((m) => Number(m[1])) : [];
const isMarked = (v: unknown): boolean => typeof v === "string" && v.length > 0 && v.replace(MARK_RE, "") === "";

function firstToken(n: unknown, depth = 0): number | undefined {
	if (depth > MAX_DEPTH || n === null || typeof n !== "object") return undefined;
	let best: number | undefined;
	const consider = (x: number | undefined) => {
		if (x !== undefined && (best === undefined || x < best)) best = x;
	};
	if (n instanceof Map)
		for (const [k, v] of n) {
			consider(firstToken(k, depth + 1));
			consider(firstToken(v, depth + 1));
		}
	else if (Array.isArray(n)) for (const x of n) consider(firstToken(x, depth + 1));
	else
		for (const [k, v] of Object.entries(n)) {
			if (k === "value" && typeof v === "string") for (const m of marks(v)) consider(m);
			else if (k !== "operator") consider(firstToken(v, depth + 1));
		}
	return best;
}

function report(ctx: Ctx, severity: "critical" | "high" | "medium", id: string, message: string, at?: unknown): void {
	if (ctx.findings.length >= MAX_FINDINGS) return;
	const tok = typeof at === "number" ? at : firstToken(at);
	const offset = tok !== undefined ? ctx.jt[tok]?.offset : undefined;
	const key = `${id}:${message}`;
	if (ctx.seen.has(key)) return;
	ctx.seen.add(key);
	ctx.offsets.set(ctx.findings.length, offset ?? -1);
	ctx.findings.push({
		id,
		severity,
		message: `chat template: ${message}`,
		location: offset !== undefined ? `${ctx.where} @ ${lineCol(ctx.src, offset)}` : ctx.where,
	});
}
const notAllowed = (ctx: Ctx, message: string, at?: unknown) =>
	report(ctx, "high", "template-not-allowed", message, at);
const internal = (ctx: Ctx, message: string, at?: unknown) =>
	report(ctx, "critical", "template-injection", message, at);

/** The real text of an identifier or string node (from the jinja2 tokens its marks point to). */
function text(ctx: Ctx, n: Node | undefined): string | undefined {
	if (n === undefined) return undefined;
	// read once per node: the analysis asks for the same names many times
	if (ctx.texts.has(n)) return ctx.texts.get(n);
	let t: string | undefined;
	if (!isMarked(n.value)) t = typeof n.value === "string" ? n.value : undefined;
	else {
		const parts = marks(n.value).map((i) => ctx.jt[i]?.value);
		t = parts.every((p) => p !== undefined) ? parts.join("") : undefined;
	}
	ctx.texts.set(n, t);
	return t;
}
const nameOf = (ctx: Ctx, n: Node | undefined): string | undefined =>
	n?.type === "Identifier" ? text(ctx, n) : undefined;
/** The variable an identifier refers to (macro parameters are local to their macro's body). */
const keyOf = (ctx: Ctx, n: Node | undefined): string | undefined =>
	n === undefined ? undefined : (ctx.keys.get(n) ?? nameOf(ctx, n));

const paramName = (ctx: Ctx, p: Node): string | undefined =>
	nameOf(ctx, p.type === "KeywordArgumentExpression" ? child(p, "key") : p);

/**
 * Gives every identifier inside a macro (or call block) body that names one of its parameters the
 * parameter's own key: jinja2 scopes parameters to the body, so a parameter named like a global
 * (functionary names one `namespace`) does not rebind that global elsewhere.
 */
function scopeKeys(ctx: Ctx, root: Node): void {
	const stack: Array<Map<string, string>> = [];
	let counter = 0;
	const visit = (n: unknown, depth: number): void => {
		if (depth > MAX_DEPTH) return;
		if (Array.isArray(n)) {
			for (const x of n) visit(x, depth + 1);
			return;
		}
		if (n instanceof Map) {
			for (const [k, v] of n) {
				visit(k, depth + 1);
				visit(v, depth + 1);
			}
			return;
		}
		if (!isNode(n)) return;
		if (n.type === "Identifier") {
			const nm = nameOf(ctx, n);
			if (nm !== undefined)
				for (let i = stack.length - 1; i >= 0; i--) {
					const k = stack[i]?.get(nm);
					if (k !== undefined) {
						ctx.keys.set(n, k);
						break;
					}
				}
			return;
		}
		const params =
			n.type === "Macro"
				? children(n, "args")
				: n.type === "CallStatement" && Array.isArray(n.callerArgs)
					? (n.callerArgs as unknown[]).filter(isNode)
					: undefined;
		if (params !== undefined) {
			const prefix = `${n.type === "Macro" ? "m" : "c"}${counter++}:`;
			ctx.paramScope.set(n, prefix);
			// defaults and the called macro belong to the outer scope; parameter names and the body to the inner one
			for (const p of params) if (p.type === "KeywordArgumentExpression") visit(child(p, "value"), depth + 1);
			if (n.type === "Macro") visit(child(n, "name"), depth + 1);
			else visit(child(n, "call"), depth + 1);
			const scope = new Map<string, string>();
			for (const p of params) {
				const pn = paramName(ctx, p);
				if (pn !== undefined) scope.set(pn, prefix + pn);
			}
			stack.push(scope);
			for (const p of params) visit(p.type === "KeywordArgumentExpression" ? child(p, "key") : p, depth + 1);
			visit(children(n, "body"), depth + 1);
			stack.pop();
			return;
		}
		for (const [k, v] of Object.entries(n)) if (k !== "type" && k !== "operator") visit(v, depth + 1);
	};
	visit(root, 0);
}

const CONSTANT_NAMES: Record<string, Prim> = {
	true: true,
	True: true,
	false: false,
	False: false,
	none: null,
	None: null,
};
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A string used as an attribute name: what reading it may reach. */
function nameClass(s: string): "internal" | "listed" | "other" | "inert" {
	if (!IDENT.test(s)) return s.trimStart().startsWith("_") ? "internal" : "inert";
	if (s.startsWith("_")) return "internal";
	return DATA_ATTRS.has(s) ? "listed" : "other";
}

// ── bindings ──

/** Macro definitions × calls paired to bind parameters; beyond it the parameters are unknown (top). */
const MAX_PAIRINGS = 20_000;

function addTo<K, V>(m: Map<K, V[]>, k: K, v: V): void {
	const list = m.get(k);
	if (list === undefined) m.set(k, [v]);
	else list.push(v);
}

function bind(ctx: Ctx, name: string, src: Source, at: Node): void {
	// parameter keys contain ':'; a parameter may shadow a global inside its own body only
	if (RESERVED.has(name)) notAllowed(ctx, `binds the reserved name \`${name}\``, at);
	const list = ctx.bindings.get(name) ?? [];
	list.push(src);
	ctx.bindings.set(name, list);
}

/** Binds macro parameters from their defaults and from every direct call; escaping macros get unknown arguments. */
function collectBindings(ctx: Ctx, root: Node): void {
	const calls: Array<{ callee: string; args: Node[] }> = [];
	const escaped = new Set<string>();
	const visit = (n: unknown, depth: number, calleePos = false): void => {
		if (depth > MAX_DEPTH) return;
		if (Array.isArray(n)) {
			for (const x of n) visit(x, depth + 1);
			return;
		}
		if (n instanceof Map) {
			for (const [k, v] of n) {
				visit(k, depth + 1);
				visit(v, depth + 1);
			}
			return;
		}
		if (!isNode(n)) return;
		switch (n.type) {
			case "For": {
				const lv = child(n, "loopvar");
				const it = child(n, "iterable");
				if (lv?.type === "Identifier" && it !== undefined) {
					const nm = keyOf(ctx, lv);
					if (nm !== undefined) bind(ctx, nm, { how: "elem", expr: it }, lv);
				} else if (lv?.type === "TupleLiteral" && it !== undefined)
					children(lv, "value").forEach((e, i) => {
						const nm = keyOf(ctx, e);
						if (nm !== undefined) bind(ctx, nm, { how: "elem", expr: it, pos: i }, e);
					});
				break;
			}
			case "Set": {
				const a = child(n, "assignee");
				const v = child(n, "value");
				const src = (pos?: number): Source =>
					v === undefined
						? { how: "top" }
						: pos === undefined
							? { how: "value", expr: v }
							: { how: "unpack", expr: v, pos };
				if (a?.type === "Identifier") {
					const nm = keyOf(ctx, a);
					if (nm !== undefined) bind(ctx, nm, src(), a);
				} else if (a?.type === "TupleLiteral")
					children(a, "value").forEach((e, i) => {
						const nm = keyOf(ctx, e);
						if (nm !== undefined) bind(ctx, nm, src(i), e);
					});
				else if (a?.type === "MemberExpression" && a.computed === false) {
					const attr = nameOf(ctx, child(a, "property"));
					if (attr !== undefined) addTo(ctx.nsAttrs, attr, src());
				}
				break;
			}
			case "Macro": {
				const nm = nameOf(ctx, child(n, "name"));
				if (nm !== undefined) {
					bind(ctx, nm, { how: "macro", name: nm }, n);
					addTo(ctx.macros, nm, n);
				}
				visit(children(n, "args"), depth + 1);
				visit(children(n, "body"), depth + 1);
				return;
			}
			case "CallStatement": {
				const prefix = ctx.paramScope.get(n) ?? "";
				for (const p of Array.isArray(n.callerArgs) ? (n.callerArgs as unknown[]).filter(isNode) : []) {
					const nm = paramName(ctx, p);
					if (nm !== undefined) bind(ctx, prefix + nm, { how: "top" }, p);
				}
				break;
			}
			case "CallExpression": {
				const callee = child(n, "callee");
				const args = children(n, "args");
				const cname = keyOf(ctx, callee);
				if (cname === "namespace")
					for (const a of args) {
						if (a.type === "KeywordArgumentExpression") {
							const k = nameOf(ctx, child(a, "key"));
							const v = child(a, "value");
							if (k !== undefined && v !== undefined) addTo(ctx.nsAttrs, k, { how: "value", expr: v });
						} else ctx.nsOpen = true;
					}
				if (cname !== undefined) calls.push({ callee: cname, args });
				if (callee?.type === "MemberExpression" && callee.computed === false) {
					const m = nameOf(ctx, child(callee, "property"));
					if (m !== undefined && MUTATORS.has(m)) {
						const v = m === "insert" ? args[1] : args[0];
						if (v !== undefined)
							ctx.mutations.push(m === "extend" ? { how: "elem", expr: v } : { how: "value", expr: v });
					}
				}
				visit(callee, depth + 1, true);
				visit(args, depth + 1);
				return;
			}
			case "Identifier":
				if (!calleePos) {
					const nm = keyOf(ctx, n);
					if (nm !== undefined) escaped.add(nm);
				}
				return;
		}
		for (const [k, v] of Object.entries(n)) if (k !== "type" && k !== "operator") visit(v, depth + 1);
	};
	visit(root, 0);
	// macro parameters: defaults, and what each direct call passes
	const callsOf = new Map<string, Array<{ callee: string; args: Node[] }>>();
	for (const c of calls) addTo(callsOf, c.callee, c);
	for (const [name, m] of [...ctx.macros].flatMap(([nm, defs]) => defs.map((d) => [nm, d] as const))) {
		const mine = callsOf.get(name) ?? [];
		const params = children(m, "args");
		// a name defined many times and called many times: arguments unknown rather than a quadratic pairing
		const open =
			escaped.has(name) ||
			(ctx.macros.get(name)?.length ?? 0) * mine.length > MAX_PAIRINGS ||
			mine.some((c) => c.args.some((a) => a.type.endsWith("SpreadExpression")));
		const prefix = ctx.paramScope.get(m) ?? "";
		params.forEach((p, i) => {
			const name0 = paramName(ctx, p);
			if (name0 === undefined) return;
			const pn = prefix + name0;
			if (p.type === "KeywordArgumentExpression") {
				const d = child(p, "value");
				if (d !== undefined) bind(ctx, pn, { how: "value", expr: d }, p);
			}
			if (open || mine.length === 0) bind(ctx, pn, { how: "top" }, p);
			for (const c of open ? [] : mine) {
				const positional = c.args.filter((a) => a.type !== "KeywordArgumentExpression");
				const kw = c.args.find((a) => a.type === "KeywordArgumentExpression" && nameOf(ctx, child(a, "key")) === name0);
				const arg = kw !== undefined ? child(kw, "value") : positional[i];
				if (arg !== undefined) bind(ctx, pn, { how: "value", expr: arg }, p);
				else if (p.type !== "KeywordArgumentExpression") bind(ctx, pn, { how: "undef" }, p);
			}
			if (!ctx.bindings.has(pn)) bind(ctx, pn, { how: "top" }, p);
		});
	}
}

// ── evaluation ──

function evalSource(ctx: Ctx, s: Source): Abs {
	switch (s.how) {
		case "value":
			return evaluate(ctx, s.expr, 0);
		case "elem": {
			const e = elemOf(evaluate(ctx, s.expr, 0));
			return s.pos === undefined ? e : unpack(e, s.pos);
		}
		case "unpack":
			return unpack(evaluate(ctx, s.expr, 0), s.pos);
		case "macro":
			return { k: "macros", names: new Set([s.name]) };
		case "undef":
			return UNDEF;
		case "top":
			return TOP;
	}
}

/** A list value: lists can grow by append/extend/insert anywhere in the template, so their elements include those values. */
const mkList = (ctx: Ctx, e: Abs): Abs => ({ k: "list", e: join(e, ctx.mutEnv) });

function evaluate(ctx: Ctx, n: Node | undefined, depth: number): Abs {
	if (n === undefined || depth > MAX_DEPTH) return TOP;
	const d = depth + 1;
	switch (n.type) {
		case "IntegerLiteral":
		case "FloatLiteral":
			return typeof n.value === "number" ? consts([n.value]) : NUM;
		case "StringLiteral": {
			const t = text(ctx, n);
			return t === undefined ? TOP : consts([t]);
		}
		case "ArrayLiteral":
			return mkList(ctx, joinAll(children(n, "value").map((x) => evaluate(ctx, x, d))));
		case "TupleLiteral":
			return { k: "tuple", items: children(n, "value").map((x) => evaluate(ctx, x, d)) };
		case "ObjectLiteral": {
			const m = n.value instanceof Map ? [...(n.value as Map<Node, Node>)] : [];
			return {
				k: "dict",
				key: joinAll(m.map(([k]) => evaluate(ctx, k, d))),
				val: joinAll(m.map(([, v]) => evaluate(ctx, v, d))),
			};
		}
		case "Identifier": {
			const nm = nameOf(ctx, n);
			if (nm === undefined) return TOP;
			if (nm in CONSTANT_NAMES) return consts([CONSTANT_NAMES[nm] as Prim]);
			const key = keyOf(ctx, n) ?? nm;
			if (nm === "loop" && !ctx.bindings.has(key)) return { k: "loop" };
			const bound = ctx.env.get(key);
			// bound but not evaluated yet (first rounds of the fixpoint): nothing known so far
			if (bound === undefined) return ctx.bindings.has(key) ? BOT : TOP;
			// a context name the template rebinds may still hold the context's value where it reads it
			return CONTEXT_NAMES.has(key) ? TOP : bound;
		}
		case "MemberExpression": {
			const obj = evaluate(ctx, child(n, "object"), d);
			const prop = child(n, "property");
			if (n.computed !== true) {
				const p = nameOf(ctx, prop);
				if (obj.k === "loop")
					return p === "first" || p === "last"
						? BOOLS
						: p !== undefined && ["index", "index0", "revindex", "revindex0", "length", "depth", "depth0"].includes(p)
							? NUM
							: TOP;
				if (obj.k === "ns" && p !== undefined) return ctx.nsOpen ? TOP : join(ctx.nsEnv.get(p) ?? BOT, UNDEF);
				if (prop?.type === "IntegerLiteral") return obj.k === "list" || obj.k === "tuple" ? elemOf(obj) : TOP;
				return obj.k === "bot" ? BOT : TOP;
			}
			if (prop?.type === "SliceExpression")
				return obj.k === "list" || obj.k === "tuple" ? mkList(ctx, elemOf(obj)) : obj.k === "bot" ? BOT : TOP;
			if (obj.k === "list") return obj.e;
			if (obj.k === "tuple") {
				const idx = prop?.type === "IntegerLiteral" && typeof prop.value === "number" ? prop.value : undefined;
				return idx !== undefined && obj.items[idx] !== undefined ? (obj.items[idx] as Abs) : elemOf(obj);
			}
			if (obj.k === "dict") return obj.val;
			return obj.k === "bot" ? BOT : TOP;
		}
		case "BinaryExpression": {
			const op = (n.operator as { value?: string } | undefined)?.value ?? "";
			const l = evaluate(ctx, child(n, "left"), d);
			const r = evaluate(ctx, child(n, "right"), d);
			if (op === "and" || op === "or") return join(l, r);
			if (COMPARE_OPS.has(op)) return BOOLS;
			if (l.k === "bot" || r.k === "bot") return BOT;
			if ((op === "~" || op === "+") && l.k === "consts" && r.k === "consts" && l.num !== true && r.num !== true) {
				// only string + string folds exactly the same under any grouping and in both languages
				const ls = [...l.v];
				const rs = [...r.v];
				if (
					ls.every((x) => typeof x === "string") &&
					rs.every((x) => typeof x === "string") &&
					ls.length * rs.length <= MAX_CONSTS
				)
					return consts(ls.flatMap((a) => rs.map((b) => `${a}${b}`)));
			}
			if (op !== "~" && isNumLike(l) && isNumLike(r)) return NUM;
			if (op === "+" && (l.k === "list" || l.k === "tuple") && (r.k === "list" || r.k === "tuple"))
				return mkList(ctx, join(elemOf(l), elemOf(r)));
			return TOP;
		}
		case "UnaryExpression": {
			const op = (n.operator as { value?: string } | undefined)?.value;
			const a = evaluate(ctx, child(n, "argument"), d);
			if (op === "not") return BOOLS;
			return isNumLike(a) ? NUM : a.k === "bot" ? BOT : TOP;
		}
		case "TestExpression":
			return BOOLS;
		case "Ternary":
			return join(evaluate(ctx, child(n, "trueExpr"), d), evaluate(ctx, child(n, "falseExpr"), d));
		case "SelectExpression":
			return join(evaluate(ctx, child(n, "lhs"), d), UNDEF);
		case "FilterExpression": {
			const operand = evaluate(ctx, child(n, "operand"), d);
			const f = child(n, "filter");
			const call = f?.type === "CallExpression" ? f : undefined;
			const name = nameOf(ctx, call !== undefined ? child(call, "callee") : f);
			const args = call !== undefined ? children(call, "args") : [];
			switch (name) {
				case "length":
				case "count":
				case "wordcount":
				case "int":
				case "float":
				case "abs":
				case "round":
				case "sum":
					return NUM;
				case "list":
				case "sort":
				case "unique":
				case "reverse":
				case "select":
				case "reject":
				case "selectattr":
				case "rejectattr":
					return operand.k === "top" || operand.k === "bot" ? operand : mkList(ctx, elemOf(operand));
				case "first":
				case "last":
				case "min":
				case "max":
					return elemOf(operand);
				case "default":
				case "d":
					return join(
						operand,
						args[0] !== undefined && args[0].type !== "KeywordArgumentExpression"
							? evaluate(ctx, args[0], d)
							: consts([""]),
					);
				case "items":
				case "dictsort":
					return operand.k === "dict" ? mkList(ctx, { k: "tuple", items: [operand.key, operand.val] }) : TOP;
				default:
					return TOP;
			}
		}
		case "CallExpression": {
			const callee = child(n, "callee");
			const args = children(n, "args");
			const cname = keyOf(ctx, callee);
			if (cname !== undefined && !ctx.bindings.has(cname)) {
				// a Python range object: no append, so nothing can be added to it
				if (cname === "range") return { k: "list", e: NUM };
				if (cname === "namespace") return { k: "ns" };
				if (cname === "raise_exception") return BOT;
				if (cname === "dict") {
					const kws = args.filter((a) => a.type === "KeywordArgumentExpression");
					if (kws.length !== args.length) return TOP;
					return {
						k: "dict",
						key: consts(kws.map((a) => nameOf(ctx, child(a, "key")) ?? "")),
						val: joinAll(kws.map((a) => evaluate(ctx, child(a, "value"), d))),
					};
				}
			}
			if (callee?.type === "MemberExpression" && callee.computed === false) {
				const obj = evaluate(ctx, child(callee, "object"), d);
				const m = nameOf(ctx, child(callee, "property"));
				if (obj.k === "dict") {
					if (m === "items") return mkList(ctx, { k: "tuple", items: [obj.key, obj.val] });
					if (m === "keys") return mkList(ctx, obj.key);
					if (m === "values") return mkList(ctx, obj.val);
					if (m === "get") return join(obj.val, args[1] !== undefined ? evaluate(ctx, args[1], d) : consts([null]));
				}
				if ((obj.k === "list" || obj.k === "tuple") && m === "pop") return elemOf(obj);
				if (obj.k === "bot") return BOT;
			}
			return TOP;
		}
		default:
			return TOP;
	}
}

/** Fixpoint over every binding; what does not settle becomes top. */
function solve(ctx: Ctx): void {
	for (let round = 0; ; round++) {
		let changed = false;
		const step = (cur: Abs | undefined, sources: Source[]): Abs => {
			// top absorbs everything: nothing to evaluate
			if (cur?.k === "top") return cur;
			let next = cur ?? BOT;
			for (const src of sources) {
				next = join(next, evalSource(ctx, src));
				if (next.k === "top") return next;
			}
			if (round >= 12) return cur !== undefined && absKey(cur) === absKey(next) ? cur : TOP;
			return next;
		};
		for (const [name, sources] of ctx.bindings) {
			const cur = ctx.env.get(name);
			const next = step(cur, sources);
			if (cur === undefined || absKey(cur) !== absKey(next)) {
				ctx.env.set(name, next);
				changed = true;
			}
		}
		for (const [attr, sources] of ctx.nsAttrs) {
			const cur = ctx.nsEnv.get(attr);
			const next = step(cur, sources);
			if (cur === undefined || absKey(cur) !== absKey(next)) {
				ctx.nsEnv.set(attr, next);
				changed = true;
			}
		}
		const mut = step(ctx.mutEnv, ctx.mutations);
		if (absKey(mut) !== absKey(ctx.mutEnv)) {
			ctx.mutEnv = mut;
			changed = true;
		}
		if (!changed || round > 14) return;
	}
}

// ── structural checks ──

/**
 * The identity of a plain reference: a variable, then reads by fixed names or literal indexes
 * (`tool.parameters`, `messages[0]`; no call, filter or computed key), so the same object each time it is
 * read. Undefined for anything else.
 */
function refSig(ctx: Ctx, n: Node | undefined, depth = 0): string | undefined {
	if (n === undefined || depth > 64) return undefined;
	if (n.type === "Identifier") {
		const k = keyOf(ctx, n);
		return k === undefined ? undefined : `$${k}`;
	}
	if (n.type !== "MemberExpression") return undefined;
	const p = child(n, "property");
	let step: string | undefined;
	if (n.computed === false) step = p?.type === "IntegerLiteral" ? `[${String(p.value)}]` : `.${nameOf(ctx, p) ?? ""}`;
	else if (p?.type === "StringLiteral") step = `[${JSON.stringify(text(ctx, p) ?? "")}]`;
	else if (p?.type === "IntegerLiteral") step = `[${String(p.value)}]`;
	const o = step === undefined ? undefined : refSig(ctx, child(n, "object"), depth + 1);
	return o === undefined ? undefined : o + step;
}
const plainRef = (ctx: Ctx, n: Node | undefined): boolean => refSig(ctx, n) !== undefined;

/**
 * `obj[k]` where every binding of `k` is `for k in obj` (or `for k, v in obj.items()` / `obj|items` /
 * `obj|dictsort`): the key is one of obj's own keys, so jinja2 finds it as an item and never falls
 * back to reading an attribute of that name.
 */
function selfKeyed(ctx: Ctx, obj: Node | undefined, key: Node): boolean {
	const k = keyOf(ctx, key);
	const o = refSig(ctx, obj);
	if (k === undefined || o === undefined || CONTEXT_NAMES.has(k)) return false;
	const memo = `${k}\u0000${o}`;
	const known = ctx.selfKeyed.get(memo);
	if (known !== undefined) return known;
	const sources = ctx.bindings.get(k) ?? [];
	const result =
		sources.length > 0 &&
		sources.every((s) => {
			if (s.how !== "elem") return false;
			// `for k in obj if cond`: the parser keeps the loop filter on the iterable
			const it = s.expr.type === "SelectExpression" ? (child(s.expr, "lhs") ?? s.expr) : s.expr;
			if (s.pos === undefined) return refSig(ctx, it) === o;
			if (s.pos !== 0) return false;
			if (it.type === "FilterExpression") {
				const f = nameOf(ctx, child(it, "filter"));
				return (f === "items" || f === "dictsort") && refSig(ctx, child(it, "operand")) === o;
			}
			if (it.type === "CallExpression" && children(it, "args").length === 0) {
				const c = child(it, "callee");
				return (
					c?.type === "MemberExpression" &&
					c.computed === false &&
					nameOf(ctx, child(c, "property")) === "items" &&
					refSig(ctx, child(c, "object")) === o
				);
			}
			return false;
		});
	ctx.selfKeyed.set(memo, result);
	return result;
}

/** A subscript key: jinja2 tries `obj[key]` and, for a string key, falls back to `getattr(obj, key)`. */
function checkKey(ctx: Ctx, obj: Node | undefined, key: Node): void {
	const v = evaluate(ctx, key, 0);
	if (v.k === "consts") {
		for (const s of v.v) {
			if (typeof s !== "string") continue;
			const c = nameClass(s);
			if (c === "internal") internal(ctx, `subscript key ${JSON.stringify(s)} reaches Python internals`, key);
			else if (c === "other")
				notAllowed(ctx, `subscript key ${JSON.stringify(s)} is not on the attribute allow-list`, key);
		}
		return;
	}
	// a literal dict/list the template built (basic_type_map[json_spec.type]): the key is found as an item or,
	// at worst, one attribute of a plain dict or list is read, and nothing reached that way can be called
	// (one level only: the object must be a variable or attribute, not itself a subscript of a container)
	const container = evaluate(ctx, obj, 0).k;
	if ((container === "dict" || container === "list" || container === "tuple") && plainRef(ctx, obj)) return;
	if (v.k === "top" && !selfKeyed(ctx, obj, key))
		notAllowed(ctx, "subscript with a key computed at render time (a name the template can build or choose)", key);
}

/** An attribute path argument of a filter (`selectattr('a.b')`, `map(attribute='x')`): each part is a name read. */
function checkAttrArg(ctx: Ctx, filter: string, arg: Node): void {
	const v = evaluate(ctx, arg, 0);
	if (v.k !== "consts" || ![...v.v].every((x) => typeof x === "string" || typeof x === "number")) {
		notAllowed(ctx, `|${filter} with an attribute name computed at render time`, arg);
		return;
	}
	for (const s of v.v)
		for (const part of String(s).split(".")) {
			if (/^\d+$/.test(part)) continue;
			const c = nameClass(part);
			if (c === "internal") internal(ctx, `|${filter} reads attribute ${JSON.stringify(part)} (Python internals)`, arg);
			else if (c === "other")
				notAllowed(ctx, `|${filter} reads attribute ${JSON.stringify(part)}, not on the allow-list`, arg);
		}
}

function checkNameArg(
	ctx: Ctx,
	what: "test" | "filter",
	allowed: ReadonlySet<string>,
	filter: string,
	arg: Node,
): void {
	const v = evaluate(ctx, arg, 0);
	if (v.k !== "consts") {
		notAllowed(ctx, `|${filter} with a ${what} name computed at render time`, arg);
		return;
	}
	for (const s of v.v)
		if (typeof s !== "string" || !allowed.has(s))
			notAllowed(ctx, `|${filter} applies ${what} ${JSON.stringify(s)}, not on the allow-list`, arg);
}

const hasInternalString = (ctx: Ctx, args: Node[]): boolean =>
	args.some((a) => {
		const v = evaluate(ctx, a.type === "KeywordArgumentExpression" ? child(a, "value") : a, 0);
		return v.k === "consts" && [...v.v].some((s) => typeof s === "string" && nameClass(s.trim()) === "internal");
	});

function checkFilter(ctx: Ctx, f: Node | undefined, depth: number): void {
	if (f === undefined) return;
	const call = f.type === "CallExpression" ? f : undefined;
	const nameNode = call !== undefined ? child(call, "callee") : f;
	const name = nameOf(ctx, nameNode);
	if (name === undefined) {
		notAllowed(ctx, "filter applied to a computed value", f);
		return;
	}
	const args = call !== undefined ? children(call, "args") : [];
	const spec = FILTERS[name];
	if (spec === undefined) {
		if (hasInternalString(ctx, args)) internal(ctx, `|${name} with a string naming Python internals`, f);
		else notAllowed(ctx, `filter |${name} is not on the allow-list`, f);
		for (const a of args) walkExpr(ctx, a, depth + 1);
		return;
	}
	const positional = args.filter((a) => a.type !== "KeywordArgumentExpression");
	for (const a of args) {
		if (a.type === "SpreadExpression" || a.type === "KeywordSpreadExpression") {
			notAllowed(ctx, `|${name} with unpacked arguments`, a);
			continue;
		}
		if (a.type === "KeywordArgumentExpression") {
			const k = nameOf(ctx, child(a, "key")) ?? "";
			const v = child(a, "value");
			if (k === "attribute" && (spec.kw?.includes(k) || name === "map")) {
				if (v !== undefined) checkAttrArg(ctx, name, v);
			} else if (!(spec.kw ?? []).includes(k) && !(name === "map" && k === "default"))
				notAllowed(ctx, `|${name} with keyword argument ${k}=`, a);
			walkExpr(ctx, v, depth + 1);
			continue;
		}
		walkExpr(ctx, a, depth + 1);
	}
	if (name === "map") {
		const byAttr = args.some(
			(a) => a.type === "KeywordArgumentExpression" && nameOf(ctx, child(a, "key")) === "attribute",
		);
		const first = positional[0];
		if (!byAttr) {
			if (first === undefined) notAllowed(ctx, "|map without a filter or attribute", f);
			else checkNameArg(ctx, "filter", MAP_FILTERS, name, first);
		}
		return;
	}
	for (const i of spec.attrPos ?? []) {
		const a = positional[i];
		if (a !== undefined) checkAttrArg(ctx, name, a);
	}
	if (spec.testPos !== undefined) {
		const a = positional[spec.testPos];
		if (a !== undefined) checkNameArg(ctx, "test", TESTS, name, a);
	}
}

function checkCall(ctx: Ctx, n: Node, depth: number): void {
	const callee = child(n, "callee");
	const args = children(n, "args");
	let spreadOk = false;
	if (callee?.type === "Identifier") {
		const nm = nameOf(ctx, callee) ?? "";
		if (ctx.bindings.has(keyOf(ctx, callee) ?? nm)) {
			const v = evaluate(ctx, callee, 0);
			if (v.k === "macros") spreadOk = true;
			else notAllowed(ctx, `call of \`${nm}\`, which is not a macro of this template`, callee);
		} else if (!CALLABLE_GLOBALS.has(nm)) {
			if (hasInternalString(ctx, args) || nm.startsWith("_")) internal(ctx, `call of \`${nm}\``, callee);
			else notAllowed(ctx, `call of \`${nm}\`, not on the allow-list of functions`, callee);
		} else if (nm === "range")
			for (const a of args) {
				const v = evaluate(ctx, a, 0);
				if (v.k === "consts" && [...v.v].some((x) => typeof x === "number" && Math.abs(x) > DOS_INT))
					report(ctx, "medium", "template-dos", "range() over a huge literal: rendering may not end", a);
			}
	} else if (callee?.type === "MemberExpression" && callee.computed !== true) {
		const obj = child(callee, "object");
		const m = nameOf(ctx, child(callee, "property")) ?? "";
		const objIsLoop = evaluate(ctx, obj, 0).k === "loop";
		if (m.startsWith("_")) internal(ctx, `call of method \`${m}\` (Python internals)`, child(callee, "property"));
		else if (objIsLoop ? !(m === "cycle" || m === "changed") : !METHODS.has(m))
			notAllowed(ctx, `call of method \`${m}\`, not on the allow-list of methods`, child(callee, "property"));
		walkExpr(ctx, obj, depth + 1);
	} else if (callee?.type === "MemberExpression") {
		// macros_to_call[i](...): allowed when every value that subscript can give is a macro of this template
		const v = evaluate(ctx, callee, 0);
		if (v.k === "macros") spreadOk = true;
		else notAllowed(ctx, "call of a value looked up at render time", callee);
		walkExpr(ctx, callee, depth + 1);
	} else {
		notAllowed(ctx, "call of a computed value", callee ?? n);
		walkExpr(ctx, callee, depth + 1);
	}
	for (const a of args) {
		if ((a.type === "SpreadExpression" || a.type === "KeywordSpreadExpression") && !spreadOk)
			notAllowed(ctx, "unpacked arguments (*x / **x) to something that is not a macro", a);
		walkExpr(ctx, a, depth + 1);
	}
}

function checkMember(ctx: Ctx, n: Node, depth: number): void {
	const obj = child(n, "object");
	const prop = child(n, "property");
	if (n.computed === true) {
		if (prop?.type === "SliceExpression") walkExpr(ctx, prop, depth + 1);
		else if (prop !== undefined) {
			checkKey(ctx, obj, prop);
			walkExpr(ctx, prop, depth + 1);
		}
	} else if (prop?.type === "Identifier") {
		const p = nameOf(ctx, prop) ?? "";
		const ov = evaluate(ctx, obj, 0);
		if (p.startsWith("_")) internal(ctx, `attribute \`${p}\` reaches Python internals`, prop);
		else if (ov.k === "loop") {
			if (!LOOP_ATTRS.has(p)) notAllowed(ctx, `loop.${p} is not an attribute of jinja2's loop`, prop);
		} else if (ov.k !== "ns" && !DATA_ATTRS.has(p))
			notAllowed(ctx, `attribute \`${p}\` is not on the attribute allow-list`, prop);
	} else if (prop?.type !== "IntegerLiteral") notAllowed(ctx, "member access by a computed name", n);
	walkExpr(ctx, obj, depth + 1);
}

function walkExpr(ctx: Ctx, n: Node | undefined, depth: number): void {
	if (n === undefined) return;
	if (depth > MAX_DEPTH) {
		report(ctx, "high", "template-unparsable", `nested deeper than ${MAX_DEPTH}`, n);
		return;
	}
	const d = depth + 1;
	switch (n.type) {
		case "Identifier": {
			const nm = nameOf(ctx, n) ?? "";
			if (!ctx.bindings.has(keyOf(ctx, n) ?? nm) && !CONTEXT_NAMES.has(nm)) {
				if (nm.startsWith("_")) internal(ctx, `name \`${nm}\` (Python internals)`, n);
				else notAllowed(ctx, `global \`${nm}\` is not on the allow-list of names a chat template reads`, n);
			}
			return;
		}
		case "IntegerLiteral":
		case "FloatLiteral":
			if (typeof n.value === "number" && Math.abs(n.value) > DOS_INT)
				report(ctx, "medium", "template-dos", `number ${n.value}: loops or repetitions that large may not end`, n);
			return;
		case "StringLiteral":
			return;
		case "ArrayLiteral":
		case "TupleLiteral":
			for (const e of children(n, "value")) walkExpr(ctx, e, d);
			return;
		case "ObjectLiteral":
			if (n.value instanceof Map)
				for (const [k, v] of n.value as Map<unknown, unknown>) {
					if (isNode(k)) walkExpr(ctx, k, d);
					if (isNode(v)) walkExpr(ctx, v, d);
				}
			return;
		case "BinaryExpression": {
			const op = (n.operator as { value?: string } | undefined)?.value ?? "";
			if (!ARITH_OPS.has(op) && !COMPARE_OPS.has(op) && op !== "and" && op !== "or")
				notAllowed(
					ctx,
					`operator ${op} is not on the allow-list${op === "**" ? " (9**9**9 hangs the renderer)" : ""}`,
					n,
				);
			walkExpr(ctx, child(n, "left"), d);
			walkExpr(ctx, child(n, "right"), d);
			return;
		}
		case "UnaryExpression":
			walkExpr(ctx, child(n, "argument"), d);
			return;
		case "Ternary":
			walkExpr(ctx, child(n, "condition"), d);
			walkExpr(ctx, child(n, "trueExpr"), d);
			walkExpr(ctx, child(n, "falseExpr"), d);
			return;
		case "SelectExpression":
			walkExpr(ctx, child(n, "lhs"), d);
			walkExpr(ctx, child(n, "test"), d);
			return;
		case "TestExpression": {
			const t = child(n, "test");
			const name = nameOf(ctx, t) ?? "";
			if (!TESTS.has(name)) notAllowed(ctx, `test \`is ${name}\` is not on the allow-list`, t);
			// jinja2 reads a name, string, number or bracket right after a test as its argument; the parser does not
			const tok = marks(t?.value)[0];
			const next = tok !== undefined ? ctx.jt[tok + 1] : undefined;
			if (
				next !== undefined &&
				(next.kind === "string" ||
					next.kind === "integer" ||
					next.kind === "float" ||
					(next.kind === "name" && !["else", "or", "and"].includes(next.value ?? "")) ||
					(next.kind === "op" && ["(", "[", "{"].includes(next.value ?? "")))
			)
				notAllowed(
					ctx,
					`test \`is ${name}\` followed by an argument jinja2 and the checker read differently`,
					(tok ?? 0) + 1,
				);
			walkExpr(ctx, child(n, "operand"), d);
			return;
		}
		case "MemberExpression":
			checkMember(ctx, n, d);
			return;
		case "CallExpression":
			checkCall(ctx, n, d);
			return;
		case "FilterExpression":
			walkExpr(ctx, child(n, "operand"), d);
			checkFilter(ctx, child(n, "filter"), d);
			return;
		case "KeywordArgumentExpression":
			walkExpr(ctx, child(n, "value"), d);
			return;
		case "SpreadExpression":
		case "KeywordSpreadExpression":
			walkExpr(ctx, child(n, "argument"), d);
			return;
		case "SliceExpression":
			walkExpr(ctx, child(n, "start"), d);
			walkExpr(ctx, child(n, "stop"), d);
			walkExpr(ctx, child(n, "step"), d);
			return;
		default:
			notAllowed(ctx, `construct ${n.type} is not on the allow-list`, n);
	}
}

function checkParams(ctx: Ctx, params: Node[], depth: number): void {
	for (const p of params) {
		if (p.type === "KeywordArgumentExpression") walkExpr(ctx, child(p, "value"), depth + 1);
		else if (p.type !== "Identifier") notAllowed(ctx, "macro parameter that is not a name", p);
	}
}

function walkStmts(ctx: Ctx, body: Node[], depth: number): void {
	for (const s of body) walkStmt(ctx, s, depth + 1);
}

function walkStmt(ctx: Ctx, n: Node, depth: number): void {
	if (depth > MAX_DEPTH) {
		report(ctx, "high", "template-unparsable", `nested deeper than ${MAX_DEPTH}`, n);
		return;
	}
	switch (n.type) {
		case "Program":
			walkStmts(ctx, children(n, "body"), depth);
			return;
		case "Comment":
		case "Break":
		case "Continue":
			return;
		case "StringLiteral":
			// template text (unmarked) or a {{ 'literal' }}: output only
			return;
		case "If":
			walkExpr(ctx, child(n, "test"), depth);
			walkStmts(ctx, children(n, "body"), depth);
			walkStmts(ctx, children(n, "alternate"), depth);
			return;
		case "For": {
			const lv = child(n, "loopvar");
			const targets = lv?.type === "TupleLiteral" ? children(lv, "value") : lv !== undefined ? [lv] : [];
			for (const t of targets) if (t.type !== "Identifier") notAllowed(ctx, "loop target that is not a name", t);
			walkExpr(ctx, child(n, "iterable"), depth);
			walkStmts(ctx, children(n, "body"), depth);
			walkStmts(ctx, children(n, "defaultBlock"), depth);
			return;
		}
		case "Set": {
			const a = child(n, "assignee");
			const targets = a?.type === "TupleLiteral" ? children(a, "value") : a !== undefined ? [a] : [];
			for (const t of targets) {
				if (t.type === "Identifier") continue;
				if (t.type === "MemberExpression" && t.computed === false && child(t, "object")?.type === "Identifier") {
					const p = nameOf(ctx, child(t, "property")) ?? "";
					if (p.startsWith("_")) internal(ctx, `assignment to attribute \`${p}\``, t);
					walkExpr(ctx, child(t, "object"), depth);
					continue;
				}
				notAllowed(ctx, "assignment to something other than a name or namespace attribute", t);
			}
			walkExpr(ctx, child(n, "value"), depth);
			walkStmts(ctx, children(n, "body"), depth);
			return;
		}
		case "Macro":
			checkParams(ctx, children(n, "args"), depth);
			walkStmts(ctx, children(n, "body"), depth);
			return;
		case "CallStatement": {
			const call = child(n, "call");
			if (call !== undefined) checkCall(ctx, call, depth);
			checkParams(ctx, Array.isArray(n.callerArgs) ? (n.callerArgs as unknown[]).filter(isNode) : [], depth);
			walkStmts(ctx, children(n, "body"), depth);
			return;
		}
		case "FilterStatement":
			checkFilter(ctx, child(n, "filter"), depth);
			walkStmts(ctx, children(n, "body"), depth);
			return;
		default:
			walkExpr(ctx, n, depth);
	}
}

/**
 * Checks one Jinja chat template against the allow-list. `where` prefixes locations
 * (e.g. "tokenizer.chat_template", "$.chat_template[1].template"). An empty result means the
 * template passed as a whole; any critical or high finding means it is not safe.
 */
export function checkChatTemplate(template: string, where: string): Finding[] {
	const findings: Finding[] = [];
	const fail = (message: string, offset?: number, src?: string) =>
		findings.push({
			id: "template-unparsable",
			severity: "high",
			message: `chat template ${message}: not checked, so not safe`,
			location: offset !== undefined && src !== undefined ? `${where} @ ${lineCol(src, offset)}` : where,
		});
	if (template.length > MAX_TEMPLATE) {
		fail(`longer than ${MAX_TEMPLATE} characters`);
		return findings;
	}
	// jinja2 reads \r\n and \r as \n before lexing; both readers get the same text
	const src = template.replace(/\r\n?/g, "\n");
	let jt: JToken[];
	try {
		jt = jinjaTokens(src);
	} catch (e) {
		fail(
			`cannot be read as jinja2 reads it (${e instanceof Error ? e.message : String(e)})`,
			e instanceof LexError ? e.offset : undefined,
			src,
		);
		return findings;
	}
	let hf: HfToken[];
	try {
		hf = tokenize(src);
	} catch (e) {
		fail(`cannot be tokenized (${e instanceof Error ? e.message.split("\n", 1)[0] : String(e)})`);
		return findings;
	}
	const aligned = alignTokens(hf, jt);
	if ("mismatch" in aligned) {
		fail("is read differently by jinja2 and by the checker's parser", aligned.mismatch, src);
		return findings;
	}
	const tagged = hf.map((t, i) => {
		const j = aligned.map[i] as number;
		if (t.type === "StringLiteral" || (t.type === "Identifier" && !PARSER_KEYWORDS.has(t.value)))
			return { type: t.type, value: mark(j) };
		return { type: t.type, value: t.value };
	});
	let program: Node;
	try {
		program = parse(tagged as unknown as HfToken[]) as unknown as Node;
	} catch (e) {
		fail(`cannot be parsed (${e instanceof Error ? e.message.split("\n", 1)[0] : String(e)})`);
		return findings;
	}
	const ctx: Ctx = {
		where,
		src,
		jt,
		findings,
		offsets: new Map(),
		seen: new Set(),
		texts: new Map(),
		selfKeyed: new Map(),
		bindings: new Map(),
		nsAttrs: new Map(),
		nsOpen: false,
		mutations: [],
		macros: new Map(),
		keys: new Map(),
		paramScope: new Map(),
		env: new Map(),
		nsEnv: new Map(),
		mutEnv: BOT,
	};
	scopeKeys(ctx, program);
	collectBindings(ctx, program);
	solve(ctx);
	walkStmt(ctx, program, 0);
	// the gravest first, then in source order
	const rank = { critical: 0, high: 1, medium: 2, low: 3 } as const;
	return findings
		.map((f, i) => ({ f, at: ctx.offsets.get(i) ?? -1 }))
		.sort((a, b) => rank[a.f.severity] - rank[b.f.severity] || a.at - b.at)
		.map((x) => x.f);
}

/**
 * Test hook: jinja2's code tokens as this module reads them (compared against jinja2 itself in the tests);
 * an error where it refuses the template (including a string escape it leaves to the parser to refuse).
 */
export function jinja2CodeTokens(template: string): Array<[string, string | null]> | { error: string } {
	try {
		const toks = jinjaTokens(template.replace(/\r\n?/g, "\n"));
		if (toks.some((t) => t.kind === "string" && t.value === undefined)) return { error: "string escape not supported" };
		return toks.map((t) => [t.kind, t.value ?? null]);
	} catch (e) {
		return { error: e instanceof Error ? e.message : String(e) };
	}
}

/** The allow-lists, read-only (the tests check jinja2's own reading of templates against them). */
export const CHAT_TEMPLATE_ALLOW_LISTS: {
	readonly names: ReadonlySet<string>;
	readonly callables: ReadonlySet<string>;
	readonly methods: ReadonlySet<string>;
	readonly loopAttrs: ReadonlySet<string>;
	readonly attrs: ReadonlySet<string>;
	readonly filters: ReadonlySet<string>;
	readonly tests: ReadonlySet<string>;
} = {
	names: CONTEXT_NAMES,
	callables: CALLABLE_GLOBALS,
	methods: METHODS,
	loopAttrs: LOOP_ATTRS,
	attrs: DATA_ATTRS,
	filters: new Set(Object.keys(FILTERS)),
	tests: TESTS,
};
