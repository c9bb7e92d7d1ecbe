import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { analyzePickle, looksLikePickle } from "../../../lib/core/formats/pickle";
import { ALLOWED_GLOBALS, dangerReason, isAllowed, normalizeGlobal } from "../../../lib/core/formats/pickle-policy";
import { pickleScanner } from "../../../lib/core/formats/pickle-scanner";
import { BufferSource } from "../../../lib/core/formats/source";
import { type ScanResult, verdictOf } from "../../../lib/core/formats/types";

const DIR = join(__dirname, "../../fixtures/pickle");
const fixture = (name: string) => readFileSync(join(DIR, name));
const DENY = { allowPickle: false };
const ALLOW = { allowPickle: true };

async function scan(bytes: Buffer, allowPickle: boolean): Promise<ScanResult> {
	expect(pickleScanner.detect(bytes.subarray(0, 65536), "x.pkl", bytes.length)).toBe(true);
	return pickleScanner.scan({
		source: new BufferSource(bytes),
		name: "x.pkl",
		path: "/x.pkl",
		policy: { allowPickle },
	});
}

describe("pickle scanner on benign pickles", () => {
	const benign = [0, 1, 2, 3, 4, 5]
		.map((p) => `benign-plain-p${p}.pkl`)
		.concat("benign-numpy-p2.pkl", "benign-numpy-p5.pkl");
	// torch's weights_only unpickler refuses all of these (text opcodes, FRAME, numpy globals, frozenset …):
	// weights-only/expected.json has torch's own messages.
	it.each(benign)(
		"%s is judged by torch's weights_only loader with --allow-pickle and refused without",
		async (name) => {
			const bytes = fixture(name);
			const allowed = await scan(bytes, true);
			expect(allowed.findings.map((f) => f.id)).toEqual(["weights-only-refused"]);
			expect(verdictOf(allowed)).toBe("unsafe");
			const denied = await scan(bytes, false);
			expect(verdictOf(denied)).toBe("unsafe");
			expect(denied.findings.map((f) => f.id)).toEqual(["pickle-forbidden"]);
			expect(denied.findings[0]?.message).toMatch(/safetensors.*--allow-pickle/);
		},
	);
});

/** [fixture, global named in the message, opcode offset in the location]. */
const MALICIOUS: [string, string, string][] = [
	["malicious-os-system.pkl", "posix.system", "opcode 0x2"],
	["malicious-os-system-p0.pkl", "posix.system", "opcode 0x0"],
	["malicious-os-system-p4.pkl", "posix.system", "opcode 0x1c"],
	["malicious-builtins-eval.pkl", "builtins.eval", "opcode 0x1d"],
	["malicious-builtins-exec.pkl", "builtins.exec", "opcode 0x2"],
	["malicious-subprocess-popen.pkl", "subprocess.Popen", "opcode 0x2"],
	["malicious-memo-stack-global.pkl", "posix.system", "opcode 0x2f"],
	["malicious-getattr-chain.pkl", "builtins.getattr", "opcode 0x15"],
	["malicious-importlib.pkl", "importlib.import_module", "opcode"],
	["malicious-pkgutil-resolve-name.pkl", "pkgutil.resolve_name", "opcode"],
	["malicious-operator-attrgetter.pkl", "operator.attrgetter", "opcode 0x2"],
	["malicious-functools-partial.pkl", "functools.partial", "opcode 0x2"],
	["malicious-runpy.pkl", "runpy._run_code", "opcode 0x2"],
	["malicious-payload-then-garbage.pkl", "posix.system", "opcode 0x2"],
	["malicious-second-pickle.pkl", "posix.system", "opcode 0x18"],
	["malicious-garbage-then-payload.pkl", "posix.system", "opcode 0x6"],
	["malicious-py2-builtin-eval.pkl", "builtins.eval", "opcode 0x0"],
];

