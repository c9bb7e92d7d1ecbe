/**
 * `ftguard aws smoke` against a versioned bucket, as in AWS, with recorded S3 responses (no account here): where the
 * checkpoint bucket's policy denies a deployer the tags of an object that is not PROMOTABLE, `--report-bucket` reads
 * each verdict record at `scans/<scan id>/verdict.json`, the scan id computed from the marker's VersionId exactly
 * as the start function computes it. Without `--report-bucket`, a denied tag read is "could not check" naming the
 * flag. (The tag path against a real S3 API is test/integration/aws-smoke.test.ts.)
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { S3Client } from "@aws-sdk/client-s3";
import { describe, expect, it } from "vitest";
import { runSmoke, type SmokeFlags } from "../../../lib/cli/aws-smoke";
import type { Io } from "../../../lib/cli/io";
import { FtguardError } from "../../../lib/core/errors";
import { scanIdOf } from "../../../lib/core/pipeline/artefact";

const work = mkdtempSync(join(tmpdir(), "ftguard-smoke-unit-"));
const KEY = join(work, "smoke.key.pem");
execFileSync("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", KEY]);

interface Req {
	method: string;
	path: string;
	query: Record<string, string | string[] | null>;
}

/** A versioned bucket: every PUT gets a new VersionId; GETs answered by `get`. */
function recordedS3(get: (r: Req) => { status: number; body: string; headers?: Record<string, string> }) {
	const seen: Req[] = [];
	let version = 0;
	const client = new S3Client({
		region: "eu-west-1",
		credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" },
		maxAttempts: 1,
		requestHandler: {
			async handle(request: Req) {
				seen.push({ method: request.method, path: request.path, query: request.query ?? {} });
				const answer =
					request.method === "PUT"
						? { status: 200, body: "", headers: { etag: `"e${version}"`, "x-amz-version-id": `v${++version}` } }
						: get(request);
				return {
					response: {
						statusCode: answer.status,
						headers: { "x-amz-request-id": "r", ...answer.headers },
						body: Readable.from([Buffer.from(answer.body)]),
					},
				};
			},
			updateHttpClientConfig() {},
			httpHandlerConfigs: () => ({}),
		} as never,
	});
	return { client, seen };
}

const s3Error = (status: number, code: string, message: string) => ({
	status,
	headers: { "content-type": "application/xml" },
	body: `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message><RequestId>r</RequestId></Error>`,
});

function captureIo(): Io & { text: () => string } {
	let out = "";
	return {
		json: true,
		interactive: false,
		out: (t) => {
			out += t;
		},
		err: () => {},
		text: () => out,
	};
}

const FLAGS: SmokeFlags = {
	endpoint: "https://s3.eu-west-1.amazonaws.com",
	bucket: "ftguard-checkpoints",
	key: KEY,
	timeout: 30,
	interval: 0.01,
	json: true,
};

describe("ftguard aws smoke in a versioned bucket (recorded S3 responses)", () => {
	it("--report-bucket: each verdict from scans/<scan id of marker + VersionId>/verdict.json, with its reasons", async () => {
		let gets = 0;
		// the records the pipeline writes, keyed by the scan id of each marker version (computed as uploads arrive)
		const records = (): Record<string, unknown> => {
			const out: Record<string, unknown> = {};
			seen.forEach((q, i) => {
				if (q.method !== "PUT" || !q.path.endsWith("/model.sig")) return;
				const markerKey = q.path.replace(/^\/(ftguard-checkpoints\/)?/, "");
				// the handler numbers versions by PUT: this PUT's VersionId
				const versionId = `v${seen.slice(0, i + 1).filter((x) => x.method === "PUT").length}`;
				out[`scans/${scanIdOf("ftguard-checkpoints", markerKey, { versionId })}/verdict.json`] = markerKey.includes(
					"/signed/",
				)
					? { status: "PROMOTABLE", reasons: [] }
					: { status: "QUARANTINED", reasons: ["signature: DIGEST_MISMATCH (digest mismatch: config.json)"] };
			});
			return out;
		};
		const { client, seen } = recordedS3((r) => {
			gets++;
			const key = r.path.replace(/^\/(ftguard-reports\/)?/, "");
			const all = records();
			// the first looks find nothing yet (the scan is running)
			if (gets <= 2 || !(key in all)) return s3Error(404, "NoSuchKey", "The specified key does not exist.");
			return { status: 200, body: JSON.stringify(all[key]), headers: { "content-type": "application/json" } };
		});
		const io = captureIo();
		expect(await runSmoke(io, { ...FLAGS, reportBucket: "ftguard-reports" }, client)).toBe(0);
		expect(gets).toBeGreaterThan(2);
		const doc = JSON.parse(io.text()) as {
			ok: boolean;
			results: { status: string; source: string; reasons: string[] }[];
		};
		expect(doc.ok).toBe(true);
		expect(doc.results.map((x) => [x.status, x.source])).toEqual([
			["PROMOTABLE", "record"],
			["QUARANTINED", "record"],
		]);
		expect(doc.results[1]?.reasons).toEqual(["signature: DIGEST_MISMATCH (digest mismatch: config.json)"]);
		// never a tag read: the records were the source
		expect(seen.some((q) => "tagging" in q.query)).toBe(false);
	});

	it("no verdict in time → NO_VERDICT, exit 1", async () => {
		const { client } = recordedS3(() => s3Error(404, "NoSuchKey", "The specified key does not exist."));
		const io = captureIo();
		expect(await runSmoke(io, { ...FLAGS, reportBucket: "ftguard-reports", timeout: 0.2 }, client)).toBe(1);
		const doc = JSON.parse(io.text()) as { results: { status: string; reasons: string[] }[] };
		expect(doc.results.map((x) => x.status)).toEqual(["NO_VERDICT", "NO_VERDICT"]);
		expect(doc.results[0]?.reasons).toEqual(["no verdict within 0.2 s"]);
	});

	it("tags denied by the bucket policy and no --report-bucket → AWS_API_ERROR naming --report-bucket", async () => {
		const { client } = recordedS3(() => s3Error(403, "AccessDenied", "Access Denied"));
		const e = (await runSmoke(captureIo(), FLAGS, client).catch((x: unknown) => x)) as FtguardError;
		expect(e).toBeInstanceOf(FtguardError);
		expect(e.code).toBe("AWS_API_ERROR");
		expect(e.message).toMatch(
			/^S3 GetObjectTagging s3:\/\/ftguard-checkpoints\/.*config\.json failed: AccessDenied: .*--report-bucket/,
		);
	});
});
