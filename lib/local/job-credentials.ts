/**
 * Credentials of one batch job attempt on the local object server, revoked when the attempt ends.
 *
 * A job is a process group of its own and is killed with it, but a process can leave its group (a new session:
 * `spawn(…, { detached: true })`, setsid) and so outlive the kill, still holding the job's credentials. In AWS what
 * ends a job's access is not the end of its processes but its credentials and permissions; here each attempt gets an
 * access key of its own (lib/local/batch-runner.ts), and the runner revokes it before it reports the attempt ended,
 * so nothing the job or any process it started writes can land after that — however it escaped.
 *
 * Revocation is atomic against writes in flight. A request made with a job key is checked twice: when it arrives,
 * and once its whole body has arrived (read here into memory first; a job writes reports, not checkpoints), just
 * before s3rver is given it. From that second check on, the request is only local work (s3rver writing files), and
 * `revoke` waits for such requests to finish; a request still receiving its body is cut off (its socket destroyed),
 * and one that completes its body after the revocation is refused. So when `revoke` resolves, every write made with
 * the key has either landed or never will.
 */
import { createRequire } from "node:module";
import { Readable } from "node:stream";

/** Access key ids of job attempts: `FTGJOB` + 14 hex digits (20 characters, as an AWS access key id). */
export const JOB_KEY_PREFIX = "FTGJOB";

interface AccountModel {
	createKeyPair(accessKeyId: string, secretAccessKey: string): void;
	revokeAccessKey(accessKeyId: string): void;
}

/** s3rver's built-in account: a job key is one more key pair of it, so that s3rver's own authentication accepts it. */
function s3rverAccount(): AccountModel {
	const require = createRequire(import.meta.url);
	return (require("s3rver/lib/models/account") as { DUMMY_ACCOUNT: AccountModel }).DUMMY_ACCOUNT;
}

/** The access key id of a request: SigV4 header or query, or SigV2 header or query; undefined when unsigned. */
export function requestAccessKeyId(
	headers: Record<string, string | string[] | undefined>,
	query: Record<string, string | string[] | undefined>,
): string | undefined {
	const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
	const auth = one(headers.authorization) ?? "";
	const v4 = /Credential=([^/,\s]+)\//.exec(auth);
	if (v4) return v4[1];
	const v2 = /^AWS ([^:\s]+):/.exec(auth);
	if (v2) return v2[1];
	const credential = one(query["X-Amz-Credential"]);
	if (credential) return credential.split("/")[0];
	return one(query.AWSAccessKeyId);
}

/** What the middleware needs of s3rver's Koa context (before any other middleware). */
interface KoaContext {
	method: string;
	headers: Record<string, string | string[] | undefined>;
	query: Record<string, string | string[] | undefined>;
	req: NodeJS.ReadableStream & { destroy?(error?: Error): void };
	socket?: { destroy(error?: Error): void };
	status: number;
	body?: unknown;
	set(field: string, value: string): void;
}

interface KeyState {
	/** requests still receiving their body: cut off on revocation */
	receiving: Set<KoaContext>;
	/** requests past their last check (s3rver at work): awaited on revocation */
	committing: Set<Promise<unknown>>;
}

function refuse(ctx: KoaContext, accessKeyId: string): void {
	ctx.status = 403;
	ctx.set("Content-Type", "application/xml");
	ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message><AWSAccessKeyId>${accessKeyId}</AWSAccessKeyId></Error>`;
}

/** The job keys of one object server (one per worker thread). */
export class JobCredentials {
	private readonly keys = new Map<string, KeyState>();
	private readonly account = s3rverAccount();

	grant(accessKeyId: string, secretAccessKey: string): void {
		if (!accessKeyId.startsWith(JOB_KEY_PREFIX)) throw new Error(`a job key must start with ${JOB_KEY_PREFIX}`);
		this.keys.set(accessKeyId, { receiving: new Set(), committing: new Set() });
		this.account.createKeyPair(accessKeyId, secretAccessKey);
	}

	/** Resolves once no request made with the key can still change anything. */
	async revoke(accessKeyId: string): Promise<void> {
		const state = this.keys.get(accessKeyId);
		this.keys.delete(accessKeyId);
		this.account.revokeAccessKey(accessKeyId);
		if (!state) return;
		for (const ctx of state.receiving) {
			const error = new Error("access key revoked");
			ctx.req.destroy?.(error);
			ctx.socket?.destroy(error);
		}
		await Promise.allSettled([...state.committing]);
	}

	/** Whether the key is a job key that is still valid (tests). */
	active(accessKeyId: string): boolean {
		return this.keys.has(accessKeyId);
	}

	/** Koa middleware, first in s3rver's chain. Requests with any other key (the built-in one) pass through. */
	readonly middleware = async (ctx: KoaContext, next: () => Promise<unknown>): Promise<unknown> => {
		const accessKeyId = requestAccessKeyId(ctx.headers, ctx.query);
		if (accessKeyId === undefined || !accessKeyId.startsWith(JOB_KEY_PREFIX)) return next();
		let state = this.keys.get(accessKeyId);
		if (!state) return refuse(ctx, accessKeyId);
		// a read changes nothing: a revoked key's next request is refused, one in flight may finish
		if (ctx.method === "GET" || ctx.method === "HEAD") return next();
		if (ctx.method === "PUT" || ctx.method === "POST") {
			state.receiving.add(ctx);
			let body: Buffer;
			try {
				const chunks: Buffer[] = [];
				for await (const chunk of ctx.req as AsyncIterable<Buffer | string>) {
					chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
				}
				body = Buffer.concat(chunks);
			} catch {
				// cut off (revoked) or the client went away: nothing is written
				return refuse(ctx, accessKeyId);
			} finally {
				state.receiving.delete(ctx);
			}
			state = this.keys.get(accessKeyId);
			if (!state) return refuse(ctx, accessKeyId);
			// s3rver (and the body decoder) read the body from ctx.req
			ctx.req = Readable.from([body], { objectMode: false }) as unknown as KoaContext["req"];
		}
		// from here on only local work: checked and registered in one synchronous step, so revoke awaits it
		const work = next();
		state.committing.add(work);
		try {
			return await work;
		} finally {
			state.committing.delete(work);
		}
	};
}
