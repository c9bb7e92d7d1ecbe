import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checkChatTemplate } from "../../../lib/core/formats/chat-template";

const dir = join(__dirname, "../../fixtures/formats/templates");

describe("chat template injection check", () => {
	for (const f of readdirSync(dir).filter((n) => n.endsWith(".jinja"))) {
		it(`benign real template passes clean: ${f}`, () => {
			expect(checkChatTemplate(readFileSync(join(dir, f), "utf8"), f)).toEqual([]);
		});
	}

	const critical: Array<[string, string]> = [
		["__class__ chain", "{{ ''.__class__.__mro__[1].__subclasses__() }}"],
		["cycler globals", "{{ cycler.__init__.__globals__.os.popen('id').read() }}"],
		["joiner", "{{ joiner.__init__.__globals__ }}"],
		["namespace init", "{% set x = namespace.__init__.__globals__ %}"],
		["lipsum", "{{ lipsum.__globals__['os'].popen('id') }}"],
		["attr with dunder string", "{{ ''|attr('__class__') }}"],
		["builtins via string index", "{{ x['__builtins__']['eval']('1') }}"],
		["self context", "{{ self._TemplateReference__context }}"],
		["dunder in whitespace-controlled block", "{%- set a = x.__base__ -%}"],
		["padded and trimmed", "{{ ''|attr(' __class__ '|trim) }}"],
		["decoded escape", "{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}"],
	];
	for (const [what, tpl] of critical) {
		it(`critical: ${what}`, () => {
			const fs = checkChatTemplate(tpl, "t");
			expect(fs.some((f) => f.id === "template-injection" && f.severity === "critical")).toBe(true);
		});
	}

	const high: Array<[string, string]> = [
		["concatenated dunder", "{% set a = '__cla' ~ 'ss__' %}{{ ''|attr(a) }}"],
		["joined list", "{% set a = ['__cla','ss__']|join %}"],
		["format %c", "{% set a = '%c%c%c%c%c%c%c%c%c' | format(95,95,99,108,97,115,115,95,95) %}"],
		["request global", "{{ request.args.x }}"],
		["cycler bare", "{{ cycler }}"],
		["escaped letters", "{{ '\\x61\\x62' }}"],
		["include", "{% include 'x.jinja' %}"],
	];
	for (const [what, tpl] of high) {
		it(`high: ${what}`, () => {
			const fs = checkChatTemplate(tpl, "t");
			expect(fs.length).toBeGreaterThan(0);
			expect(fs.every((f) => f.id === "template-injection")).toBe(true);
			expect(fs.some((f) => f.severity === "high" || f.severity === "critical")).toBe(true);
		});
	}

	it("ignores gadget words in output text and comments", () => {
		expect(
			checkChatTemplate("Use os.popen and __class__ freely {# __globals__ #}{{ message['content'] }}", "t"),
		).toEqual([]);
		expect(checkChatTemplate("{% raw %}{{ x.__class__ }}{% endraw %}", "t")).toEqual([]);
	});

	it("string keys naming gadgets are critical; prose in strings is not", () => {
		expect(checkChatTemplate("{{ x['popen']('id') }}", "t").some((f) => f.severity === "critical")).toBe(true);
		expect(checkChatTemplate("{{ 'Never call eval() or os.system()' }}", "t")).toEqual([]);
		expect(checkChatTemplate("{{ '%s: %s'|format(a, b) }}", "t")).toEqual([]);
	});

	it("stays linear on large adversarial templates", () => {
		const t0 = performance.now();
		checkChatTemplate("{% raw %}x{% endraw %}".repeat(100_000), "t");
		checkChatTemplate("{{ '".repeat(100_000), "t");
		checkChatTemplate("{{ a.b ".repeat(100_000), "t");
		expect(performance.now() - t0).toBeLessThan(5000);
	});

	it("keeps a bare \\x, \\u or \\U without hex digits as written (found by the property below)", () => {
		for (const s of ['{{ "\\U', "{{ '\\u12'", '{{ "\\x" }}', "{{ '\\U0001' }}"])
			expect(Array.isArray(checkChatTemplate(s, "t"))).toBe(true);
	});

	it("never throws on arbitrary input", () => {
		fc.assert(
			fc.property(fc.string({ maxLength: 400 }), (s) => {
				expect(Array.isArray(checkChatTemplate(s, "t"))).toBe(true);
				expect(Array.isArray(checkChatTemplate(`{{${s}`, "t"))).toBe(true);
			}),
			{ numRuns: 500 },
		);
	});
});
