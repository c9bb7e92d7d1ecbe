/**
 * The start handler against a stand-in for the Step Functions API (a local
 * HTTP server speaking its JSON protocol, as the real SFN client calls it):
 * markers start one execution named by the scan id, other keys start none,
 * and a redelivered event is a duplicate, not an error.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { handler as start } from "../../lambdas/start";
import { scanIdOf } from "../../lib/core/pipeline/artefact";

interface Call {
	target: string;
	body: { stateMachineArn: string; name: string; input: string };
}
const calls: Call[] = [];
const names = new Set<string>();
let server: Server;
const ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:ftguard-scan";

beforeAll(async () => {
	server = createServer((req, res) => {
		let data = "";
		req.on("data", (c) => {
			data += c;
		});
		req.on("end", () => {
			const body = JSON.parse(data) as Call["body"];
			calls.push({ target: String(req.headers["x-amz-target"]), body });
			res.setHeader("content-type", "application/x-amz-json-1.0");
			if (names.has(body.name)) {
				res.statusCode = 400;
				res.end(
					JSON.stringify({ __type: "ExecutionAlreadyExists", message: `Execution Already Exists: '${body.name}'` }),
				);
				return;
			}
			names.add(body.name);
			res.end(
				JSON.stringify({ executionArn: `${ARN.replace("stateMachine", "execution")}:${body.name}`, startDate: 1 }),
			);
		});
	});
	await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
	Object.assign(process.env, {
		FTGUARD_SFN_ENDPOINT: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
		FTGUARD_STATE_MACHINE_ARN: ARN,
		AWS_ACCESS_KEY_ID: "test",
		AWS_SECRET_ACCESS_KEY: "test",
		AWS_REGION: "us-east-1",
		POWERTOOLS_LOG_LEVEL: "SILENT",
	});
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

function event(key: string, object: Record<string, unknown> = {}) {
	return {
		version: "0",
		id: "e1",
		source: "aws.s3",
		"detail-type": "Object Created",
		account: "123456789012",
		region: "us-east-1",
		time: "2026-11-28T00:00:00Z",
		resources: ["arn:aws:s3:::ckpts"],
		detail: {
			version: "0",
			bucket: { name: "ckpts" },
			object: { key, size: 10, etag: "d41d8cd98f00b204e9800998ecf8427e", "version-id": "v1", sequencer: "00" },
			reason: "PutObject",
			...object,
		},
	};
}

describe("start", () => {
	it("starts one execution named by the scan id, with the initial state as input", async () => {
		const r = await start(event("jobs/j1/ckpt-1/model.sig"));
		const scanId = scanIdOf("ckpts", "jobs/j1/ckpt-1/model.sig", {
			versionId: "v1",
			etag: "d41d8cd98f00b204e9800998ecf8427e",
		});
		expect(r).toMatchObject({ started: true, scanId });
		const call = calls.at(-1) as Call;
		expect(call.target).toBe("AWSStepFunctions.StartExecution");
		expect(call.body.name).toBe(scanId);
		expect(call.body.stateMachineArn).toBe(ARN);
		expect(JSON.parse(call.body.input)).toEqual({
			scanId,
			bucket: "ckpts",
			marker: { key: "jobs/j1/ckpt-1/model.sig", versionId: "v1", etag: "d41d8cd98f00b204e9800998ecf8427e" },
			artefact: "jobs/j1/ckpt-1/",
		});
	});

	it("treats a redelivered event as a duplicate, not an error", async () => {
		const before = calls.length;
		expect(await start(event("jobs/j1/ckpt-2/model.sig"))).toMatchObject({ started: true });
		expect(await start(event("jobs/j1/ckpt-2/model.sig"))).toMatchObject({ started: false, reason: "duplicate" });
		expect(calls.length).toBe(before + 2);
	});

	it("scans a single-file artefact from its <file>.sigstore.json", async () => {
		await start(event("jobs/j1/adapter.safetensors.sigstore.json"));
		expect(JSON.parse((calls.at(-1) as Call).body.input).artefact).toBe("jobs/j1/adapter.safetensors");
	});

	it("starts nothing for a key that is not a commit marker", async () => {
		const before = calls.length;
		expect(await start(event("jobs/j1/ckpt-1/model.safetensors"))).toEqual({ started: false, reason: "not-a-marker" });
		expect(calls.length).toBe(before);
	});

	it("rejects an event that is not an S3 Object Created event", async () => {
		await expect(start({ source: "aws.s3", "detail-type": "Object Deleted", detail: {} })).rejects.toMatchObject({
			name: "ftguard.USAGE",
			message: expect.stringMatching(/^not an S3 Object Created event: detail-type/),
		});
	});
});
