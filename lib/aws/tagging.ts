/**
 * ftguard's object tags, written on exact object versions. PutObjectTagging
 * replaces the whole tag set, so the object's other tags are read and kept;
 * only `ftguard:*` keys are replaced. Writes are retried a few times with
 * backoff, then fail with IO_ERROR (the state machine catches it and alarms).
 */
import { GetObjectTaggingCommand, PutObjectTaggingCommand, type S3Client, type Tag } from "@aws-sdk/client-s3";
import { FtguardError } from "../core/errors";
import { TAG_IF_MATCH_HEADER } from "../core/pipeline/names";
import { isPreconditionFailed, s3Error } from "./objects";

export interface TagTarget {
	bucket: string;
	key: string;
	versionId?: string | undefined;
	/**
	 * Without a versionId (a store without versioning: the local server), the ETag the object must still have:
	 * the tag write is then conditional (`x-ftguard-if-match`, which ftguard's local server applies atomically
	 * against overwrites; lib/local/s3rver-host.ts). S3 has no conditional PutObjectTagging; there the VersionId
	 * binds the write, and this is not sent.
	 */
	etag?: string | undefined;
}

export interface RetryOptions {
	/** @default 4 */
	attempts?: number;
	/** First backoff; doubled each retry. @default 200 */
	baseDelayMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function retrying<T>(what: string, opts: RetryOptions, fn: () => Promise<T>): Promise<T> {
	const attempts = opts.attempts ?? 4;
	let delay = opts.baseDelayMs ?? 200;
	let last: unknown;
	for (let i = 0; i < attempts; i++) {
		try {
			return await fn();
		} catch (e) {
			last = e;
			// A missing object or version will not reappear, nor a replaced object's ETag: no point retrying.
			if (s3Error(e, what).code === "NOT_FOUND" || isPreconditionFailed(e)) break;
			if (i < attempts - 1) {
				await sleep(delay);
				delay *= 2;
			}
		}
	}
	const err = s3Error(last, what);
	throw new FtguardError(err.code, `${err.message} (gave up tagging after retries)`, { cause: last });
}

function describe(t: TagTarget): string {
	return `s3://${t.bucket}/${t.key}${t.versionId ? ` (version ${t.versionId})` : ""}`;
}

export async function getTags(s3: S3Client, t: TagTarget, opts: RetryOptions = {}): Promise<Record<string, string>> {
	const r = await retrying(describe(t), opts, () =>
		s3.send(
			new GetObjectTaggingCommand({
				Bucket: t.bucket,
				Key: t.key,
				...(t.versionId ? { VersionId: t.versionId } : {}),
			}),
		),
	);
	return Object.fromEntries((r.TagSet ?? []).map((x) => [x.Key ?? "", x.Value ?? ""]));
}

/**
 * Sets `tags` (all `ftguard:*`) on the version, keeping the object's other tags and dropping stale ftguard ones
 * (any key that is `ftguard:*` in lower case, e.g. a foreign `FTGUARD:STATUS`).
 * Returns false, writing nothing, when the target is bound by ETag and the object no longer has it.
 */
export async function putFtguardTags(
	s3: S3Client,
	t: TagTarget,
	tags: Record<string, string>,
	opts: RetryOptions = {},
): Promise<boolean> {
	for (const k of Object.keys(tags)) {
		if (!k.startsWith("ftguard:")) throw new FtguardError("INTERNAL", `not an ftguard tag key: ${k}`);
	}
	const existing = await getTags(s3, t, opts);
	// Case-folded: IAM condition key names are case-insensitive, so a foreign `FTGUARD:STATUS` may be read as
	// `ftguard:status` (s3:ExistingObjectTag/…) and must not survive next to the verdict.
	const kept: Tag[] = Object.entries(existing)
		.filter(([k]) => !k.toLowerCase().startsWith("ftguard:"))
		.map(([Key, Value]) => ({ Key, Value }));
	const set: Tag[] = [...kept, ...Object.entries(tags).map(([Key, Value]) => ({ Key, Value }))];
	if (set.length > 10) {
		throw new FtguardError("IO_ERROR", `${describe(t)} would carry ${set.length} tags (S3 allows 10)`);
	}
	const command = new PutObjectTaggingCommand({
		Bucket: t.bucket,
		Key: t.key,
		...(t.versionId ? { VersionId: t.versionId } : {}),
		Tagging: { TagSet: set },
	});
	const etag = t.versionId ? undefined : t.etag;
	if (etag !== undefined) {
		// added before signing (the build step), so the header is signed with the request
		command.middlewareStack.add(
			(next) => (args) => {
				(args.request as { headers: Record<string, string> }).headers[TAG_IF_MATCH_HEADER] = etag;
				return next(args);
			},
			{ step: "build", name: "ftguardTagIfMatch" },
		);
	}
	try {
		await retrying(describe(t), opts, () => s3.send(command));
		return true;
	} catch (e) {
		if (etag !== undefined && isPreconditionFailed((e as { cause?: unknown }).cause)) return false;
		throw e;
	}
}
