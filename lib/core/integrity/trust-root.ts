/**
 * Sigstore trust roots, built without the network.
 *
 * The public-good root is the `trusted_root.json` that `@sigstore/tuf` ships inside
 * its `seeds.json` (the TUF target, base64). Reading it from the package keeps
 * verification offline and reproducible: the root changes only when the
 * dependency is upgraded, never because a TUF mirror answered differently. The
 * cost is that a key rotation after the package was published is not seen until
 * then; users who need a newer root pass their own `trusted_root.json`.
 *
 * A private CA (model_signing's "certificate" mode) is expressed as a trusted
 * root too, with one certificate authority and no logs, so that
 * `@sigstore/verify` builds the certificate path with the same code it uses for
 * Fulcio.
 */
import { X509Certificate as NodeX509Certificate } from "node:crypto";
import { TrustedRoot } from "@sigstore/protobuf-specs";
import seeds from "@sigstore/tuf/seeds.json" with { type: "json" };
import { type TrustMaterial, toTrustMaterial } from "@sigstore/verify";
import { FtguardError, firstLine } from "../errors";
import { parsePemCertificates } from "./signing-key";

const TRUSTED_ROOT_MEDIA_TYPE_PREFIX = "application/vnd.dev.sigstore.trustedroot";
const TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1";
const PUBLIC_GOOD_TUF_URL = "https://tuf-repo-cdn.sigstore.dev";

/** A trusted root that parsed and whose keys and certificates all load. */
export interface LoadedTrustedRoot {
	readonly root: TrustedRoot;
	/** Ready for `new Verifier(material)`; built once because it parses every certificate. */
	readonly material: TrustMaterial;
}

/** The public-good `trusted_root.json` shipped in `@sigstore/tuf`, as parsed JSON. */
export function publicGoodTrustedRootJSON(): unknown {
	const encoded = seeds[PUBLIC_GOOD_TUF_URL]?.targets?.["trusted_root.json"];
	if (typeof encoded !== "string") {
		throw new FtguardError("TRUST_ROOT_INVALID", "@sigstore/tuf seeds.json holds no public-good trusted_root.json");
	}
	try {
		return JSON.parse(Buffer.from(encoded, "base64").toString("utf8"));
	} catch (e) {
		throw new FtguardError("TRUST_ROOT_INVALID", "the public-good trusted_root.json in @sigstore/tuf is not JSON", {
			cause: e,
		});
	}
}

let publicGood: LoadedTrustedRoot | undefined;

/**
 * Loads and checks a Sigstore trusted root for keyless verification.
 *
 * @param json a parsed `trusted_root.json`; omitted, the public-good root shipped
 *   in `@sigstore/tuf` (cached after the first call).
 * @throws FtguardError TRUST_ROOT_INVALID when the document is not a trusted root,
 *   a certificate or key in it does not parse, or it lacks a certificate
 *   authority, a transparency log or a CT log (keyless verification needs all
 *   three, and a root without one would only fail later, less clearly).
 */
export function loadTrustedRoot(json?: unknown): LoadedTrustedRoot {
	if (json === undefined) {
		publicGood ??= checkedRoot(publicGoodTrustedRootJSON(), "public-good trusted root", true);
		return publicGood;
	}
	return checkedRoot(json, "trusted root", true);
}

function checkedRoot(json: unknown, what: string, keyless: boolean): LoadedTrustedRoot {
	if (typeof json !== "object" || json === null || Array.isArray(json)) {
		throw new FtguardError("TRUST_ROOT_INVALID", `${what} is not a JSON object`);
	}
	const mediaType = (json as { mediaType?: unknown }).mediaType;
	if (typeof mediaType !== "string" || !mediaType.startsWith(TRUSTED_ROOT_MEDIA_TYPE_PREFIX)) {
		throw new FtguardError("TRUST_ROOT_INVALID", `${what} has no trusted-root mediaType (got ${String(mediaType)})`);
	}
	let root: TrustedRoot;
	let material: TrustMaterial;
	try {
		root = TrustedRoot.fromJSON(json);
		// toTrustMaterial parses every certificate and public key: a broken entry
		// surfaces here, as a bad root, instead of as a failed signature later.
		material = toTrustMaterial(root);
	} catch (e) {
		const msg = e instanceof Error ? e.message : String(e);
		throw new FtguardError("TRUST_ROOT_INVALID", `${what} does not load: ${firstLine(msg)}`, { cause: e });
	}
	if (keyless) {
		const missing = [
			root.certificateAuthorities.length === 0 ? "certificateAuthorities" : undefined,
			root.tlogs.length === 0 ? "tlogs" : undefined,
			root.ctlogs.length === 0 ? "ctlogs" : undefined,
		].filter((m) => m !== undefined);
		if (missing.length > 0) {
			throw new FtguardError("TRUST_ROOT_INVALID", `${what} has no ${missing.join(", ")}`);
		}
	}
	return { root, material };
}

/**
 * A trusted root whose only authority is the caller's private CA chain (root and
 * intermediates, PEM), with no transparency or CT logs.
 *
 * `validFor.start` is the earliest `notBefore` in the chain: the authority is
 * not trusted for times before its own certificates existed.
 *
 * @throws FtguardError TRUST_ROOT_INVALID when the PEM holds no certificate or one
 *   does not parse.
 */
export function privateCaTrustedRoot(pem: string): LoadedTrustedRoot {
	const ders = parsePemCertificates(pem);
	const start = new Date(Math.min(...ders.map((der) => Date.parse(new NodeX509Certificate(der).validFrom))));
	const json = {
		mediaType: TRUSTED_ROOT_MEDIA_TYPE,
		certificateAuthorities: [
			{
				subject: {
					organization: "ftguard",
					commonName: "private certificate authority",
				},
				uri: "urn:ftguard:private-ca",
				certChain: {
					certificates: ders.map((der) => ({
						rawBytes: der.toString("base64"),
					})),
				},
				validFor: { start: start.toISOString() },
			},
		],
		tlogs: [],
		ctlogs: [],
		timestampAuthorities: [],
	};
	return checkedRoot(json, "certificate chain", false);
}