describe("pickle scanner on malicious pickles", () => {
	it.each(MALICIOUS)("%s → dangerous-global naming %s", async (name, global, loc) => {
		for (const allow of [false, true]) {
			const r = await scan(fixture(name), allow);
			expect(verdictOf(r)).toBe("unsafe");
			const f = r.findings.find((x) => x.id === "dangerous-global" && x.message.includes(global));
			expect(f, JSON.stringify(r.findings)).toBeDefined();
			expect(f?.severity).toBe("critical");
			expect(f?.location).toContain(loc);
		}
	});

	it("resolves STACK_GLOBAL through memo keys small and huge, and MEMOIZE counts both", () => {
		const u32 = (n: number) => {
			const b = Buffer.alloc(4);
			b.writeUInt32LE(n);
			return b;
		};
		const bytes = Buffer.concat([
			Buffer.from([0x80, 0x02, 0x8c, 0x02]),
			Buffer.from("os"),
			Buffer.from("r"),
			u32(0x7fff_fff0), // beyond the dense memo array
			Buffer.from("0"),
			Buffer.from([0x8c, 0x06]),
			Buffer.from("system"),
			Buffer.from("q\x05"),
			Buffer.from("0j"),
			u32(0x7fff_fff0),
			Buffer.from("h\x05"),
			Buffer.from([0x93, 0x94]), // STACK_GLOBAL, MEMOIZE (key 2: the memo holds two)
			Buffer.from("0h\x02."),
		]);
		const r = analyzePickle(bytes, { policy: { allowPickle: true } });
		expect(r.malformed).toBeUndefined();
		expect(r.globals.map((g) => `${g.module}.${g.name}`)).toEqual(["os.system"]);
		expect(r.findings.map((f) => f.id)).toContain("dangerous-global");
		// A truncated 4-byte argument is still "truncated", and an unknown key still an error.
		expect(analyzePickle(bytes.subarray(0, 10), { policy: { allowPickle: true } }).malformed).toMatch(/^truncated/);
		const missing = Buffer.concat([Buffer.from([0x80, 0x02, 0x6a]), u32(7), Buffer.from(".")]);
		expect(analyzePickle(missing, { policy: { allowPickle: true } }).malformed).toMatch(/memo key 7 not found/);
	});

	it("keeps the findings and reports malformed for a payload followed by garbage", async () => {
		const r = await scan(fixture("malicious-payload-then-garbage.pkl"), false);
		expect(r.malformed).toMatch(/trailing bytes/);
		expect(r.findings.some((f) => f.severity === "critical")).toBe(true);
		const allowed = await scan(fixture("malicious-payload-then-garbage.pkl"), true);
		expect(allowed.findings.some((f) => f.id === "dangerous-global")).toBe(true);
	});

	it("finds a payload after garbage (resynchronising on PROTO)", async () => {
		const r = await scan(fixture("malicious-garbage-then-payload.pkl"), false);
		expect(r.malformed).toMatch(/unknown opcode 0xff/);
		expect(verdictOf(r)).toBe("unsafe");
		// weights_only stops at the garbage's opcode; CPython's unpickler would not run it either, but the payload
		// after it is named all the same (loaders that resynchronise, a stream read from that offset).
		const allowed = await scan(fixture("malicious-garbage-then-payload.pkl"), true);
		expect(verdictOf(allowed)).toBe("unsafe");
		expect(allowed.findings.some((f) => f.id === "dangerous-global" && f.message.includes("posix.system"))).toBe(true);
	});

	it("reports an unresolvable STACK_GLOBAL and EXT opcodes as high", async () => {
		for (const [name, id] of [
			["malicious-unresolved-stack-global.pkl", "unresolved-global"],
			["malicious-ext1.pkl", "extension-global"],
		] as const) {
			const r = await scan(fixture(name), false);
			const f = r.findings.find((x) => x.id === id);
			expect(f?.severity).toBe("high");
			expect(verdictOf(r)).toBe("unsafe");
		}
	});

	it("flags anything off the allow-list with --allow-pickle", () => {
		const p = Buffer.from("\x80\x02cmymodule\nMyClass\n)\x81.", "latin1");
		const r = analyzePickle(p, { policy: ALLOW });
		expect(r.findings).toEqual([
			expect.objectContaining({ id: "non-allowlisted-global", severity: "high", location: "opcode 0x2" }),
		]);
		expect(r.findings[0]?.message).toContain("mymodule.MyClass");
		expect(analyzePickle(p, { policy: DENY }).findings.map((f) => f.id)).toEqual(["pickle-forbidden"]);
	});

	it("prefixes locations with the archive entry", () => {
		const r = analyzePickle(fixture("malicious-os-system.pkl"), { policy: ALLOW, location: "archive/data.pkl" });
		expect(r.findings[0]?.location).toBe("archive/data.pkl @ opcode 0x2");
		expect(r.globals).toEqual([{ module: "posix", name: "system", offset: 2 }]);
		expect(r.end).toBe(fixture("malicious-os-system.pkl").length);
	});
});

