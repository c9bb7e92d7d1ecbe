/**
 * The files step's export binding (lib/core/pipeline/binding.ts): every ONNX export of the artefact against every
 * checkpoint beside it; a mismatch, and a binding that could not be checked, are reasons of the files stage.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FtguardError } from "../../../lib/core/errors";
import { BufferSource } from "../../../lib/core/formats/source";
import { bindArtefact } from "../../../lib/core/pipeline/binding";

const FIXTURES = "test/fixtures/binding";

/** An artefact under `m/`: keys with the format the files step found, read from a fixture directory or given. */
function artefact(dir: string, files: Record<string, string | undefined>, bytes: Record<string, Buffer> = {}) {
	const list = Object.entries(files).map(([name, format]) => ({ key: `m/${name}`, format }));
	const open = async (key: string) => {
		const name = key.slice(2);
		if (!(name in files)) throw new FtguardError("NOT_FOUND", `${key} is not an object of the artefact`);
		return new BufferSource(bytes[name] ?? readFileSync(join(FIXTURES, dir, name)));
	};
	return bindArtefact(list, open);
}

describe("the files step's export binding", () => {
	it("binds an export to the checkpoints beside it: no reason, one report per checkpoint", async () => {
		const b = await artefact("mlp", {
			"model.onnx": "onnx",
			"model.safetensors": "safetensors",
			"pytorch_model.bin": "pytorch-zip",
		});
		expect(b?.reasons).toEqual([]);
		expect(b?.reports.map((r) => [r.model, r.weights.files, r.verdict])).toEqual([
			["m/model.onnx", ["m/model.safetensors"], "bound"],
			["m/model.onnx", ["m/pytorch_model.bin"], "bound"],
		]);
	});

	it("gives a mismatch as a reason naming the pair and the changed tensor", async () => {
		const b = await artefact("mlp-ulp", { "model.onnx": "onnx", "model.safetensors": "safetensors" });
		expect(b?.reasons).toHaveLength(1);
		expect(b?.reasons[0]).toMatch(
			/^export binding: m\/model\.onnx ↔ m\/model\.safetensors: EXPORT_MISMATCH: F32 constant net\.2\.weight \[32, 32\] matches no checkpoint tensor/,
		);
	});

	it("binds nothing without an export or without weights beside it", async () => {
		expect(await artefact("mlp", { "model.safetensors": "safetensors", "config.json": "hf-config" })).toBeUndefined();
		expect(await artefact("mlp", { "model.onnx": "onnx", "config.json": "hf-config" })).toBeUndefined();
	});

	it("fails closed: weights binding cannot read, or cannot parse, are reasons (could not check)", async () => {
		const gguf = await artefact("mlp", { "model.onnx": "onnx", "model.gguf": "gguf" });
		expect(gguf?.reasons).toEqual([
			"export binding: could not check: weights binding cannot read (m/model.gguf: gguf) beside m/model.onnx",
		]);
		const broken = await artefact(
			"mlp",
			{ "model.onnx": "onnx", "model.safetensors": "safetensors" },
			{ "model.safetensors": Buffer.from("garbage") },
		);
		expect(broken?.reasons).toEqual([
			"export binding: m/model.onnx ↔ m/model.safetensors: could not check: MODEL_MALFORMED: m/model.safetensors: safetensors: HeaderTooSmall",
		]);
		const index = await artefact("mlp-sharded", { "model.onnx": "onnx", "model.safetensors.index.json": "json" }, {});
		expect(index?.reasons[0]).toMatch(/^export binding: could not check: MODEL_MALFORMED: .*not in the artefact$/);
	});

	it("raw weights beside an export (Flax msgpack) are a reason; the export's own external data is not", async () => {
		const mlp = readFileSync(join(FIXTURES, "mlp", "model.onnx"));
		const flax = await artefact(
			"mlp-flax",
			{ "model.onnx": "onnx", "flax_model.msgpack": "raw-weights" },
			{ "model.onnx": mlp },
		);
		expect(flax?.reasons).toEqual([
			"export binding: could not check: weights binding cannot read (m/flax_model.msgpack: raw-weights) beside m/model.onnx",
		]);
		const external = await artefact("mlp-external", {
			"model.onnx": "onnx",
			"model.onnx.data": "raw-weights",
			"model.safetensors": "safetensors",
		});
		expect(external?.reasons).toEqual([]);
		expect(external?.reports.map((r) => r.verdict)).toEqual(["bound"]);
	});
});
