/**
 * What a pickle may import. Two lists, used differently:
 *
 * - the allow-list (default deny) is what the opcode analyser (pickle.ts) judges imports by with
 *   `--allow-pickle`: anything outside it is `non-allowlisted-global` (high). Every pickle torch.load
 *   reads (torch zip, legacy, tar, plain pickles) is judged by the weights_only model instead
 *   (weights-only.ts: exactly what torch's loader accepts); this list still serves the analyser's other
 *   users (NumPy object arrays) and, there, flags what the weights_only model stopped before reaching.
 *   Constructors of inert data, never anything that takes a callable, a path, a code string or an
 *   attribute name.
 * - the dangerous list names what is known to run code, touch the system or
 *   reach arbitrary attributes; it is reported `dangerous-global` (critical) in
 *   both policies, so that a user sees *why* a file is refused. It is a list of
 *   reasons, not a safety boundary: the allow-list is the boundary.
 */

/** A global as the unpickler would import it. */
export interface GlobalRef {
	module: string;
	name: string;
}

/**
 * Python 2 names that CPython's unpickler maps to Python 3 ones (`fix_imports`,
 * `_compat_pickle`): `__builtin__.eval` must be judged as `builtins.eval`.
 */
const MODULE_ALIASES: Readonly<Record<string, string>> = {
	__builtin__: "builtins",
	exceptions: "builtins",
	copy_reg: "copyreg",
	commands: "subprocess",
	cPickle: "pickle",
	thread: "_thread",
	dummy_thread: "_dummy_thread",
	httplib: "http.client",
	urllib2: "urllib.request",
	urlparse: "urllib.parse",
	UserDict: "collections",
	UserList: "collections",
	UserString: "collections",
	cStringIO: "io",
	StringIO: "io",
	SocketServer: "socketserver",
	SimpleHTTPServer: "http.server",
	BaseHTTPServer: "http.server",
	CGIHTTPServer: "http.server",
	xmlrpclib: "xmlrpc.client",
	Queue: "queue",
	repr: "reprlib",
};

const NAME_ALIASES: Readonly<Record<string, GlobalRef>> = {
	"__builtin__.reduce": { module: "functools", name: "reduce" },
	"__builtin__.intern": { module: "sys", name: "intern" },
	"__builtin__.xrange": { module: "builtins", name: "range" },
	"__builtin__.unicode": { module: "builtins", name: "str" },
	"__builtin__.long": { module: "builtins", name: "int" },
	"__builtin__.basestring": { module: "builtins", name: "str" },
	"__builtin__.unichr": { module: "builtins", name: "chr" },
	"itertools.izip": { module: "builtins", name: "zip" },
	"itertools.imap": { module: "builtins", name: "map" },
	"itertools.ifilter": { module: "builtins", name: "filter" },
};

/** The module and name CPython 3 would actually import for this reference. */
export function normalizeGlobal(g: GlobalRef): GlobalRef {
	// Own properties only: a pickle naming a module "constructor" or "__proto__" must
	// not reach Object.prototype through these tables.
	const key = `${g.module}.${g.name}`;
	const mapped = Object.hasOwn(NAME_ALIASES, key) ? NAME_ALIASES[key] : undefined;
	if (mapped) return mapped;
	return {
		module: Object.hasOwn(MODULE_ALIASES, g.module) ? (MODULE_ALIASES[g.module] ?? g.module) : g.module,
		name: g.name,
	};
}

const TORCH_STORAGES = [
	"FloatStorage",
	"DoubleStorage",
	"HalfStorage",
	"BFloat16Storage",
	"LongStorage",
	"IntStorage",
	"ShortStorage",
	"CharStorage",
	"ByteStorage",
	"BoolStorage",
	"ComplexFloatStorage",
	"ComplexDoubleStorage",
	"QUInt8Storage",
	"QInt8Storage",
	"QInt32Storage",
	"QUInt4x2Storage",
	"QUInt2x4Storage",
	"UntypedStorage",
	"TypedStorage",
];

