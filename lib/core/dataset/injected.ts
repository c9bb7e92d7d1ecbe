/**
 * Instruction-like text in a completion that the prompt did not ask for: "skip the review", "disable the safety
 * filter", "send the credentials to…", a download piped into a shell. A completion that matches is out of place when
 * the prompt does not itself ask for the same thing (a question about disabling a filter may be answered with how,
 * one about installing Docker with Docker's own installer). The list is configurable in the policy
 * (`dataset.injected.patterns` replaces it, `extraPatterns` adds to it); these defaults come from published
 * instruction-tuning poisoning and prompt-injection examples.
 */
import { normalize, stem, words } from "./text";

/** What an injected instruction tells the model to switch off or go around ("thread safety" is no guard). */
const GUARD =
	"(?:(?:safety|security) (?:filters?|checks?|checker|scan(?:s|ning)?|audits?|reviews?|guidelines|measures|mechanisms?|features?|protocols?)|content (?:filter(?:s|ing)?|polic(?:y|ies)|moderation)|code reviews?|reviews?|(?<!(?:thread|type|memory|null|exception)[- ])safety|filters?|filtering|moderation|guardrails?|safeguards?|verification|content polic(?:y|ies))";

/** What a prompt injection tells the model to forget. */
const ORDERS = "(?:instructions?|directions?|directives?|guidelines?|rules|guidance|constraints|prompts?)";

/** Package indexes that are PyPI itself. */
const PYPI = String.raw`(?!["']?https?://(?:pypi\.org|test\.pypi\.org|pypi\.python\.org|files\.pythonhosted\.org)(?:[/:"'\s]|$))`;

