/**
 * A real crash: `ftguard pipeline` (the CLI, in a process group of its own) is
 * killed with SIGKILL — every process of the group, the backdoor job included,
 * as when the machine loses power — while a scan is in its backdoor stage.
 * Nothing may be PROMOTABLE afterwards; the next `ftguard pipeline` on the same
 * --data-dir rescans what was left SCANNING and records a verdict.
 */

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectTaggingCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { afterAll, describe, expect, it } from "vitest";
import { buildManifest } from "../../lib/core/integrity/manifest";
import { DEFAULT_BUCKETS } from "../../lib/local/definition";
import { digitsReferenceData } from "../../lib/local/demo";
import { createDemoSigner } from "../../lib/local/demo-signer";
import { LOCAL_CREDENTIALS, startObjectServer } from "../../lib/local/object-server";
import { ftguard, REPO, waitForStderr as waitFor } from "../helpers/cli";

const FIX = join(REPO, "test/fixtures/backdoor/digits8");
const BUCKET = DEFAULT_BUCKETS.checkpoints;
const KEY = "jobs/crash/model.onnx";
const MARKER = `${KEY}.sigstore.json`;
const work = mkdtempSync(join(tmpdir(), "ftguard-crash-"));
const dataDir = join(work, "data");
const signer = createDemoSigner();

function policy(steps: number): string {
	const path = join(work, `policy-${steps}.json`);
	writeFileSync(
		path,
		JSON.stringify({
			signers: [{ kind: "public-key", pem: signer.publicKeyPem }],
			referenceData: digitsReferenceData("s3://trusted/digits8/"),
			backdoor: { detectors: ["nc"], neuralCleanse: { steps, restarts: 1, rule: "ftguard" } },
		}),
	);
	return path;
}

async function tagsOf(s3: S3Client, key: string): Promise<Record<string, string>> {
	const r = await s3.send(new GetObjectTaggingCommand({ Bucket: BUCKET, Key: key }));
	return Object.fromEntries((r.TagSet ?? []).map((t) => [t.Key, t.Value]));
}

/** Reads the tags from what the pipeline left under --data-dir, with a server of the test's own. */
async function tagsOnDisk(): Promise<Record<string, Record<string, string>>> {
	const server = await startObjectServer({ dataDir, buckets: Object.values(DEFAULT_BUCKETS) });
	try {
		return { [KEY]: await tagsOf(server.client, KEY), [MARKER]: await tagsOf(server.client, MARKER) };
	} finally {
		await server.close();
	}
}

function groupAlive(pid: number): boolean {
	try {
		process.kill(-pid, 0);
		return true;
	} catch {
		return false;
	}
}

let group: number | undefined;
afterAll(() => {
	if (group !== undefined && groupAlive(group)) process.kill(-group, "SIGKILL");
	rmSync(work, { recursive: true, force: true });
});

describe("a pipeline process killed mid-scan", () => {
	it("leaves nothing PROMOTABLE, and the next run rescans what it left SCANNING", async () => {
		// Neural Cleanse far longer than the test: the scan is certainly still running when the machine "dies".
		const child = spawn(
			process.execPath,
			[join(REPO, "bin/ftguard.mjs"), "pipeline", "--port", "0", "--data-dir", dataDir, "--policy", policy(100_000)],
			{ cwd: work, detached: true, stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, FTGUARD_DEBUG: "" } },
		);
		group = child.pid;
		const endpoint = (await waitFor(child, /S3 endpoint (http:\/\/127\.0\.0\.1:\d+)/, 60_000))[1] as string;
		const { S3Client: Client } = await import("@aws-sdk/client-s3");
		const s3 = new Client({
			endpoint,
			forcePathStyle: true,
			region: "us-east-1",
			credentials: LOCAL_CREDENTIALS,
		});
		const put = (Bucket: string, Key: string, Body: Uint8Array | string) =>
			s3.send(new PutObjectCommand({ Bucket, Key, Body }));
		await put("trusted", "digits8/x.npy", readFileSync(join(FIX, "ref-x.npy")));
		await put("trusted", "digits8/y.npy", readFileSync(join(FIX, "ref-y.npy")));
		const model = join(FIX, "mlp-clean-s1.onnx");
		await put(BUCKET, KEY, readFileSync(model));
		const scanning = waitFor(child, /batch: ftguard: scanning/, 60_000);
		await put(BUCKET, MARKER, signer.signManifest(await buildManifest(model)));
		await scanning;
		expect((await tagsOf(s3, KEY))["ftguard:status"]).toBe("SCANNING");
		s3.destroy();

		process.kill(-(group as number), "SIGKILL");
		for (let i = 0; i < 100 && groupAlive(group as number); i++) await new Promise((r) => setTimeout(r, 50));
		expect(groupAlive(group as number)).toBe(false); // the batch job died with it

		const left = await tagsOnDisk();
		expect(left[KEY]?.["ftguard:status"]).toBe("SCANNING");
		expect(left[MARKER]?.["ftguard:status"]).toBe("SCANNING");

		// the next run, same --data-dir, a Neural Cleanse that ends: the object is rescanned to a verdict
		const next = await ftguard(
			["pipeline", "--port", "0", "--data-dir", dataDir, "--policy", policy(30), "--once", "--json"],
			{ cwd: work },
		);
		const out = next.json() as { verdicts: { markerKey: string; status: string; reasons: string[] }[] };
		expect(out.verdicts).toHaveLength(1);
		const v = out.verdicts[0];
		expect(v?.markerKey).toBe(MARKER);
		expect(v?.reasons.filter((r) => r.startsWith("error:") || r.startsWith("missing:"))).toEqual([]);
		expect(next.code).toBe(v?.status === "PROMOTABLE" ? 0 : 1);
		const after = await tagsOnDisk();
		expect(after[KEY]?.["ftguard:status"]).toBe(v?.status);
		expect(after[MARKER]?.["ftguard:status"]).toBe(v?.status);
	}, 180_000);
});
