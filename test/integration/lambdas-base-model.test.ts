/**
 * The base-model gate (lambdas/base-model.ts) against a real S3-compatible server and the signed example registry
 * (examples/registry.json, signed by examples/keys/signer.pub.pem): each test uploads a model directory, the marker
 * last, runs the handler on the marker's Object Created event, and reads back every object's tags and the EMF line.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { handler } from "../../lambdas/base-model";
import { pinInput, tagInput } from "../../lib/aws/input-gate";
import { BASE_MODEL_MARKER, MetricName } from "../../lib/core/pipeline/names";
import { REPO } from "../helpers/cli";
import { statuses as gateStatuses, markerEvent, targetOf, withMetrics } from "../helpers/gate";
import { type LocalS3, startLocalS3, useForHandlers } from "../helpers/s3";

const BUCKET = "base-models";
const EXAMPLES = join(REPO, "examples");
const ID = "example-org/tiny-base@v1.0";
const POLICY = {
	baseModelRegistry: {
		uri: `s3://${BUCKET}/ftguard/registry.json`,
		bundleUri: `s3://${BUCKET}/ftguard/registry.json.sigstore.json`,
		signers: [{ kind: "public-key", pem: readFileSync(join(EXAMPLES, "keys/signer.pub.pem"), "utf8") }],
	},
};

let s3: LocalS3;
beforeAll(async () => {
	s3 = await startLocalS3([BUCKET, "reports"]);
	useForHandlers(s3, "reports", { FTGUARD_POLICY: JSON.stringify(POLICY) });
	await s3.put(BUCKET, "ftguard/registry.json", readFileSync(join(EXAMPLES, "registry.json")));
	await s3.put(
		BUCKET,
		"ftguard/registry.json.sigstore.json",
		readFileSync(join(EXAMPLES, "registry.json.sigstore.json")),
	);
});
afterAll(async () => s3?.close());
afterEach(() => {
	process.env.FTGUARD_POLICY = JSON.stringify(POLICY);
	vi.restoreAllMocks();
});

/** Uploads `dir`'s files (replaced/omitted by `change`) under `prefix`, then the marker; returns its event. */
async function upload(
	dir: string,
	prefix: string,
	change: Record<string, Buffer | null> = {},
	marker: string = JSON.stringify({ id: ID }),
) {
	for (const n of readdirSync(join(EXAMPLES, dir))) {
		const body = n in change ? change[n] : readFileSync(join(EXAMPLES, dir, n));
		if (body) await s3.put(BUCKET, `${prefix}${n}`, body);
	}
	for (const [n, body] of Object.entries(change))
		if (body && !readdirSync(join(EXAMPLES, dir)).includes(n)) {
			await s3.put(BUCKET, `${prefix}${n}`, body);
		}
	const key = `${prefix}${BASE_MODEL_MARKER}`;
	await s3.put(BUCKET, key, marker);
	return markerEvent(s3, BUCKET, key);
}

const statuses = (prefix: string) => gateStatuses(s3, BUCKET, prefix);

/** Runs the handler capturing the EMF lines it emits. */
const run = (event: unknown) => withMetrics(() => handler(event));

function metricOf(m: Record<string, unknown>) {
	return {
		value: m[MetricName.BASE_MODEL_VERIFICATION_RESULT],
		model_id: m.model_id,
		result: m.result,
		service: m.service,
	};
}

