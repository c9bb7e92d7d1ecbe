/**
 * A throw-away signer for the demo: a fresh P-256 key per run (its public key
 * trusted by the demo policy, its private key never written anywhere) signs
 * model_signing v1.0 statements into keyed Sigstore bundles, so the demo can
 * show a correctly signed artefact quarantined by a later stage. The examples'
 * own signing key is not shipped.
 */
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import type { Manifest } from "../core/integrity/types";

export interface DemoSigner {
	publicKeyPem: string;
	/** the Sigstore bundle (JSON text) of a manifest built by lib/core/integrity/manifest */
	signManifest(m: Manifest): string;
}

const IN_TOTO = "application/vnd.in-toto+json";

function pae(payloadType: string, payload: Buffer): Buffer {
	const type = Buffer.from(payloadType, "utf8");
	return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
}

export function createDemoSigner(): DemoSigner {
	const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
	const publicKeyPem = publicKey.export({ type: "spki", format: "pem" }).toString();
	return { publicKeyPem, signManifest: (m) => JSON.stringify(bundleOf(m, privateKey, publicKey)) };
}

/** The digest model_signing signs with on each EC curve (ftguard verifies the same way). */
const CURVE_HASH: Readonly<Record<string, string>> = { prime256v1: "sha256", secp384r1: "sha384", secp521r1: "sha512" };

/**
 * A signer over a given EC private key (P-256, P-384 or P-521; the digest follows the curve): what
 * `ftguard aws smoke --key` signs its example with. Throws a plain Error for any other key.
 */
export function keySigner(privateKey: KeyObject): DemoSigner {
	const curve = privateKey.asymmetricKeyDetails?.namedCurve ?? "";
	const hash = CURVE_HASH[curve];
	if (privateKey.type !== "private" || privateKey.asymmetricKeyType !== "ec" || hash === undefined) {
		throw new Error("expected an EC private key on P-256, P-384 or P-521");
	}
	const publicKey = createPublicKey(privateKey);
	const publicKeyPem = publicKey.export({ type: "spki", format: "pem" }).toString();
	return { publicKeyPem, signManifest: (m) => JSON.stringify(bundleOf(m, privateKey, publicKey, hash)) };
}

function bundleOf(m: Manifest, privateKey: KeyObject, publicKey: KeyObject, hash = "sha256"): unknown {
	const statement = {
		_type: "https://in-toto.io/Statement/v1",
		subject: [{ name: m.modelName, digest: { sha256: m.root } }],
		predicateType: "https://model_signing/signature/v1.0",
		predicate: { serialization: m.serialization, resources: m.resources },
	};
	const payload = Buffer.from(JSON.stringify(statement));
	const sig = sign(hash, pae(IN_TOTO, payload), privateKey);
	const hint = createHash("sha256")
		.update(publicKey.export({ type: "spki", format: "der" }))
		.digest("hex");
	return {
		mediaType: "application/vnd.dev.sigstore.bundle.v0.3+json",
		verificationMaterial: { publicKey: { hint }, tlogEntries: [] },
		dsseEnvelope: {
			payload: payload.toString("base64"),
			payloadType: IN_TOTO,
			signatures: [{ sig: sig.toString("base64"), keyid: "" }],
		},
	};
}
