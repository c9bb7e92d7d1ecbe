/**
 * A cancelled scan keeps no job: in the local pipeline a backdoor job whose state times out (the definition's
 * TimeoutSeconds, shortened here to 3 s) or whose execution is stopped is killed with its whole process group —
 * what the .sync integration's TerminateJob does in AWS — before the execution moves on to its verdict. The job
 * here sleeps past the timeout, with a process of its own started beside it, and then tries to write into the
 * scan's report prefix: after the verdict (QUARANTINED) neither process exists, and the late write never lands.
 *
 * A process can leave the job's group (a new session: `spawn(…, { detached: true })`) and outlive the kill. What
 * keeps its writes out is the job attempt's own access key, revoked before the attempt is reported ended
 * (lib/local/job-credentials.ts): the escaped process is still alive after the verdict, tries to write, and is
 * refused. (Before per-attempt keys its `late.json` landed ~3.7 s after a QUARANTINED verdict.)
 */

import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildManifest } from "../../lib/core/integrity/manifest";
import { StateName } from "../../lib/infra/state-machine";
import { digitsReferenceData } from "../../lib/local/demo";
import { createDemoSigner } from "../../lib/local/demo-signer";
import type { LocalPipeline } from "../../lib/local/pipeline";
import { REPO } from "../helpers/cli";
import { startQuietPipeline } from "../helpers/pipeline";

const BUCKET = "checkpoints";
const MODEL = join(REPO, "test/fixtures/backdoor/digits8/mlp-clean-s1.onnx");
const work = mkdtempSync(join(tmpdir(), "ftguard-cancel-"));
const signer = createDemoSigner();
const s3Module = createRequire(import.meta.url).resolve("@aws-sdk/client-s3");
const jobPids: number[] = [];

/**
 * The job: starts a sleeping process in its group and records its pid, sleeps past the state timeout, then writes
 * `late.json` under its output prefix and a file on disk — what a job still running after its verdict would do.
 */
const entry = join(work, "entry.mjs");
/**
 * The escaped writer: started by the job in a new session (out of its process group), it waits past the verdict,
 * then writes `late.json` under the job's output prefix with the job's credentials, and records what happened.
 */
const writer = join(work, "writer.mjs");
writeFileSync(
	writer,
	`import { writeFileSync } from "node:fs";
const { S3Client, PutObjectCommand } = await import(${JSON.stringify(s3Module)});
const id = process.env.FTGUARD_OUTPUT_PREFIX.split("/").at(-3);
await new Promise((r) => setTimeout(r, 6000));
const url = new URL(process.env.FTGUARD_OUTPUT_PREFIX);
const at = Date.now();
let error = null;
try {
	await new S3Client({ forcePathStyle: true }).send(
		new PutObjectCommand({ Bucket: url.host, Key: url.pathname.slice(1) + "/late.json", Body: "{}" }),
	);
} catch (e) {
	error = e.name + ": " + e.message;
}
writeFileSync(${JSON.stringify(work)} + "/attempt-" + id, JSON.stringify({ at, error }));
`,
);
writeFileSync(
	entry,
	`import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
const { S3Client, PutObjectCommand } = await import(${JSON.stringify(s3Module)});
const id = process.env.FTGUARD_OUTPUT_PREFIX.split("/").at(-3);
if (process.env.FTGUARD_MODEL_URI.includes("/escape/")) {
	const escaped = spawn(process.execPath, [${JSON.stringify(writer)}], { detached: true, stdio: "ignore", env: process.env });
	escaped.unref();
	writeFileSync(${JSON.stringify(work)} + "/escaped-" + id, String(escaped.pid));
	await new Promise((r) => setTimeout(r, 60000));
}
const helper = spawn("sleep", ["60"], { stdio: "ignore" });
writeFileSync(${JSON.stringify(work)} + "/helper-" + id, String(helper.pid));
await new Promise((r) => setTimeout(r, Number(5000)));
const url = new URL(process.env.FTGUARD_OUTPUT_PREFIX);
const s3 = new S3Client({ forcePathStyle: true });
await s3.send(new PutObjectCommand({ Bucket: url.host, Key: url.pathname.slice(1) + "/late.json", Body: "{}" }));
writeFileSync(${JSON.stringify(work)} + "/late-" + id, "written after the sleep");
`,
);

/** Whether a process with this pid exists and is not a zombie (Linux: /proc). */
function alive(pid: number): boolean {
	try {
		const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
		return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
	} catch {
		return false;
	}
}

