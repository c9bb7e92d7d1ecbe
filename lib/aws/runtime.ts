/**
 * What every pipeline handler shares, created once per container: the S3 and
 * Step Functions clients, the logger, the policy, and the environment read in
 * one place. Handlers stay adapters: parse, call, return.
 *
 * Environment:
 * - FTGUARD_REPORT_BUCKET   bucket for manifests, file reports, verdict records (manifest, files, record)
 * - FTGUARD_REPORT_PREFIX   key prefix of each scan's reports in that bucket, ending in "/" (default "scans/")
 * - FTGUARD_POLICY_URI      s3://bucket/key of the policy JSON, read once per container (signature, files, base-model)
 * - FTGUARD_POLICY          the policy JSON inline, instead of FTGUARD_POLICY_URI (local runs, tests)
 * - FTGUARD_STATE_MACHINE_ARN  the scan state machine (start, sweep)
 * - FTGUARD_MAX_EXECUTION_SECONDS  the state machine's execution timeout (sweep)
 * - FTGUARD_S3_ENDPOINT     a local S3-compatible server (path-style); unset in AWS
 * - FTGUARD_SFN_ENDPOINT    a local Step Functions endpoint; unset in AWS
 */
import { Logger } from "@aws-lambda-powertools/logger";
import { S3Client } from "@aws-sdk/client-s3";
import { SFNClient } from "@aws-sdk/client-sfn";
import { FtguardError, firstLine, toFtguardError } from "../core/errors";
import { METRIC_SERVICE } from "../core/pipeline/names";
import { reportKey } from "../core/pipeline/record";
import { type Policy, parsePolicy } from "../core/policy";
import { getObjectBytes, parseS3Uri, putObject } from "./object-store";
import type { RangedReadOptions } from "./objects";

let s3: S3Client | undefined;
let sfn: SFNClient | undefined;
let logger: Logger | undefined;
const policies = new Map<string, Promise<Policy>>();

export function s3Client(): S3Client {
	s3 ??= newS3Client();
	return s3;
}

/** A client of the environment's credentials and region; FTGUARD_S3_ENDPOINT: a local server, path-style. */
export function newS3Client(): S3Client {
	const endpoint = process.env.FTGUARD_S3_ENDPOINT;
	return new S3Client(endpoint ? { endpoint, forcePathStyle: true } : {});
}

/**
 * How the handlers read large objects (lib/aws/objects.ts): from S3, in parallel ranges (one S3 GET stream runs
 * at ~100 MB/s); from a local S3-compatible server (FTGUARD_S3_ENDPOINT), in one stream per object or shard —
 * loopback has no per-connection cap, and each extra request only adds the server's per-request cost.
 */
export function rangedReadOptions(): RangedReadOptions {
	return process.env.FTGUARD_S3_ENDPOINT ? { partBytes: Number.POSITIVE_INFINITY } : {};
}

export function sfnClient(): SFNClient {
	const endpoint = process.env.FTGUARD_SFN_ENDPOINT;
	sfn ??= new SFNClient(endpoint ? { endpoint } : {});
	return sfn;
}

/**
 * Replaces the container's S3 and/or Step Functions client (a key given as undefined restores the default). For
 * tests that drive a handler against a stand-in (e.g. a fake SFN client object for the sweeper); handlers always
 * go through {@link s3Client} / {@link sfnClient}.
 */
export function setClients(clients: { s3?: S3Client | undefined; sfn?: SFNClient | undefined }): void {
	if ("s3" in clients) s3 = clients.s3;
	if ("sfn" in clients) sfn = clients.sfn;
}

export function pipelineLogger(): Logger {
	logger ??= new Logger({ serviceName: METRIC_SERVICE });
	return logger;
}

/** A required environment variable; a missing one is a deployment error (USAGE), named. */
export function requireEnv(name: string): string {
	const v = process.env[name];
	if (v === undefined || v === "") throw new FtguardError("USAGE", `environment variable ${name} is not set`);
	return v;
}

const MAX_POLICY_BYTES = 1 << 20;