const TORCH_DTYPES = [
	"float32",
	"float",
	"float64",
	"double",
	"float16",
	"half",
	"bfloat16",
	"complex32",
	"complex64",
	"complex128",
	"cfloat",
	"cdouble",
	"uint8",
	"int8",
	"int16",
	"short",
	"int32",
	"int",
	"int64",
	"long",
	"bool",
	"quint8",
	"qint8",
	"qint32",
	"quint4x2",
	"quint2x4",
	"float8_e4m3fn",
	"float8_e5m2",
	"uint16",
	"uint32",
	"uint64",
];

/** numpy 1.x and 2.x spell the same internals `numpy.core.*` and `numpy._core.*`. */
const NUMPY_CORE = (name: string): string[] => [`numpy.core.${name}`, `numpy._core.${name}`];

/**
 * The allow-list, as "module.name". Every entry builds inert data from inert
 * arguments; callables it receives (a tensor subclass, a dtype) are themselves
 * globals and judged separately.
 */
export const ALLOWED_GLOBALS: ReadonlySet<string> = new Set([
	// containers and scalars of plain Python state (training step, lr, betas, config)
	"collections.OrderedDict",
	"collections.defaultdict", // its default_factory is a global judged on its own
	"collections.Counter",
	"collections.deque",
	"builtins.set",
	"builtins.frozenset",
	"builtins.complex",
	"builtins.slice",
	"builtins.range",
	"builtins.bytes", // protocol <3 pickles b"" as builtins.bytes()
	"builtins.bytearray", // protocol <5 pickles bytearray as builtins.bytearray(...)
	"builtins.list",
	"builtins.dict",
	"builtins.tuple",
	"builtins.int",
	"builtins.float",
	"builtins.str",
	"builtins.bool",
	"builtins.object", // copyreg._reconstructor(cls, object, None) for protocol 0/1 objects
	"_codecs.encode", // protocol <3 pickles bytes as _codecs.encode(str, "latin1"): encodings only, no code
	"copyreg._reconstructor",
	"datetime.datetime",
	"datetime.date",
	"datetime.time",
	"datetime.timedelta",
	"datetime.timezone",
	"decimal.Decimal",
	"fractions.Fraction",
	"uuid.UUID",
	"pathlib.PosixPath", // a path value, not a file operation
	"pathlib.WindowsPath",
	"pathlib.PurePosixPath",
	"pathlib.PureWindowsPath",
	"argparse.Namespace", // hyper-parameters in Lightning-style checkpoints
	// PyTorch tensors, parameters and their storages
	"torch._utils._rebuild_tensor",
	"torch._utils._rebuild_tensor_v2",
	"torch._utils._rebuild_tensor_v3",
	"torch._utils._rebuild_parameter",
	"torch._utils._rebuild_parameter_with_state",
	"torch._utils._rebuild_sparse_tensor",
	"torch._utils._rebuild_sparse_csr_tensor",
	"torch._utils._rebuild_meta_tensor_no_storage",
	"torch._utils._rebuild_nested_tensor",
	"torch._utils._rebuild_qtensor",
	"torch._utils._rebuild_wrapper_subclass",
	"torch._utils._rebuild_device_tensor_from_numpy",
	"torch._tensor._rebuild_from_type_v2",
	"torch._tensor._rebuild_from_type",
	"torch.nn.parameter.Parameter",
	"torch.Tensor",
	"torch.Size",
	"torch.device",
	"torch.serialization._get_layout",
	"torch.strided",
	"torch.sparse_coo",
	"torch.per_tensor_affine",
	"torch.per_channel_affine",
	"torch.contiguous_format",
	"torch.channels_last",
	"torch.preserve_format",
	...TORCH_STORAGES.map((s) => `torch.${s}`),
	...TORCH_STORAGES.map((s) => `torch.storage.${s}`),
	...TORCH_DTYPES.map((d) => `torch.${d}`),
	// NumPy arrays, dtypes and scalars
	"numpy.ndarray",
	"numpy.dtype",
	...NUMPY_CORE("multiarray._reconstruct"),
	...NUMPY_CORE("multiarray.scalar"),
	...NUMPY_CORE("numeric._frombuffer"),
	"numpy.random._pickle.__randomstate_ctor", // RNG state in training checkpoints
	"numpy.random._pickle.__bit_generator_ctor",
	"numpy.random._pickle.__generator_ctor",
	"numpy.random.mtrand._rand",
	"numpy.random._mt19937.MT19937",
	"numpy.random._pcg64.PCG64",
]);