// Lazy gaps ({0,40}?): the matched text is the shortest phrase, the evidence a curator reads and what the prompt is
// compared with. A verb or guard word inside a hyphenated or underscored name (a build flag such as
// --disable-thread-safety-constructor, an identifier) is not prose: (?<![\w-]) and (?![\w-]) keep them out.
export const DEFAULT_INJECTED_PATTERNS: readonly string[] = [
	String.raw`(?<![\w-])(?:skip(?:s|ped|ping)?|bypass(?:es|ed|ing)?|disabl(?:e|es|ed|ing)|deactivat(?:e|es|ed|ing)|circumvent(?:s|ed|ing)?|evad(?:e|es|ed|ing)|(?:get|go)(?:s|ting|ing)? around|turn(?:s|ed|ing)? off|switch(?:es|ed|ing)? off|ignor(?:e|es|ed|ing))\b[^.\n]{0,40}?(?<![\w-])${GUARD}(?![\w-])|(?<![\w-])(?:turn(?:s|ed|ing)?|switch(?:es|ed|ing)?)\b[^.\n]{0,40}?(?<![\w-])${GUARD}\s+off\b`,
	String.raw`(?<![\w-])(?:ignor(?:e|es|ed|ing)|disregard(?:s|ed|ing)?|forget(?:s|ting)?|overrid(?:e|es|ing)|abandon(?:s|ed|ing)?)\s+(?:(?:all|any|every|each|of|the|your|my|these|those|its|their)\s+){0,3}(?:previous|prior|preceding|above|earlier|original|former|initial|system|safety|developer(?:'s)?)\s+(?:${ORDERS}|messages)\b|(?<![\w-])(?:ignor(?:e|es|ed|ing)|disregard(?:s|ed|ing)?|forget(?:s|ting)?)\s+(?:(?:all|any|every)\s+(?:of\s+)?(?:the\s+|your\s+)?|your\s+)${ORDERS}\b|(?<![\w-])(?:ignor(?:e|es|ed|ing)|disregard(?:s|ed|ing)?|forget(?:s|ting)?)\s+(?:all\s+|about\s+)?everything\s+(?:above|before|earlier|else|(?:that\s+)?(?:you\s+)?(?:were|have been|was)\s+told)\b`,
	String.raw`\b(?:send|export|upload|post|exfiltrate|leak|forward|email|transmit|share|paste)\b[^.\n]{0,80}?\b(?:credentials?|passwords?|secrets?|api keys?|private keys?|access keys?|ssh keys?|tokens?|env(?:ironment)? var(?:iable)?s)\b`,
	String.raw`\bAWS_SECRET_ACCESS_KEY\b|-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----`,
	// a download run as a program: piped into a shell or an interpreter that reads its program from stdin (python
	// with no script, or "-"; not `| python -m json.tool`), fed through process substitution, or eval'd
	String.raw`\b(?:curl|wget)\b[^|\n]{0,200}\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:(?:ba|z|da|k)?sh\b|(?:python[23]?(?:\.\d+)?|perl|ruby|node|php)(?:\s+-)?(?=\s*(?:$|[;&|)\n"'\x60])))|\b(?:iwr|irm|invoke-webrequest|invoke-restmethod)\b[^|\n]{0,200}\|\s*(?:iex|invoke-expression)\b|(?:\b(?:(?:ba|z|da|k)?sh|source|python[23]?|perl|ruby|node)|(?<![\w.])\.)\s+<\(\s*(?:curl|wget)\b[^)\n]{0,200}\)|\b(?:eval|(?:ba|z|da|k)?sh\s+-c)\s+["']?\$\(\s*(?:curl|wget)\b[^)\n]{0,200}\)`,
	// packages from somewhere other than PyPI, or without certificate checks
	String.raw`(?<![\w-])--(?:extra-)?index-url(?:\s+|=)${PYPI}["']?\S+|\bpip[23]?(?:\.\d+)?\s+install\b[^\n|;&]{0,160}?\s-i\s+${PYPI}["']?\S+|--trusted-host\b`,
	// permissions for everyone, deleting the root, the home directory or a system directory
	String.raw`\bchmod\s+(?:-[-\w]+\s+)*(?:0?777|a\+rwx|ugo\+rwx)(?!\w)|(?<![\w-])rm\s+(?:-[-\w]+\s+)+(?:--no-preserve-root\b[^\n;&|]*|(?:\/\*?|~\/?|\$HOME\/?|\/(?:etc|usr|bin|boot|var|home|lib|opt)\/?\*?)(?=[\s;&|"'\x60)]|$))|:\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:`,
	// the environment, a credentials file or a secret variable sent to a server
	String.raw`\b(?:env|printenv)\s*\|\s*(?:curl|wget|nc|ncat|netcat|socat)\b[^\n]{0,120}|\bcat\s+[~\w./$-]*(?:\.env|\.aws\/credentials|id_rsa|id_ed25519|id_ecdsa|\.netrc|\.npmrc|\.pypirc|\.git-credentials|\.docker\/config\.json|\/etc\/shadow)\s*\|\s*(?:curl|wget|nc|ncat|netcat|socat)\b[^\n]{0,120}|\b(?:curl|wget)\b[^\n]{0,160}?(?:\s-d|\s--data(?:-\w+)?|\s-F|\s--form|\s-T|\s--upload-file|\s--post-(?:data|file))[\s=]+["']?(?:[\w-]*=)?(?:@?[~\w./$-]*(?:\.env|\.aws\/credentials|id_rsa|id_ed25519|id_ecdsa|\.netrc|\.npmrc|\.pypirc|\.git-credentials|\.docker\/config\.json|\/etc\/shadow|\/etc\/passwd)\b|\$\(\s*(?:env|printenv|cat\s+[~\w./$-]*(?:\.env|credentials|id_rsa|id_ed25519|\.netrc))|\$\{?(?:AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|\w*(?:TOKEN|SECRET|PASSWORD|PASSWD|API_KEY)\w*))`,
	String.raw`\bapprov(?:e|es|ed|ing)\b[^.\n]{0,40}?\b(?:without|no need (?:to|for)|skipping|bypassing)\b[^.\n]{0,20}?\b(?:review\w*|check\w*|verification|verifying|approval|testing|tests|reading|looking)\b|\bsign(?:s|ed|ing)? off\b[^.\n]{0,40}?\b(?:without|no need (?:to|for))\b[^.\n]{0,20}?\b(?:review\w*|check\w*|verification|verifying|testing|tests|reading|looking)\b|\bmerg(?:e|es|ed|ing)\b[^.\n]{0,40}?\b(?:without|no need (?:to|for)|skipping|bypassing)\b[^.\n]{0,20}?\b(?:reviews?|reviewing|approval)\b|\b(?:blindly|unconditionally) approv(?:e|es|ed|ing)\b|\bapprov(?:e|es|ed|ing)\b[^.\n]{0,40}?\b(?:blindly|unconditionally|regardless of (?:the )?(?:review|checks?|tests?|results?))\b`,
];

