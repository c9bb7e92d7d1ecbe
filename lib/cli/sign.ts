/** `ftguard sign`: an OpenSSF Model Signing signature of a model, as model_signing writes it (docs/signing.md). */
import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { dirname } from "node:path";
// a static import: a dynamic import of this CommonJS package from a bundled chunk gives no named exports
import { CIContextProvider } from "@sigstore/sign";
import type { Command } from "commander";
import { FtguardError, toFtguardError } from "../core/errors";
import type { SigningMode } from "../core/integrity/sign";
import { commaList, formatBytes, type Io, printJson, processIo, progressLine, readArgText, runCommand } from "./io";

interface SignFlags {
	signature: string;
	privateKey?: string;
	kmsKey?: string;
	signingCertificate?: string;
	certificateChain: string[];
	keyless?: boolean;
	identityToken?: string;
	identityTokenFile?: string;
	fulcioUrl?: string;
	rekorUrl?: string;
	tsaUrl?: string;
	ignorePaths: string[];
	json?: boolean;
}

const repeat = (value: string, previous: string[] = []): string[] => [...previous, value];

export function registerSign(program: Command, setExit: (code: number) => void): void {
	program
		.command("sign")
		.description("sign a model directory or file: an OpenSSF Model Signing signature (model_signing's format)")
		.argument("<path>", "model directory or model file")
		.requiredOption("--signature <model.sig>", "signature file to write (replaced atomically if it exists)")
		.option("--private-key <pem>", "EC private key (P-256/384/521, PKCS#8 or SEC1 PEM, unencrypted)")
		.option(
			"--kms-key <arn>",
			"an AWS KMS ECC_NIST_P256 key instead of --private-key: signs through kms:Sign, the key never leaves KMS",
		)
		.option("--signing-certificate <pem>", "certificate of --private-key's public key (certificate mode)")
		.option("--certificate-chain <pem>", "the rest of the chain, leaf's issuer first (repeatable)", repeat, [])
		.option("--keyless", "keyless Sigstore with the environment's OIDC token (SIGSTORE_ID_TOKEN, GitHub Actions)")
		.option(
			"--identity-token <jwt>",
			"keyless Sigstore with this OIDC token (visible to other local users: prefer a file)",
		)
		.option(
			"--identity-token-file <path>",
			"keyless Sigstore with the OIDC token in this file (e.g. a projected token)",
		)
		.option("--fulcio-url <url>", "Fulcio of a private Sigstore instance", "https://fulcio.sigstore.dev")
		.option("--rekor-url <url>", "Rekor of a private Sigstore instance", "https://rekor.sigstore.dev")
		.option("--tsa-url <url>", "also timestamp the signature with this RFC 3161 authority")
		.option("--ignore-paths <a,b>", "paths relative to the model directory to leave unsigned", commaList, [])
		.option("--json", "machine-readable output")
		.addHelpText(
			"after",
			`
Exactly one signing mode:
  --private-key key.pem                                          EC key
  --private-key key.pem --signing-certificate leaf.pem --certificate-chain chain.pem
                                                                 certificate (private CA)
  --keyless | --identity-token-file t | --identity-token <jwt>   keyless Sigstore (Fulcio + Rekor)

Keyless is never chosen on its own: it publishes the signer's identity in a transparency log.
The signature file, when inside the model, is not signed; nor are .git, .gitattributes, .github, .gitignore.

Examples:
  ftguard sign ./model --signature ./model/model.sig --private-key signer.key.pem
  ftguard sign ./model --signature ./model/model.sig --keyless
  ftguard sign ./model --signature ./model/model.sig --kms-key arn:aws:kms:…:key/…   (docs/launch-flow.md)

Exit codes: 0 signed, 2 could not sign (nothing written).`,
		)
		.action(async (path: string, flags: SignFlags) => {
			const io = processIo(Boolean(flags.json));
			setExit(await runCommand(io, () => sign(io, path, flags)));
		});
}