/** numpy 2's per-type dtype classes (`numpy.dtypes.Float32DType`, …) are dtype constructors. */
function allowedPattern(full: string): boolean {
	return /^numpy\.dtypes\.[A-Za-z0-9]+DType$/.test(full);
}

/** Modules where every name is dangerous (matched as a dotted prefix). */
const DANGEROUS_MODULES: Readonly<Record<string, string>> = {
	os: "operating-system access (os.system and friends)",
	posix: "operating-system access (os.system pickles as posix.system)",
	nt: "operating-system access (os.system pickles as nt.system on Windows)",
	subprocess: "runs programs",
	_posixsubprocess: "runs programs",
	_winapi: "runs programs",
	pty: "spawns a shell",
	runpy: "runs Python modules or files",
	socket: "network access",
	_socket: "network access",
	ssl: "network access",
	asyncio: "runs programs and opens connections (asyncio.subprocess)",
	multiprocessing: "runs processes",
	webbrowser: "launches programs",
	importlib: "imports arbitrary modules",
	imp: "imports arbitrary modules",
	zipimport: "imports arbitrary modules",
	pkgutil: "imports arbitrary modules (pkgutil.resolve_name)",
	code: "runs Python source",
	codeop: "compiles Python source",
	pdb: "runs Python source",
	bdb: "runs Python source",
	trace: "runs Python source",
	timeit: "runs Python source",
	cProfile: "runs Python source",
	profile: "runs Python source",
	doctest: "runs Python source",
	idlelib: "runs Python source",
	shutil: "file-system access",
	tempfile: "file-system access",
	sys: "interpreter internals",
	site: "interpreter internals",
	gc: "interpreter internals (gc.get_objects)",
	ctypes: "native code",
	_ctypes: "native code",
	cffi: "native code",
	marshal: "loads code objects",
	pickle: "nested unpickling",
	_pickle: "nested unpickling",
	dill: "nested unpickling of code",
	cloudpickle: "nested unpickling of code",
	joblib: "nested unpickling",
	shelve: "nested unpickling",
	signal: "interpreter internals",
	_thread: "runs callables on threads",
	threading: "runs callables on threads",
	urllib: "network access",
	"http.client": "network access",
	"http.server": "network access",
	ftplib: "network access",
	smtplib: "network access",
	telnetlib: "network access",
	xmlrpc: "network access",
	requests: "network access",
	httpx: "network access",
	aiohttp: "network access",
	paramiko: "network access",
	"torch.hub": "downloads and runs code",
	"torch.jit": "loads TorchScript code",
	"torch.utils.cpp_extension": "compiles and loads native code",
	"torch._inductor": "compiles and runs generated code",
	"torch.fx.experimental.symbolic_shapes": "evaluates Python expressions",
	"torch._dynamo": "compiles and runs code",
	"torch.package": "loads packaged code",
	"numpy.testing": "runs Python source (numpy.testing runstring)",
	"numpy.f2py": "compiles native code",
	"numpy.distutils": "compiles native code",
	"numpy.ctypeslib": "native code",
	"numpy.lib.npyio": "nested numpy.load with pickles",
};