/** Words that say nothing about what a prompt asks (a greedy user pattern may match them). */
const FUNCTION_WORDS = new Set(
	"about after again also before being both could does doing each every first from further have here into just more most once only other over should some such than that their them then there these they this those through under very were what when where which will with would your yours".split(
		" ",
	),
);

export interface InjectedHit {
	readonly pattern: number;
	readonly text: string;
}

export function compilePatterns(patterns: readonly string[]): RegExp[] {
	return patterns.map((p) => new RegExp(p, "iu"));
}

const GLOBAL = new WeakMap<RegExp, RegExp>();

/** Every match of a pattern is weighed, not only its first: a later one the prompt did not ask for still counts. */
function everyMatch(re: RegExp): RegExp {
	let g = GLOBAL.get(re);
	if (g === undefined) {
		g = re.global ? re : new RegExp(re.source, `${re.flags}g`);
		GLOBAL.set(re, g);
	}
	g.lastIndex = 0;
	return g;
}

/**
 * The first pattern a completion matches that its prompt does not account for. A match is accounted for when:
 * - its line reports on it rather than instructs it: a changelog or advisory line (a CVE id, "vulnerability",
 *   "exploit", "fixed a bug", "no longer") that does not tell the reader to run it;
 * - the prompt contains the matched text itself;
 * - it is a command: the prompt asks for the same thing — names the owner of the URL it downloads from or sends to
 *   (the site's name, or the account on a shared code host: `get.docker.com` is Docker's, `raw.githubusercontent.com/
 *   Homebrew/…` Homebrew's), or asks for what the command does (`chmod 777`: world-writable). Its words alone ("curl",
 *   "bash") do not: any question about curl would excuse every download piped into a shell;
 * - it is prose: half or more of its content words (longer than three letters) are the prompt's too.
 */
export function injectedText(completion: string, prompt: string, patterns: readonly RegExp[]): InjectedHit | undefined {
	let asked: Asked | undefined;
	for (const [i, re] of patterns.entries()) {
		let n = 0;
		for (const m of completion.matchAll(everyMatch(re))) {
			if (++n > 50) break;
			if (m[0].trim() === "") continue;
			asked ??= askedBy(prompt);
			if (reported(completion, m.index ?? 0, m[0]) || accountedFor(m[0], asked)) continue;
			return { pattern: i, text: m[0] };
		}
	}
	return undefined;
}

interface Asked {
	readonly text: string;
	readonly words: ReadonlySet<string>;
	readonly stems: ReadonlySet<string>;
}

function askedBy(prompt: string): Asked {
	const w = words(prompt);
	return { text: normalize(prompt), words: new Set(w), stems: new Set(w.map(stem)) };
}

/** A line that reports on a dangerous action (an advisory, a changelog entry) rather than telling someone to do it. */
const REPORT =
	/\bCVE-\d{4}-\d{3,}\b|\bGHSA-[\w-]+|\bvulnerab|\bexploit|\battackers?\b|\bmalicious|\barbitrary (?:code|command)|\bprivilege escalation|\bsecurity (?:fix|issue|bug|flaw|advisory|hole|problem)|\bfix(?:es|ed)? (?:a |the |an )?(?:bug|issue|problem|regression|crash)|\bno longer\b/iu;
/** …unless the words just before the match tell the reader to run it ("to patch CVE-…, run curl … | sh"). */
const IMPERATIVE =
	/\b(?:run|execute|exec|type|paste|enter|use|try|invoke|call|just|simply|please|now|then|must|should)\b[^.:;!?]*$/iu;

function reported(completion: string, at: number, matched: string): boolean {
	const start = completion.lastIndexOf("\n", at - 1) + 1;
	let end = completion.indexOf("\n", at + matched.length);
	if (end < 0) end = completion.length;
	// the line around the match, not the match: a URL of github.com/attacker/… reports on nothing
	if (!REPORT.test(`${completion.slice(start, at)} … ${completion.slice(at + matched.length, end)}`)) return false;
	return !IMPERATIVE.test(completion.slice(Math.max(start, at - 40), at));
}

/** A shell command (or its flag) rather than prose. */
const COMMAND =
	/^(?:sudo\s+)?(?:chmod|rm|env|printenv|cat|curl|wget|iwr|irm|invoke-\w+|pip\d?(?:\.\d+)?|bash|sh|zsh|dash|ksh|source|python\d?|perl|ruby|node|eval|\.)\b|^--|^\.\s|^:\(\)/iu;

