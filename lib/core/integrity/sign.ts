/**
 * `ftguard sign`: a model directory (or file) into an OpenSSF Model Signing signature that model_signing's
 * verifier and `ftguard verify` accept. One sequence for the three modes:
 *
 *   1. hash the model with the shared manifest code (walk.ts, hash-pool.ts), ignoring the OMS git defaults,
 *      the user's paths and the signature file itself when it lies inside the model (model_signing's rule);
 *   2. the v1.0 statement (statement.ts) serialized as model_signing does (sign-payload.ts);
 *   3. sign: a `Signer` over the DSSE encoding (key, certificate) — checked against its public key before
 *      anything is written — or keyless Sigstore (sign-keyless.ts);
 *   4. the bundle bytes; `writeSignatureFile` replaces the signature file atomically.
 */
import { randomBytes, X509Certificate } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { FtguardError, toFtguardError } from "../errors";
import { buildManifest } from "./manifest";
import { keyedBundleJson } from "./sign-bundle";
import type { KeylessOptions } from "./sign-keyless";
import { statementPayload } from "./sign-payload";
import { type Signer, signInTotoPayload } from "./sign-signer";
import { keyFingerprint, parsePemCertificates, publicKeyHint } from "./signing-key";
import type { HashProgress, Manifest } from "./types";
import { pathInside } from "./walk";

export type SigningMode =
	| { kind: "key"; signer: Signer }
	/** `certificates`: the signing certificate, then the chain, DER — see {@link certificateMode} */
	| { kind: "certificate"; signer: Signer; certificates: Buffer[] }
	| { kind: "keyless"; keyless: KeylessOptions };

export interface SignModelOptions {
	/** Where the signature will be written: ignored while hashing when it lies inside the model. */
	signaturePath: string;
	mode: SigningMode;
	/** Paths relative to the model directory to leave unsigned (recorded in the statement). */
	ignorePaths?: string[];
	onProgress?: (p: HashProgress) => void;
}

export interface SignModelResult {
	/** The signature file's bytes. */
	bundle: Buffer;
	/** The DSSE payload signed (the in-toto statement). */
	payload: Buffer;
	manifest: Manifest;
	signer: { kind: SigningMode["kind"]; keyFingerprint?: string; certificateSubject?: string; identity?: string };
}

/**
 * model_signing's certificate mode: the signing certificate must hold the signer's public key (else every
 * signature would fail verification), and the bundle carries it followed by every certificate of the chain file.
 */
export function certificateMode(signer: Signer, leafPem: string, chainPem: string): SigningMode {
	const leaves = parsePemCertificates(leafPem, "signing certificate");
	if (leaves.length !== 1) {
		throw new FtguardError("KEY_INVALID", `signing certificate: expected one certificate, found ${leaves.length}`);
	}
	const leaf = leaves[0] as Buffer;
	const certKey = new X509Certificate(leaf).publicKey.export({ type: "spki", format: "der" });
	if (!certKey.equals(signer.publicKey.export({ type: "spki", format: "der" }))) {
		throw new FtguardError("KEY_INVALID", "the signing certificate's public key is not the private key's");
	}
	return { kind: "certificate", signer, certificates: [leaf, ...parsePemCertificates(chainPem, "certificate chain")] };
}

/** @throws FtguardError the manifest's codes (NOT_FOUND, IO_ERROR, SYMLINK_REFUSED, …), KEY_INVALID, USAGE, IO_ERROR */
export async function signModel(modelPath: string, o: SignModelOptions): Promise<SignModelResult> {
	const sigRel = pathInside(modelPath, o.signaturePath);
	const userIgnores = o.ignorePaths ?? [];
	const manifest = await buildManifest(modelPath, {
		ignorePaths: sigRel === undefined ? userIgnores : [...userIgnores, sigRel],
		...(o.onProgress ? { onProgress: o.onProgress } : {}),
	});
	const payload = statementPayload(manifest);
	const mode = o.mode;
	if (mode.kind === "keyless") {
		const { signKeyless } = await import("./sign-keyless");
		const bundle = await signKeyless(payload, mode.keyless);
		return { bundle, payload, manifest, signer: { kind: "keyless", ...keylessSigner(bundle) } };
	}
	const signature = await signInTotoPayload(payload, mode.signer);
	const fingerprint = keyFingerprint(mode.signer.publicKey);
	if (mode.kind === "key") {
		const bundle = Buffer.from(
			keyedBundleJson(payload, signature, { kind: "key", hint: publicKeyHint(mode.signer.publicKey) }),
		);
		return { bundle, payload, manifest, signer: { kind: "key", keyFingerprint: fingerprint } };
	}
	const bundle = Buffer.from(
		keyedBundleJson(payload, signature, { kind: "certificates", certificates: mode.certificates }),
	);
	const subject = new X509Certificate(mode.certificates[0] as Buffer).subject.replaceAll("\n", ", ");
	return {
		bundle,
		payload,
		manifest,
		signer: { kind: "certificate", keyFingerprint: fingerprint, certificateSubject: subject },
	};
}

/** The identity a keyless bundle's certificate names (for the report; verification reads it again). */
function keylessSigner(bundle: Buffer): { identity?: string } {
	try {
		const raw = (JSON.parse(bundle.toString()) as { verificationMaterial?: { certificate?: { rawBytes?: string } } })
			.verificationMaterial?.certificate?.rawBytes;
		const san = raw ? new X509Certificate(Buffer.from(raw, "base64")).subjectAltName : undefined;
		return san ? { identity: san } : {};
	} catch {
		return {};
	}
}

/**
 * Writes the signature so that the path holds either the old file or the whole new one, never a part:
 * a temporary file beside it (same directory, so the rename is atomic), flushed, then renamed over it.
 * An existing signature is replaced — re-signing a changed model is the normal case.
 */
export async function writeSignatureFile(path: string, bytes: Uint8Array): Promise<void> {
	const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
	try {
		const fh = await open(tmp, "wx", 0o644);
		try {
			await fh.writeFile(bytes);
			await fh.sync();
		} finally {
			await fh.close();
		}
		await rename(tmp, path);
	} catch (e) {
		await rm(tmp, { force: true }).catch(() => {});
		throw toFtguardError(e, `cannot write signature ${path}`);
	}
}
