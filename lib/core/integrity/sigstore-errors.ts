/**
 * Every failure of a Sigstore verification as an FtguardError: the codes
 * `@sigstore/verify` throws mapped to ftguard's findings, anything else
 * INTERNAL.
 */
import { PolicyError, VerificationError } from "@sigstore/verify";
import { type ErrorCode, FtguardError, firstLine, toFtguardError } from "../errors";

/** Every code `@sigstore/verify` 3.x throws, mapped explicitly; the compiler flags a new one. */
const VERIFICATION_ERRORS: Readonly<Record<VerificationError["code"], { code: ErrorCode; what: string }>> = {
	SIGNATURE_ERROR: {
		code: "SIGNATURE_INVALID",
		what: "signature does not verify",
	},
	PUBLIC_KEY_ERROR: {
		code: "SIGNATURE_INVALID",
		what: "signing key is not trusted",
	},
	CERTIFICATE_ERROR: {
		code: "CERTIFICATE_UNTRUSTED",
		what: "signing certificate is not trusted",
	},
	TLOG_ERROR: { code: "TLOG_INVALID", what: "transparency log" },
	TLOG_BODY_ERROR: {
		code: "TLOG_INVALID",
		what: "transparency log entry does not match the bundle",
	},
	TLOG_INCLUSION_PROMISE_ERROR: {
		code: "TLOG_INVALID",
		what: "transparency log inclusion promise does not verify",
	},
	TLOG_INCLUSION_PROOF_ERROR: {
		code: "TLOG_INVALID",
		what: "transparency log inclusion proof does not verify",
	},
	TLOG_MISSING_INCLUSION_ERROR: {
		code: "TLOG_INVALID",
		what: "transparency log entry has no inclusion proof",
	},
	TIMESTAMP_ERROR: { code: "TIMESTAMP_INVALID", what: "signed timestamp" },
	NOT_IMPLEMENTED_ERROR: {
		code: "INTERNAL",
		what: "unsupported bundle feature",
	},
};

const POLICY_ERRORS: Readonly<Record<PolicyError["code"], ErrorCode>> = {
	UNTRUSTED_SIGNER_ERROR: "IDENTITY_MISMATCH",
};

/** The first line of what caused `e`, as " (…)", or nothing. */
export function causeText(e: unknown): string {
	const cause = (e as { cause?: unknown } | undefined)?.cause;
	const msg = cause instanceof Error ? cause.message : e instanceof Error ? e.message : undefined;
	return msg ? ` (${firstLine(msg)})` : "";
}

/** Any failure inside the library: a known code becomes its finding, anything else INTERNAL. */
export function translate(e: unknown): FtguardError {
	if (e instanceof FtguardError) return e;
	if (e instanceof VerificationError) {
		const mapped = VERIFICATION_ERRORS[e.code] as
			| (typeof VERIFICATION_ERRORS)[keyof typeof VERIFICATION_ERRORS]
			| undefined;
		if (mapped !== undefined) {
			return new FtguardError(mapped.code, `${mapped.what}: ${firstLine(e.message)}${causeText(e.cause)}`, {
				cause: e,
				details: { sigstoreCode: e.code },
			});
		}
	}
	if (e instanceof PolicyError) {
		const code = POLICY_ERRORS[e.code] as ErrorCode | undefined;
		if (code !== undefined) {
			return new FtguardError(code, firstLine(e.message), {
				cause: e,
				details: { sigstoreCode: e.code },
			});
		}
	}
	return toFtguardError(e, "signature verification");
}

/** Runs `fn`, translating whatever it throws. */
export function guard<T>(fn: () => T): T {
	try {
		return fn();
	} catch (e) {
		throw translate(e);
	}
}
