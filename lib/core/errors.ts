/**
 * Typed errors with a closed set of stable codes.
 *
 * Every failure ftguard reports carries one of these codes; tests assert the code,
 * users (and CI dashboards) can match on it, and the CLI maps it to an exit code.
 * Two families exist because "the artefact failed the check" and "we could not
 * check" must never be confused: the first is a finding (exit 1), the second is
 * an inability to decide (exit 2). Neither is ever a pass.
 */

/** The artefact was checked and failed: exit code 1. */
export const FINDING_CODES = [
	// signature / bundle content
	"SIGNATURE_INVALID",
	"IDENTITY_MISMATCH",
	"PREDICATE_TYPE_UNSUPPORTED",
	"SUBJECT_INVALID",
	"ROOT_DIGEST_MISMATCH",
	"PAYLOAD_INVALID",
	// Sigstore trust checks that are not the signature itself: the signing
	// certificate does not chain to the trusted CAs (or is expired, or lacks its
	// SCT, or is not for signing), the transparency-log entry does not verify or
	// does not match the bundle, a signed timestamp does not verify or too few do.
	"CERTIFICATE_UNTRUSTED",
	"TLOG_INVALID",
	"TIMESTAMP_INVALID",
	// directory vs. manifest
	"MANIFEST_MISMATCH",
	"UNSIGNED_FILE",
	"MISSING_FILE",
	"DIGEST_MISMATCH",
	"SYMLINK_REFUSED",
	"PATH_ESCAPE",
	// a FIFO, socket or device where a model file should be (the reference refuses them too)
	"SPECIAL_FILE",
	// export binding: an ONNX export's constants are not the checkpoint's tensors (docs/backdoor.md)
	"EXPORT_MISMATCH",
] as const;

/** ftguard could not decide: exit code 2. */
export const UNCHECKABLE_CODES = [
	"USAGE",
	"NOT_FOUND",
	"IO_ERROR",
	"NOT_A_DIRECTORY",
	"TOO_MANY_FILES",
	"PATH_TOO_DEEP",
	// the data is larger (as read: gzip inflated) than this runner scans; another may (the dataset gate's Batch job)
	"TOO_LARGE",
	// the caller's AbortSignal fired (Ctrl-C, Lambda deadline): nothing was decided
	"ABORTED",
	"BUNDLE_MALFORMED",
	"BUNDLE_MEDIA_TYPE",
	"TRUST_ROOT_INVALID",
	"KEY_INVALID",
	"REGISTRY_MALFORMED",
	"REGISTRY_UNTRUSTED",
	// backdoor scanning: the model uses an op (or attribute) the gradient graph
	// cannot differentiate, the ONNX file cannot be read, the reference data does
	// not fit the model, or the requested execution provider cannot run it
	"MODEL_UNSUPPORTED",
	"MODEL_MALFORMED",
	"DATA_INVALID",
	"BACKEND_ERROR",
	// the calibrated backdoor verdict: the model lies outside the population of clean models it was calibrated on and
	// the statistics that still hold found nothing (calibration.ts judgeModel)
	"OUT_OF_CALIBRATION",
	// `ftguard aws …`: no usable AWS credentials (none found, expired, or not valid), or an AWS API call failed
	// (access denied, throttled, unreachable endpoint)
	"AWS_CREDENTIALS",
	"AWS_API_ERROR",
	"INTERNAL",
] as const;

export type FindingCode = (typeof FINDING_CODES)[number];
export type UncheckableCode = (typeof UNCHECKABLE_CODES)[number];
export type ErrorCode = FindingCode | UncheckableCode;

const findingSet: ReadonlySet<string> = new Set(FINDING_CODES);

/** Exit code for an error code: 1 for a finding, 2 for "could not check". */
export function exitCodeFor(code: ErrorCode): 1 | 2 {
	return findingSet.has(code) ? 1 : 2;
}

export interface FtguardErrorOptions {
	cause?: unknown;
	/** Structured detail for JSON output (paths, expected/actual digests, …). */
	details?: Record<string, unknown>;
}

/**
 * The one error type ftguard throws on purpose. `message` is a single line meant
 * for a user; `details` carries what a machine consumer needs.
 */
export class FtguardError<C extends ErrorCode = ErrorCode> extends Error {
	readonly code: C;
	readonly details: Record<string, unknown> | undefined;

	constructor(code: C, message: string, options: FtguardErrorOptions = {}) {
		super(message, options.cause === undefined ? undefined : { cause: options.cause });
		this.name = "FtguardError";
		this.code = code;
		this.details = options.details;
	}

	get exitCode(): 1 | 2 {
		return exitCodeFor(this.code);
	}
}

export function isFtguardError(e: unknown): e is FtguardError {
	return e instanceof FtguardError;
}

/**
 * Turns anything thrown into an FtguardError without losing the original.
 * Node's fs errors become NOT_FOUND / IO_ERROR; everything unknown becomes
 * INTERNAL (exit 2) — an unexpected exception is never a pass and never a finding.
 */
export function toFtguardError(e: unknown, context?: string): FtguardError {
	if (e instanceof FtguardError) return e;
	const prefix = context ? `${context}: ` : "";
	const errno = (e as NodeJS.ErrnoException | undefined)?.code;
	const path = (e as NodeJS.ErrnoException | undefined)?.path;
	const where = path ? ` (${path})` : "";
	if (errno === "ENOENT")
		return new FtguardError("NOT_FOUND", `${prefix}no such file or directory${where}`, { cause: e });
	if (errno === "ENOTDIR") return new FtguardError("NOT_A_DIRECTORY", `${prefix}not a directory${where}`, { cause: e });
	if (errno === "ELOOP") return new FtguardError("SYMLINK_REFUSED", `${prefix}symlink loop${where}`, { cause: e });
	if (typeof errno === "string" && /^E[A-Z]+$/.test(errno)) {
		return new FtguardError("IO_ERROR", `${prefix}${errno.toLowerCase()}${where}`, { cause: e });
	}
	const msg = e instanceof Error ? e.message : String(e);
	return new FtguardError("INTERNAL", `${prefix}internal error: ${firstLine(msg)}`, { cause: e });
}

export function firstLine(s: string): string {
	const line = s.split("\n", 1)[0] ?? "";
	return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}
