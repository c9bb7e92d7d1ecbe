import { describe, expect, it } from "vitest";
import { classify } from "../../../lib/core/formats/sniff";

describe("classify (pickle sniffing by content)", () => {
	it("recognises a protocol 2-5 pickle, whatever the file is called", () => {
		for (const proto of [2, 3, 4, 5]) expect(classify(Buffer.from([0x80, proto, 0x7d, 0x71, 0x00]))).toBe("pickle");
	});

	it("recognises a torch zip by its pickle entry", () => {
		const zip = Buffer.concat([Buffer.from("PK\x03\x04", "latin1"), Buffer.alloc(26), Buffer.from("archive/data.pkl")]);
		expect(classify(zip)).toBe("torch-zip");
	});

	it("recognises an object-dtype .npy and passes a float32 one", () => {
		const npy = (descr: string) =>
			Buffer.concat([
				Buffer.from("\x93NUMPY\x01\x00v\x00", "latin1"),
				Buffer.from(`{'descr': '${descr}', 'fortran_order': False, 'shape': (2,), }`),
			]);
		expect(classify(npy("|O"))).toBe("numpy-object");
		expect(classify(npy("<f4"))).toBeUndefined();
	});

	it("passes safetensors, JSON and empty files", () => {
		const st = Buffer.alloc(16);
		st.writeBigUInt64LE(2n);
		st.write("{}", 8);
		expect(classify(st)).toBeUndefined();
		expect(classify(Buffer.from('{"a": 1}'))).toBeUndefined();
		expect(classify(Buffer.alloc(0))).toBeUndefined();
		// A zip without a pickle inside (e.g. a plain archive) is not a torch checkpoint.
		expect(classify(Buffer.concat([Buffer.from("PK\x03\x04", "latin1"), Buffer.from("readme.txt")]))).toBeUndefined();
	});
});
