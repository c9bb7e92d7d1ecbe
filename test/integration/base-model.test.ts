/** `ftguard base-model check|entry` against signed registries made in the test. */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REGISTRY_SCHEMA } from "../../lib/core/integrity/registry";
import { METRIC_NAMESPACE, MetricName } from "../../lib/core/pipeline/names";
import { ftguard } from "../helpers/cli";
import { generateEcKeyPair, type Json, signBlobKeyed, signBlobKeyless } from "../helpers/sign";

const ID = "acme/llama-tiny@3f2a9c1";

interface Setup {
	root: string;
	dir: string;
	registry: string;
	bundle: string;
	pub: string;
	trust: string[];
}

function baseModel(root: string): string {
	const dir = join(root, "base");
	mkdirSync(dir, { recursive: true });
	writeFileSync(join(dir, "config.json"), '{"model_type":"llama"}');
	writeFileSync(join(dir, "model.safetensors"), Buffer.alloc(4096, 1));
	writeFileSync(join(dir, "tokenizer.json"), "{}");
	return dir;
}

/** A directory, its entry (made by `ftguard base-model entry`), and a registry signed by a fresh key. */
async function setup(registryOverride?: (entry: Json) => unknown): Promise<Setup> {
	const root = mkdtempSync(join(tmpdir(), "ftguard-bm-"));
	const dir = baseModel(root);
	const entry = await ftguard(["base-model", "entry", dir, "--id", ID, "--json"]);
	expect(entry.code).toBe(0);
	const doc = registryOverride ? registryOverride(entry.json()) : { schema: REGISTRY_SCHEMA, models: [entry.json()] };
	const bytes = Buffer.from(JSON.stringify(doc, null, 2));
	const registry = join(root, "registry.json");
	writeFileSync(registry, bytes);
	const kp = generateEcKeyPair();
	const pub = join(root, "registry-signer.pem");
	writeFileSync(pub, kp.publicKeyPem);
	const bundle = join(root, "registry.json.sigstore.json");
	writeFileSync(bundle, JSON.stringify(signBlobKeyed(bytes, { keyPair: kp }).bundle));
	return { root, dir, registry, bundle, pub, trust: ["--public-key", pub] };
}

const check = (s: Setup, dir = s.dir, id = ID, extra: string[] = []) =>
	ftguard([
		"base-model",
		"check",
		dir,
		"--id",
		id,
		"--registry",
		s.registry,
		"--registry-bundle",
		s.bundle,
		...s.trust,
		...extra,
		"--json",
	]);

describe("base-model entry", () => {
	it("lists every file with its SHA-256, sorted, ready to paste", async () => {
		const s = await setup();
		const entry = JSON.parse(readFileSync(s.registry, "utf8")).models[0];
		expect(entry.id).toBe(ID);
		expect(entry.files.map((f: { path: string }) => f.path)).toEqual([
			"config.json",
			"model.safetensors",
			"tokenizer.json",
		]);
		expect(entry.files[0].sha256).toMatch(/^[0-9a-f]{64}$/);
	});

	it("refuses an id that is not org/name@revision", async () => {
		const s = await setup();
		const r = await ftguard(["base-model", "entry", s.dir, "--id", "not an id"]);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(/^ftguard: USAGE/);
	});
});

describe("base-model check", () => {
	it("approves an unchanged directory: every file PASS", async () => {
		const s = await setup();
		const r = await check(s);
		expect(r.code).toBe(0);
		const out = r.json() as { approved: boolean; files: { status: string }[] };
		expect(out.approved).toBe(true);
		expect(out.files.map((f) => f.status)).toEqual(["PASS", "PASS", "PASS"]);
	});

	it("reports FAIL, MISSING and EXTRA per file and does not approve", async () => {
		const s = await setup();
		writeFileSync(join(s.dir, "model.safetensors"), Buffer.alloc(4096, 2));
		rmSync(join(s.dir, "tokenizer.json"));
		writeFileSync(join(s.dir, "modeling_llama.py"), "import os");
		const r = await check(s);
		expect(r.code).toBe(1);
		const out = r.json() as { approved: boolean; files: { path: string; status: string }[] };
		expect(out.approved).toBe(false);
		expect(Object.fromEntries(out.files.map((f) => [f.path, f.status]))).toEqual({
			"config.json": "PASS",
			"model.safetensors": "FAIL",
			"modeling_llama.py": "EXTRA",
			"tokenizer.json": "MISSING",
		});
	});

	it("does not approve an unknown id", async () => {
		const s = await setup();
		const r = await check(s, s.dir, "acme/other@1");
		expect(r.code).toBe(1);
		expect(r.json()).toMatchObject({ approved: false, reasons: ["acme/other@1 is not in the registry"] });
	});

	it("refuses pickle weights beside a safetensors entry, even under a safetensors name", async () => {
		const s = await setup();
		// A pickle renamed to .safetensors is still recognised by content.
		writeFileSync(join(s.dir, "extra.safetensors"), Buffer.from([0x80, 0x04, 0x95, 0x00, 0x2e]));
		const r = await check(s);
		expect(r.code).toBe(1);
		const out = r.json() as { reasons: string[]; files: { path: string; pickle?: string }[] };
		expect(out.reasons.join(" ")).toContain("pickle-format weights");
		expect(out.files.find((f) => f.path === "extra.safetensors")?.pickle).toBe("pickle");
	});

	it("--ignore-paths leaves out a download cache", async () => {
		const s = await setup();
		mkdirSync(join(s.dir, ".cache", "huggingface"), { recursive: true });
		writeFileSync(join(s.dir, ".cache", "huggingface", "x.lock"), "");
		expect((await check(s)).code).toBe(1);
		expect((await check(s, s.dir, ID, ["--ignore-paths", ".cache"])).code).toBe(0);
	});
});

