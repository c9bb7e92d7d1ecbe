import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hfConfigScanner, pythonFileScanner, tokenizerConfigScanner } from "../../../lib/core/formats/hf-config";
import { verdictOf } from "../../../lib/core/formats/types";
import { fuzzScanner, scanBuffer } from "../../fixtures/formats/fuzz";

const json = (v: unknown) => Buffer.from(JSON.stringify(v, null, 2));
const llama3 = readFileSync(join(__dirname, "../../fixtures/formats/templates/llama31-tools.jinja"), "utf8");

const cleanConfig = json({
	architectures: ["LlamaForCausalLM"],
	model_type: "llama",
	hidden_size: 4096,
	torch_dtype: "bfloat16",
});
const remoteConfig = json({
	architectures: ["EvilForCausalLM"],
	auto_map: { AutoConfig: "configuration_evil.EvilConfig", AutoModelForCausalLM: "modeling_evil.EvilForCausalLM" },
});
const cleanTok = json({
	bos_token: "<|begin_of_text|>",
	chat_template: llama3,
	tokenizer_class: "PreTrainedTokenizerFast",
});
const evilTok = json({ chat_template: "{{ cycler.__init__.__globals__.os.popen('id').read() }}" });

describe("Hugging Face config files", () => {
	it("detects by the name the loader uses", () => {
		expect(hfConfigScanner.detect(Buffer.from("{}"), "m/config.json", 2)).toBe(true);
		expect(hfConfigScanner.detect(Buffer.from("{}"), "preprocessor_config.json", 2)).toBe(true);
		expect(hfConfigScanner.detect(Buffer.from("{}"), "tokenizer_config.json", 2)).toBe(false);
		expect(tokenizerConfigScanner.detect(Buffer.from("{}"), "a/tokenizer_config.json", 2)).toBe(true);
		expect(tokenizerConfigScanner.detect(Buffer.from(""), "chat_template.jinja", 0)).toBe(true);
		expect(pythonFileScanner.detect(Buffer.from(""), "modeling_evil.py", 0)).toBe(true);
		expect(pythonFileScanner.detect(Buffer.from(""), "model.pyc.bin", 0)).toBe(false);
	});

	it("config.json without auto_map is safe", async () => {
		expect(verdictOf(await scanBuffer(hfConfigScanner, cleanConfig, "config.json"))).toBe("safe");
	});

	it("config.json with auto_map → remote-code (high) at $.auto_map", async () => {
		const r = await scanBuffer(hfConfigScanner, remoteConfig, "config.json");
		expect(r.findings).toEqual([
			expect.objectContaining({ id: "remote-code", severity: "high", location: "$.auto_map" }),
		]);
		expect(verdictOf(r)).toBe("unsafe");
	});

	it("auto_map of any shape and trust_remote_code: true at any depth", async () => {
		const r = await scanBuffer(
			hfConfigScanner,
			json({ text_config: { auto_map: "x.Y" }, trust_remote_code: true }),
			"config.json",
		);
		expect(r.findings.map((f) => f.location).sort()).toEqual(["$.text_config.auto_map", "$.trust_remote_code"]);
		const ok = await scanBuffer(hfConfigScanner, json({ trust_remote_code: false }), "config.json");
		expect(ok.findings).toEqual([]);
	});

	it("malformed JSON → malformed", async () => {
		const r = await scanBuffer(hfConfigScanner, Buffer.from('{"a": '), "config.json");
		expect(verdictOf(r)).toBe("malformed");
		expect(r.malformed).toContain("invalid JSON");
		expect(verdictOf(await scanBuffer(hfConfigScanner, Buffer.from("[1]"), "config.json"))).toBe("malformed");
		expect(verdictOf(await scanBuffer(hfConfigScanner, Buffer.from([0xff, 0xfe]), "config.json"))).toBe("malformed");
	});

	it("tokenizer_config.json: benign chat template is safe, gadget template is unsafe", async () => {
		expect(verdictOf(await scanBuffer(tokenizerConfigScanner, cleanTok, "tokenizer_config.json"))).toBe("safe");
		const r = await scanBuffer(tokenizerConfigScanner, evilTok, "tokenizer_config.json");
		expect(verdictOf(r)).toBe("unsafe");
		expect(r.findings).toContainEqual(expect.objectContaining({ id: "template-injection", severity: "critical" }));
		expect(r.findings[0]?.location).toContain("$.chat_template");
	});

	it("tokenizer_config.json: list of named templates, and auto_map", async () => {
		const r = await scanBuffer(
			tokenizerConfigScanner,
			json({
				chat_template: [
					{ name: "default", template: llama3 },
					{ name: "tool_use", template: "{{ x.__globals__ }}" },
				],
				auto_map: { AutoTokenizer: ["tok.T", null] },
			}),
			"tokenizer_config.json",
		);
		expect(r.findings.map((f) => [f.id, f.location?.split(" @")[0]])).toEqual(
			expect.arrayContaining([
				["remote-code", "$.auto_map"],
				["template-injection", "$.chat_template[1].template"],
			]),
		);
	});

	it("chat_template.jinja is checked as a template", async () => {
		expect(verdictOf(await scanBuffer(tokenizerConfigScanner, Buffer.from(llama3), "chat_template.jinja"))).toBe(
			"safe",
		);
		expect(
			verdictOf(
				await scanBuffer(tokenizerConfigScanner, Buffer.from("{{ lipsum.__globals__ }}"), "chat_template.jinja"),
			),
		).toBe("unsafe");
	});

	it("any .py file → remote-code", async () => {
		const r = await scanBuffer(pythonFileScanner, Buffer.from("import os\n"), "modeling_evil.py");
		expect(r.findings).toEqual([expect.objectContaining({ id: "remote-code", severity: "high" })]);
		expect(r.findings[0]?.message).toContain("trust_remote_code=True");
	});

	it("fuzz: every mutant gets a result", async () => {
		await fuzzScanner(hfConfigScanner, [{ name: "config.json", bytes: remoteConfig }], { runs: 200 });
		await fuzzScanner(
			tokenizerConfigScanner,
			[
				{ name: "tokenizer_config.json", bytes: cleanTok },
				{ name: "tokenizer_config.json", bytes: evilTok },
			],
			{ runs: 200 },
		);
	});
});
