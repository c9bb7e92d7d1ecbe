/**
 * Each handler invocation's log lines carry its own state and scan id, even when
 * invocations run concurrently in one process (the local pipeline): the keys go
 * with each line instead of being appended to the shared logger.
 */
import { Console } from "node:console";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pipelineLogger, runHandler } from "../../../lib/aws/runtime";

const lines: Record<string, unknown>[] = [];
let original: Console;
const logger = pipelineLogger() as unknown as { console: Console };

beforeAll(() => {
	original = logger.console;
	const sink = new Writable({
		write(chunk: Buffer, _enc, cb) {
			for (const l of chunk.toString().split("\n")) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
			cb();
		},
	});
	logger.console = new Console({ stdout: sink, stderr: sink });
});
afterAll(() => {
	logger.console = original;
});

const tick = () => new Promise((r) => setTimeout(r, 5));

describe("runHandler's log", () => {
	it("labels each line with its own invocation's scan id when invocations interleave", async () => {
		const run = (scanId: string) =>
			runHandler("manifest", scanId, async (log) => {
				for (let i = 0; i < 3; i++) {
					log.info("step", { i });
					await tick();
				}
				log.appendKeys({ extra: scanId });
				log.warn("done");
			});
		await Promise.all([run("ftg-a"), run("ftg-b"), run("ftg-c")]);
		await tick();
		const mine = lines.filter((l) => l.message === "step" || l.message === "done");
		expect(mine).toHaveLength(12);
		for (const l of mine) {
			expect(l.state).toBe("manifest");
			if (l.message === "done") expect(l.extra).toBe(l.scanId);
			else expect(l.extra).toBeUndefined();
		}
		for (const id of ["ftg-a", "ftg-b", "ftg-c"]) expect(mine.filter((l) => l.scanId === id)).toHaveLength(4);
	});

	it("logs a failure with its scan id and rethrows a one-line coded error", async () => {
		const err = await runHandler("record", "ftg-z", async () => {
			throw new Error("boom\nsecond line");
		}).catch((e: Error) => e);
		expect(err).toMatchObject({ name: "ftguard.INTERNAL", message: expect.stringMatching(/boom$/) });
		expect((err as Error).message).not.toContain("second line");
		await tick();
		expect(lines.find((l) => l.message === "record failed")).toMatchObject({ scanId: "ftg-z", state: "record" });
	});
});