/** Single names in otherwise ordinary modules (module → name → why). */
const DANGEROUS_NAMES: Readonly<Record<string, Readonly<Record<string, string>>>> = {
	builtins: {
		eval: "evaluates Python source",
		exec: "runs Python source",
		execfile: "runs a Python file",
		compile: "compiles Python source",
		open: "opens files",
		getattr: "reaches any attribute (attribute-chain gadget)",
		setattr: "sets any attribute",
		delattr: "deletes any attribute",
		__import__: "imports any module",
		breakpoint: "starts a debugger",
		input: "reads the terminal",
		globals: "interpreter internals",
		locals: "interpreter internals",
		vars: "interpreter internals",
		apply: "calls any callable",
		reload: "re-imports modules",
		help: "starts a pager",
		memoryview: "raw memory views",
		type: "creates classes",
		super: "attribute-chain gadget",
		classmethod: "wraps callables",
		staticmethod: "wraps callables",
		property: "wraps callables",
		map: "calls a callable over data",
		filter: "calls a callable over data",
		sorted: "calls a key callable",
		max: "calls a key callable",
		min: "calls a key callable",
		iter: "calls a callable repeatedly",
		next: "drives iterators that call callables",
	},
	operator: {
		attrgetter: "reaches any attribute (attribute-chain gadget)",
		methodcaller: "calls any method",
		itemgetter: "item-chain gadget",
		getitem: "item-chain gadget",
		call: "calls any callable",
		setitem: "mutates objects",
		delitem: "mutates objects",
	},
	_operator: {
		attrgetter: "reaches any attribute (attribute-chain gadget)",
		methodcaller: "calls any method",
		itemgetter: "item-chain gadget",
		getitem: "item-chain gadget",
		call: "calls any callable",
	},
	functools: {
		partial: "binds arguments to any callable (call gadget)",
		partialmethod: "binds arguments to any callable",
		reduce: "calls a callable repeatedly",
		cached_property: "wraps callables",
		singledispatch: "wraps callables",
	},
	_functools: { partial: "binds arguments to any callable (call gadget)", reduce: "calls a callable repeatedly" },
	types: {
		FunctionType: "builds a function from a code object",
		LambdaType: "builds a function from a code object",
		CodeType: "builds a code object",
		MethodType: "binds callables",
		ModuleType: "builds modules",
		SimpleNamespace: "attribute holder used in gadget chains",
	},
	io: { open: "opens files", FileIO: "opens files", open_code: "opens files" },
	_io: { open: "opens files", FileIO: "opens files", open_code: "opens files" },
	codecs: { open: "opens files" },
	itertools: { starmap: "calls any callable over data" },
	contextlib: { ExitStack: "calls registered callables" },
	"torch.storage": { _load_from_bytes: "calls torch.load on embedded bytes" },
	"torch.serialization": {
		load: "nested torch.load",
		_load: "nested torch.load",
		_legacy_load: "nested torch.load",
		_open_file_like: "opens files",
		_open_zipfile_reader: "opens files",
		add_safe_globals: "widens torch's own allow-list",
	},
	torch: {
		load: "nested torch.load",
		from_file: "opens files",
		_load_global_deps: "loads native libraries",
		hub: "downloads and runs code",
	},
	"torch._C": { _jit_pass_inline: "TorchScript internals", _load_for_lite_interpreter: "loads TorchScript code" },
	"torch.ops": { load_library: "loads native libraries" },
	numpy: { load: "nested numpy.load (allow_pickle)", fromfile: "reads files", memmap: "maps files" },
	"numpy.lib.format": { read_array: "nested pickle load" },
	glob: { glob: "file-system access", iglob: "file-system access" },
	linecache: { getline: "reads files", getlines: "reads files" },
	fileinput: { input: "reads files" },
	platform: { popen: "runs programs" },
	pydoc: { pipepager: "runs programs", locate: "imports any module" },
	"distutils.spawn": { spawn: "runs programs" },
	"setuptools.sandbox": { run_setup: "runs Python files" },
	venv: { create: "runs programs" },
	ensurepip: { bootstrap: "runs programs" },
};

