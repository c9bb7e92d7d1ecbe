/**
 * The local pipeline end to end: the state machine CDK synthesizes, executed
 * in-process with the real Lambda handlers against s3rver on loopback. Uploads
 * go through the S3 API; the server's events start the scans, as EventBridge
 * does in AWS.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { GetObjectTaggingCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildManifest } from "../../lib/core/integrity/manifest";
import { LocalPipeline } from "../../lib/local/pipeline";
import { REPO } from "../helpers/cli";

const EXAMPLES = join(REPO, "examples");
const BUCKET = "checkpoints";

let pipeline: LocalPipeline;
beforeAll(async () => {
	process.env.POWERTOOLS_METRICS_DISABLED = "true";
	process.env.POWERTOOLS_LOG_LEVEL = "SILENT";
	pipeline = await LocalPipeline.start({
		policy: { signers: [{ kind: "public-key", pem: readFileSync(join(EXAMPLES, "keys/signer.pub.pem"), "utf8") }] },
	});
}, 60_000);
afterAll(async () => pipeline?.close());

async function put(key: string, body: Uint8Array | string): Promise<void> {
	await pipeline.server.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
}

/** Uploads a model directory, its marker (model.sig) last, and returns the marker key. */
async function upload(dir: string, prefix: string): Promise<string> {
	for (const n of readdirSync(dir).filter((n) => n !== "model.sig"))
		await put(`${prefix}${n}`, readFileSync(join(dir, n)));
	await put(`${prefix}model.sig`, readFileSync(join(dir, "model.sig")));
	return `${prefix}model.sig`;
}

async function tagsOf(key: string): Promise<Record<string, string>> {
	const r = await pipeline.server.client.send(new GetObjectTaggingCommand({ Bucket: BUCKET, Key: key }));
	return Object.fromEntries((r.TagSet ?? []).map((t) => [t.Key, t.Value]));
}

describe("the local pipeline", () => {
	it("reads the definition from the synthesized stack and maps every Task to a local runner", () => {
		const { asl, tasks } = pipeline.definition;
		expect(asl.StartAt).toBe("Mark");
		expect(tasks).toMatchObject({
			Mark: { kind: "lambda", step: "mark" },
			Manifest: { kind: "lambda", step: "manifest" },
			Signature: { kind: "lambda", step: "signature" },
			Files: { kind: "lambda", step: "files" },
			Decide: { kind: "lambda", step: "decide" },
			Record: { kind: "lambda", step: "record" },
			RecordQuarantine: { kind: "lambda", step: "record" },
			BackdoorScan: { kind: "batch" },
			BackdoorScanUnversioned: { kind: "batch" },
		});
		const scan = asl.States.BackdoorScanUnversioned as unknown as {
			Parameters: { ContainerOverrides: { Environment: unknown[] } };
		};
		expect(scan.Parameters.ContainerOverrides.Environment).toContainEqual({
			Name: "FTGUARD_OUTPUT_PREFIX",
			"Value.$": "States.Format('s3://{}/scans/{}/backdoor', 'reports', $.scanId)",
		});
	});

	it("promotes the signed clean checkpoint: every object tagged PROMOTABLE with the root digest", async () => {
		const prefix = "jobs/j1/ckpt-1/";
		const marker = await upload(join(EXAMPLES, "checkpoint"), prefix);
		const v = await pipeline.waitForVerdict(marker, 60_000);
		expect(v).toMatchObject({ status: "PROMOTABLE", reasons: [], execution: "SUCCEEDED" });
		const local = await buildManifest(join(EXAMPLES, "checkpoint"), { ignorePaths: ["model.sig"] });
		for (const n of ["config.json", "model.safetensors", "model.sig", "tokenizer_config.json"]) {
			expect(await tagsOf(`${prefix}${n}`)).toEqual({
				"ftguard:status": "PROMOTABLE",
				"ftguard:scan-id": v.scanId,
				"ftguard:digest": `sha256:${local.root}`,
			});
		}
	}, 60_000);

	it("quarantines the tampered copy with the signature's reason", async () => {
		const prefix = "jobs/j1/ckpt-tampered/";
		const marker = await upload(join(EXAMPLES, "checkpoint-tampered"), prefix);
		const v = await pipeline.waitForVerdict(marker, 60_000);
		expect(v.status).toBe("QUARANTINED");
		expect(v.reasons.join("\n")).toMatch(/^signature: DIGEST_MISMATCH .*model\.safetensors/m);
		expect((await tagsOf(`${prefix}model.safetensors`))["ftguard:status"]).toBe("QUARANTINED");
	}, 60_000);

	it("starts nothing for objects that are not commit markers", async () => {
		const before = pipeline.executionCount;
		await put("jobs/j9/loose/config.json", "{}");
		await new Promise((r) => setTimeout(r, 200));
		expect(pipeline.executionCount).toBe(before);
	});
});
