import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { describe, expect, it } from "vitest";
import { requireWithCodeCache } from "../../../lib/cli/code-cache";

function bundle(
	body = "exports.add = (a, b) => a + b; exports.dir = __dirname; exports.req = typeof require;",
): string {
	const dir = mkdtempSync(join(tmpdir(), "ftguard-code-cache-"));
	const file = join(dir, "engine.cjs");
	writeFileSync(file, body);
	return file;
}

describe("requireWithCodeCache", () => {
	it("runs a CommonJS file, writes the cache after the work, and hits it next time", () => {
		const file = bundle();
		const first = requireWithCodeCache<{ add: (a: number, b: number) => number; dir: string; req: string }>(file);
		expect(first.cache).toBe("miss");
		expect(first.exports.add(2, 3)).toBe(5);
		expect(first.exports.req).toBe("function");
		expect(first.exports.dir).toBe(join(file, ".."));
		first.save();
		expect(first.cacheFile).toBeDefined();
		expect(existsSync(first.cacheFile as string)).toBe(true);
		const second = requireWithCodeCache<{ add: (a: number, b: number) => number }>(file);
		expect(second.cache).toBe("hit");
		expect(second.cacheFile).toBe(first.cacheFile);
		expect(second.exports.add(2, 3)).toBe(5);
	});

	it("keys the cache by content: an edited file does not get the old cache", () => {
		const file = bundle("exports.v = 1;");
		const a = requireWithCodeCache<{ v: number }>(file);
		a.save();
		writeFileSync(file, "exports.v = 22;");
		const b = requireWithCodeCache<{ v: number }>(file);
		expect(b.cache).toBe("miss");
		expect(b.exports.v).toBe(22);
	});

	it("ignores a corrupt cache (rejected), runs the source, and rewrites it", () => {
		// The key depends on the content only; a second copy of the file (another name, so V8's
		// in-process compilation cache does not answer for it) finds the corrupt cache.
		const source = `exports.v = 7; // ${Math.random()}`;
		const a = requireWithCodeCache<{ v: number }>(bundle(source));
		const file = bundle(source);
		const cacheFile = join(file, "..", ".v8-cache", basename(a.cacheFile as string));
		mkdirSync(join(file, "..", ".v8-cache"), { mode: 0o700 });
		writeFileSync(cacheFile, Buffer.alloc(64, 0xab));
		const b = requireWithCodeCache<{ v: number }>(file);
		expect(b.cache).toBe("rejected");
		expect(b.exports.v).toBe(7);
		b.save();
		expect(readFileSync(cacheFile).length).toBeGreaterThan(64);
	});

	it("uses no cache directory that others can write, and none when told not to", () => {
		const file = bundle("exports.v = 1;");
		const open = join(file, "..", "shared");
		mkdirSync(open);
		chmodSync(open, 0o777);
		const m = requireWithCodeCache<{ v: number }>(file, { cacheDir: open });
		expect(m.cache).toBe("off");
		m.save();
		expect(readdirSync(open)).toEqual([]);
		expect(requireWithCodeCache<{ v: number }>(file, { cacheDir: false }).cache).toBe("off");
	});
});
