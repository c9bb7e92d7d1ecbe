/**
 * The identity/key options shared by every command that checks a signature
 * (`verify`, `base-model check`), and their translation into one TrustPolicy.
 * Exactly one trust mode must be chosen: a verifier that silently picked a
 * default would accept signatures the user never meant to trust.
 */
import type { Command } from "commander";
import { FtguardError } from "../core/errors";
import type { TrustPolicy } from "../core/integrity";
import { readArgText } from "./io";

export interface TrustFlags {
	identity?: string;
	identityRegexp?: string;
	identityProvider?: string;
	publicKey?: string;
	certificateChain?: string;
	trustedRoot?: string;
}

export function addTrustOptions(cmd: Command): Command {
	return cmd
		.option("--identity <email|uri>", "keyless: signer identity (certificate SAN), exact match")
		.option("--identity-regexp <regexp>", "keyless: signer identity as a regular expression (always anchored)")
		.option("--identity-provider <url>", "keyless: OIDC issuer that vouched for the identity, exact match")
		.option("--public-key <pem>", "keyed: EC public key (P-256/384/521, PEM)")
		.option(
			"--certificate-chain <pem>",
			"private PKI: PEM file with the CA chain the signing certificate must chain to",
		)
		.option(
			"--trusted-root <json>",
			"keyless: Sigstore trusted_root.json to use instead of the public-good root shipped with ftguard",
		);
}

/** Validates the combination of flags and loads the key material they name. */
export async function trustPolicyFromFlags(flags: TrustFlags): Promise<TrustPolicy> {
	const keyless = flags.identity !== undefined || flags.identityRegexp !== undefined;
	const modes = [keyless, flags.publicKey !== undefined, flags.certificateChain !== undefined].filter(Boolean).length;
	if (modes !== 1) {
		throw new FtguardError(
			"USAGE",
			"choose exactly one of --identity/--identity-regexp with --identity-provider, --public-key, --certificate-chain",
		);
	}
	if (flags.trustedRoot !== undefined && !keyless) {
		throw new FtguardError("USAGE", "--trusted-root only applies to keyless verification (--identity)");
	}
	if (keyless) {
		if (flags.identity !== undefined && flags.identityRegexp !== undefined) {
			throw new FtguardError("USAGE", "use either --identity or --identity-regexp, not both");
		}
		if (flags.identityProvider === undefined) {
			throw new FtguardError("USAGE", "keyless verification needs --identity-provider <issuer URL>");
		}
		const identity =
			flags.identity !== undefined ? { exact: flags.identity } : { regexp: flags.identityRegexp as string };
		if ("regexp" in identity) {
			try {
				new RegExp(identity.regexp);
			} catch {
				throw new FtguardError("USAGE", `--identity-regexp is not a valid regular expression: ${identity.regexp}`);
			}
		}
		let trustedRoot: unknown;
		if (flags.trustedRoot !== undefined) {
			const text = await readArgText(flags.trustedRoot, `trusted root ${flags.trustedRoot}`);
			try {
				trustedRoot = JSON.parse(text);
			} catch {
				throw new FtguardError("TRUST_ROOT_INVALID", `trusted root ${flags.trustedRoot} is not valid JSON`);
			}
		}
		return {
			kind: "keyless",
			identity,
			issuer: flags.identityProvider,
			...(trustedRoot !== undefined ? { trustedRoot } : {}),
		};
	}
	if (flags.identityProvider !== undefined) {
		throw new FtguardError("USAGE", "--identity-provider only applies to keyless verification (--identity)");
	}
	if (flags.publicKey !== undefined) {
		return { kind: "public-key", pem: await readArgText(flags.publicKey, `public key ${flags.publicKey}`) };
	}
	return {
		kind: "certificate-chain",
		pem: await readArgText(flags.certificateChain as string, `certificate chain ${flags.certificateChain}`),
	};
}