describe("an untrustworthy registry is 'could not check' (exit 2), never 'not approved'", () => {
	it("a registry changed after signing", async () => {
		const s = await setup();
		const doc = JSON.parse(readFileSync(s.registry, "utf8"));
		doc.models[0].files[1].sha256 = "0".repeat(64);
		writeFileSync(s.registry, JSON.stringify(doc, null, 2));
		const r = await check(s);
		expect(r.code).toBe(2);
		expect(r.json()).toMatchObject({ ok: false, error: { code: "REGISTRY_UNTRUSTED" } });
	});

	it("a registry signed by another key", async () => {
		const s = await setup();
		writeFileSync(s.pub, generateEcKeyPair().publicKeyPem);
		const r = await check(s);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(/^ftguard: REGISTRY_UNTRUSTED: .*SIGNATURE_INVALID/);
	});

	it("a missing or truncated bundle", async () => {
		const s = await setup();
		rmSync(s.bundle);
		expect((await check(s)).code).toBe(2);
		writeFileSync(s.bundle, '{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "verificationMat');
		const r = await check(s);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(/^ftguard: REGISTRY_UNTRUSTED: .*BUNDLE_MALFORMED/);
	});

	it("a validly signed registry that breaks the schema is REGISTRY_MALFORMED", async () => {
		const s = await setup((entry) => ({ schema: REGISTRY_SCHEMA, models: [entry, entry] }));
		const r = await check(s);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(/^ftguard: REGISTRY_MALFORMED: .*duplicate model id/);
	});

	it("an entry with a path that climbs out is REGISTRY_MALFORMED", async () => {
		const s = await setup((entry) => ({
			schema: REGISTRY_SCHEMA,
			models: [{ ...entry, files: [{ path: "../secrets", sha256: "0".repeat(64) }] }],
		}));
		const r = await check(s);
		expect(r.code).toBe(2);
		expect(r.stderr).toMatch(/^ftguard: REGISTRY_MALFORMED/);
	});
});

describe("keyless registry signature", () => {
	it("checks the signer identity of the registry", async () => {
		const root = mkdtempSync(join(tmpdir(), "ftguard-bmk-"));
		const s0 = await setup();
		cpSync(s0.dir, join(root, "base"), { recursive: true });
		const bytes = readFileSync(s0.registry);
		const { bundle, trustedRoot } = await signBlobKeyless(bytes, {
			identity: "registry-admins@acme.example",
			issuer: "https://idp.acme.example",
		});
		writeFileSync(s0.bundle, JSON.stringify(bundle));
		writeFileSync(join(root, "root.json"), JSON.stringify(trustedRoot));
		const base = ["--identity-provider", "https://idp.acme.example", "--trusted-root", join(root, "root.json")];
		const ok = await check({ ...s0, trust: ["--identity", "registry-admins@acme.example", ...base] });
		expect(ok.code).toBe(0);
		const wrong = await check({ ...s0, trust: ["--identity", "intern@acme.example", ...base] });
		expect(wrong.code).toBe(2);
		expect(wrong.stderr).toMatch(/REGISTRY_UNTRUSTED: .*IDENTITY_MISMATCH/);
	});
});

describe("base-model check --metrics", () => {
	/** The EMF lines of stderr (stdout stays the --json document). */
	const emf = (stderr: string) =>
		stderr
			.split("\n")
			.filter((l) => l.includes('"_aws"'))
			.map((l) => JSON.parse(l) as Record<string, unknown>);

	it("writes base_model_verification_result on stderr: 1 approved, 0 not approved or not checked", async () => {
		const s = await setup();
		const ok = await check(s, s.dir, ID, ["--metrics"]);
		expect(ok.code).toBe(0);
		expect(ok.json()).toMatchObject({ approved: true });
		const [doc, ...more] = emf(ok.stderr);
		expect(more).toEqual([]);
		expect(doc).toMatchObject({
			service: "ftguard",
			model_id: ID,
			result: "pass",
			[MetricName.BASE_MODEL_VERIFICATION_RESULT]: 1,
			_aws: {
				CloudWatchMetrics: [
					{
						Namespace: METRIC_NAMESPACE,
						Dimensions: [["service"], ["service", "model_id", "result"]],
						Metrics: [{ Name: MetricName.BASE_MODEL_VERIFICATION_RESULT }],
					},
				],
			},
		});

		const unknown = await check(s, s.dir, "acme/other@1", ["--metrics"]);
		expect(unknown.code).toBe(1);
		expect(emf(unknown.stderr)).toMatchObject([
			{ model_id: "acme/other@1", result: "fail", [MetricName.BASE_MODEL_VERIFICATION_RESULT]: 0 },
		]);

		writeFileSync(s.registry, "{}");
		const untrusted = await check(s, s.dir, ID, ["--metrics"]);
		expect(untrusted.code).toBe(2);
		expect(emf(untrusted.stderr)).toMatchObject([{ result: "fail", [MetricName.BASE_MODEL_VERIFICATION_RESULT]: 0 }]);

		// without the flag: no EMF line
		expect(emf((await check(s)).stderr)).toEqual([]);
	});
});
