/**
 * Files accepted as inert only when name AND bytes agree, and the loaders of "data" formats that do run code
 * (PyYAML's python/ tags, jsonpickle's py/ keys) flagged however the construct is spelt.
 */
import { describe, expect, it } from "vitest";
import { globToRegExp, inertView } from "../../../lib/core/formats/inert";
import { BufferSource } from "../../../lib/core/formats/source";

const view = (name: string, data: Buffer | string) => {
	const b = Buffer.from(data);
	return inertView(new BufferSource(b), name, b.subarray(0, 64 * 1024));
};
const ids = async (name: string, data: Buffer | string) => (await view(name, data))?.findings.map((f) => f.id);

describe("inert by name and content", () => {
	it("text, JSON, images, tokenizer models whose bytes are what the name says", async () => {
		expect(await view("README.md", "# model card\nüñí")).toEqual({ format: "text", findings: [] });
		expect(await view("sub/config.extra.json", '{"a": [1, 2]}')).toEqual({ format: "json", findings: [] });
		expect((await view("x.png", Buffer.from("89504e470d0a1a0a0000", "hex")))?.format).toBe("image");
		expect((await view("tokenizer.model", Buffer.from([0x0a, 0x05, 0x0a, 0x01, 0x41])))?.format).toBe("sentencepiece");
	});

	it("not inert when the bytes disagree with the name, or the name says nothing", async () => {
		expect(await view("README.md", Buffer.from([0x80, 0x04, 0x95, 0x00]))).toBeUndefined(); // a pickle header
		expect(await view("notes.txt", "text\0with a NUL")).toBeUndefined();
		expect(await view("x.png", "not a png")).toBeUndefined();
		expect(await view("tokenizer.model", "(cos\nsystem\n")).toBeUndefined();
		expect(await view("weights.dat", "plain text")).toBeUndefined();
	});
});

describe("data formats whose loaders run code", () => {
	it("YAML python/ tags: plain, verbatim, %-escaped, through a %TAG handle", async () => {
		for (const y of [
			"a: !!python/object/apply:os.system ['touch x']",
			"a: !<tag:yaml.org,2002:python/object/apply:os.system> ['touch x']",
			"a: !!python%2Fobject/apply:os.system ['touch x']",
			"%TAG !p! tag:yaml.org,2002:python/\n---\na: !p!object/apply:os.system ['touch x']",
			"%TAG !p! tag:yaml.org,2002:\n---\na: !p!python/object/apply:os.system ['touch x']",
			"%TAG ! tag:yaml.org,2002:\n---\na: !python/object/apply:os.system ['touch x']",
			"%TAG !e! tag:yaml.org,2002:pyt\n---\na: !e!hon/object/apply:os.system ['touch x']",
		])
			expect(await ids("cfg.yaml", y), y).toEqual(["yaml-python-tag"]);
		expect(await ids("cfg.yml", "python: 3.11\nsteps: [1, 2]")).toEqual([]);
	});

	it("jsonpickle keys, also spelt with JSON escapes", async () => {
		for (const j of [
			'{"x": {"py/reduce": [{"py/function": "os.system"}, {"py/tuple": ["id"]}]}}',
			'{"x": {"py\\/reduce": [{"py\\/function": "os.system"}, {"py\\/tuple": ["id"]}]}}',
			'{"x": {"\\u0070y/object": "os._wrap_close"}}',
			// jsonpickle.decode(keys=True): a "json://" key is a jsonpickle document of its own, quotes escaped
			'{"json://{\\"py/reduce\\": [{\\"py/function\\": \\"os.system\\"}, {\\"py/tuple\\": [\\"id\\"]}]}": 1}',
		])
			expect(await ids("state.json", j), j).toEqual(["jsonpickle"]);
		expect(await ids("tokenizer.json", '{"model": {"vocab": {"py": 1, "\\u0120py": 2}}}')).toEqual([]);
	});
});

describe("policy globs", () => {
	it("* within a segment, ** across, ? one character", () => {
		expect(globToRegExp("*.dat").test("a.dat")).toBe(true);
		expect(globToRegExp("*.dat").test("sub/a.dat")).toBe(false);
		expect(globToRegExp("**/*.dat").test("sub/deep/a.dat")).toBe(true);
		expect(globToRegExp("assets/?.lut").test("assets/a.lut")).toBe(true);
		expect(globToRegExp("a.b").test("aXb")).toBe(false);
	});
});