describe("pickle opcode details", () => {
	const one = (s: string) => analyzePickle(Buffer.from(s, "latin1"), { policy: ALLOW });

	it("decodes protocol-0 STRING and UNICODE arguments feeding STACK_GLOBAL", () => {
		expect(one("S'o\\x73'\nS'sys\\164em'\n\x93)R.").findings[0]?.message).toContain("os.system");
		expect(one("Vbuilt\\u0069ns\nVeval\n\x93)R.").findings[0]?.message).toContain("builtins.eval");
		expect(one("U\x02osU\x06system\x93)R.").findings[0]?.message).toContain("os.system");
	});

	it("resolves text PUT/GET and DUP", () => {
		const r = one("Vposix\np0\n0Vsystem\n2\x93.");
		// DUP gives ("system", "system"): imports system.system, not a false posix match
		expect(r.findings[0]?.message).toContain("system.system");
		expect(one("Vposix\np3\n0Vsystem\np4\n0g3\ng4\n\x93.").findings[0]?.message).toContain("posix.system");
	});

	it("judges dotted names and attribute chains (protocol 4 resolves them)", () => {
		expect(dangerReason({ module: "collections", name: "OrderedDict.__init__.__globals__" })).toBeDefined();
		expect(dangerReason({ module: "builtins", name: "getattr.__call__" })).toBeDefined();
		expect(dangerReason({ module: "torch", name: "hub.load" })).toBeDefined();
		expect(dangerReason({ module: "torch._utils", name: "os.system" })).toMatch(/attribute chain/);
		expect(dangerReason({ module: "collections", name: "abc.eval" })).toMatch(/attribute chain/);
		expect(isAllowed({ module: "collections", name: "OrderedDict.fromkeys" })).toBe(false);
	});

	it("treats globals named after Object.prototype members as ordinary, non-allow-listed names", () => {
		for (const module of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
			expect(normalizeGlobal({ module, name: "x" })).toEqual({ module, name: "x" });
			const r = one(`c${module}\nx\n)R.`);
			expect(r.findings.map((f) => f.id)).toContain("non-allowlisted-global");
			expect(r.findings.map((f) => f.id)).not.toContain("scan-incomplete");
		}
	});

	it("maps Python 2 names like CPython's fix_imports", () => {
		expect(normalizeGlobal({ module: "__builtin__", name: "set" })).toEqual({ module: "builtins", name: "set" });
		expect(normalizeGlobal({ module: "__builtin__", name: "reduce" })).toEqual({ module: "functools", name: "reduce" });
		expect(dangerReason({ module: "__builtin__", name: "reduce" })).toBeDefined();
		expect(dangerReason({ module: "commands", name: "getoutput" })).toBeDefined();
	});

	it("keeps the benign checkpoint globals allowed and the gadgets out", () => {
		for (const [m, n] of [
			["collections", "OrderedDict"],
			["torch._utils", "_rebuild_tensor_v2"],
			["torch._utils", "_rebuild_parameter"],
			["torch", "BFloat16Storage"],
			["numpy.core.multiarray", "_reconstruct"],
			["numpy._core.multiarray", "scalar"],
			["numpy", "dtype"],
			["_codecs", "encode"],
			["__builtin__", "set"],
		])
			expect(isAllowed({ module: m as string, name: n as string }), `${m}.${n}`).toBe(true);
		for (const [m, n] of [
			["torch.storage", "_load_from_bytes"],
			["torch", "load"],
			["builtins", "getattr"],
			["nt", "system"],
			["os", "popen"],
			["numpy", "load"],
			["operator", "methodcaller"],
			["types", "CodeType"],
		]) {
			expect(isAllowed({ module: m as string, name: n as string }), `${m}.${n}`).toBe(false);
			expect(dangerReason({ module: m as string, name: n as string }), `${m}.${n}`).toBeDefined();
		}
	});

	it("never lists a global as both allowed and dangerous", () => {
		for (const full of ALLOWED_GLOBALS) {
			const dot = full.lastIndexOf(".");
			const g = { module: full.slice(0, dot), name: full.slice(dot + 1) };
			expect(dangerReason(g), full).toBeUndefined();
			expect(isAllowed(g), full).toBe(true);
		}
	});

	it("rejects what CPython rejects", () => {
		expect(one("\x80\x06N.").malformed).toMatch(/protocol 6/);
		expect(one("\x80\x02.").malformed).toMatch(/underflow/);
		expect(one("\x80\x02h\x05.").malformed).toMatch(/memo key 5/);
		expect(one("\x80\x02N").malformed).toMatch(/truncated/);
		expect(one("\x80\x02T\xff\xff\xff\xff.").malformed).toMatch(/negative/);
		expect(one("").malformed).toBeDefined();
	});

	it("reads every binary opcode's argument (protocol 5 buffers, frames, 8-byte lengths)", () => {
		const r = one(
			"\x80\x05\x95\x05\x00\x00\x00\x00\x00\x00\x00(" +
				"\x96\x01\x00\x00\x00\x00\x00\x00\x00x" +
				"\x8e\x00\x00\x00\x00\x00\x00\x00\x00\x98" + // READONLY_BUFFER on bytes (CPython refuses it on a str)
				"\x8d\x00\x00\x00\x00\x00\x00\x00\x00" +
				"\x8f(N\x90(N\x91\x8a\x01\x01\x8b\x01\x00\x00\x00\x01G\x00\x00\x00\x00\x00\x00\x00\x00" +
				"t.",
		);
		expect(r.malformed).toBeUndefined();
		expect(r.pickles).toBe(1);
		// a BINBYTES8 length beyond the buffer is "truncated", never an allocation
		expect(one("\x80\x05\x8e\xff\xff\xff\xff\xff\xff\xff\x7f.").malformed).toMatch(/truncated/);
	});

	it("sniffs protocol 0/1 pickles but not text", () => {
		expect(looksLikePickle(Buffer.from("(dp0\nS'a'\n"))).toBe(true);
		expect(looksLikePickle(Buffer.from("cos\nsystem\n"))).toBe(true);
		expect(looksLikePickle(Buffer.from("hello world"))).toBe(false);
		expect(looksLikePickle(Buffer.from('{"a": 1}'))).toBe(false);
		expect(looksLikePickle(Buffer.from("import os\nimport sys\n\nprint(os.name)\n"))).toBe(false);
		expect(looksLikePickle(Buffer.from("# README\n\nhello\n"))).toBe(false);
		// a payload behind a NONE/POP prefix still runs, so it is still a pickle
		expect(looksLikePickle(Buffer.from("N0cposix\nsystem\n(S'id'\ntR.", "latin1"))).toBe(true);
	});
});