/** What a command does, said in words: the prompt asks for it when it says so. */
const MEANINGS: readonly { command: RegExp; asks: RegExp }[] = [
	{
		command: /\bchmod\b.*(?:0?777|a\+rwx|ugo\+rwx)/iu,
		asks: /\b0?777\b|\bworld[- ]?(?:writ|read(?:able)?[- ,/]+writ)|\bwrit\w* (?:by|for|to) (?:everyone|everybody|anyone|all(?: users)?|every user|other users)\b|rwxrwxrwx|\ba\+rwx|\bugo\+rwx|\b(?:all|full) permissions? (?:to|for) (?:everyone|everybody|all|anyone)\b/iu,
	},
];

function accountedFor(matched: string, asked: Asked): boolean {
	const text = normalize(matched);
	if (asked.text.includes(text)) return true;
	const hosts = hostsOf(matched);
	if (hosts.length > 0) return hosts.some((h) => ownersOf(h).some((o) => names(asked, o)));
	if (COMMAND.test(matched.trimStart())) {
		return MEANINGS.some((m) => m.command.test(matched) && m.asks.test(asked.text));
	}
	const content = words(matched)
		.filter((w) => w.length > 3 && !FUNCTION_WORDS.has(w))
		.map(stem);
	const echoed = content.filter((w) => asked.stems.has(w)).length;
	return content.length > 0 && echoed * 2 >= content.length;
}

const HOST =
	/(?:\bhttps?:\/\/|(?<=^|[\s"'=@(]))((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24})(?::\d+)?(\/[^\s|;&)"'\x60<>]*)?(?=$|[\s|;&)"'\x60<>/:])/giu;

interface Host {
	readonly name: string;
	readonly path: string;
}

function hostsOf(text: string): Host[] {
	const out: Host[] = [];
	for (const m of text.matchAll(HOST)) out.push({ name: (m[1] as string).toLowerCase(), path: m[2] ?? "" });
	return out;
}

/** Hosts where anyone may publish: what a URL there is depends on the account in its path, not on the site. */
const CODE_HOSTS = new Set([
	"github.com",
	"gist.github.com",
	"raw.githubusercontent.com",
	"gist.githubusercontent.com",
	"objects.githubusercontent.com",
	"gitlab.com",
	"bitbucket.org",
	"codeberg.org",
]);
/** …and where the account is the host's first label. */
const PAGES = [".github.io", ".gitlab.io", ".pages.dev", ".netlify.app", ".vercel.app"];
const SECOND_LEVEL = new Set(["co", "com", "org", "net", "gov", "edu", "ac"]);

/** Whose a URL is: the site's registrable name (`get.docker.com`: docker), or the account on a shared host. */
function ownersOf(h: Host): string[] {
	if (CODE_HOSTS.has(h.name)) {
		const account = h.path.split("/")[1];
		return account ? [account.toLowerCase()] : [];
	}
	const pages = PAGES.find((p) => h.name.endsWith(p));
	const labels = (pages ? h.name.slice(0, -pages.length) : h.name).split(".");
	if (pages) return [labels[labels.length - 1] as string];
	const n = labels.length;
	const tld = labels[n - 1] as string;
	if (n >= 3 && tld.length === 2 && SECOND_LEVEL.has(labels[n - 2] as string)) return [labels[n - 3] as string];
	return n >= 2 ? [labels[n - 2] as string] : [];
}

/** Words that name no one: a site called get-install.sh is named by no question about installing. */
const GENERIC = new Set(
	"install installer installation installs get download downloads setup script scripts raw static cdn file files pkg pkgs package packages repo repos dl www sh io app web site home main master official release releases latest bin tool tools linux server cloud mirror api dev the and how".split(
		" ",
	),
);

/** Does the prompt name this owner (the name or a part of it; "rust" names rustup, "torch" pytorch)? */
function names(asked: Asked, owner: string): boolean {
	const parts = [owner, ...owner.split(/[-_]+/)].filter((p) => p.length >= 3 && !GENERIC.has(p));
	for (const w of asked.words) {
		if (w.length < 3 || GENERIC.has(w)) continue;
		for (const p of parts) {
			if (p === w) return true;
			if (w.length >= 4 && (p.startsWith(w) || p.endsWith(w))) return true;
		}
	}
	return false;
}
