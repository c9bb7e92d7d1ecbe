/**
 * Verifies a model directory (or single file) against an OpenSSF Model Signing
 * signature, in the order that fails fastest and trusts least:
 *
 *   1. the bundle parses and its signature verifies under the caller's trust
 *      policy (cheap: no model bytes read yet, so a forged signature on a 100 GB
 *      model is rejected in milliseconds);
 *   2. the signed statement is well formed (predicate type, one subject) and its
 *      root digest really is the digest of its resources;
 *   3. the model is re-hashed with the signature's own serialization parameters
 *      and every file is compared: unsigned, missing and changed files are named.
 *
 * Ignore paths: the signer's `ignore_paths` are *not* honoured on their own. A
 * file the signature does not cover is unsigned content next to the model, and
 * only the verifying user may decide to accept it (`ignorePaths`); otherwise it
 * is reported, with a hint when the signer had listed it as ignored.
 */
import { readFile } from "node:fs/promises";
import { isAbsolute, relative, sep } from "node:path";
import { FtguardError, toFtguardError } from "../errors";
import { assertNoDiff, diffResources, resourceFile } from "./compare";
import { buildManifest, hashOptionsFromSerialization } from "./manifest";
import {
	checkRootDigest,
	parseBundle,
	parseModelSigningStatement,
	type SignerInfo,
	type TrustPolicy,
	verifyDsseBundle,
} from "./sigstore";
import type { HashProgress, Serialization } from "./types";

export interface VerifyModelOptions {
	policy: TrustPolicy;
	/** Extra paths, relative to the model directory, the user accepts as unsigned. */
	ignorePaths?: string[];
	onProgress?: (p: HashProgress) => void;
}

export interface VerifyModelResult {
	verified: true;
	signer: SignerInfo;
	subject: string;
	root: string;
	predicateType: string;
	serialization: Serialization;
	files: number;
	bytes: number;
}

export async function readSignatureFile(path: string): Promise<Buffer> {
	try {
		return await readFile(path);
	} catch (e) {
		throw toFtguardError(e, `cannot read signature ${path}`);
	}
}

/** The signature file's path relative to the model directory, if it lies inside it. */
function signatureInside(modelPath: string, signaturePath: string): string | undefined {
	const rel = relative(modelPath, signaturePath);
	if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) return undefined;
	return rel.split(sep).join("/");
}

export async function verifyModel(
	modelPath: string,
	signaturePath: string,
	options: VerifyModelOptions,
): Promise<VerifyModelResult> {
	const bundle = parseBundle(await readSignatureFile(signaturePath), signaturePath);
	const { payload, signer } = verifyDsseBundle(bundle, options.policy);
	const statement = parseModelSigningStatement(payload);
	checkRootDigest(statement);

	const signed = statement.serialization;
	const userIgnores = options.ignorePaths ?? [];
	const sigRel = signatureInside(modelPath, signaturePath);
	const manifest = await buildManifest(modelPath, {
		...hashOptionsFromSerialization(signed, statement.resources),
		ignorePaths: sigRel ? [...userIgnores, sigRel] : userIgnores,
		...(options.onProgress ? { onProgress: options.onProgress } : {}),
	});

	const diff = diffResources(statement.resources, manifest.resources, signed.method);
	const signerIgnored = new Set(signed.ignore_paths ?? []);
	const hinted = diff.unsigned.filter(
		(f) => signerIgnored.has(f) || [...signerIgnored].some((p) => f.startsWith(`${p}/`)),
	);
	assertNoDiff(
		diff,
		hinted.length > 0
			? `the signer excluded ${hinted.join(", ")}; pass --ignore-paths ${hinted.join(",")} to accept it unsigned`
			: undefined,
	);

	// Same files and digests imply the same root; checked anyway, because a verdict
	// should rest on the one value the signature actually covers.
	if (manifest.root !== statement.rootDigest) {
		throw new FtguardError("ROOT_DIGEST_MISMATCH", "the model's root digest differs from the signed subject digest", {
			details: { expected: statement.rootDigest, actual: manifest.root },
		});
	}
	// The subject name is informational in OMS (a directory may be renamed after
	// signing): content is what is verified, and the name is reported as signed.
	return {
		verified: true,
		signer,
		subject: statement.subjectName,
		root: manifest.root,
		predicateType: statement.predicateType,
		serialization: manifest.serialization,
		files: new Set(manifest.resources.map((r) => resourceFile(r.name, signed.method))).size,
		bytes: manifest.bytes,
	};
}
