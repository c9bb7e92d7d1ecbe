/** SHA-256 on a worker thread: the same digest as on this thread, bounded memory, failures surface. */
import { createHash, randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OffThreadHasher } from "../../../lib/core/integrity/stream-hasher";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("OffThreadHasher", () => {
	it("gives the digest of the concatenated chunks, however they are cut and batched", async () => {
		await fc.assert(
			fc.asyncProperty(
				fc.array(fc.uint8Array({ maxLength: 5000 }), { maxLength: 40 }),
				fc.integer({ min: 1, max: 20_000 }),
				async (chunks, batchBytes) => {
					const h = new OffThreadHasher({ batchBytes, maxInFlight: batchBytes * 2 });
					for (const c of chunks) await h.update(c);
					expect(await h.digest()).toBe(sha(Buffer.concat(chunks)));
				},
			),
			{ numRuns: 15 },
		);
	});

	it("leaves the caller's chunks intact (copies before transferring)", async () => {
		const chunk = randomBytes(3 << 20);
		const copy = Buffer.from(chunk);
		const h = new OffThreadHasher({ batchBytes: 1 << 20 });
		await h.update(chunk);
		expect(await h.digest()).toBe(sha(copy));
		expect(chunk.equals(copy)).toBe(true);
	});

	it("makes update wait while more than maxInFlight bytes are queued for the worker", async () => {
		const h = new OffThreadHasher({ batchBytes: 1 << 16, maxInFlight: 1 << 18 });
		const inFlight = () => (h as unknown as { inFlight: number }).inFlight;
		let peak = 0;
		const chunk = randomBytes(1 << 16);
		const all: Uint8Array[] = [];
		for (let i = 0; i < 200; i++) {
			await h.update(chunk);
			all.push(chunk);
			peak = Math.max(peak, inFlight());
		}
		expect(peak).toBeLessThanOrEqual((1 << 18) + (1 << 16));
		expect(await h.digest()).toBe(sha(Buffer.concat(all)));
	});

	it("fails updates and the digest once its worker is gone, with a coded error", async () => {
		const h = new OffThreadHasher({ batchBytes: 1 });
		await h.update(Buffer.from("a"));
		await (h as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
		await new Promise((r) => setTimeout(r, 20));
		await expect(h.update(Buffer.from("b"))).rejects.toMatchObject({ code: "INTERNAL" });
		await expect(h.digest()).rejects.toMatchObject({ code: "INTERNAL" });
	});
});
