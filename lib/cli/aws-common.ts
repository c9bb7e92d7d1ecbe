/**
 * What `ftguard aws preflight` and `ftguard aws smoke` share: turning an AWS SDK failure into one line with a
 * stable code (exit 2: could not check) — AWS_CREDENTIALS when there are no usable credentials, AWS_API_ERROR when
 * a call failed for any other reason (access denied, throttling, an endpoint that cannot be reached).
 */
import { FtguardError, firstLine } from "../core/errors";

/** Error names the SDK gives credentials that are missing, expired or not valid. */
const CREDENTIAL_ERRORS = new Set([
	"CredentialsProviderError",
	"ExpiredToken",
	"ExpiredTokenException",
	"InvalidClientTokenId",
	"UnrecognizedClientException",
	"AuthFailure",
	"InvalidAccessKeyId",
	"SignatureDoesNotMatch",
	"TokenRefreshRequired",
]);

/** `call` names the API call ("ServiceQuotas GetServiceQuota"), `hint` what the caller may do about a denial. */
export function awsError(e: unknown, call: string, hint?: string): FtguardError {
	if (e instanceof FtguardError) return e;
	const err = e as { name?: string; message?: string; code?: string; $metadata?: { httpStatusCode?: number } };
	const name = err?.name ?? "Error";
	const message = firstLine(String(err?.message ?? e));
	const details = {
		call,
		error: name,
		...(err?.$metadata?.httpStatusCode ? { status: err.$metadata.httpStatusCode } : {}),
	};
	if (CREDENTIAL_ERRORS.has(name) || /could not load credentials/i.test(message)) {
		return new FtguardError(
			"AWS_CREDENTIALS",
			`no usable AWS credentials for ${call}: ${message} (set AWS_PROFILE, or run aws sso login / aws configure)`,
			{ cause: e, details },
		);
	}
	if (/region is missing/i.test(message)) {
		return new FtguardError("USAGE", `no AWS region: pass --region or set AWS_REGION`, { cause: e, details });
	}
	const denied = /AccessDenied|UnauthorizedOperation|Forbidden/i.test(name);
	const why = err?.code && !message.includes(err.code) ? `${name} (${err.code})` : name;
	return new FtguardError("AWS_API_ERROR", `${call} failed: ${why}: ${message}${denied && hint ? ` (${hint})` : ""}`, {
		cause: e,
		details,
	});
}