/** The deployed policy: inline FTGUARD_POLICY, else FTGUARD_POLICY_URI; neither is a USAGE error (no default trust). */
export function loadPolicy(): Promise<Policy> {
	const inline = process.env.FTGUARD_POLICY;
	const uri = process.env.FTGUARD_POLICY_URI;
	const source = inline ? `inline:${inline}` : uri ? `uri:${uri}` : "";
	if (source === "") {
		return Promise.reject(new FtguardError("USAGE", "neither FTGUARD_POLICY nor FTGUARD_POLICY_URI is set"));
	}
	let p = policies.get(source);
	if (!p) {
		p = (async () => {
			if (inline) return parsePolicy(inline, "FTGUARD_POLICY");
			const ref = parseS3Uri(uri as string);
			const { bytes } = await getObjectBytes(s3Client(), ref, MAX_POLICY_BYTES);
			return parsePolicy(Buffer.from(bytes).toString("utf8"), uri);
		})();
		p.catch(() => policies.delete(source));
		policies.set(source, p);
	}
	return p;
}

/**
 * One invocation's logger: every line carries this invocation's `state` and `scanId`. The keys are passed with
 * each line, not appended to the shared Powertools logger, because the local pipeline runs several scans' handlers
 * concurrently in one process (in Lambda a container runs one invocation at a time): appended keys would label one
 * scan's lines with another's id.
 */
export interface HandlerLog {
	info(message: string, extra?: Record<string, unknown>): void;
	warn(message: string, extra?: Record<string, unknown>): void;
	error(message: string, extra?: Record<string, unknown>): void;
	/** Adds keys to this invocation's later lines only. */
	appendKeys(keys: Record<string, string>): void;
}

export function invocationLog(base: Logger, initial: Record<string, string>): HandlerLog {
	const keys = { ...initial };
	return {
		info: (message, extra) => base.info(message, { ...keys, ...extra }),
		warn: (message, extra) => base.warn(message, { ...keys, ...extra }),
		error: (message, extra) => base.error(message, { ...keys, ...extra }),
		appendKeys: (more) => Object.assign(keys, more),
	};
}

/**
 * Runs a handler body with the scan id in every log line. Anything thrown leaves
 * as an Error whose name is the stable code and whose message is one line, with
 * no stack: Step Functions puts the error into the state (`error.cause`) and the
 * verdict record, and a stack trace belongs in the logs, not there.
 */
export async function runHandler<T>(
	state: string,
	scanId: string | undefined,
	body: (log: HandlerLog) => Promise<T>,
): Promise<T> {
	const log = invocationLog(pipelineLogger(), { state, scanId: scanId ?? "unknown" });
	try {
		return await body(log);
	} catch (e) {
		const err = toFtguardError(e, state);
		log.error(`${state} failed`, { code: err.code, error: e as Error });
		const out = new Error(firstLine(err.message));
		out.name = `ftguard.${err.code}`;
		out.stack = `${out.name}: ${out.message}`;
		throw out;
	}
}

/** The scan id of a raw event, for logging before it is parsed. */
export function scanIdOf(event: unknown): string | undefined {
	const id = (event as { scanId?: unknown } | null)?.scanId;
	return typeof id === "string" ? id : undefined;
}

/** Report bucket and per-scan key prefix (FTGUARD_REPORT_BUCKET, FTGUARD_REPORT_PREFIX). */
export function reportLocation(): { bucket: string; prefix: string } {
	const prefix = process.env.FTGUARD_REPORT_PREFIX || "scans/";
	if (!prefix.endsWith("/")) throw new FtguardError("USAGE", `FTGUARD_REPORT_PREFIX must end in "/": ${prefix}`);
	return { bucket: requireEnv("FTGUARD_REPORT_BUCKET"), prefix };
}

/** Writes one of the scan's JSON reports to the report bucket and returns its s3:// URI. */
export async function writeReport(
	scanId: string,
	name: "manifest" | "files" | "verdict",
	doc: unknown,
): Promise<string> {
	return (await writeReportJson(scanId, name, doc)).uri;
}

/** {@link writeReport}, also returning the JSON text written (the verdict record's bytes are attested). */
export async function writeReportJson(
	scanId: string,
	name: "manifest" | "files" | "verdict",
	doc: unknown,
): Promise<{ uri: string; json: string }> {
	const { bucket, prefix } = reportLocation();
	const key = reportKey(scanId, name, prefix);
	const json = JSON.stringify(doc, null, 2);
	await putObject(s3Client(), { bucket, key }, json, "application/json");
	return { uri: `s3://${bucket}/${key}`, json };
}