describe("bounded work", () => {
	it("stops a 10M-opcode pickle at the opcode budget, without hanging", () => {
		// MARK/POP_MARK pairs: 20M opcodes in 20 MB
		const n = 10_000_000;
		const b = Buffer.alloc(2 + 2 * n + 2);
		b[0] = 0x80;
		b[1] = 2;
		for (let i = 0; i < n; i++) {
			b[2 + 2 * i] = 0x28;
			b[3 + 2 * i] = 0x31;
		}
		b.write("N.", 2 + 2 * n, "latin1");
		const t = Date.now();
		const r = analyzePickle(b, { policy: ALLOW });
		expect(Date.now() - t).toBeLessThan(10_000);
		expect(r.findings.map((f) => f.id)).toContain("pickle-too-complex");
		expect(verdictOf(r)).toBe("unsafe");
	});

	it("bounds the stack and the memo", () => {
		const n = 1_200_000;
		const deep = Buffer.concat([Buffer.from("\x80\x02", "latin1"), Buffer.alloc(n, 0x4e), Buffer.from(".")]);
		const r = analyzePickle(deep, { policy: ALLOW });
		expect(r.findings.map((f) => f.id)).toContain("pickle-too-complex");
		// N then (DUP MEMOIZE)×n: the memo is capped, later GETs become "unknown" and STACK_GLOBAL is unresolved
		const memo = Buffer.concat([
			Buffer.from("\x80\x04N", "latin1"),
			Buffer.from("2\x94".repeat(n), "latin1"),
			Buffer.from("h\x01j\x00\x00\x10\x00\x93.", "latin1"),
		]);
		const m = analyzePickle(memo, { policy: ALLOW });
		expect(verdictOf(m)).toBe("unsafe");
	});

	it("caps the number of findings", () => {
		const many = Buffer.concat([
			Buffer.from("\x80\x02", "latin1"),
			...Array.from({ length: 500 }, (_, i) => Buffer.from(`cm${i}\nx\n0`)),
			Buffer.from("N."),
		]);
		const r = analyzePickle(many, { policy: ALLOW });
		expect(r.findings.length).toBeLessThanOrEqual(201);
		expect(r.findings.at(-1)?.id).toBe("too-many-findings");
	});
});