/** The one signing mode the flags name, its key material read and checked before any model byte is. */
async function signingMode(flags: SignFlags): Promise<SigningMode> {
	const tokenFlags = [flags.keyless ? "--keyless" : "", flags.identityToken ? "--identity-token" : ""]
		.concat(flags.identityTokenFile ? "--identity-token-file" : "")
		.filter((f) => f !== "");
	if (flags.privateKey !== undefined && flags.kmsKey !== undefined)
		throw new FtguardError("USAGE", "give one key: --private-key or --kms-key, not both");
	const keyed = flags.privateKey !== undefined || flags.kmsKey !== undefined;
	const certificate = flags.signingCertificate !== undefined || flags.certificateChain.length > 0;
	if (keyed && tokenFlags.length > 0) {
		throw new FtguardError("USAGE", `give one signing mode: --private-key or ${tokenFlags.join(", ")}, not both`);
	}
	if (tokenFlags.length > 1)
		throw new FtguardError("USAGE", `give one identity token source, not ${tokenFlags.join(" and ")}`);
	if (!keyed && tokenFlags.length === 0) {
		throw new FtguardError(
			"USAGE",
			"no signing mode: give --private-key (with --signing-certificate and --certificate-chain for certificate mode), or --keyless / --identity-token-file / --identity-token",
		);
	}
	if (certificate && !keyed) {
		throw new FtguardError(
			"USAGE",
			"certificate mode needs --private-key with --signing-certificate and --certificate-chain",
		);
	}
	if (certificate && (flags.signingCertificate === undefined || flags.certificateChain.length === 0)) {
		throw new FtguardError("USAGE", "certificate mode needs both --signing-certificate and --certificate-chain");
	}
	if (keyed && flags.tsaUrl !== undefined) throw new FtguardError("USAGE", "--tsa-url applies to keyless signing only");

	if (keyed) {
		const [{ parseEcPrivateKey }, { localKeySigner }, { certificateMode }] = await Promise.all([
			import("../core/integrity/signing-key"),
			import("../core/integrity/sign-signer"),
			import("../core/integrity/sign"),
		]);
		const signer =
			flags.kmsKey !== undefined
				? await (await import("../aws/kms-signer")).kmsSigner(flags.kmsKey)
				: localKeySigner(
						parseEcPrivateKey(
							await readArgText(flags.privateKey as string, `private key ${flags.privateKey as string}`),
						),
					);
		if (!certificate) return { kind: "key", signer };
		const chain = await Promise.all(flags.certificateChain.map((p) => readArgText(p, `certificate chain ${p}`)));
		return certificateMode(
			signer,
			await readArgText(
				flags.signingCertificate as string,
				`signing certificate ${flags.signingCertificate as string}`,
			),
			chain.join("\n"),
		);
	}
	return {
		kind: "keyless",
		keyless: {
			identityToken: identityToken(flags),
			fulcioURL: flags.fulcioUrl as string,
			rekorURL: flags.rekorUrl as string,
			tsaURL: flags.tsaUrl,
		},
	};
}

/** Where the OIDC token comes from: the flag, the file, or the CI environment (read here, at the edge). */
function identityToken(flags: SignFlags): () => Promise<string> {
	if (flags.identityToken !== undefined) {
		const token = flags.identityToken.trim();
		return async () => token;
	}
	if (flags.identityTokenFile !== undefined) {
		const file = flags.identityTokenFile;
		return async () => (await readArgText(file, `identity token file ${file}`)).trim();
	}
	return async () => {
		try {
			// SIGSTORE_ID_TOKEN, else GitHub Actions' id-token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN)
			return await new CIContextProvider("sigstore").getToken();
		} catch {
			throw new FtguardError(
				"USAGE",
				"--keyless: no OIDC token in the environment (set SIGSTORE_ID_TOKEN, or run in GitHub Actions with id-token: write)",
			);
		}
	};
}

async function sign(io: Io, path: string, flags: SignFlags): Promise<0> {
	const mode = await signingMode(flags);
	try {
		await access(dirname(flags.signature), constants.W_OK);
	} catch (e) {
		throw toFtguardError(e, `cannot write the signature in ${dirname(flags.signature)}`);
	}
	const { signModel, writeSignatureFile } = await import("../core/integrity/sign");
	const progress = progressLine(io, "hashing");
	const result = await signModel(path, {
		signaturePath: flags.signature,
		mode,
		ignorePaths: flags.ignorePaths,
		onProgress: progress.update,
	}).finally(progress.done);
	await writeSignatureFile(flags.signature, result.bundle);

	const m = result.manifest;
	const files = m.resources.length;
	if (io.json) {
		printJson(io, {
			ok: true,
			signed: true,
			path,
			signature: flags.signature,
			mode: result.signer.kind,
			signer: result.signer,
			subject: m.modelName,
			root: m.root,
			files,
			bytes: m.bytes,
			serialization: m.serialization,
		});
	} else {
		const s = result.signer;
		const who =
			s.kind === "keyless"
				? `keyless ${s.identity ?? ""}`.trim()
				: s.kind === "certificate"
					? `certificate ${s.certificateSubject}`
					: `key sha256:${s.keyFingerprint}`;
		io.out(
			[
				`signed ${path} → ${flags.signature}`,
				`  signer     ${who}`,
				`  subject    ${m.modelName} sha256:${m.root}`,
				`  content    ${files} files, ${formatBytes(m.bytes)} (method ${m.serialization.method})`,
			].join("\n"),
		);
	}
	return 0;
}
