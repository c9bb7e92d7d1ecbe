/**
 * `ftguard aws smoke`: after `cdk deploy` (or against `ftguard pipeline`), the pipeline end to end through the S3
 * API. Two copies of the example checkpoint's files are committed the way a training job commits (every object,
 * then the commit marker `model.sig` last, docs/launch-flow.md): one signed with the smoke-test key, one signed and
 * then changed by a byte. Exit 0 only if the first is tagged `ftguard:status=PROMOTABLE` and the second QUARANTINED;
 * 1 if a verdict is another or none came in time; 2 if the test could not run (key, credentials, S3 errors).
 *
 * The example is examples/checkpoint's configuration files (config.json, tokenizer_config.json) without its
 * weights: a verdict that needs no GPU, no reference data and no waiver ("backdoor: not applicable (no model
 * weights)"), so the smoke test asks nothing of the deployed policy but to trust the smoke-test key (config
 * `smokeTest`, docs/deploy.md).
 *
 * Verdicts are read from the status tag of the exact object version uploaded, or — with `--report-bucket`, in a
 * versioned bucket — from the verdict record `scans/<scan id>/verdict.json`, which a deployer can read where the
 * checkpoint bucket's policy denies it the tags of an object that is not PROMOTABLE.
 */
import { createPrivateKey, randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand, GetObjectTaggingCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { FtguardError } from "../core/errors";
import { buildManifest } from "../core/integrity/manifest";
import { scanIdOf } from "../core/pipeline/artefact";
import { STATUS_TAG } from "../core/pipeline/names";
import { reportKey } from "../core/pipeline/record";
import { keySigner } from "../local/demo-signer";
import { repositoryRoot } from "../local/package-root";
import { awsError } from "./aws-common";
import { type ExitCode, type Io, printJson } from "./io";

/** The example checkpoint's files the smoke test commits (no weights: see the header). */
export const SMOKE_FILES = ["config.json", "tokenizer_config.json"] as const;
/** The file whose tag (exact version) carries each verdict, and whose byte the tampered copy changes. */
const PROBE = "config.json";
const MARKER = "model.sig";

export interface SmokeFlags {
	endpoint: string;
	bucket: string;
	key: string;
	region?: string;
	prefix?: string;
	reportBucket?: string;
	timeout: number;
	interval: number;
	json?: boolean;
}

type Expected = "PROMOTABLE" | "QUARANTINED";

export interface SmokeResult {
	name: "signed" | "tampered";
	/** the commit marker uploaded */
	marker: string;
	expected: Expected;
	status: string;
	/** the verdict record's reasons (with --report-bucket), else [] */
	reasons: string[];
	/** where the verdict was read: the status tag or the verdict record */
	source: "tag" | "record" | "none";
	seconds: number;
	ok: boolean;
}

/** The region to sign for: --region, else the one in an AWS endpoint's host name, else the SDK's, else us-east-1. */
function regionOf(endpoint: URL, flag: string | undefined): string | undefined {
	if (flag) return flag;
	const m = /(?:^|\.)s3[.-](?:fips\.)?(?:dualstack\.)?([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(?:\.cn)?$/.exec(
		endpoint.hostname,
	);
	return m?.[1] ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
}

function smokeClient(flags: SmokeFlags): S3Client {
	let url: URL;
	try {
		url = new URL(flags.endpoint);
	} catch {
		throw new FtguardError(
			"USAGE",
			`--endpoint ${flags.endpoint}: not a URL (e.g. https://s3.eu-west-1.amazonaws.com)`,
		);
	}
	if (url.protocol !== "https:" && url.protocol !== "http:") {
		throw new FtguardError("USAGE", `--endpoint ${flags.endpoint}: expected http(s)://`);
	}
	const aws = /\.amazonaws\.com(\.cn)?$/.test(url.hostname);
	return new S3Client({
		endpoint: flags.endpoint,
		region: regionOf(url, flags.region) ?? "us-east-1",
		// Virtual-hosted style on AWS; path style elsewhere (the local pipeline serves buckets under its one host).
		forcePathStyle: !aws,
		maxAttempts: 5,
	});
}

function loadKey(file: string) {
	let text: string;
	try {
		text = readFileSync(file, "utf8");
	} catch (e) {
		throw new FtguardError("NOT_FOUND", `--key ${file}: ${(e as NodeJS.ErrnoException).code ?? "unreadable"}`, {
			cause: e,
		});
	}
	try {
		return keySigner(createPrivateKey(text));
	} catch (e) {
		throw new FtguardError(
			"KEY_INVALID",
			`--key ${file}: ${(e as Error).message.split("\n")[0]} (an EC private key in PEM, e.g. openssl ecparam -name prime256v1 -genkey -noout)`,
			{ cause: e },
		);
	}
}

interface Committed {
	name: SmokeResult["name"];
	expected: Expected;
	dir: string;
	marker: string;
	markerVersion: { versionId?: string; etag?: string };
	probe: { key: string; versionId?: string };
	started: number;
}

async function commit(
	s3: S3Client,
	flags: SmokeFlags,
	name: SmokeResult["name"],
	expected: Expected,
	dir: string,
	local: string,
): Promise<Committed> {
	const started = Date.now();
	let probe: Committed["probe"] = { key: `${dir}${PROBE}` };
	const put = async (file: string) => {
		const key = `${dir}${file}`;
		try {
			return await s3.send(
				new PutObjectCommand({ Bucket: flags.bucket, Key: key, Body: readFileSync(join(local, file)) }),
			);
		} catch (e) {
			throw awsError(
				e,
				`S3 PutObject s3://${flags.bucket}/${key}`,
				"the caller needs s3:PutObject on the checkpoint bucket and kms:GenerateDataKey on its key",
			);
		}
	};
	for (const f of SMOKE_FILES) {
		const out = await put(f);
		if (f === PROBE) probe = { key: `${dir}${PROBE}`, ...(out.VersionId ? { versionId: out.VersionId } : {}) };
	}
	// the commit marker last: it starts the scan of everything under the directory
	const m = await put(MARKER);
	return {
		name,
		expected,
		dir,
		marker: `${dir}${MARKER}`,
		markerVersion: { ...(m.VersionId ? { versionId: m.VersionId } : {}), ...(m.ETag ? { etag: m.ETag } : {}) },
		probe,
		started,
	};
}

const FINAL = new Set(["PROMOTABLE", "QUARANTINED"]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One look at a commit's verdict; undefined while there is none. */
async function look(
	s3: S3Client,
	flags: SmokeFlags,
	c: Committed,
): Promise<{ status: string; reasons: string[]; source: "tag" | "record" } | undefined> {
	if (flags.reportBucket && c.markerVersion.versionId) {
		const key = reportKey(scanIdOf(flags.bucket, c.marker, { versionId: c.markerVersion.versionId }), "verdict");
		try {
			const out = await s3.send(new GetObjectCommand({ Bucket: flags.reportBucket, Key: key }));
			const record = JSON.parse(await (out.Body as { transformToString(): Promise<string> }).transformToString()) as {
				status?: string;
				reasons?: string[];
			};
			return { status: String(record.status), reasons: record.reasons ?? [], source: "record" };
		} catch (e) {
			if ((e as { name?: string }).name === "NoSuchKey") return undefined;
			throw awsError(
				e,
				`S3 GetObject s3://${flags.reportBucket}/${key}`,
				"the caller needs s3:GetObject on the report bucket and kms:Decrypt on its key",
			);
		}
	}
	try {
		const out = await s3.send(
			new GetObjectTaggingCommand({
				Bucket: flags.bucket,
				Key: c.probe.key,
				...(c.probe.versionId ? { VersionId: c.probe.versionId } : {}),
			}),
		);
		const status = out.TagSet?.find((t) => t.Key === STATUS_TAG)?.Value;
		return status !== undefined && FINAL.has(status) ? { status, reasons: [], source: "tag" } : undefined;
	} catch (e) {
		const denied = /AccessDenied/.test((e as { name?: string }).name ?? "");
		throw awsError(
			e,
			`S3 GetObjectTagging s3://${flags.bucket}/${c.probe.key}`,
			denied
				? "the checkpoint bucket lets only the scanner, verdict and break-glass roles read the tags of an object that is not PROMOTABLE: pass --report-bucket <report bucket> to read the verdict records instead"
				: undefined,
		);
	}
}

async function await_(s3: S3Client, flags: SmokeFlags, c: Committed, deadline: number): Promise<SmokeResult> {
	for (;;) {
		const v = await look(s3, flags, c);
		const seconds = (Date.now() - c.started) / 1000;
		if (v) {
			return { name: c.name, marker: c.marker, expected: c.expected, ...v, seconds, ok: v.status === c.expected };
		}
		if (Date.now() >= deadline) {
			return {
				name: c.name,
				marker: c.marker,
				expected: c.expected,
				status: "NO_VERDICT",
				reasons: [`no verdict within ${flags.timeout} s`],
				source: "none",
				seconds,
				ok: false,
			};
		}
		await sleep(Math.min(flags.interval * 1000, Math.max(0, deadline - Date.now())));
	}
}

/** Signs the example into `work/signed` and `work/tampered` (the latter then changed by one byte). */
async function prepare(
	work: string,
	signer: ReturnType<typeof keySigner>,
): Promise<{ signed: string; tampered: string }> {
	const root = join(repositoryRoot(), "examples/checkpoint");
	const out = { signed: join(work, "signed"), tampered: join(work, "tampered") };
	for (const dir of Object.values(out)) {
		mkdirSync(dir);
		for (const f of SMOKE_FILES) copyFileSync(join(root, f), join(dir, f));
		writeFileSync(join(dir, MARKER), signer.signManifest(await buildManifest(dir, { ignorePaths: [MARKER] })));
	}
	// one byte changed after signing: the manifest no longer matches (signature: DIGEST_MISMATCH)
	const probe = join(out.tampered, PROBE);
	const bytes = readFileSync(probe);
	const at = bytes.indexOf(0x7b); // "{"; a space before it keeps the JSON valid, so only the digest tells
	writeFileSync(probe, Buffer.concat([bytes.subarray(0, at), Buffer.from(" "), bytes.subarray(at)]));
	return out;
}

/** The command body; `client` replaces the S3 client made from the flags (tests: recorded responses). */
export async function runSmoke(io: Io, flags: SmokeFlags, client?: S3Client): Promise<ExitCode> {
	if (!Number.isFinite(flags.timeout) || flags.timeout <= 0) throw new FtguardError("USAGE", "--timeout must be > 0");
	const signer = loadKey(flags.key);
	const s3 = client ?? smokeClient(flags);
	const run = `${new Date()
		.toISOString()
		.replace(/[-:]/g, "")
		.replace(/\.\d+Z$/, "Z")}-${randomBytes(3).toString("hex")}`;
	const prefix = flags.prefix ?? "ftguard-smoke/";
	if (prefix !== "" && !prefix.endsWith("/")) throw new FtguardError("USAGE", "--prefix must end with /");
	const work = mkdtempSync(join(tmpdir(), "ftguard-smoke-"));
	try {
		const local = await prepare(work, signer);
		const base = `${prefix}${run}/`;
		const deadline = Date.now() + flags.timeout * 1000;
		const committed = [
			await commit(s3, flags, "signed", "PROMOTABLE", `${base}signed/`, local.signed),
			await commit(s3, flags, "tampered", "QUARANTINED", `${base}tampered/`, local.tampered),
		];
		if (!io.json)
			io.err(
				`ftguard aws smoke: committed s3://${flags.bucket}/${base}{signed,tampered}/; waiting for the verdicts (up to ${flags.timeout} s)`,
			);
		const results = await Promise.all(committed.map((c) => await_(s3, flags, c, deadline)));
		const ok = results.every((r) => r.ok);
		if (io.json) printJson(io, { ok, bucket: flags.bucket, prefix: base, results });
		else {
			for (const r of results) {
				const why = r.reasons.length ? ` (${r.reasons.join("; ")})` : "";
				io.out(
					`${r.name.padEnd(8)}  ${r.status.padEnd(11)}  ${r.ok ? "as expected" : `EXPECTED ${r.expected}`}  ${r.seconds.toFixed(1)} s  ${r.marker}${why}`,
				);
			}
			io.out(ok ? "smoke test passed" : "smoke test FAILED");
		}
		return ok ? 0 : 1;
	} finally {
		rmSync(work, { recursive: true, force: true });
		s3.destroy();
	}
}
