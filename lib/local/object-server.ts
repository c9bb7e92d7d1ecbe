/**
 * The local pipeline's object store: s3rver (a real S3-compatible HTTP server)
 * on 127.0.0.1 in a worker thread, with the buckets created, and its `event`
 * records turned into the EventBridge "Object Created" shape that S3 sends in
 * AWS (s3rver has no bucket notifications and no versioning).
 *
 * Why a worker: the handlers hash what they read in this thread; with s3rver in
 * it too, serving and hashing a multi-GiB checkpoint shared one core and the
 * local upload → verdict time was three times `ftguard verify`'s (bench:pipeline).
 */
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { S3Client } from "@aws-sdk/client-s3";
import { JOB_KEY_PREFIX } from "./job-credentials";
import { LOCAL_CREDENTIALS, LOCAL_REGION, type ObjectCreatedEvent } from "./s3rver-host";

export {
	AwsChunkedDecoder,
	LOCAL_CREDENTIALS,
	LOCAL_REGION,
	type ObjectCreatedEvent,
	toObjectCreated,
} from "./s3rver-host";

export interface ObjectServerOptions {
	/** @default 0 (any free port) */
	port?: number;
	/** where objects are kept; @default a temporary directory, removed on close */
	dataDir?: string;
	buckets: readonly string[];
	/** buckets nothing may be copied into (the checkpoint bucket, as its policy says in AWS) */
	noCopyInto?: readonly string[];
}

export interface ObjectServer {
	/** http://127.0.0.1:<port>; path-style addressing */
	endpoint: string;
	port: number;
	dataDir: string;
	/** a client for the server (path-style, dummy credentials) */
	client: S3Client;
	/**
	 * A key pair of its own for one batch job attempt (lib/local/job-credentials.ts), valid once this resolves;
	 * `revoke` resolves once nothing made with it can still land.
	 */
	issueJobCredentials(): Promise<JobCredentialsGrant>;
	/** every object creation in any bucket, as EventBridge would deliver it */
	onObjectCreated(listener: (event: ObjectCreatedEvent) => void): () => void;
	close(): Promise<void>;
}

export interface JobCredentialsGrant {
	accessKeyId: string;
	secretAccessKey: string;
	revoke(): Promise<void>;
}

type WorkerMessage =
	| { type: "ready"; port: number }
	| { type: "granted" | "revoked"; id: number }
	| { type: "created"; event: ObjectCreatedEvent }
	| { type: "closed" }
	| { type: "error"; message: string };

/**
 * The worker runs the TypeScript entry through tsx's ESM API (a dependency): lib/local is always loaded from the
 * sources, also by the bundled CLI (lib/cli/pipeline.ts), so there is no bundled worker to prefer.
 */
function spawnWorker(data: unknown): Worker {
	// tsx's published ESM API, found through its exports map (not a path inside the package).
	const require = createRequire(import.meta.url);
	const pkgPath = require.resolve("tsx/package.json");
	const pkg = JSON.parse(readFileSync(pkgPath, "utf8")) as {
		exports: Record<string, { import?: { default?: string } }>;
	};
	const api = pathToFileURL(join(dirname(pkgPath), pkg.exports["./esm/api"]?.import?.default ?? "")).href;
	const entry = new URL("./object-server-worker.ts", import.meta.url).href;
	const code = `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`;
	return new Worker(code, { eval: true, workerData: data });
}

export async function startObjectServer(options: ObjectServerOptions): Promise<ObjectServer> {
	const temporary = options.dataDir === undefined;
	const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "ftguard-s3-"));
	const events = new EventEmitter();
	const worker = spawnWorker({
		port: options.port ?? 0,
		dataDir,
		buckets: [...options.buckets],
		noCopyInto: [...(options.noCopyInto ?? [])],
	});
	let closed: (() => void) | undefined;
	/** answers of the worker to `grant` / `revoke`, by request id */
	const answers = new Map<number, () => void>();
	let requests = 0;
	const ask = (message: Record<string, unknown>) =>
		new Promise<void>((resolve) => {
			requests += 1;
			answers.set(requests, resolve);
			worker.postMessage({ ...message, id: requests });
		});
	const port = await new Promise<number>((resolve, reject) => {
		worker.on("message", (m: WorkerMessage) => {
			if (m.type === "ready") resolve(m.port);
			else if (m.type === "created") events.emit("created", m.event);
			else if (m.type === "granted" || m.type === "revoked") {
				answers.get(m.id)?.();
				answers.delete(m.id);
			} else if (m.type === "closed") closed?.();
			else if (m.type === "error") reject(new Error(`local object server: ${m.message}`));
		});
		worker.on("error", reject);
		worker.on("exit", (code) => {
			// a server that is gone lands nothing more: a revocation waiting for its answer is done
			for (const answer of answers.values()) answer();
			answers.clear();
			reject(new Error(`local object server: worker exited (${code})`));
		});
	}).catch(async (e: Error) => {
		await worker.terminate();
		if (temporary) rmSync(dataDir, { recursive: true, force: true });
		throw e;
	});
	const endpoint = `http://127.0.0.1:${port}`;
	const client = new S3Client({ endpoint, forcePathStyle: true, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
	return {
		endpoint,
		port,
		dataDir,
		client,
		async issueJobCredentials() {
			const accessKeyId = `${JOB_KEY_PREFIX}${randomBytes(7).toString("hex").toUpperCase()}`;
			const secretAccessKey = randomBytes(30).toString("base64");
			await ask({ type: "grant", accessKeyId, secretAccessKey });
			let revoked: Promise<void> | undefined;
			return {
				accessKeyId,
				secretAccessKey,
				revoke: () => {
					revoked ??= ask({ type: "revoke", accessKeyId });
					return revoked;
				},
			};
		},
		onObjectCreated(listener) {
			events.on("created", listener);
			return () => events.off("created", listener);
		},
		async close() {
			events.removeAllListeners();
			client.destroy();
			// let s3rver finish its connections, then end the thread (a worker that never answers is terminated)
			await new Promise<void>((resolve) => {
				const timer = setTimeout(resolve, 5000);
				closed = () => {
					clearTimeout(timer);
					resolve();
				};
				worker.postMessage({ type: "close" });
			});
			await worker.terminate();
			if (temporary) rmSync(dataDir, { recursive: true, force: true });
		},
	};
}
