import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
	exitCodeFor,
	FINDING_CODES,
	FtguardError,
	firstLine,
	toFtguardError,
	UNCHECKABLE_CODES,
} from "../../lib/core/errors";

const errno = (code: string, path?: string) => Object.assign(new Error(`${code}: boom`), { code, path });

describe("error codes", () => {
	it("are one closed list with no code in both families", () => {
		const both = FINDING_CODES.filter((c) => (UNCHECKABLE_CODES as readonly string[]).includes(c));
		expect(both).toEqual([]);
	});

	it("map findings to exit 1 and everything else to exit 2", () => {
		for (const c of FINDING_CODES) expect(exitCodeFor(c)).toBe(1);
		for (const c of UNCHECKABLE_CODES) expect(exitCodeFor(c)).toBe(2);
		expect(new FtguardError("DIGEST_MISMATCH", "x").exitCode).toBe(1);
		expect(new FtguardError("INTERNAL", "x").exitCode).toBe(2);
	});
});

describe("the error table in docs/architecture.md", () => {
	it("lists every code once, in the column of its exit code", () => {
		const doc = readFileSync(new URL("../../docs/architecture.md", import.meta.url), "utf8");
		const table = doc.slice(doc.indexOf("| exit 1 (finding) |"));
		const rows = table.slice(0, table.indexOf("\n\n")).split("\n").slice(2);
		const column = (i: number) =>
			rows.flatMap((r) => [...(r.split("|")[i + 1] ?? "").matchAll(/`([A-Z_]+)`/g)].map((m) => m[1]));
		expect(column(0).sort()).toEqual([...FINDING_CODES].sort());
		expect(column(1).sort()).toEqual([...UNCHECKABLE_CODES].sort());
	});
});

describe("toFtguardError", () => {
	it("maps file-system errors to could-not-check codes, naming the path", () => {
		expect(toFtguardError(errno("ENOENT", "/m/x")).code).toBe("NOT_FOUND");
		expect(toFtguardError(errno("ENOTDIR")).code).toBe("NOT_A_DIRECTORY");
		const denied = toFtguardError(errno("EACCES", "/m/locked"), "cannot read");
		expect(denied.code).toBe("IO_ERROR");
		expect(denied.message).toBe("cannot read: eacces (/m/locked)");
		expect(denied.exitCode).toBe(2);
	});

	it("turns anything unexpected into INTERNAL (exit 2), never a finding or a pass", () => {
		const e = toFtguardError(new TypeError("undefined is not a function\n    at foo (x.js:1:1)"));
		expect(e.code).toBe("INTERNAL");
		expect(e.exitCode).toBe(2);
		expect(e.message).not.toContain("\n");
		expect(toFtguardError("a string").code).toBe("INTERNAL");
	});

	it("passes an FtguardError through untouched", () => {
		const original = new FtguardError("UNSIGNED_FILE", "x");
		expect(toFtguardError(original)).toBe(original);
	});

	it("keeps messages to one bounded line", () => {
		expect(firstLine(`${"a".repeat(400)}\nsecond`)).toHaveLength(300);
	});
});
