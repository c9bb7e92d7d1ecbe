import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
	CHAT_TEMPLATE_ALLOW_LISTS,
	checkChatTemplate,
	jinja2CodeTokens,
} from "../../../lib/core/formats/chat-template";
import type { Finding } from "../../../lib/core/formats/types";

const dir = join(__dirname, "../../fixtures/formats/templates");
const read = (rel: string) => readFileSync(join(dir, rel), "utf8");
const jinjaFiles = (sub: string) =>
	readdirSync(join(dir, sub))
		.filter((n) => n.endsWith(".jinja"))
		.map((n) => (sub === "" ? n : `${sub}/${n}`));

const unsafe = (fs: Finding[]) => fs.some((f) => f.severity === "critical" || f.severity === "high");
const check = (t: string) => checkChatTemplate(t, "t");

describe("chat templates of real models pass the allow-list", () => {
	const real = [...jinjaFiles(""), ...jinjaFiles("real")];
	it("covers the common model families; every file's source is listed", () => {
		expect(real.length).toBeGreaterThanOrEqual(150);
		const readme = read("README.md");
		for (const f of real) expect(readme, f).toContain(f.replace(/^real\//, ""));
		const all = readme.toLowerCase();
		for (const family of [
			"llama-3.1",
			"llama-3.2",
			"llama-3.3",
			"mistral",
			"nemo",
			"qwen2.5",
			"qwen3",
			"gemma-2",
			"gemma3",
			"phi-3.5",
			"phi-4",
			"deepseek-r1",
			"deepseek-v3",
			"command-r",
			"granite",
			"falcon",
			"zephyr",
			"vicuna",
			"chatml",
			"smollm3",
			"hermes",
			"internlm",
			"glm",
			"functionary",
			"gpt-oss",
		])
			expect(all, family).toContain(family);
	});
	for (const f of real)
		it(f, () => {
			expect(checkChatTemplate(read(f), f)).toEqual([]);
		});
});

describe("injections that run code under a plain jinja2 Environment are refused", () => {
	const doc = JSON.parse(read("injections.json")) as {
		results: Record<string, { executed: boolean; outcome: string }>;
	};
	const entries = Object.entries(doc.results);
	it("the fixture script recorded real executions", () => {
		expect(entries.length).toBe(jinjaFiles("injections").length);
		expect(entries.filter(([, r]) => r.executed).length).toBeGreaterThanOrEqual(45);
	});
	for (const [name, r] of entries)
		it(`${r.executed ? "executed" : "did not execute"}: ${name}`, () => {
			const fs = checkChatTemplate(read(`injections/${name}`), name);
			expect(unsafe(fs)).toBe(true);
			for (const f of fs)
				expect(f.location).toMatch(new RegExp(`^${name.replace(".", "\\.")}( @ line \\d+ col \\d+)?$`));
		});
});

describe("allow-list semantics", () => {
	it("gadget names are critical and name the construct and its position", () => {
		const fs = check("{{ bos_token }}\n{{ ''.__class__.__mro__[1] }}");
		expect(fs[0]).toMatchObject({ id: "template-injection", severity: "critical", location: "t @ line 2 col 7" });
		expect(fs[0]?.message).toContain("__class__");
		expect(check("{{ cycler.__init__.__globals__.os.popen('id').read() }}")).toContainEqual(
			expect.objectContaining({ severity: "critical" }),
		);
		expect(check("{{ ''|attr('__class__') }}")[0]?.severity).toBe("critical");
		expect(check("{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}")[0]?.severity).toBe("critical");
		expect(check("{{ messages['__cl' ~ 'ass__'] }}")[0]).toMatchObject({ severity: "critical" });
	});

	it("refuses what is outside the allow-list even without a known gadget", () => {
		const refused = [
			"{{ messages.gi_frame }}", // attribute not listed
			"{{ message.content.format(x) }}", // method not listed
			"{{ cycler }}", // global not listed
			"{{ request.args }}",
			"{{ self }}",
			"{{ messages|attr('x') }}", // filter not listed
			"{{ messages|map('attr', 'x') }}",
			"{{ messages|selectattr('x', 'y') }}", // test not listed
			"{{ messages|tojson(default=raise_exception) }}", // keyword not listed
			"{% set k = messages[0].content %}{{ messages[k] }}", // key chosen at render time
			"{{ messages[messages[0].content] }}",
			"{{ (messages|first)(1) }}", // call of a value
			"{{ 2 ** 3 }}",
			"{% include 'x.jinja' %}", // statements the parser does not know: unparsable
			"{% set range = namespace() %}",
		];
		for (const t of refused) expect(unsafe(check(t)), t).toBe(true);
	});

	it("accepts the constructs real templates use", () => {
		const accepted = [
			"{% for m in messages %}{{ m['role'] ~ ': ' ~ m.content|trim }}{% if not loop.last %}\n{% endif %}{% endfor %}",
			"{% set ns = namespace(found=false, anything=1) %}{% set ns.found = true %}{{ ns.whatever_name }}",
			"{% for tool in tools %}{% for k in tool.parameters.properties %}{{ tool.parameters.properties[k] }}{% endfor %}{% endfor %}",
			"{% for k, v in messages[0].items() %}{{ messages[0][k] }}{% endfor %}",
			"{% set m = {'string': 'str'} %}{{ m[tools[0].type] }}",
			"{% for i in range(messages|length) %}{{ messages[i].content }}{{ messages[loop.index0 - 1] }}{% endfor %}",
			"{% for f, n in [('maximum', 'Maximum'), ('minimum', 'Minimum')] %}{{ tools[f] }}{% endfor %}",
			"{% macro a(x) %}{{ x }}{% endmacro %}{% macro b(x) %}{{ x }}{% endmacro %}{% set l = [a] + [b] %}{% for i in range(2) %}{{ l[i](*[1]) }}{% endfor %}",
			"{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|join(', ') }}",
			"{{ tools|tojson(indent=4) }}{{ '{}'|replace('{', '[') }}{{ raise_exception('no') }}{{ strftime_now('%Y') }}",
			"{% for message in messages %}{% generation %}{{ message.content }}{% endgeneration %}{% endfor %}",
			"{{ tools is defined and tools is not none }}",
		];
		for (const t of accepted) expect(check(t), t).toEqual([]);
	});

	it("keys built from template strings are judged by their value", () => {
		expect(check("{{ messages['con' ~ 'tent'] }}")).toEqual([]);
		expect(unsafe(check("{{ messages['gi_' ~ 'frame'] }}"))).toBe(true);
		expect(unsafe(check("{% set k = 'x' %}{% set k = k ~ k %}{{ messages[k ~ '__'] }}"))).toBe(true);
		// Undefined prints as "": undefined ~ '__class__' is '__class__'
		expect(check("{% set ns = namespace() %}{{ messages[ns.none ~ '__class__'] }}")[0]?.severity).toBe("critical");
		// values appended to a list are its elements
		expect(
			unsafe(check("{% set l = ['a'] %}{{ l.append('__class__') }}{% for k in l %}{{ messages[k] }}{% endfor %}")),
		).toBe(true);
		// a macro's parameter takes what each call passes
		expect(unsafe(check("{% macro f(k) %}{{ messages[k] }}{% endmacro %}{{ f('content') }}{{ f('gi_frame') }}"))).toBe(
			true,
		);
		expect(check("{% macro f(k) %}{{ messages[k] }}{% endmacro %}{{ f('content') }}{{ f(k='role') }}")).toEqual([]);
	});

	it("a template jinja2 and the parser read differently, or that either cannot read, is not safe", () => {
		for (const t of [
			"{% raw %}{{ x }}{% endraw %}", // jinja2: text; the parser: a statement
			"{{\x1cx }}",
			"{{ 'a\\141' }}", // octal escape: jinja2 only
			"{%+ if x %}{% endif %}",
			"{{ 1_000 }}",
			"{{ x ",
			"{# unterminated",
			"{{ ſelf }}", // jinja2 takes Unicode names
		])
			expect(check(t).map((f) => [f.id, f.severity])[0], t).toEqual(["template-unparsable", "high"]);
		expect(check("x".repeat(4 * 1024 * 1024 + 1))[0]?.id).toBe("template-unparsable");
	});

	it("a test followed by what jinja2 reads as its argument is refused", () => {
		expect(unsafe(check("{{ tools is defined in [1] }}"))).toBe(true);
		expect(check("{{ tools is defined and documents is not none or messages is string }}")).toEqual([]);
	});

	it("reports huge literals as a DoS (medium) without failing the template", () => {
		const fs = check("{% for i in range(100000000000) %}{% endfor %}");
		expect(fs.length).toBeGreaterThan(0);
		expect(fs.every((f) => f.id === "template-dos" && f.severity === "medium")).toBe(true);
	});

	it("text and comments are output, never code", () => {
		expect(check("Use os.popen and __class__ freely {# __globals__ #}{{ messages[0]['content'] }}")).toEqual([]);
		expect(check("{{ 'Never call eval() or os.system() or __import__' }}")).toEqual([]);
	});

	it("stays fast on large adversarial templates", () => {
		const t0 = performance.now();
		check("{% raw %}x{% endraw %}".repeat(100_000));
		check("{{ '".repeat(100_000));
		check("{{ a.b ".repeat(100_000));
		check(`{{ ${"(".repeat(5000)}1${")".repeat(5000)} }}`);
		check(`{% set a = 'x' %}${"{% set a = a ~ a %}".repeat(20_000)}{{ m[a] }}`);
		check(`${"{% macro m(x) %}{{ x }}{% endmacro %}{{ m(1) }}".repeat(20_000)}`);
		check(`{% set ns = namespace(x='') %}${"{% set ns.x = ns.x ~ 'a' %}".repeat(50_000)}`);
		check("{% for k in tools %}{{ tools[k] }}{% endfor %}".repeat(20_000));
		expect(performance.now() - t0).toBeLessThan(30_000);
	});

	it("never throws on arbitrary input", () => {
		fc.assert(
			fc.property(fc.string({ maxLength: 400 }), (s) => {
				expect(Array.isArray(check(s))).toBe(true);
				expect(Array.isArray(check(`{{${s}`))).toBe(true);
				expect(Array.isArray(check(`{% for m in messages %}{{ m[${s}] }}{% endfor %}`))).toBe(true);
			}),
			{ numRuns: 500 },
		);
	});
});

interface Facts {
	attrs: string[];
	keys: string[];
	filters: string[];
	tests: string[];
	calls: string[];
	free: string[];
}
/** What a template the checker passes may use, in jinja2's own reading of it (an oracle independent of the parser). */
function violations(f: Facts): string[] {
	const a = CHAT_TEMPLATE_ALLOW_LISTS;
	return [
		...[...f.attrs, ...f.keys].filter((n) => n.trimStart().startsWith("_")).map((n) => `internal name ${n}`),
		...f.filters.filter((n) => !a.filters.has(n)).map((n) => `filter ${n}`),
		...f.tests.filter((n) => !a.tests.has(n)).map((n) => `test ${n}`),
		...f.free.filter((n) => !a.names.has(n)).map((n) => `free name ${n}`),
		...f.calls
			.filter((c) =>
				c.startsWith(".")
					? !a.methods.has(c.slice(1)) && c !== ".cycle" && c !== ".changed"
					: c !== "?" && f.free.includes(c) && !a.callables.has(c),
			)
			.map((c) => `call ${c}`),
	];
}

describe("the lexer port reads templates as jinja2 does (differential vectors from jinja2 itself)", () => {
	const doc = JSON.parse(read("lexer-vectors.json")) as {
		templates: Record<string, { digest: string; count: number; facts: Facts | null } | { error: string }>;
		mutants: Array<{ source: string; tokens?: Array<[string, string | null]>; error?: string; facts?: Facts }>;
	};
	// the digest jinja2's side wrote: json.dumps([kind, value]) per token (ensure_ascii), newline-separated
	const py = (v: string | null) =>
		v === null
			? "null"
			: JSON.stringify(v).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
	const digest = (toks: Array<[string, string | null]>) => {
		const h = createHash("sha256");
		for (const [k, v] of toks) h.update(`[${py(k)}, ${py(v)}]\n`);
		return h.digest("hex");
	};

	it("every fixture template: the same tokens, or refused", () => {
		let same = 0;
		for (const [f, r] of Object.entries(doc.templates)) {
			const mine = jinja2CodeTokens(read(f));
			if ("error" in r || "error" in mine) continue;
			expect(digest(mine), f).toBe(r.digest);
			same++;
		}
		expect(same).toBeGreaterThanOrEqual(200);
	});

	it("mutants: the same tokens whenever jinja2 lexes them, or refused", () => {
		let same = 0;
		let lexed = 0;
		for (const m of doc.mutants) {
			if (m.tokens === undefined) continue;
			lexed++;
			const mine = jinja2CodeTokens(m.source);
			if ("error" in mine) continue;
			expect(mine, JSON.stringify(m.source)).toEqual(m.tokens);
			same++;
		}
		// refusals are safe but must stay rare: they are Unicode names and escapes the parser does not take
		expect(lexed).toBeGreaterThan(1500);
		expect(same / lexed).toBeGreaterThan(0.97);
	});

	it("whatever passes uses only allowed names in jinja2's own tree (fixtures and mutants jinja2 parses)", () => {
		let passed = 0;
		let parsed = 0;
		const sources = [
			...Object.entries(doc.templates).map(([f, r]) => ({ source: read(f), facts: "facts" in r ? r.facts : null })),
			...doc.mutants.map((m) => ({ source: m.source, facts: m.facts ?? null })),
		];
		for (const { source, facts } of sources) {
			if (facts === null) continue;
			parsed++;
			if (unsafe(check(source))) continue;
			passed++;
			expect(violations(facts), JSON.stringify(source)).toEqual([]);
		}
		expect(parsed).toBeGreaterThan(600);
		expect(passed).toBeGreaterThan(300);
	});
});
