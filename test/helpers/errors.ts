/** Assertions on ftguard's typed errors, shared by the unit tests. */
import { expect } from "vitest";
import { FtguardError } from "../../lib/core/errors";

/** The FtguardError `fn` throws; fails the test when it returns or throws anything else. */
export function errorOf(fn: () => unknown): FtguardError {
	try {
		fn();
	} catch (e) {
		expect(e).toBeInstanceOf(FtguardError);
		const err = e as FtguardError;
		// Every message is one line for the user (details carry the rest).
		expect(err.message).not.toContain("\n");
		return err;
	}
	throw new Error("expected a failure, got success");
}

/** The code of the FtguardError `fn` throws. */
export function codeOf(fn: () => unknown): string {
	return errorOf(fn).code;
}
