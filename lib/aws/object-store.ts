/**
 * The S3 operations ftguard's edges need, over the AWS SDK. Core code never
 * imports this; handlers and the batch job pass bytes from here into lib/core.
 *
 * Objects are read by VersionId when one is given, so a scan sees exactly the
 * version the event named even if the key is overwritten meanwhile. A local
 * S3-compatible server without versioning returns no VersionId: callers bind to
 * the ETag there instead.
 */
import { GetObjectCommand, type GetObjectCommandOutput, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { FtguardError } from "../core/errors";
import { s3Error } from "./objects";

export interface ObjectRef {
	bucket: string;
	key: string;
	versionId?: string;
}

export interface FetchedObject {
	bytes: Uint8Array;
	etag: string | undefined;
	versionId: string | undefined;
}

/** `s3://bucket/key` → {bucket, key}; anything else is a usage error naming what was given. */
export function parseS3Uri(uri: string, versionId?: string): ObjectRef {
	const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/(.+)$/.exec(uri);
	if (!m?.[1] || !m[2]) throw new FtguardError("USAGE", `not an s3://bucket/key URI: ${JSON.stringify(uri)}`);
	return { bucket: m[1], key: m[2], ...(versionId ? { versionId } : {}) };
}

export function s3Uri(ref: ObjectRef): string {
	return `s3://${ref.bucket}/${ref.key}`;
}

/**
 * Reads a whole object (reference data, ONNX models: tens of MB at most) with a
 * size cap checked before and while reading, so a huge object fails with a clear
 * error instead of exhausting memory.
 */
export async function getObjectBytes(s3: S3Client, ref: ObjectRef, maxBytes: number): Promise<FetchedObject> {
	let res: GetObjectCommandOutput;
	try {
		res = await s3.send(
			new GetObjectCommand({
				Bucket: ref.bucket,
				Key: ref.key,
				...(ref.versionId ? { VersionId: ref.versionId } : {}),
			}),
		);
	} catch (e) {
		throw s3Error(e, s3Uri(ref));
	}
	if (res.ContentLength !== undefined && res.ContentLength > maxBytes) {
		// the body is not read: release its connection rather than leave the stream open
		(res.Body as { destroy?: () => void } | undefined)?.destroy?.();
		throw new FtguardError("DATA_INVALID", `${s3Uri(ref)} is ${res.ContentLength} bytes (limit ${maxBytes})`);
	}
	if (!res.Body) throw new FtguardError("IO_ERROR", `cannot read ${s3Uri(ref)}: empty response body`);
	const bytes = await res.Body.transformToByteArray();
	if (bytes.length > maxBytes) {
		throw new FtguardError("DATA_INVALID", `${s3Uri(ref)} is over ${maxBytes} bytes`);
	}
	return { bytes, etag: res.ETag, versionId: res.VersionId };
}

export async function putObject(s3: S3Client, ref: ObjectRef, body: Uint8Array | string, contentType: string) {
	try {
		return await s3.send(
			new PutObjectCommand({ Bucket: ref.bucket, Key: ref.key, Body: body, ContentType: contentType }),
		);
	} catch (e) {
		throw s3Error(e, s3Uri(ref));
	}
}
