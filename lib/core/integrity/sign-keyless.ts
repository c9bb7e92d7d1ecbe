/**
 * Keyless Sigstore signing of a model_signing payload with the maintained `@sigstore/sign`: an ephemeral
 * P-256 key, a Fulcio certificate for the caller's OIDC identity, a Rekor `dsse` entry (what model_signing's
 * sigstore-python writes) and, when a TSA is named, an RFC 3161 timestamp. The identity token is handed in by
 * the caller; nothing here reads the environment.
 */
import { bundleToJSON } from "@sigstore/bundle";
import { DSSEBundleBuilder, FulcioSigner, InternalError, RekorWitness, TSAWitness, type Witness } from "@sigstore/sign";
import { FtguardError, firstLine, isFtguardError } from "../errors";
import { IN_TOTO_PAYLOAD_TYPE } from "./statement";

export interface KeylessOptions {
	/** An OIDC identity token (JWT) with audience "sigstore"; called once. */
	identityToken: () => Promise<string>;
	fulcioURL: string;
	rekorURL: string;
	/** Also ask this RFC 3161 timestamp authority (base URL; `/api/v1/timestamp` is appended). */
	tsaURL?: string | undefined;
	/** Per request. @default 30 s */
	timeoutMs?: number;
}

const SERVICE: Readonly<Record<string, string>> = {
	CA_CREATE_SIGNING_CERTIFICATE_ERROR: "Fulcio refused or failed the certificate request",
	TLOG_CREATE_ENTRY_ERROR: "Rekor refused or failed the log entry",
	TLOG_FETCH_ENTRY_ERROR: "Rekor failed to return the existing entry",
	TSA_CREATE_TIMESTAMP_ERROR: "the timestamp authority refused or failed",
	IDENTITY_TOKEN_READ_ERROR: "no identity token",
	IDENTITY_TOKEN_PARSE_ERROR: "the identity token is not a JWT",
};

/** Signs `payload` keyless and returns the bundle as written to disk (compact JSON). */
export async function signKeyless(payload: Buffer, o: KeylessOptions): Promise<Buffer> {
	const fetchOptions = { timeout: o.timeoutMs ?? 30_000, retry: { retries: 2 } };
	const witnesses: Witness[] = [new RekorWitness({ rekorBaseURL: o.rekorURL, entryType: "dsse", ...fetchOptions })];
	if (o.tsaURL !== undefined) witnesses.push(new TSAWitness({ tsaBaseURL: o.tsaURL, ...fetchOptions }));
	const builder = new DSSEBundleBuilder({
		signer: new FulcioSigner({
			fulcioBaseURL: o.fulcioURL,
			identityProvider: { getToken: o.identityToken },
			...fetchOptions,
		}),
		witnesses,
	});
	try {
		const bundle = await builder.create({ data: payload, type: IN_TOTO_PAYLOAD_TYPE });
		return Buffer.from(JSON.stringify(bundleToJSON(bundle)));
	} catch (e) {
		throw keylessError(e);
	}
}

function keylessError(e: unknown): FtguardError {
	if (isFtguardError(e)) return e;
	if (e instanceof InternalError) {
		if (isFtguardError(e.cause)) return e.cause;
		const cause =
			e.cause === undefined ? "" : `: ${firstLine(String(e.cause instanceof Error ? e.cause.message : e.cause))}`;
		const code =
			e.code === "IDENTITY_TOKEN_READ_ERROR" || e.code === "IDENTITY_TOKEN_PARSE_ERROR" ? "USAGE" : "IO_ERROR";
		return new FtguardError(code, `keyless signing: ${SERVICE[e.code] ?? e.code} (${firstLine(e.message)}${cause})`, {
			cause: e,
		});
	}
	return new FtguardError(
		"IO_ERROR",
		`keyless signing failed: ${firstLine(String(e instanceof Error ? e.message : e))}`,
		{
			cause: e,
		},
	);
}