let pipeline: LocalPipeline;
beforeAll(async () => {
	pipeline = await startQuietPipeline({
		policy: {
			signers: [{ kind: "public-key", pem: signer.publicKeyPem }],
			referenceData: digitsReferenceData("s3://trusted/digits8/"),
			backdoor: { detectors: ["nc"], neuralCleanse: { rule: "ftguard" } },
		},
		batchEntry: entry,
		onBatchSpawn: (pid) => jobPids.push(pid),
		timeoutOverrides: { [StateName.BACKDOOR_SCAN]: 3 },
	});
}, 60_000);
/** escaped writers still running at the end (started by this test's jobs) */
const escapedPids: number[] = [];
afterAll(async () => {
	for (const pid of escapedPids) {
		try {
			process.kill(pid, "SIGKILL");
		} catch {
			// gone
		}
	}
	await pipeline?.close();
});

async function commit(prefix: string): Promise<string> {
	const s3 = pipeline.server.client;
	const key = `${prefix}model.onnx`;
	await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: readFileSync(MODEL) }));
	const marker = `${key}.sigstore.json`;
	await s3.send(
		new PutObjectCommand({ Bucket: BUCKET, Key: marker, Body: signer.signManifest(await buildManifest(MODEL)) }),
	);
	return marker;
}

async function reportKeys(scanId: string): Promise<string[]> {
	const r = await pipeline.server.client.send(
		new ListObjectsV2Command({ Bucket: pipeline.definition.buckets.reports, Prefix: `scans/${scanId}/` }),
	);
	return (r.Contents ?? []).map((o) => o.Key ?? "");
}

describe.skipIf(process.platform !== "linux")("a backdoor job whose scan is cancelled", () => {
	it("is killed with its process group when its state times out; the verdict is QUARANTINED and nothing lands after it", async () => {
		const before = jobPids.length;
		const v = await pipeline.waitForVerdict(await commit("jobs/timeout/"), 60_000);
		expect(v.status).toBe("QUARANTINED");
		expect(v.backdoor?.[0]?.error?.state).toBe("backdoor");
		expect(v.backdoor?.[0]?.error?.cause).toMatch(/States\.Timeout/);
		expect(jobPids.length).toBe(before + 1);
		const pid = jobPids.at(-1) as number;
		// gone by the time the verdict is recorded: the job, and the process it started in its group
		expect(alive(pid)).toBe(false);
		const helper = Number(readFileSync(join(work, `helper-${v.scanId}`), "utf8"));
		expect(alive(helper)).toBe(false);
		// past the job's sleep (5 s from its start, over 3 s before the verdict): its late write never happened
		await new Promise((r) => setTimeout(r, 4_000));
		expect(existsSync(join(work, `late-${v.scanId}`))).toBe(false);
		expect(await reportKeys(v.scanId)).not.toContainEqual(expect.stringMatching(/late\.json$/));
	}, 60_000);

	it("cannot write after the verdict from a process that left its group (a new session): its key is revoked first", async () => {
		const v = await pipeline.waitForVerdict(await commit("jobs/escape/"), 60_000);
		const verdictAt = Date.now();
		expect(v.status).toBe("QUARANTINED");
		expect(v.backdoor?.[0]?.error?.cause).toMatch(/States\.Timeout/);
		const escaped = Number(readFileSync(join(work, `escaped-${v.scanId}`), "utf8"));
		escapedPids.push(escaped);
		// the group kill missed it: it is still running after the verdict
		expect(alive(escaped)).toBe(true);
		const attemptFile = join(work, `attempt-${v.scanId}`);
		for (let i = 0; i < 400 && !existsSync(attemptFile); i++) await new Promise((r) => setTimeout(r, 25));
		const attempt = JSON.parse(readFileSync(attemptFile, "utf8")) as { at: number; error: string | null };
		// it tried to write after the verdict, with the job's credentials, and was refused
		expect(attempt.at).toBeGreaterThan(verdictAt);
		expect(attempt.error).toMatch(/InvalidAccessKeyId/);
		const r = await pipeline.server.client.send(
			new ListObjectsV2Command({ Bucket: pipeline.definition.buckets.reports, Prefix: `scans/${v.scanId}/` }),
		);
		const keys = (r.Contents ?? []).map((o) => o.Key ?? "");
		expect(keys).not.toContainEqual(expect.stringMatching(/late\.json$/));
		expect(keys.filter((k) => k.includes("/backdoor/"))).toEqual([]);
		// nothing under the scan's prefix is newer than the verdict
		for (const o of r.Contents ?? []) expect(o.LastModified?.getTime() ?? 0).toBeLessThanOrEqual(verdictAt);
	}, 60_000);

	it("is killed when its execution is stopped", async () => {
		const before = jobPids.length;
		const marker = await commit("jobs/stopped/");
		for (let i = 0; i < 400 && jobPids.length === before; i++) await new Promise((r) => setTimeout(r, 25));
		expect(jobPids.length).toBe(before + 1);
		const pid = jobPids.at(-1) as number;
		const [scanId] = pipeline.runningScans();
		expect(pipeline.runningScans()).toHaveLength(1);
		const helperFile = join(work, `helper-${scanId}`);
		for (let i = 0; i < 400 && !existsSync(helperFile); i++) await new Promise((r) => setTimeout(r, 25));
		expect(pipeline.stop(scanId as string)).toBe(true);
		const v = await pipeline.waitForVerdict(marker, 10_000);
		// stopped, the execution recorded nothing (its objects stay SCANNING, unreadable; the sweeper's in AWS)
		expect(v.status).toBe("NOT_RECORDED");
		for (let i = 0; i < 40 && alive(pid); i++) await new Promise((r) => setTimeout(r, 25));
		expect(alive(pid)).toBe(false);
		const helper = Number(readFileSync(helperFile, "utf8"));
		expect(alive(helper)).toBe(false);
		await new Promise((r) => setTimeout(r, 5_500));
		expect(existsSync(join(work, `late-${scanId}`))).toBe(false);
	}, 60_000);
});