describe("base-model gate", () => {
	it("an approved model is PROMOTABLE, every object, and the metric is 1 {model_id, result: pass}", async () => {
		const { result, error, metrics } = await run(await upload("base-model", "models/ok/"));
		expect(error).toBeUndefined();
		expect(result).toMatchObject({ checked: true, modelId: ID, status: "PROMOTABLE", reasons: [] });
		expect(await statuses("models/ok/")).toEqual({
			"config.json": "PROMOTABLE",
			"model.safetensors": "PROMOTABLE",
			"tokenizer_config.json": "PROMOTABLE",
			[BASE_MODEL_MARKER]: "PROMOTABLE",
		});
		expect(metrics.map(metricOf)).toEqual([{ value: 1, model_id: ID, result: "pass", service: "ftguard" }]);
	});

	it("a file changed by one byte: QUARANTINED, metric 0", async () => {
		const w = Buffer.from(readFileSync(join(EXAMPLES, "base-model/model.safetensors")));
		w[w.length - 1] = (w[w.length - 1] ?? 0) ^ 1;
		const { result, metrics } = await run(await upload("base-model", "models/tampered/", { "model.safetensors": w }));
		expect(result).toMatchObject({ status: "QUARANTINED", reasons: ["1 fail file(s)"] });
		expect(new Set(Object.values(await statuses("models/tampered/")))).toEqual(new Set(["QUARANTINED"]));
		expect(metrics.map(metricOf)).toEqual([{ value: 0, model_id: ID, result: "fail", service: "ftguard" }]);
	});

	it("pickle weights beside the listed safetensors are refused", async () => {
		const { result } = await run(await upload("base-model-pickle", "models/pickle/"));
		expect(result).toMatchObject({ status: "QUARANTINED" });
		const reasons = (result as { reasons: string[] }).reasons;
		expect(reasons).toContain("1 extra file(s)");
		expect(reasons.some((r) => r.startsWith("pickle-format weights") && r.includes("pytorch_model.bin"))).toBe(true);
		expect((await statuses("models/pickle/"))["pytorch_model.bin"]).toBe("QUARANTINED");
	});

	it("remote code is flagged, and refuses the model when the registry does not list it", async () => {
		const py = Buffer.from("import os\n");
		const { result } = await run(await upload("base-model", "models/remote/", { "modeling_evil.py": py }));
		expect(result).toMatchObject({ status: "QUARANTINED", reasons: ["1 extra file(s)"] });
		expect((result as { notes: string[] }).notes.some((n) => n.startsWith("remote code: modeling_evil.py"))).toBe(true);
	});

	it("a missing file: QUARANTINED", async () => {
		const { result } = await run(await upload("base-model", "models/missing/", { "tokenizer_config.json": null }));
		expect(result).toMatchObject({ status: "QUARANTINED", reasons: ["1 missing file(s)"] });
	});

	it("an id the registry does not list: QUARANTINED", async () => {
		const { result, metrics } = await run(
			await upload("base-model", "models/unknown/", {}, JSON.stringify({ id: "evil/model@v1" })),
		);
		expect(result).toMatchObject({ status: "QUARANTINED", reasons: ["evil/model@v1 is not in the registry"] });
		expect(metrics.map(metricOf)).toEqual([
			{ value: 0, model_id: "evil/model@v1", result: "fail", service: "ftguard" },
		]);
	});

	it("no registry in the policy: fails closed (QUARANTINED, metric 0, the error rethrown)", async () => {
		process.env.FTGUARD_POLICY = JSON.stringify({});
		const { result, error, metrics } = await run(await upload("base-model", "models/noreg/"));
		expect(result).toBeUndefined();
		expect(error?.name).toBe("ftguard.USAGE");
		expect(new Set(Object.values(await statuses("models/noreg/")))).toEqual(new Set(["QUARANTINED"]));
		expect(metrics.map(metricOf)).toEqual([{ value: 0, model_id: ID, result: "fail", service: "ftguard" }]);
	});

	it("a marker that names no id: fails closed with model_id unknown", async () => {
		const { error, metrics } = await run(await upload("base-model", "models/badmarker/", {}, "not json"));
		expect(error?.name).toBe("ftguard.DATA_INVALID");
		expect(new Set(Object.values(await statuses("models/badmarker/")))).toEqual(new Set(["QUARANTINED"]));
		expect(metrics.map(metricOf)).toEqual([{ value: 0, model_id: "unknown", result: "fail", service: "ftguard" }]);
	});

	it("an object replaced during the check gets no tag, and the rest are QUARANTINED, never PROMOTABLE", async () => {
		const event = await upload("base-model", "models/raced/");
		const target = targetOf(event, "models/raced/", "0");
		const pinned = await pinInput(s3.client, target);
		// the check passed on these versions; then config.json is overwritten before the tags are written
		await s3.put(BUCKET, "models/raced/config.json", "{}");
		const tagged = await tagInput(s3.client, target, pinned, "PROMOTABLE");
		expect(tagged).toEqual({ changed: ["models/raced/config.json"], status: "QUARANTINED" });
		expect(await statuses("models/raced/")).toEqual({
			"config.json": undefined,
			"model.safetensors": "QUARANTINED",
			"tokenizer_config.json": "QUARANTINED",
			[BASE_MODEL_MARKER]: "QUARANTINED",
		});
	});

	it("a key that is not a base-model marker starts nothing", async () => {
		const event = {
			source: "aws.s3",
			"detail-type": "Object Created",
			detail: { bucket: { name: BUCKET }, object: { key: "models/x/config.json" } },
		};
		expect((await run(event)).result).toEqual({ checked: false, reason: "not-a-marker" });
	});
});