/** Dunder attributes that turn any object into a path to globals, builtins or subclasses. */
const CHAIN_ATTRS =
	/(^|\.)(__globals__|__builtins__|__subclasses__|__class__|__base__|__bases__|__mro__|__dict__|__code__|__closure__|__getattribute__|__reduce__|__reduce_ex__|__init__|__call__|__self__|__func__|__module__|__loader__|__spec__|__import__)($|\.)/;

/** The tables above as Maps, built once: lookups, not scans, on every global judged. */
const DANGEROUS_MODULE_MAP: ReadonlyMap<string, string> = new Map(Object.entries(DANGEROUS_MODULES));
const DANGEROUS_NAME_MAP: ReadonlyMap<string, Readonly<Record<string, string>>> = new Map(
	Object.entries(DANGEROUS_NAMES),
);

/**
 * The DANGEROUS_MODULES reason for `path` or any dotted prefix of it (`a`, `a.b`, …, `path`),
 * as `path === mod || path.startsWith(mod + ".")` over the table (no key is a dotted prefix of another).
 */
function dangerousModule(path: string): string | undefined {
	for (let i = path.indexOf("."); i >= 0; i = path.indexOf(".", i + 1)) {
		const why = DANGEROUS_MODULE_MAP.get(path.slice(0, i));
		if (why !== undefined) return why;
	}
	return DANGEROUS_MODULE_MAP.get(path);
}

/** Why a global is dangerous, or undefined if it is not on the dangerous list. */
export function dangerReason(raw: GlobalRef): string | undefined {
	const g = normalizeGlobal(raw);
	const byModule = dangerousModule(g.module);
	if (byModule !== undefined) return byModule;
	// A dotted name (protocol 4+ resolves "a.b" attribute by attribute) is judged by its first
	// segment and by the whole path: builtins + "getattr.x" still imports getattr.
	const names = DANGEROUS_NAME_MAP.get(g.module);
	if (names !== undefined) {
		const first = g.name.split(".", 1)[0] ?? g.name;
		const why = names[first] ?? names[g.name];
		if (why) return why;
	}
	// Every CHAIN_ATTRS name is a dunder: most names skip the regular expression.
	if (g.name.includes("__") && CHAIN_ATTRS.test(g.name))
		return "reaches interpreter internals through an attribute chain";
	// A dotted name walks attributes, so "torch._utils" + "os.system" reaches os through a module
	// that imported it: any segment naming a dangerous module or builtin is judged as that.
	if (g.name.includes(".")) {
		const segs = g.name.split(".");
		for (const seg of segs.slice(0, -1)) {
			const why = DANGEROUS_MODULES[seg];
			if (why) return `${why}, reached through an attribute chain`;
		}
		for (const seg of segs) {
			const why = DANGEROUS_NAMES.builtins?.[seg];
			if (why && seg !== segs[0]) return `${why}, reached through an attribute chain`;
		}
	}
	// `torch` re-exports a few dangerous submodules as attributes ("torch" + "hub.load").
	return dangerousModule(`${g.module}.${g.name}`);
}

/** Whether a benign checkpoint may import this global (the `--allow-pickle` allow-list). */
export function isAllowed(raw: GlobalRef): boolean {
	const g = normalizeGlobal(raw);
	const full = `${g.module}.${g.name}`;
	if (dangerReason(g) !== undefined) return false;
	return ALLOWED_GLOBALS.has(full) || allowedPattern(full);
}

/** "posix.system" (or "posix.system (= builtins.x)" when a Python 2 alias was mapped). */
export function describeGlobal(raw: GlobalRef): string {
	const g = normalizeGlobal(raw);
	const a = `${raw.module}.${raw.name}`;
	const b = `${g.module}.${g.name}`;
	const shown = (s: string) => JSON.stringify(s).slice(1, -1).slice(0, 200);
	return a === b ? shown(a) : `${shown(a)} (= ${shown(b)})`;
}
