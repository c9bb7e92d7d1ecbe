import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FtguardError } from "../../../lib/core/errors";
import { type BuildManifestOptions, buildManifest } from "../../../lib/core/integrity/manifest";
import { isIgnored, normalizeIgnorePaths, walkModel } from "../../../lib/core/integrity/walk";

const scratch = mkdtempSync(join(tmpdir(), "ftguard-walk-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let counter = 0;
function tempDir(): string {
	const d = join(scratch, `w${counter++}`);
	mkdirSync(d);
	return d;
}
function write(root: string, rel: string, data = rel): void {
	const p = join(root, rel);
	mkdirSync(dirname(p), { recursive: true });
	writeFileSync(p, data);
}
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

async function codeOf(dir: string, opts: BuildManifestOptions = {}): Promise<string> {
	try {
		await buildManifest(dir, opts);
	} catch (e) {
		if (!(e instanceof FtguardError)) throw e;
		// Every message is one line, whatever the file names hold.
		expect(e.message).not.toMatch(/\n/);
		return e.code;
	}
	return "OK";
}
const names = async (dir: string, opts: BuildManifestOptions = {}) =>
	(await buildManifest(dir, opts)).resources.map((r) => r.name);

describe("when the model path is bad", () => {
	it("reports a missing directory as NOT_FOUND", async () => {
		expect(await codeOf(join(scratch, "does-not-exist"))).toBe("NOT_FOUND");
	});

	it("reports a directory with no regular files as NOT_FOUND", async () => {
		const dir = tempDir();
		mkdirSync(join(dir, "empty"));
		write(dir, ".git/config");
		expect(await codeOf(dir)).toBe("NOT_FOUND");
	});

	it("reports a path through a file as IO_ERROR", async () => {
		const dir = tempDir();
		write(dir, "file");
		expect(await codeOf(join(dir, "file", "inside"))).toBe("IO_ERROR");
	});

	it("takes the model name from the path as given, like pathlib", async () => {
		const dir = tempDir();
		write(dir, "m/x");
		expect((await buildManifest(`${join(dir, "m")}/./`)).modelName).toBe("m");
		// pathlib's name of "d/m/.." is "..", so the reference names it after the resolved directory.
		expect((await buildManifest(`${join(dir, "m")}/..`)).modelName).toBe(basename(dir));
	});
});

describe("when the model holds symlinks", () => {
	it("refuses a symlinked file by default", async () => {
		const dir = tempDir();
		write(dir, "real");
		symlinkSync("real", join(dir, "link"));
		expect(await codeOf(dir)).toBe("SYMLINK_REFUSED");
	});

	it("refuses a model path that is itself a symlink by default", async () => {
		const dir = tempDir();
		write(dir, "model/x");
		symlinkSync("model", join(dir, "alias"));
		expect(await codeOf(join(dir, "alias"))).toBe("SYMLINK_REFUSED");
		expect(await names(join(dir, "alias"), { allowSymlinks: true })).toEqual(["x"]);
	});

	it("hashes an allowed symlink to a file inside the model under the link's name", async () => {
		const dir = tempDir();
		write(dir, "weights/real.bin", "W");
		symlinkSync("weights/real.bin", join(dir, "model.bin"));
		const m = await buildManifest(dir, { allowSymlinks: true });
		expect(m.resources).toEqual([
			{ name: "model.bin", algorithm: "sha256", digest: sha256("W") },
			{ name: "weights/real.bin", algorithm: "sha256", digest: sha256("W") },
		]);
		expect(m.serialization.allow_symlinks).toBe(true);
	});

	it("lists but does not descend an allowed directory symlink, as pathlib's glob", async () => {
		const dir = tempDir();
		write(dir, "real/a");
		symlinkSync("real", join(dir, "alias"));
		symlinkSync(".", join(dir, "self")); // would loop if followed
		expect(await names(dir, { allowSymlinks: true })).toEqual(["real/a"]);
	});

	it("refuses an allowed symlink that escapes the model directory", async () => {
		const outside = tempDir();
		write(outside, "secret");
		const dir = tempDir();
		write(dir, "x");
		symlinkSync(join(outside, "secret"), join(dir, "leak"));
		expect(await codeOf(dir, { allowSymlinks: true })).toBe("PATH_ESCAPE");
		const dir2 = tempDir();
		write(dir2, "x");
		symlinkSync("..", join(dir2, "up"));
		expect(await codeOf(dir2, { allowSymlinks: true })).toBe("PATH_ESCAPE");
	});

	it("refuses a directory symlink into an ignored path, whose content nothing would cover", async () => {
		const dir = tempDir();
		write(dir, "x");
		write(dir, ".git/objects/blob");
		symlinkSync(".git/objects", join(dir, "weights"));
		expect(await codeOf(dir, { allowSymlinks: true })).toBe("PATH_ESCAPE");
	});

	it("refuses a symlink loop and a dangling symlink", async () => {
		const dir = tempDir();
		write(dir, "x");
		symlinkSync("b", join(dir, "a"));
		symlinkSync("a", join(dir, "b"));
		expect(await codeOf(dir, { allowSymlinks: true })).toBe("SYMLINK_REFUSED");
		const dir2 = tempDir();
		write(dir2, "x");
		symlinkSync("missing", join(dir2, "dangling"));
		expect(await codeOf(dir2, { allowSymlinks: true })).toBe("NOT_FOUND");
	});

	it("does not look at an ignored symlink at all", async () => {
		const dir = tempDir();
		write(dir, "x");
		symlinkSync("/etc/passwd", join(dir, "leak"));
		expect(await names(dir, { ignorePaths: ["leak"] })).toEqual(["x"]);
	});
});

describe("when the model holds special files", () => {
	it("refuses a FIFO (and does not block opening it)", async () => {
		const dir = tempDir();
		write(dir, "x");
		execFileSync("mkfifo", [join(dir, "pipe")]);
		expect(await codeOf(dir)).toBe("SPECIAL_FILE");
		expect(await names(dir, { ignorePaths: ["pipe"] })).toEqual(["x"]);
	});

	it("refuses a socket", async () => {
		const dir = tempDir();
		write(dir, "x");
		const server: Server = createServer();
		await new Promise<void>((r) => server.listen(join(dir, "sock"), r));
		try {
			expect(await codeOf(dir)).toBe("SPECIAL_FILE");
		} finally {
			await new Promise((r) => server.close(r));
		}
	});

	it("refuses a character device given as the model path", async () => {
		expect(await codeOf("/dev/null")).toBe("SPECIAL_FILE");
	});

	it("refuses a file name that is not valid UTF-8, naming neither wrongly", async () => {
		const dir = tempDir();
		write(dir, "x");
		writeFileSync(Buffer.concat([Buffer.from(`${dir}/bad-`), Buffer.from([0xff, 0xfe])]), "z");
		expect(await codeOf(dir)).toBe("IO_ERROR");
	});
});

describe("when limits are reached", () => {
	it("fails with TOO_MANY_FILES while walking, before listing everything", async () => {
		const dir = tempDir();
		for (let i = 0; i < 300; i++) write(dir, `d${i % 3}/f${i}`);
		expect(await codeOf(dir, { maxFiles: 50 })).toBe("TOO_MANY_FILES");
		const err = await walkModel(dir, {
			allowSymlinks: false,
			ignorePaths: [],
			maxFiles: 50,
			maxDepth: 10,
		}).catch((e: FtguardError) => e);
		expect((err as FtguardError).details).toEqual({ maxFiles: 50 });
		expect(await names(dir, { maxFiles: 303 })).toHaveLength(300);
	});

	it("fails with PATH_TOO_DEEP past the depth limit", async () => {
		const dir = tempDir();
		write(dir, "a/b/c/d/e/f");
		expect(await codeOf(dir, { maxDepth: 4 })).toBe("PATH_TOO_DEEP");
		expect(await names(dir, { maxDepth: 5 })).toEqual(["a/b/c/d/e/f"]);
	});

	it("rejects nonsensical limits and methods as USAGE", async () => {
		const dir = tempDir();
		write(dir, "x");
		expect(await codeOf(dir, { maxFiles: 0 })).toBe("USAGE");
		expect(await codeOf(dir, { shardSize: 1.5, method: "shards" })).toBe("USAGE");
		expect(await codeOf(dir, { concurrency: -1 })).toBe("USAGE");
		expect(await codeOf(dir, { method: "tensors" as unknown as "files" })).toBe("USAGE");
	});
});

describe("when ignoring paths", () => {
	it("normalises ./x, trailing and doubled slashes, and sorts", () => {
		expect(normalizeIgnorePaths(["./b/", "a//c", "b", "./a/./c/"])).toEqual(["a/c", "b"]);
	});

	it("rejects .., absolute paths and the model root itself as USAGE", async () => {
		for (const bad of ["../x", "a/../../x", "a/..", "/etc", ".", "./", ""]) {
			expect(() => normalizeIgnorePaths([bad])).toThrow(FtguardError);
			const dir = tempDir();
			write(dir, "x");
			expect(await codeOf(dir, { ignorePaths: [bad] })).toBe("USAGE");
		}
	});

	it("ignores a path and everything under it, by whole components", async () => {
		const set = new Set(["a/b", "c"]);
		expect(isIgnored("a/b", set)).toBe(true);
		expect(isIgnored("a/b/x/y", set)).toBe(true);
		expect(isIgnored("a/bc", set)).toBe(false);
		expect(isIgnored("a", set)).toBe(false);
		expect(isIgnored("cc", set)).toBe(false);
		expect(isIgnored("c/d", set)).toBe(true);

		const dir = tempDir();
		for (const n of ["a/b/x", "a/bc", "a/b.txt", "c", "cd/e"]) write(dir, n);
		expect(await names(dir, { ignorePaths: ["a/b", "c"] })).toEqual(["a/b.txt", "a/bc", "cd/e"]);
	});

	it("does not count entries under an ignored directory against maxFiles", async () => {
		const dir = tempDir();
		write(dir, "x");
		for (let i = 0; i < 100; i++) write(dir, `.git/objects/o${i}`);
		expect(await names(dir, { maxFiles: 10 })).toEqual(["x"]);
	});

	it("ignores nothing in a single-file model", async () => {
		const dir = tempDir();
		write(dir, "model.bin", "M");
		expect(await names(join(dir, "model.bin"), { ignorePaths: ["model.bin"] })).toEqual(["."]);
	});
});
