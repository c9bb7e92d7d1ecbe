/**
 * Sigstore bundle parsing (v0.1–v0.3), without verifying anything. Kept apart
 * from verification so that "is this a bundle at all" (BUNDLE_MALFORMED /
 * BUNDLE_MEDIA_TYPE, exit 2) is decided before any trust question is asked.
 */
import {
	assertBundleV01,
	assertBundleV02,
	BUNDLE_V01_MEDIA_TYPE,
	BUNDLE_V02_MEDIA_TYPE,
	BUNDLE_V03_LEGACY_MEDIA_TYPE,
	BUNDLE_V03_MEDIA_TYPE,
	type Bundle,
	ValidationError,
} from "@sigstore/bundle";
import { Bundle as ProtoBundle } from "@sigstore/protobuf-specs";
import { toSignedEntity } from "@sigstore/verify";
import { z } from "zod";
import { FtguardError, firstLine } from "../errors";
import { zodMessage } from "../schema";

export type { Bundle } from "@sigstore/bundle";

/** Bundles are a few kB; anything this large is not one and is not parsed. */
export const MAX_BUNDLE_BYTES = 16 * 1024 * 1024;

const KNOWN_MEDIA_TYPES: ReadonlySet<string> = new Set([
	BUNDLE_V01_MEDIA_TYPE,
	BUNDLE_V02_MEDIA_TYPE,
	BUNDLE_V03_LEGACY_MEDIA_TYPE,
	BUNDLE_V03_MEDIA_TYPE,
]);

// The protobuf JSON reader silently drops wrongly typed fields and, when two
// members of a oneof are present, keeps one; this shape check catches both first.
const base64 = z.string();
const rawBundleShape = z
	.object({
		verificationMaterial: z
			.object({
				publicKey: z.object({ hint: z.string().optional(), rawBytes: base64.optional() }).loose().optional(),
				x509CertificateChain: z
					.object({
						certificates: z.array(z.object({ rawBytes: base64 }).loose()).min(1),
					})
					.loose()
					.optional(),
				certificate: z.object({ rawBytes: base64 }).loose().optional(),
				tlogEntries: z.array(z.object({}).loose()).optional(),
				timestampVerificationData: z
					.object({
						rfc3161Timestamps: z.array(z.object({ signedTimestamp: base64 }).loose()).optional(),
					})
					.loose()
					.optional(),
			})
			.loose(),
		dsseEnvelope: z
			.object({
				payload: base64,
				payloadType: z.string(),
				signatures: z.array(z.object({ sig: base64 }).loose()).length(1),
			})
			.loose()
			.optional(),
		messageSignature: z
			.object({
				messageDigest: z.object({ algorithm: z.string(), digest: base64 }).loose(),
				signature: base64,
			})
			.loose()
			.optional(),
	})
	.loose();

/**
 * Parses a Sigstore bundle (v0.1–v0.3) without verifying anything.
 *
 * Unlike `@sigstore/bundle`'s `bundleFromJSON`, a v0.3 bundle may carry an
 * `x509CertificateChain`: model_signing writes one in certificate mode although
 * the v0.3 spec asks for a single `certificate`. Certificates and timestamps are
 * parsed here so that garbage in them reads as a malformed bundle, not as a
 * failed signature.
 *
 * @param source where the bundle came from, for messages.
 * @throws FtguardError BUNDLE_MALFORMED (not JSON, too large, wrong shape,
 *   unparsable certificate or timestamp), BUNDLE_MEDIA_TYPE (unknown `mediaType`).
 */
export function parseBundle(json: string | Uint8Array, source: string): Bundle {
	const size = typeof json === "string" ? Buffer.byteLength(json) : json.byteLength;
	if (size > MAX_BUNDLE_BYTES) {
		throw new FtguardError("BUNDLE_MALFORMED", `${source}: ${size} bytes is too large for a Sigstore bundle`);
	}
	let obj: unknown;
	try {
		obj = JSON.parse(typeof json === "string" ? json : new TextDecoder("utf-8", { fatal: true }).decode(json));
	} catch (e) {
		throw new FtguardError("BUNDLE_MALFORMED", `${source}: not valid JSON (${firstLine(String(e))})`, { cause: e });
	}
	if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
		throw new FtguardError("BUNDLE_MALFORMED", `${source}: not a JSON object`);
	}
	const mediaType = (obj as { mediaType?: unknown }).mediaType;
	if (typeof mediaType !== "string") {
		throw new FtguardError("BUNDLE_MALFORMED", `${source}: no mediaType`);
	}
	if (!KNOWN_MEDIA_TYPES.has(mediaType)) {
		throw new FtguardError(
			"BUNDLE_MEDIA_TYPE",
			`${source}: unsupported bundle mediaType ${JSON.stringify(mediaType)}`,
			{
				details: { mediaType },
			},
		);
	}
	const shape = rawBundleShape.safeParse(obj);
	if (!shape.success) {
		throw new FtguardError("BUNDLE_MALFORMED", `${source}: ${zodMessage(shape.error)}`);
	}
	const vm = shape.data.verificationMaterial;
	const keyKinds = [vm.publicKey, vm.x509CertificateChain, vm.certificate].filter((k) => k !== undefined).length;
	const contentKinds = [shape.data.dsseEnvelope, shape.data.messageSignature].filter((c) => c !== undefined).length;
	if (keyKinds !== 1) {
		throw new FtguardError(
			"BUNDLE_MALFORMED",
			`${source}: verificationMaterial needs exactly one of publicKey, x509CertificateChain, certificate`,
		);
	}
	if (contentKinds !== 1) {
		throw new FtguardError("BUNDLE_MALFORMED", `${source}: needs exactly one of dsseEnvelope, messageSignature`);
	}
	let bundle: Bundle;
	try {
		bundle = ProtoBundle.fromJSON(obj) as Bundle;
		if (mediaType === BUNDLE_V01_MEDIA_TYPE) assertBundleV01(bundle);
		else assertBundleV02(bundle);
		// Parses certificates and RFC 3161 responses; their times are read lazily,
		// so read them now: an unparsable time is a malformed bundle, not INTERNAL.
		for (const t of toSignedEntity(bundle).timestamps) {
			if (t.$case === "timestamp-authority") void t.timestamp.signingTime;
		}
	} catch (e) {
		const what = e instanceof ValidationError ? `invalid ${e.fields.join(", ")}` : firstLine(String(e));
		throw new FtguardError("BUNDLE_MALFORMED", `${source}: ${what}`, {
			cause: e,
		});
	}
	return bundle;
}
