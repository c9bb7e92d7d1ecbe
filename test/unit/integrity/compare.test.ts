import { describe, expect, it } from "vitest";
import { assertNoDiff, diffResources, resourceFile } from "../../../lib/core/integrity/compare";
import type { ResourceDescriptor } from "../../../lib/core/integrity/types";
import { errorOf } from "../../helpers/errors";

const r = (name: string, digest: string): ResourceDescriptor => ({ name, algorithm: "sha256", digest });
const d = (c: string) => c.repeat(64);

describe("diffResources", () => {
	it("finds nothing when both sides agree, whatever their order", () => {
		const a = [r("a", d("1")), r("b", d("2"))];
		const diff = diffResources(a, [...a].reverse(), "files");
		expect(diff).toEqual({ unsigned: [], missing: [], mismatched: [] });
		expect(() => assertNoDiff(diff)).not.toThrow();
	});

	it("names unsigned, missing and changed files", () => {
		const diff = diffResources([r("a", d("1")), r("b", d("2"))], [r("a", d("9")), r("c", d("3"))], "files");
		expect(diff.unsigned).toEqual(["c"]);
		expect(diff.missing).toEqual(["b"]);
		expect(diff.mismatched).toEqual([{ name: "a", expected: d("1"), actual: d("9") }]);
	});

	it("groups shards back into their file when a file changed size", () => {
		const signed = [r("w.bin:0:10", d("1")), r("w.bin:10:20", d("2"))];
		const now = [r("w.bin:0:10", d("1")), r("w.bin:10:21", d("3"))];
		const diff = diffResources(signed, now, "shards");
		expect(diff.unsigned).toEqual([]);
		expect(diff.missing).toEqual([]);
		expect(diff.mismatched.map((m) => m.name)).toEqual(["w.bin"]);
	});

	it("keeps a colon inside a file name when method is files", () => {
		expect(resourceFile("a:0:10", "files")).toBe("a:0:10");
		expect(resourceFile("dir/a:b:0:10", "shards")).toBe("dir/a:b");
	});
});

describe("assertNoDiff", () => {
	it("uses the specific code when one kind of difference exists", () => {
		expect(errorOf(() => assertNoDiff({ unsigned: ["x"], missing: [], mismatched: [] })).code).toBe("UNSIGNED_FILE");
		expect(errorOf(() => assertNoDiff({ unsigned: [], missing: ["x"], mismatched: [] })).code).toBe("MISSING_FILE");
		const m = errorOf(() =>
			assertNoDiff({ unsigned: [], missing: [], mismatched: [{ name: "x", expected: "a", actual: "b" }] }),
		);
		expect(m.code).toBe("DIGEST_MISMATCH");
		expect(m.exitCode).toBe(1);
		expect(m.message).toContain("x");
	});

	it("uses MANIFEST_MISMATCH with every list in details when several kinds exist", () => {
		const e = errorOf(() => assertNoDiff({ unsigned: ["u"], missing: ["m"], mismatched: [] }, "a hint"));
		expect(e.code).toBe("MANIFEST_MISMATCH");
		expect(e.message).toMatch(/missing: m; unsigned: u \(a hint\)/);
		expect(e.details).toMatchObject({ unsigned: ["u"], missing: ["m"] });
	});

	it("keeps the message one line however many files differ", () => {
		const many = Array.from({ length: 50 }, (_, i) => `f${i}`);
		const e = errorOf(() => assertNoDiff({ unsigned: many, missing: [], mismatched: [] }));
		expect(e.message.split("\n")).toHaveLength(1);
		expect(e.message).toContain("(+45)");
		expect(e.details?.unsigned).toHaveLength(50);
	});
});