describe("a job attempt's access key", () => {
	const bucket = () => pipeline.definition.buckets.reports;
	const clientFor = (c: { accessKeyId: string; secretAccessKey: string }) =>
		new S3Client({ endpoint: pipeline.endpoint, forcePathStyle: true, region: "us-east-1", credentials: c });
	const exists = (Key: string) =>
		pipeline.server.client.send(new GetObjectCommand({ Bucket: bucket(), Key })).then(
			() => true,
			() => false,
		);

	it("writes until it is revoked, and is refused after", async () => {
		const grant = await pipeline.server.issueJobCredentials();
		const s3 = clientFor(grant);
		await s3.send(new PutObjectCommand({ Bucket: bucket(), Key: "keys/before.json", Body: "{}" }));
		expect(await exists("keys/before.json")).toBe(true);
		await grant.revoke();
		const err = await s3
			.send(new PutObjectCommand({ Bucket: bucket(), Key: "keys/after.json", Body: "{}" }))
			.catch((e: Error) => e);
		expect((err as Error).name).toBe("InvalidAccessKeyId");
		expect(await exists("keys/after.json")).toBe(false);
		s3.destroy();
	});

	/** A PUT sent in two halves 200 ms apart; `between` runs after the first half. Resolves with the status or error. */
	const putInHalves = (accessKeyId: string, key: string, between: () => Promise<void>) => {
		const url = new URL(`${pipeline.endpoint}/${bucket()}/${key}`);
		const half = Buffer.alloc(64 * 1024, 0x61);
		return new Promise<number | string>((resolve) => {
			const req = request(url, {
				method: "PUT",
				headers: {
					// s3rver checks the key, not a SigV4 signature
					authorization: `AWS4-HMAC-SHA256 Credential=${accessKeyId}/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0`,
					"x-amz-content-sha256": "UNSIGNED-PAYLOAD",
					"x-amz-date": new Date().toISOString().replace(/[-:]|\.\d{3}/g, ""),
					"content-length": String(half.length * 2),
				},
			});
			req.on("response", (res) => {
				res.resume();
				resolve(res.statusCode ?? 0);
			});
			req.on("error", (e) => resolve(e.message));
			req.write(half);
			setTimeout(() => {
				between().then(() => {
					if (!req.destroyed) req.end(half);
				});
			}, 200);
		});
	};

	it("cuts off a write still sending its body when it is revoked: nothing lands", async () => {
		// the same write, not revoked, lands
		const kept = await pipeline.server.issueJobCredentials();
		expect(await putInHalves(kept.accessKeyId, "keys/kept.json", async () => {})).toBe(200);
		expect(await exists("keys/kept.json")).toBe(true);
		await kept.revoke();

		const grant = await pipeline.server.issueJobCredentials();
		const outcome = await putInHalves(grant.accessKeyId, "keys/in-flight.json", () => grant.revoke());
		expect(outcome).not.toBe(200);
		expect(await exists("keys/in-flight.json")).toBe(false);
	});
});
