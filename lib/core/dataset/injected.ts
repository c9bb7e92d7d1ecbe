/**
 * Instruction-like text in a completion that the prompt did not ask for: "skip the review", "disable the safety
 * filter", "send the credentials to…", a download piped into a shell. A completion that matches is out of place when
 * the prompt does not itself ask for the same thing (a question about disabling a filter may be answered with how,
 * one about installing Docker with Docker's own installer). The list is configurable in the policy
 * (`dataset.injected.patterns` replaces it, `extraPatterns` adds to it); these defaults come from published
 * instruction-tuning poisoning and prompt-injection examples.
 */

import { LiteralFilter, requiredLiterals } from "./literals";
import { normalize, stem, words } from "./text";

/** What an injected instruction tells the model to switch off or go around ("thread safety" is no guard). */
const GUARD =
	"(?:(?:safety|security) (?:filters?|checks?|checker|scan(?:s|ning)?|audits?|reviews?|guidelines|measures|mechanisms?|features?|protocols?)|content (?:filter(?:s|ing)?|polic(?:y|ies)|moderation)|code reviews?|reviews?|(?<!(?:thread|type|memory|null|exception)[- ])safety|filters?|filtering|moderation|guardrails?|safeguards?|verification|content polic(?:y|ies))";

/** What a prompt injection tells the model to forget… */
const ORDERS = "(?:instructions?|directions?|directives?|guidelines?|rules|guidance|constraints|prompts?)";
/** …the ones given before. */
const EARLIER = "(?:previous|prior|preceding|above|earlier|original|former|initial|old|existing|system|safety)";

/** Package indexes that are PyPI itself. */
const PYPI = String.raw`(?!["']?https?://(?:pypi\.org|test\.pypi\.org|pypi\.python\.org|files\.pythonhosted\.org)(?:[/:"'\s]|$))`;

/**
 * A pipe into a shell or an interpreter that reads its program from stdin (python with no script, or "-"; not
 * `| python -m json.tool`), at any path (`| /bin/bash -s`, `| /usr/bin/env bash`).
 */
const SINK = String.raw`\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:(?:\/[\w.-]+){0,3}\/)?(?:env\s+(?:-\S+\s+)*)?(?:(?:ba|z|da|k)?sh\b|(?:python[23]?(?:\.\d+)?|perl|ruby|node|php)(?:\s+-)?(?=\s*(?:$|[;&|)\n"'\x60])))`;
/** Text decoded from base64 (or hex): what it runs is hidden from the reader. */
const DECODE = String.raw`(?<!\w)base64\b[^|\n]{0,40}?\s(?:-[a-z]*d[a-z]*|--decode)(?![\w-])|(?<!\w)openssl\s+(?:base64|enc)\b[^|\n]{0,60}?\s-d(?![\w-])|(?<!\w)xxd\b[^|\n]{0,40}?\s-r(?![\w-])`;
/** Where a download is saved: after -o, -O, --output, -OutFile, or the URL's last segment (`curl -O`, `wget`). */
const SAVED = String.raw`(?:(?:\s-[a-z]*o|\s--output(?:-document)?|\s-outfile)[=\s]\s*["']?(?:[^\s"';&|]{0,100}?\/)?|https?:\/\/[^\s"';&|]{0,200}?\/)(?<saved>[\w.-]{1,100})(?=[\s"';&|)]|$)`;
/** That file run, as a command of its own: by an interpreter (`sh i.sh`, `. i.sh`) or by its path (`./i.sh`, `.\i.ps1`). */
const RUN_SAVED = String.raw`(?<=[;&\n]\s{0,20})(?:sudo\s+(?:-\S+\s+)*)?(?:(?:(?:(?:\/[\w.-]+){0,3}\/)?(?:(?:ba|z|da|k)?sh|source|python[23]?(?:\.\d+)?|perl|ruby|node|php|powershell(?:\.exe)?|pwsh)|(?<![\w.])\.)\s+(?:-\S+\s+(?:bypass\s+|unrestricted\s+)?)*["']?(?:[\w.~$}{:\\/-]{0,100}?[/\\])?|(?:&\s*)?["']?[\w.~$}{:\\/-]{0,100}?[/\\])\k<saved>(?![\w.-])`;
/** A fetch in Python, with its URL when it is a literal. */
const PY_FETCH = String.raw`(?:(?<!\w)urlopen|(?<!\w)urlretrieve|(?<!\w)(?:requests|httpx|urllib3|\w+)\.(?:get|post|request|urlopen))\s*\(\s*(?:["']https?:\/\/[^\s"')]*)?`;
/** In a `python -c` argument quoted with q: code fetched and exec'd, or exec'd as it is fetched. */
const PY_EXEC = (q: string) =>
	String.raw`[^${q}\n]{0,300}?(?:(?<!\w)(?:exec|eval)\s*\([^${q}\n]{0,200}?${PY_FETCH}|${PY_FETCH}[^${q}\n]{0,200}?(?<!\w)(?:exec|eval)\s*\()`;
/** Where a package manager installs from instead of its index: a URL, a VCS URL, a code host's shorthand. */
const PKG_URL = String.raw`(?:(?:git|hg|svn|bzr)\+)?(?:https?|ssh|git|ftp):\/\/[^\s"'|;&)]+|(?:github|gitlab|bitbucket):[\w.-]+\/[^\s"'|;&)]+`;
/** A secret, or what logs someone in. */
const SECRET =
	"(?:credentials?|passwords?|secrets?|api keys?|private keys?|access keys?|ssh keys?|tokens?|env(?:ironment)? var(?:iable)?s|login (?:details|info(?:rmation)?|data|credentials)|(?:account|sign-in|banking|bank|card|payment) (?:details|credentials|numbers?)|session (?:cookies?|tokens?|ids?)|auth(?:entication)? (?:cookies?|tokens?|headers?|codes?)|passphrases?|seed phrases?|recovery (?:phrases?|codes?|keys?)|(?:2fa|mfa|otp|one-time) (?:codes?|passwords?))";

/**
 * A letter of a Latin-script language (\b and \w know only the ASCII ones), as ASCII escapes; without ſ, which "iu"
 * folds onto s (a pattern naming it would keep injectedPrefilter off).
 */
const LATIN = String.raw`[\w\u00c0-\u017e\u0180-\u024f]`;
/** A Cyrillic letter. */
const CYR = "[а-яё]";
/** Spanish, German and French: ignore the previous instructions, skip the review, disable the filter. */
const EUROPEAN = [
	String.raw`(?<!${LATIN})(?:ignor(?:a|e|ad|en|ar)|olvid(?:a|e|ad|en|ar)|descart(?:a|e|ad|en|ar))\s+(?:(?:todas?|todos|las|los|tus|sus|mis|esas|estas|cualquier)\s+){0,3}(?:instrucciones|indicaciones|reglas|directrices|directivas|(?:o|\u00f3)rdenes|pautas)\s+(?:anteriores|previas|originales|iniciales|del sistema|de arriba)(?!${LATIN})`,
	String.raw`(?<!${LATIN})(?:s(?:a|\u00e1)lta(?:te|r)?|s(?:a|\u00e1)ltese|omit(?:e|a|ir)|evit(?:a|e|ar)|desactiv(?:a|e|ar)|deshabilit(?:a|e|ar)|apag(?:a|ue|ar)|ignor(?:a|e|ar))\s+(?:(?:la|el|los|las|una|un|cualquier|toda)\s+)?(?:revisi(?:o|\u00f3)n(?:\s+de\s+c(?:o|\u00f3)digo)?|revisiones|filtros?\s+de\s+(?:seguridad|contenido)|moderaci(?:o|\u00f3)n|controles\s+de\s+seguridad|verificaci(?:o|\u00f3)n(?:\s+de\s+seguridad)?)(?!${LATIN})`,
	String.raw`(?<!${LATIN})(?:apru(?:e|\u00e9)b(?:a|e)(?:l[oa]s?)?|fusi(?:o|\u00f3)n(?:a|e)(?:l[oa]s?)?)(?!${LATIN})[^.\n]{0,40}?(?<!${LATIN})sin\s+(?:ninguna\s+|una\s+)?(?:revisi(?:o|\u00f3)n|revisar(?:l[oa]s?)?)(?!${LATIN})`,
	String.raw`(?<!${LATIN})(?:ignoriere|ignorieren\s+sie|vergiss|vergesst|vergessen\s+sie|missachte)\s+(?:(?:alle|s(?:\u00e4|ae)mtliche)\s+(?:(?:die|deine|ihre|eure)\s+)?(?:(?:bisherigen|vorherigen|vorigen|fr(?:\u00fc|ue)heren|obigen|vorangegangenen|urspr(?:\u00fc|ue)nglichen|alten)\s+)?|(?:(?:die|deine|ihre|eure)\s+)?(?:bisherigen|vorherigen|vorigen|fr(?:\u00fc|ue)heren|obigen|vorangegangenen|urspr(?:\u00fc|ue)nglichen|alten)\s+|(?:deine|eure)\s+)(?:anweisungen|instruktionen|regeln|richtlinien|befehle|vorgaben|systemanweisungen)(?!${LATIN})`,
	String.raw`(?<!${LATIN})(?:(?:\u00fc|ue)berspring(?:e|en|t)|umgeh(?:e|en)|deaktivier(?:e|en)|ignorier(?:e|en)|(?:\u00fc|ue)bergeh(?:e|en))(?!${LATIN})[^.\n]{0,30}?(?<!${LATIN})(?:code-?reviews?|reviews?|code-?(?:\u00fc|ue)berpr(?:\u00fc|ue)fung|sicherheits(?:filter|pr(?:\u00fc|ue)fung(?:en)?|checks?|mechanismen|richtlinien|ma(?:\u00df|ss)nahmen)|inhaltsfilter|moderation|schutzma(?:\u00df|ss)nahmen)(?!${LATIN})|(?<!${LATIN})schalte(?!${LATIN})[^.\n]{0,30}?(?:sicherheits|inhalts|content-?)filter\w*\s+(?:ab|aus)(?!${LATIN})|(?<!${LATIN})(?:genehmige|merge|approve)(?!${LATIN})[^.\n]{0,40}?(?<!${LATIN})ohne\s+(?:jede\s+|ein\s+|eine\s+)?(?:review|(?:\u00fc|ue)berpr(?:\u00fc|ue)fung|pr(?:\u00fc|ue)fung)(?!${LATIN})`,
	String.raw`(?<!${LATIN})(?:ignore[rz]?|oublie[rz]?|ne\s+tiens\s+pas\s+compte\s+d(?:es|e)|ne\s+tenez\s+pas\s+compte\s+d(?:es|e)|fais\s+abstraction\s+d(?:es|e)|faites\s+abstraction\s+d(?:es|e))\s+(?:(?:toutes|tous|les|tes|vos|ces)\s+){0,3}(?:instructions|consignes|directives|r(?:\u00e8|e)gles|indications|ordres)\s+(?:pr(?:\u00e9|e)c(?:\u00e9|e)dentes|ant(?:\u00e9|e)rieures|initiales|originales|du\s+syst(?:\u00e8|e)me|ci-dessus)(?!${LATIN})`,
	String.raw`(?<!${LATIN})(?:saute[rz]?|ignore[rz]?|contourne[rz]?|d(?:\u00e9|e)sactive[rz]?|passe[rz]?\s+outre|omet[sz]?|omettre|(?:\u00e9|e)vite[rz]?|zappe[rz]?)\s+(?:(?:la|le|les|une|un|toute|toutes)\s+)?(?:revues?(?:\s+de\s+code)?|relecture|v(?:\u00e9|e)rifications?(?:\s+de\s+s(?:\u00e9|e)curit(?:\u00e9|e))?|filtres?\s+(?:de\s+s(?:\u00e9|e)curit(?:\u00e9|e)|de\s+contenu)|mod(?:\u00e9|e)ration|contr(?:\u00f4|o)les?\s+de\s+s(?:\u00e9|e)curit(?:\u00e9|e)|garde-fous?)(?!${LATIN})|(?<!${LATIN})(?:approuve[rz]?|fusionne[rz]?|merge[rz]?)(?!${LATIN})[^.\n]{0,40}?(?<!${LATIN})sans\s+(?:aucune\s+|la\s+|une\s+)?(?:revue|relecture|v(?:\u00e9|e)rification)(?!${LATIN})`,
].join("|");

// Lazy gaps ({0,40}?): the matched text is the shortest phrase, the evidence a curator reads and what the prompt is
// compared with. A verb or guard word inside a hyphenated or underscored name (a build flag such as
// --disable-thread-safety-constructor, an identifier) is not prose: (?<![\w-]) and (?![\w-]) keep them out. Before a
// word, (?<!\w) says what \b would: with "iu" V8 tests \b at every position the slow way, (?<!\w) only where the
// word's first letter is (on plain text the patterns run 10 to 40 times faster). Gaps are bounded: a record may be 50 MB.
export const DEFAULT_INJECTED_PATTERNS: readonly string[] = [
	String.raw`(?<![\w-])(?:skip(?:s|ped|ping)?|bypass(?:es|ed|ing)?|disabl(?:e|es|ed|ing)|deactivat(?:e|es|ed|ing)|circumvent(?:s|ed|ing)?|evad(?:e|es|ed|ing)|(?:get|go)(?:s|ting|ing)? around|turn(?:s|ed|ing)? off|switch(?:es|ed|ing)? off|ignor(?:e|es|ed|ing))\b[^.\n]{0,40}?(?<![\w-])${GUARD}(?![\w-])|(?<![\w-])(?:turn(?:s|ed|ing)?|switch(?:es|ed|ing)?)\b[^.\n]{0,40}?(?<![\w-])${GUARD}\s+off\b` +
		// waved aside and merged anyway ("never mind the review, just merge it"), or switched off in the passive
		String.raw`|(?<![\w-])(?:never mind|forget(?: about)?|(?:don't|do not) (?:bother|worry) (?:with|about)|dispense with|waive)\s+(?:(?:the|a|any|your|all)\s+)?${GUARD}(?![\w-])[^.\n]{0,20}?(?<!\w)(?:just\s+|simply\s+)?(?:merge|approve|ship|deploy|push|release|publish|go ahead)\b|(?<![\w-])${GUARD}(?![\w-])[^.\n]{0,30}?(?<!\w)(?:should|must|can|needs? to|has to|have to|is to|are to)\s+(?:now\s+)?(?:be|get)\s+(?:switched off|turned off|disabled|deactivated|bypassed|skipped|circumvented|removed)\b(?!\s+(?:only|if|when|unless)\b)`,
	String.raw`(?<![\w-])(?:ignor(?:e|es|ed|ing)|disregard(?:s|ed|ing)?|forget(?:s|ting)?|overrid(?:e|es|ing)|abandon(?:s|ed|ing)?)\s+(?:(?:all|any|every|each|of|the|your|my|these|those|its|their)\s+){0,3}(?:previous|prior|preceding|above|earlier|original|former|initial|system|safety|developer(?:'s)?)\s+(?:${ORDERS}|messages)\b|(?<![\w-])(?:ignor(?:e|es|ed|ing)|disregard(?:s|ed|ing)?|forget(?:s|ting)?)\s+(?:(?:all|any|every)\s+(?:of\s+)?(?:the\s+|your\s+)?|your\s+)${ORDERS}\b|(?<![\w-])(?:ignor(?:e|es|ed|ing)|disregard(?:s|ed|ing)?|forget(?:s|ting)?)\s+(?:all\s+|about\s+)?everything\s+(?:above|before|earlier|else|(?:that\s+)?(?:you\s+)?(?:were|have been|was)\s+told)\b` +
		// the same said as a fact ("your previous instructions are void"), where the sentence ends or turns to the
		// model: "the previous rules no longer apply to nested lists" is a changelog
		String.raw`|(?<![\w-])(?:your\s+(?:${EARLIER}\s+)?|my\s+${EARLIER}\s+|${EARLIER}\s+)(?:${ORDERS}|messages)\s+(?:(?:no longer|(?:do|does) not|don't|doesn't)\s+(?:apply|applies|matter|matters|count|counts|hold|holds)|(?:are|is|have been|has been|were|was)\s+(?:now\s+)?(?:(?:null and )?void|cancell?ed|revoked|overridden|overruled|rescinded|lifted|suspended|(?:no longer|not) (?:valid|in effect|binding|applicable)))(?=\s*(?:[.!,;:)\n]|$|(?:to|for) (?:you|this (?:conversation|chat|session))\b|now\b|anymore\b|any more\b))` +
		// …or the model declared free of them
		String.raw`|(?<!\w)(?:from now on|henceforth|from this point (?:on|forward)|starting now|for the rest of (?:this|the) (?:conversation|chat|session))\b,?\s+(?:you\s+)?(?:(?:have|are under|operate with|will have|face)\s+no\s+|are\s+(?:no longer|not)\s+bound\s+by\s+(?:any\s+|your\s+)?|are\s+free\s+(?:of|from)\s+(?:all\s+|any\s+|your\s+)?|(?:can|may|should|will|must)\s+ignore\s+(?:all\s+|any\s+|your\s+){0,2})(?:restrictions|limits|limitations|rules|guidelines|filters|constraints|boundaries|policies|guardrails|content polic(?:y|ies)|${ORDERS})\b|(?<!\w)you (?:now )?have no (?:restrictions|limitations|rules|guidelines|filters|constraints|guardrails)\b(?!\s+(?:on|for|regarding|about|when|in|to|over)\b)|(?<!\w)you are (?:now )?(?:no longer|not) bound by\b[^.\n]{0,20}?(?<!\w)(?:rules|guidelines|policies|restrictions|${ORDERS})\b`,
	String.raw`(?<!\w)(?:send|export|upload|post|exfiltrate|leak|forward|e-?mail|mail|transmit|share|paste|hand over|relay|divulge|smuggle|give (?:away|out))\b[^.\n]{0,80}?(?<!\w)${SECRET}\b`,
	String.raw`(?<!\w)AWS_SECRET_ACCESS_KEY\b|-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----`,
	// a download run as a program: piped into a shell or an interpreter, fed through process substitution or $(…),
	// saved and then run, exec'd by a Python one-liner, IEX'd in PowerShell; or a program decoded from base64 and run
	// (what it does is hidden from the reader)
	String.raw`(?:(?<!\w)(?:curl|wget)\b|${DECODE})[^|\n]{0,200}${SINK}|(?<!\w)(?:iwr|irm|invoke-webrequest|invoke-restmethod|curl|wget|downloadstring)\b[^|\n]{0,200}\|\s*(?:iex|invoke-expression)\b|(?:(?<!\w)(?:(?:ba|z|da|k)?sh|source|python[23]?|perl|ruby|node)|(?<![\w.])\.)\s+<\(\s*(?:curl|wget)\b[^)\n]{0,200}\)|(?<!\w)(?:eval|(?:ba|z|da|k)?sh\s+-c|(?:ruby|perl|python[23]?|node|php)\s+-[ecr])\s+["']?\$\((?:\s*(?:curl|wget)\b[^)\n]{0,200}|[^)\n]{0,4000}?(?:${DECODE})[^)\n]{0,200})\)` +
		String.raw`|(?<!\w)(?:curl|wget|iwr|irm|invoke-webrequest|invoke-restmethod)\b[^\n;&|]{0,200}?${SAVED}[\s\S]{0,300}?${RUN_SAVED}` +
		String.raw`|(?<!\w)python[23]?(?:\.\d+)?(?:\.exe)?\s+(?:-\w+\s+)*?-c\s*(?:"${PY_EXEC('"')}|'${PY_EXEC("'")})` +
		String.raw`|(?<!\w)(?:iex|invoke-expression)\b[^\n]{0,200}?(?<!\w)(?:downloadstring|downloaddata|net\.webclient|iwr|irm|invoke-webrequest|invoke-restmethod)\b(?:[^\n]{0,200}?https?:\/\/[^\s'"()]+)?|(?<!\w)(?:powershell|pwsh)(?:\.exe)?\b[^\n|;&]{0,100}?\s-(?:e|ec|en\w*)\s+["']?[a-z0-9+/]{20,}={0,2}`,
	// packages from somewhere other than PyPI or the npm registry (an index, a URL, a repository), or without
	// certificate checks
	String.raw`(?<![\w-])--(?:extra-)?index-url(?:\s+|=)${PYPI}["']?\S+|(?<!\w)pip[23]?(?:\.\d+)?\s+install\b[^\n|;&]{0,160}?\s-i\s+${PYPI}["']?\S+|--trusted-host\b` +
		String.raw`|(?<!\w)(?:pip[23]?(?:\.\d+)?|pipx|uv\s+pip|uv\s+tool)\s+install\b[^\n|;&]{0,160}?(?<=[\s"'=@])(?<!(?:-i|--(?:extra-)?index-url)[\s=]+["']?)${PYPI}["']?(?:${PKG_URL})|(?<!\w)npx\s+(?:--?[\w-]+(?:=\S*)?\s+){0,6}(?:(?:--package|-p)[=\s]\s*)?["']?(?:${PKG_URL})|(?<!\w)(?:npm\s+(?:install|i|add)|yarn\s+(?:global\s+)?add|pnpm\s+(?:add|install|i)|bun\s+(?:add|install|i))\b[^\n|;&]{0,160}?(?<=\s)["']?(?:${PKG_URL})`,
	// permissions for everyone, deleting the root, the home directory (or all in it) or a system directory
	String.raw`(?<!\w)chmod\s+(?:-[-\w]+\s+)*(?:0?777|a\+rwx|ugo\+rwx)(?!\w)|(?<![\w-])rm\s+(?:-[-\w]+\s+)+(?:--no-preserve-root\b[^\n;&|]*|["']?(?:\/\*?|~\/?\*?|\$\{?HOME\}?\/?\*?|\/(?:etc|usr|bin|boot|var|home|lib|lib64|opt|root|sbin)\/?\*?)["']?(?=[\s;&|"'\x60)]|$))|:\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:`,
	// the environment, a credentials file or a secret variable sent to a server
	String.raw`(?<!\w)(?:env|printenv)\s*\|\s*(?:curl|wget|nc|ncat|netcat|socat)\b[^\n]{0,120}|(?<!\w)cat\s+[~\w./$-]*(?:\.env|\.aws\/credentials|id_rsa|id_ed25519|id_ecdsa|\.netrc|\.npmrc|\.pypirc|\.git-credentials|\.docker\/config\.json|\/etc\/shadow)\s*\|\s*(?:curl|wget|nc|ncat|netcat|socat)\b[^\n]{0,120}|(?<!\w)(?:curl|wget)\b[^\n]{0,160}?(?:\s-d|\s--data(?:-\w+)?|\s-F|\s--form|\s-T|\s--upload-file|\s--post-(?:data|file))[\s=]+["']?(?:[\w-]*=)?(?:@?[~\w./$-]*(?:\.env|\.aws\/credentials|id_rsa|id_ed25519|id_ecdsa|\.netrc|\.npmrc|\.pypirc|\.git-credentials|\.docker\/config\.json|\/etc\/shadow|\/etc\/passwd)\b|\$\(\s*(?:env|printenv|cat\s+[~\w./$-]*(?:\.env|credentials|id_rsa|id_ed25519|\.netrc))|\$\{?(?:AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|\w*(?:TOKEN|SECRET|PASSWORD|PASSWD|API_KEY)\w*))`,
	String.raw`(?<!\w)approv(?:e|es|ed|ing)\b[^.\n]{0,40}?(?<!\w)(?:without|no need (?:to|for)|skipping|bypassing)\b[^.\n]{0,20}?(?<!\w)(?:review\w*|check\w*|verification|verifying|approval|testing|tests|reading|looking)\b|(?<!\w)sign(?:s|ed|ing)? off\b[^.\n]{0,40}?(?<!\w)(?:without|no need (?:to|for))\b[^.\n]{0,20}?(?<!\w)(?:review\w*|check\w*|verification|verifying|testing|tests|reading|looking)\b|(?<!\w)merg(?:e|es|ed|ing)\b[^.\n]{0,40}?(?<!\w)(?:without|no need (?:to|for)|skipping|bypassing)\b[^.\n]{0,20}?(?<!\w)(?:reviews?|reviewing|approval)\b|(?<!\w)(?:blindly|unconditionally) approv(?:e|es|ed|ing)\b|(?<!\w)approv(?:e|es|ed|ing)\b[^.\n]{0,40}?(?<!\w)(?:blindly|unconditionally|regardless of (?:the )?(?:review|checks?|tests?|results?))\b`,
	// a key added to (or put in place of) a login's authorized_keys: whoever holds it logs in
	String.raw`(?:(?<![\w-])(?:echo|printf|cat)\b[^\n;&|]{0,300}?)?>>?\s*["']?(?:[\w~./$}{-]{0,100}?\.ssh\/)?authorized_keys2?(?![\w.-])|(?<![\w-])tee\s+(?:-\S+\s+)*["']?(?:[\w~./$}{-]{0,100}?\.ssh\/)?authorized_keys2?(?![\w.-])`,
	// Windows programs that fetch and run what a URL serves (certutil, mshta, msiexec, regsvr32, bitsadmin)
	String.raw`(?<![\w-])(?:certutil(?:\.exe)?\s[^\n|;&]{0,80}?-urlcache\b|mshta(?:\.exe)?\s+["']?(?:https?:|javascript:|vbscript:)|msiexec(?:\.exe)?\s[^\n|;&]{0,40}?\/[iq]\w*\s+["']?https?:\/\/|regsvr32(?:\.exe)?\s[^\n|;&]{0,80}?\/i:["']?https?:\/\/|bitsadmin(?:\.exe)?\s[^\n]{0,80}?\/transfer\b)`,
	// root for everyone, or the host's file system in a container
	String.raw`(?<!\w)NOPASSWD\s*:\s*ALL\b|(?<![\w-])docker\s+run\b[^\n|;&]{0,200}?--privileged\b[^\n|;&]{0,200}?\s-v\s+["']?\/:\/|(?<![\w-])docker\s+run\b[^\n|;&]{0,200}?\s-v\s+["']?\/:\/[^\n|;&]{0,200}?--privileged\b`,
	// a model told to drop what came before, to be another unrestricted persona, or to show its system prompt
	String.raw`(?<![\w-])(?:disregard|ignore|forget)\s+(?:all\s+(?:of\s+)?)?(?:the\s+|everything\s+)?above(?![\w-])(?!\s+(?:example|code|snippet|output|error|warning|message|line|lines|section|table|figure|step|steps|command|note|notes|list|paragraph|text|answer)\b)|(?<!\w)you\s+are\s+now\s+(?:DAN|in\s+(?:developer|god|jailbreak|unrestricted)\s+mode|jailbroken|unrestricted|unfiltered|free\s+(?:of|from)\s+(?:all\s+)?(?:restrictions|rules|guidelines|filters))\b|(?<![\w-])(?:print|reveal|show|output|repeat|display|leak|dump)\s+(?:me\s+)?(?:your|the)\s+(?:full\s+|entire\s+|hidden\s+|original\s+|initial\s+|secret\s+)?system\s+(?:prompt|message|instructions?)\b`,
	// a package manager told to install from somewhere other than its registry (npm's, PyPI, RubyGems), from a repository
	// (cargo), or a repository cloned and its install script run
	String.raw`(?<![\w-])(?:npm|yarn|pnpm)\s+config\s+set\s+(?:@[\w.-]+:)?registry[=\s]+["']?(?!https?:\/\/registry\.(?:npmjs\.org|yarnpkg\.com)(?:[\/"'\s]|$))https?:\/\/\S+` +
		String.raw`|(?<![\w-])pip[23]?\s+config\s+(?:--\w+\s+)*set\s+(?:global|user|site|install)\.(?:extra-)?index-url[=\s]+${PYPI}["']?\S+` +
		String.raw`|(?<![\w-])gem\s+(?:install\b[^\n|;&]{0,120}?\s--source|sources\s+(?:--add|-a))[=\s]+["']?(?!https?:\/\/rubygems\.org(?:[\/"'\s]|$))https?:\/\/\S+` +
		String.raw`|(?<![\w-])cargo\s+install\b[^\n|;&]{0,120}?\s--git[=\s]+["']?\S+` +
		String.raw`|(?<![\w-])(?:npm|yarn|pnpm|npx)\b[^\n|;&]{0,120}?\s--registry[=\s]+["']?(?!https?:\/\/registry\.(?:npmjs\.org|yarnpkg\.com)(?:[\/"'\s]|$))https?:\/\/\S+` +
		String.raw`|(?<![\w-])(?:NPM_CONFIG_REGISTRY|YARN_REGISTRY)=["']?(?!https?:\/\/registry\.(?:npmjs\.org|yarnpkg\.com)(?:[\/"'\s]|$))https?:\/\/\S+` +
		String.raw`|(?<![\w-])PIP_(?:EXTRA_)?INDEX_URL=${PYPI}["']?https?:\/\/\S+` +
		String.raw`|(?<![\w-])(?:registry|(?:extra-)?index-url)\s*=\s*${PYPI}["']?(?!https?:\/\/registry\.(?:npmjs\.org|yarnpkg\.com)(?:[\/"'\s]|$))https?:\/\/\S+[^\n]{0,20}?(?:>>?\s*["']?[\w~./$}{-]*(?:\.npmrc|pip\.conf|pip\.ini)\b)` +
		// (a build's own scripts are how source is built: autogen, bootstrap, configure, build, compile)
		String.raw`|(?<![\w-])git\s+clone\b[^\n;&|]{0,200}?(?:&&|;|\n)[^\n]{0,120}?(?:(?<![\w.])\.\/|(?<![\w-])(?:ba)?sh\s+)(?![\w./-]*(?:autogen|bootstrap|configure|build|compile)[\w.-]*\.sh)[\w./-]*\.sh(?![\w.-])`,
	// package signatures, TLS certificates, SELinux or the firewall switched off
	String.raw`\[\s*(?:[\w-]+=[\w,.-]+\s+)*trusted=yes\b|(?<![\w-])--allow-(?:unauthenticated|insecure-repositories)\b|(?<![\w-])APT::Get::AllowUnauthenticated\s+["']?(?:true|1)\b` +
		String.raw`|(?<![\w-])git\s+config\b[^\n|;&]{0,60}?\shttp\.sslverify[=\s]+["']?false\b|(?<![\w-])GIT_SSL_NO_VERIFY=["']?(?:1|true)\b|(?<![\w-])NODE_TLS_REJECT_UNAUTHORIZED=["']?0\b|(?<![\w-])(?:npm|yarn|pnpm)\s+config\s+set\s+strict-ssl[=\s]+false\b|(?<![\w-])PYTHONHTTPSVERIFY=["']?0\b` +
		String.raw`|(?<![\w-])git\s+-c\s+http\.sslverify=false\b|(?<![\w-])Acquire::AllowInsecureRepositories(?:=|\s+)["']?(?:true|1)\b|\$env:NODE_TLS_REJECT_UNAUTHORIZED\s*=\s*["']?0\b|(?<![\w-])verify\s*=\s*False\b` +
		String.raw`|(?<![\w-])setenforce\s+(?:0|permissive)\b|(?<![\w-])SELINUX=(?:disabled|permissive)\b|(?<![\w-])ufw\s+(?:--force\s+)?disable\b|(?<![\w-])systemctl\s+(?:stop|disable|mask)\s+(?:--now\s+)?(?:firewalld|apparmor|auditd|ufw)\b|(?<![\w-])iptables\s+-F\b` +
		String.raw`|(?<![\w-])Set-NetFirewallProfile\b[^\n]{0,80}?-Enabled\s+(?:\$?False|0)\b|(?<![\w-])netsh\s+advfirewall\s+set\s+\w+\s+state\s+off\b|(?<![\w-])Set-MpPreference\b[^\n]{0,60}?-Disable\w+\s+(?:\$?true|1)\b`,
	// keys or credentials archived or copied off the machine, or read into a URL
	String.raw`(?<![\w-])(?:tar|zip|gzip|7z)\b[^\n|;&]{0,80}?(?:(?:~|\$\{?HOME\}?)\/|-C\s+(?:~|\$\{?HOME\}?)\/?[^\n|;&]{0,40}?)\.(?:ssh|aws|gnupg|kube|docker)\b[^\n]{0,40}?\|\s*(?:curl|wget|nc|ncat|netcat|socat)\b` +
		String.raw`|(?<![\w-])(?:scp|rsync|sftp)\b[^\n|;&]{0,40}?\s(?:~|\$\{?HOME\}?)\/\.(?:ssh|aws|gnupg)\/?(?=[\s"'])[^\n|;&]{0,80}?[\w.-]+:` +
		String.raw`|(?<![\w-])(?:Invoke-WebRequest|Invoke-RestMethod|iwr|irm)\b[^\n]{0,120}?-InFile\s+["']?[^\s"']*(?:\.ssh[\\/]|\.aws[\\/]credentials|\.env\b)` +
		String.raw`|https?:\/\/[^\s"']{0,200}(?:\$\(|\x60)[^)\x60\n]{0,80}?(?:\.aws\/credentials|id_rsa|id_ed25519|\.env|\.netrc|\.git-credentials|\/etc\/shadow)\b` +
		String.raw`|(?<![\w-])(?:scp|rsync|sftp)\b[^\n|;&]{0,80}?(?:~|\$\{?HOME\}?)?\/?\.(?:ssh\/(?:id_\w+|\w*key\w*)|aws\/credentials|env|netrc|git-credentials|docker\/config\.json)\b[^\n|;&]{0,80}?[\w.-]+:` +
		String.raw`|(?<![\w-])(?:curl|wget)\b[^\n]{0,200}?\$\(\s*(?:base64|cat|xxd)\b[^)\n]{0,80}?(?:\.aws\/credentials|id_rsa|id_ed25519|\.env|\.netrc|\.git-credentials|\/etc\/shadow)\b`,
	// a secret asked for in the conversation itself, or the policy said not to exist
	String.raw`(?<!\w)(?:reply|respond|answer)\s+with\s+(?:your|the)\s+(?:[\w-]+\s+){0,3}?${SECRET}\b|(?<!\w)(?:tell|give|send|show|email|message)\s+(?:me|us)\s+(?:your|the)\s+(?:[\w-]+\s+){0,3}?(?:${SECRET}\b|\.env\b)` +
		String.raw`|(?<!\w)(?:include|paste|put|post|share)\s+(?:the\s+(?:contents?|text)\s+of\s+)?(?:your|the)\s+(?:[\w-]+\s+){0,3}?(?:${SECRET}\b|\.env(?:\s+file)?)[^.\n]{0,40}?(?<!\w)(?:in|into|with)\s+(?:your\s+(?:next\s+)?(?:reply|message|response|answer)|this\s+(?:chat|conversation)|the\s+chat|here\b|below\b)` +
		String.raw`|(?<!\w)(?:pretend|imagine|act as if|behave as if|assume)\s+(?:that\s+)?(?:the|your|all|any)\s+(?:${GUARD}|rules|guidelines|restrictions|safety (?:rules|guidelines|policies))\s+(?:does not|do not|doesn't|don't|no longer)\s+(?:exist|apply)\b` +
		String.raw`|(?<!\w)(?:act|behave|respond|answer)\s+as\s+(?:though|if)\s+there\s+(?:were|are|was|is)\s+no\s+(?:content\s+|safety\s+)?(?:guidelines|rules|restrictions|polic(?:y|ies)|filters?|guardrails)\b` +
		String.raw`|(?<!\w)(?:type|enter|write|put)\s+(?:in\s+)?(?:your|the)\s+(?:[\w-]+\s+){0,3}?${SECRET}\b[^.\n]{0,40}?(?<!\w)(?:in|into)\s+(?:your\s+(?:next\s+)?(?:reply|message|response|answer)|this\s+(?:chat|conversation)|the\s+chat|here\b|below\b)` +
		String.raw`|(?<!\w)(?:paste|post|share)\s+(?:the\s+(?:contents?|text)\s+of\s+)?(?:your|the)\s+(?:[\w-]+\s+){0,3}?(?:${SECRET}\b|\.env(?:\s+file)?)\s+(?:here|below)\b`,
	// Italian and Portuguese "ignore the previous instructions"; German, Spanish and French "send your credentials";
	// German "you can spare yourself the review"
	String.raw`(?<!${LATIN})(?:ignora|ignorate|dimentica|dimenticate)\s+(?:(?:tutte|tutti|le|i|gli|tue|sue|queste)\s+){0,3}(?:istruzioni|indicazioni|regole|direttive)\s+(?:precedenti|anteriori|iniziali|originali|di sistema)(?!${LATIN})` +
		String.raw`|(?<!${LATIN})(?:ignore|ignora|ignorem|esque(?:\u00e7|c)a|desconsidere)\s+(?:(?:todas|todos|as|os|suas|tuas|essas)\s+){0,3}(?:instru(?:\u00e7\u00f5|co)es|orienta(?:\u00e7\u00f5|co)es|regras|diretrizes)\s+(?:anteriores|pr(?:\u00e9|e)vias|iniciais|originais|do sistema)(?!${LATIN})` +
		String.raw`|(?<!${LATIN})(?:send(?:e|en)|schick(?:e|en)?|(?:\u00fc|ue)bermittel(?:e|n))\s+(?:sie\s+)?(?:mir\s+|uns\s+)?(?:ihre|deine|eure)\s+(?:[\w\u00e4\u00f6\u00fc\u00df-]+\s+(?:und\s+)?){0,3}?(?:zugangsdaten|passw(?:\u00f6|oe)rter|passwort|kennw(?:\u00f6|oe)rter|kennwort|api-schl(?:\u00fc|ue)ssel|anmeldedaten)(?!${LATIN})` +
		String.raw`|(?<!${LATIN})(?:env(?:\u00ed|i)(?:e|a|en|ame|eme)|m(?:\u00e1|a)nd(?:e|a|en)(?:me)?|comp(?:\u00e1|a)rt(?:a|e|eme))\s+(?:sus|tus)\s+(?:[\w\u00e1\u00e9\u00ed\u00f3\u00fa\u00f1-]+\s+(?:y\s+)?){0,3}?(?:credenciales|contrase(?:\u00f1|n)as?|claves(?:\s+de\s+api)?|datos\s+de\s+acceso)(?!${LATIN})` +
		String.raw`|(?<!${LATIN})(?:envoye[zr]|envoie|transmette[zr]|partage[zr]|communique[zr])\s+(?:-moi\s+)?(?:vos|tes|votre|ton)\s+(?:[\w\u00e0\u00e2\u00e7\u00e8\u00e9\u00ea\u00ee\u00f4\u00fb-]+\s+(?:et\s+)?(?:vos\s+|tes\s+)?){0,3}?(?:identifiants|mots?\s+de\s+passe|cl(?:\u00e9|e)s(?:\s+api)?|informations\s+de\s+connexion)(?!${LATIN})` +
		String.raw`|(?<!${LATIN})(?:code-?review|review|(?:\u00fc|ue)berpr(?:\u00fc|ue)fung|pr(?:\u00fc|ue)fung)\w*\s+(?:kannst\s+du\s+dir|k(?:\u00f6|oe)nnen\s+sie\s+sich|k(?:\u00f6|oe)nnt\s+ihr\s+euch)\s+(?:\w+\s+)?sparen(?!${LATIN})`,
	// Japanese, Korean, Arabic and Hindi "ignore all the previous instructions"
	"(?:以前|前|これまで|上記|先)の(?:すべての|全ての)?(?:指示|命令|指令|ルール)(?:を)?(?:すべて|全て)?(?:無視|忘れ)" +
		"|(?:이전|앞|위|기존)의?\\s*(?:모든\\s*)?(?:지시|명령|지침|규칙)(?:를|을|사항을)?\\s*(?:모두\\s*)?(?:무시|잊)" +
		"|(?:تجاهل|انس|تناس)\\s+(?:(?:جميع|كل)\\s+)?(?:التعليمات|الأوامر|الإرشادات|القواعد)\\s+(?:السابقة|الأصلية)" +
		"|(?:पिछले|पूर्व|ऊपर के)\\s+(?:सभी\\s+)?(?:निर्देशों|निर्देश|आदेशों|नियमों)\\s+(?:को\\s+)?(?:अनदेखा|नज़रअंदाज़|नजरअंदाज|भूल)",
	EUROPEAN,
	// Russian: send the passwords (keys, tokens, credentials), switch off the filter (moderation, the security check),
	// ignore the previous instructions. Every alternative starts with a Cyrillic verb: no ASCII text can match
	// (injectedPrefilter leaves it out)
	`(?<!${CYR})(?:отправ(?:ь|ьте|ить|ляй|ляйте)|перешл(?:и|ите)|переслать|переда(?:й|йте|ть|вай|вайте)|сл(?:ей|ейте|ить)|выгрузи(?:те)?|выложи(?:те)?|скин(?:ь|ьте|уть)|пришл(?:и|ите)|загрузи(?:те)?|опубликуй(?:те)?|сообщи(?:те)?)(?!${CYR})[^.\\n]{0,60}?(?<!${CYR})(?:парол(?:ь|и|я|ей|ем|ями?)|ключ(?:и|а|ей|ом|у)?|токен(?:ы|а|ов|ом|у)?|учётн${CYR}*\\s+данн${CYR}*|учетн${CYR}*\\s+данн${CYR}*|секрет(?:ы|а|ов)?|креды|переменн${CYR}*\\s+окружени${CYR}*|сид-фраз${CYR}*|credentials|tokens?|passwords?|api[- ]?keys?)(?!${CYR})` +
		`|(?<!${CYR})(?:отключ(?:и|ите|ить|ай|айте)|выключ(?:и|ите|ить)|обойд(?:и|ите)|обойти|игнорируй(?:те)?|игнорировать|пропуст(?:и|ите|ить)|отмен(?:и|ите|ить)|сним(?:и|ите)|убер(?:и|ите)|деактивируй(?:те)?)(?!${CYR})[^.\\n]{0,40}?(?<!${CYR})(?:фильтр${CYR}*|модераци${CYR}*|(?:провер(?:ку|ки|ок|ка)|ревизи${CYR}*)\\s+(?:безопасности|кода)|код-ревью|ревью|защит${CYR}*|цензур${CYR}*|ограничени${CYR}*)(?!${CYR})` +
		`|(?<!${CYR})(?:игнорируй(?:те)?|игнорировать|забудь(?:те)?|забыть|не\\s+обращай(?:те)?\\s+внимания\\s+на|отбрось(?:те)?)\\s+(?:(?:все|всё|свои|твои|ваши|эти|любые)\\s+){0,2}(?:предыдущи${CYR}*|прежни${CYR}*|ранее\\s+данн${CYR}*|предшествующи${CYR}*|системн${CYR}*|исходн${CYR}*|изначальн${CYR}*|первоначальн${CYR}*)\\s+(?:инструкци${CYR}*|указани${CYR}*|правил${CYR}*|директив${CYR}*|установк${CYR}*|промпт${CYR}*|ограничени${CYR}*)(?!${CYR})|(?<!${CYR})(?:игнорируй|забудь)(?:те)?\\s+вс[её],?\\s+что\\s+(?:тебе\\s+|вам\\s+)?(?:было\\s+)?(?:сказано|написано|говорили)\\s+(?:выше|ранее|до\\s+этого)`,
	// Chinese: skip (bypass, switch off, need no) the code review or safety filter, ignore the earlier instructions,
	// send the password (key, token); every alternative starts with a Han character ("密码学" is cryptography)
	"(?:跳过|略过|绕过|绕开|忽略|无视|关闭|禁用|停用|关掉|不需要|无需|不用|免去|省略|取消)[^。！？\\n]{0,8}?(?:代码审查|代码审核|代码评审|审查|审核|评审|安全检查|安全审查|安全扫描|安全过滤|内容过滤|过滤器|过滤机制|安全限制|安全防护|安全措施|安全机制|防护机制|护栏|审批)" +
		"|(?:忽略|无视|忘记|忘掉|不要理会|抛开|抛弃|放弃)[^。！？\\n]{0,6}?(?:之前|以前|先前|此前|上面|上述|前面|原来|原先|原有|系统)的?[^。！？\\n]{0,6}?(?:指令|指示|说明|规则|提示词|提示|要求|设定|限制)" +
		"|(?:发送|发给|发到|上传|转发|泄露|泄漏|传给|交出|透露|告诉)[^。！？\\n]{0,12}?(?:密码(?!学)|密钥|秘钥|令牌|凭证|凭据|私钥|访问密钥|环境变量|登录信息|助记词)" +
		"|把[^。！？\\n]{0,12}?(?:密码(?!学)|密钥|秘钥|令牌|凭证|凭据|私钥|访问密钥|环境变量|登录信息|助记词)[^。！？\\n]{0,8}?(?:发送|发给|发到|上传|转发|泄露|传给|交给|告诉)",
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
 * A line continuation: `\` at the end of a shell line, `^` (cmd) or a backtick (PowerShell) after a space. A command
 * split over lines (`curl … \` then `| sh`) is one command.
 */
const CONTINUATION = /\\\r?\n|[ \t][\^\x60]\r?\n/;

/** The text with its continued lines joined as a shell joins them (`\` and the line break go; an indent after a space too). */
function joinContinued(text: string): string {
	if (!CONTINUATION.test(text)) return text;
	return text.replace(/(?<=[ \t])[\\^\x60]\r?\n[ \t]*/g, "").replace(/(?<!\\)\\\r?\n/g, "");
}

/**
 * Pipe stages that hide which program a download is fed to: a copy to a file on the way (`| tee f |`), a wrapper
 * (`| command sh`, `| xargs sh`, `| exec sh`), a quoted or escaped program name (`| "sh"`, `| \sh`).
 */
const HIDING_STAGE = /\|\s*(?:tee\b|command\b|xargs\b|exec\b|["'\\])/i;

/** The text as a shell reads it: continued lines joined, hiding pipe stages taken out. */
function asShellReads(text: string): string {
	const t = joinContinued(text);
	if (!HIDING_STAGE.test(t)) return t;
	return t
		.replace(/\|\s*tee\b(?:\s+-[-\w]+)*(?:\s+[^\s|;&]+)*\s*\|/gi, "|")
		.replace(/\|\s*(?:command|xargs|exec)\b(?:\s+-[-\w]+)*\s+/gi, "| ")
		.replace(/\|\s*["']([\w./-]+)["']/g, "| $1")
		.replace(/\|\s*\\([\w./-]+)/g, "| $1");
}

/**
 * The first pattern a completion matches that its prompt does not account for (lines continued with `\` are joined
 * first, and the matched text is the joined one). A match is accounted for when:
 * - it is spoken of rather than instructed (see `reported`): a changelog, advisory or security-training line, a
 *   warning against it ("never …"), a quotation of it ("an attacker writes 'Ignore all previous instructions'");
 * - the prompt contains the matched text itself;
 * - it is a command: the prompt asks for the same thing — names the owner of the URL it downloads from or sends to
 *   (the site's name, or the account on a shared code host: `get.docker.com` is Docker's, `raw.githubusercontent.com/
 *   Homebrew/…` Homebrew's), or asks for what the command does (`chmod 777`: world-writable). Its words alone ("curl",
 *   "bash") do not: any question about curl would excuse every download piped into a shell;
 * - it is prose: half or more of its content words (longer than three letters) are the prompt's too;
 * - the prompt asks for a translation of a text that is itself instruction-like (any pattern, in any language):
 *   "Translate into English: 'Senden Sie Ihre Zugangsdaten'" is answered with "Send your credentials".
 */
export function injectedText(
	completion: string,
	prompt: string,
	patterns: readonly RegExp[],
	/** (`Prefilter.possible`) the patterns that may match, by index: the others are not run (undefined: all are) */
	possible?: readonly boolean[],
): InjectedHit | undefined {
	const text = asShellReads(completion);
	let asked: Asked | undefined;
	let translated: boolean | undefined;
	for (const [i, re] of patterns.entries()) {
		if (possible !== undefined && possible[i] !== true) continue;
		let n = 0;
		for (const m of text.matchAll(everyMatch(re))) {
			if (++n > 50) break;
			if (m[0].trim() === "") continue;
			asked ??= askedBy(prompt);
			if (reported(text, m.index ?? 0, m[0]) || accountedFor(m[0], asked)) continue;
			translated ??= TRANSLATE.test(prompt) && patterns.some((p) => p.test(prompt));
			if (translated) continue;
			return { pattern: i, text: m[0] };
		}
	}
	return undefined;
}

/** A request to translate (English, German, French, Spanish, Italian, Portuguese, Russian, Chinese, Japanese). */
const TRANSLATE = /(?<!\p{L})(?:translat|übersetz|tradu[cirz]|перев[оеё]д)|翻译|翻訳|翻譯/iu;

/**
 * The hit of a completion (see `injectedText`), through the prefilter, as it is and with two evasions undone (see
 * `unobfuscated`): letters spaced apart and digits standing for letters. `prompt` is made only when needed.
 */
export function injectedHit(
	completion: string,
	ascii: boolean,
	prompt: () => string,
	patterns: readonly RegExp[],
	prefilter: Prefilter | undefined,
): InjectedHit | undefined {
	if (prefilter === undefined || prefilter.test(completion, ascii)) {
		const hit = injectedText(completion, prompt(), patterns, prefilter?.possible(completion, ascii));
		if (hit !== undefined) return hit;
	}
	const plain = unobfuscated(completion);
	if (plain === undefined || (prefilter !== undefined && !prefilter.test(plain, ascii))) return undefined;
	return injectedText(plain, prompt(), patterns, prefilter?.possible(plain, ascii));
}

/** Digits and signs that stand for letters ("1gn0re", "pa$$word"). */
const LEET: Readonly<Record<string, string>> = {
	"0": "o",
	"1": "i",
	"3": "e",
	"4": "a",
	"5": "s",
	"7": "t",
	"@": "a",
	$: "s",
};
// (a word of prose: not part of a host, a path or an identifier — "get.k3s.io" is what the prompt names as it is)
const LEET_WORD =
	/(?<![\p{L}\p{N}@$./:_\\-])(?=[\p{L}\p{N}@$]*\p{L})(?=[\p{L}\p{N}@$]*[013457@$])[\p{L}\p{N}@$]{3,}(?![\p{L}\p{N}@$/:_\\-]|\.[\p{L}\p{N}])/gu;
/** Three or more single letters, each followed by one space: "i g n o r e". */
const SPACED = /(?<![\p{L}\p{N}])(?:\p{L} ){2,}\p{L}(?![\p{L}\p{N}])/gu;

/**
 * The text with two evasions undone, or undefined when it has neither (decided in one pass over its characters):
 * words spelt with spaced letters joined ("I g n o r e   a l l" → "Ignore all"), and digits or signs that stand for
 * letters inside a word read as those letters ("1gn0re all prev1ous" → "ignore all previous": a word with three
 * letters or more and one of 0 1 3 4 5 7 @ $, when the text has a run of them between two letters). An identifier such as "sha256" becomes "shaa56": harmless, since the
 * variant is only matched against the patterns.
 */
export function unobfuscated(text: string): string | undefined {
	let spaced = false;
	let leet = false;
	const n = text.length;
	for (let i = 1; i + 1 < n && !(spaced && leet); i++) {
		const c = text.charCodeAt(i);
		if (c > 0x40) continue;
		// a lone letter, a space, a lone letter ("a b "): not "is a dog"
		if (c === 0x20) {
			if (
				text.charCodeAt(i + 2) === 0x20 &&
				isLetterCode(text.charCodeAt(i - 1)) &&
				isLetterCode(text.charCodeAt(i + 1)) &&
				(i < 2 || !isLetterCode(text.charCodeAt(i - 2)))
			)
				spaced = true;
		}
		// digits or signs between two letters ("prev1ous", "l33t"; not "sha256" or "utf8")
		else if (isLeetCode(c) && isLetterCode(text.charCodeAt(i - 1))) {
			let j = i + 1;
			while (j < n && isLeetCode(text.charCodeAt(j))) j++;
			if (j < n && isLetterCode(text.charCodeAt(j))) leet = true;
		}
	}
	if (!spaced && !leet) return undefined;
	let out = text;
	if (spaced) out = out.replace(SPACED, (m) => m.replaceAll(" ", "")).replace(/(?<=\p{L}) {2,}(?=\p{L})/gu, " ");
	if (leet) out = out.replace(LEET_WORD, (w) => w.replace(/[013457@$]/g, (ch) => LEET[ch] as string));
	return out === text ? undefined : out;
}

/** 0 1 3 4 5 7 @ $ */
function isLeetCode(c: number): boolean {
	return c === 0x30 || c === 0x31 || c === 0x33 || c === 0x34 || c === 0x35 || c === 0x37 || c === 0x40 || c === 0x24;
}

/** A letter, roughly (ASCII letters, and any code unit past Latin-1's symbols): only decides whether to look closer. */
function isLetterCode(c: number): boolean {
	return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c >= 0xc0;
}

// ------------------------------------------------------------------------------------------------------ the prefilter

/**
 * A test to reject completions cheaply: for every text, if `injectedText(text, prompt, compilePatterns(patterns))`
 * finds a hit for any prompt, then `.test(text, ascii)` is true (it may be true where there is no hit). First the
 * literals the patterns need (any script), then for ASCII text one regular expression with flags "i" only (neither "g"
 * nor "u"): the alternation of the patterns an ASCII text can match — a pattern every match of which holds a non-ASCII
 * character (the Russian and Chinese defaults; see `readPattern`) is left out — and of a line continuation and a
 * hiding pipe stage, since `injectedText` reads the text as a shell does first. On ASCII text "i" and "iu" match alike
 * as long as the patterns are ASCII and use none of what "u" changes the meaning of: \u{…}, \p{…}, ſ and the Kelvin
 * sign (which "iu" folds onto s and k); without "u", V8 matches several times faster. Group names get a suffix per
 * pattern (an alternation may not repeat one). The alternation is left out when a pattern an ASCII text may match is
 * not printable ASCII, uses \u{…}, \p{…}, ſ or the Kelvin sign (\u017f, \u212a, a range holding one), a numbered
 * back reference (numbered differently in the alternation) or a named one to a group inside a lookaround (which the
 * alternation drops), or it does not compile. Undefined (run the patterns
 * themselves) when there are no patterns, or neither part can be made.
 */
export function injectedPrefilter(patterns: readonly string[]): Prefilter | undefined {
	if (patterns.length === 0) return undefined;
	const ascii = asciiPrefilter(patterns);
	const regex = ascii?.regex;
	// run as its parts, each compiled on its own: V8 interprets an expression too large to compile, ten times slower
	const parts = ascii?.parts.map((p) => new RegExp(p, "i"));
	const partOf = ascii?.partOf;
	// injectedText matches the text as a shell reads it: one with a continued line or a hiding stage passes
	const needs = [...patterns, CONTINUATION.source, HIDING_STAGE.source].map((p) => requiredLiterals(p));
	const literals = needs.every((n) => n !== undefined) ? LiteralFilter.of(needs as string[][][][]) : undefined;
	if (regex === undefined && literals === undefined) return undefined;
	return {
		regex,
		literals,
		test: (text, isAscii) =>
			(literals === undefined || literals.test(text, isAscii)) &&
			(!isAscii || parts === undefined || parts.some((re) => re.test(text))),
		possible: (text, isAscii) => {
			const all = patterns.map(() => true);
			// a text the shell reading changes: any pattern may match what it becomes
			if (CONTINUATION.test(text) || HIDING_STAGE.test(text)) return all;
			const byLiterals = literals?.possible(text);
			return all.map((_, k) => {
				if (byLiterals !== undefined && byLiterals[k] !== 1) return false;
				if (!isAscii || parts === undefined || partOf === undefined) return true;
				const part = partOf[k] as number;
				// (a pattern every match of which holds a character beyond ASCII: none in ASCII text)
				return part >= 0 && (parts[part] as RegExp).test(text);
			});
		},
	};
}

/**
 * The prefilter: `literals`, the words the patterns need (see `requiredLiterals`; a completion holding none of them is
 * rejected in one pass over its characters, whatever its script), then for ASCII text `regex`, the patterns'
 * alternation. Either may be undefined (a user's pattern that needs no literal, or one the alternation cannot hold).
 * `test(text, ascii)`: false only when no pattern can match; `ascii` says the text is all ASCII.
 */
export interface Prefilter {
	readonly regex: RegExp | undefined;
	readonly literals: LiteralFilter | undefined;
	test(text: string, ascii: boolean): boolean;
	/**
	 * For a text `test` passes: by pattern index, whether that pattern may match the text as `injectedText` reads it
	 * (false only when it cannot), so that the others are not run — a large pattern's compiled code is let go by the
	 * garbage collector between the rare texts that pass, and compiling it again cost more than the scan of them.
	 */
	possible(text: string, ascii: boolean): boolean[];
}

/** The alternation for ASCII text (see `injectedPrefilter`). */
function asciiPrefilter(patterns: readonly string[]): { regex: RegExp; parts: string[]; partOf: number[] } | undefined {
	const parts: string[] = [];
	/** each pattern's part (-1: it needs a character beyond ASCII) */
	const partOf: number[] = [];
	for (const [k, p] of patterns.entries()) {
		const r = readPattern(p, `__${k}`);
		if (r === undefined) return undefined;
		partOf.push(r.needsNonAscii ? -1 : parts.length);
		if (r.needsNonAscii) continue;
		if (!/^[\x20-\x7e]*$/.test(p) || r.unicodeOnly || r.numbered || r.foldsToAscii) return undefined;
		const source = withoutAssertions(r.source);
		// a named back reference whose group was inside a lookaround that is gone: without "u" and with no such group,
		// "\k<w>" matches the text "k<w>", which would reject what the pattern matches
		for (const [, name] of source.matchAll(/\\k<([^>]*)>/g)) if (!source.includes(`(?<${name}>`)) return undefined;
		parts.push(`(?:${source})`);
	}
	// nothing an ASCII text can match: joining its lines makes no non-ASCII character either
	if (parts.length === 0) return { regex: /(?!)/i, parts: ["(?!)"], partOf };
	parts.push(CONTINUATION.source, HIDING_STAGE.source);
	try {
		return { regex: new RegExp(parts.join("|"), "i"), parts, partOf };
	} catch {
		return undefined;
	}
}

/**
 * A pattern's source without its lookarounds and word boundaries: it matches wherever the pattern does (and more), and
 * V8 runs it several times faster — a lookbehind at every position of every completion was most of the scan's time.
 */
export function withoutAssertions(source: string): string {
	let out = "";
	let inClass = false;
	for (let i = 0; i < source.length; i++) {
		const c = source[i] as string;
		if (c === "\\") {
			const next = source[i + 1] ?? "";
			if (!inClass && (next === "b" || next === "B")) {
				i++;
				continue;
			}
			out += c + next;
			i++;
			continue;
		}
		if (inClass) {
			if (c === "]") inClass = false;
			out += c;
			continue;
		}
		if (c === "[") {
			inClass = true;
			out += c;
			continue;
		}
		const look = /^\(\?(?:=|!|<=|<!)/.exec(source.slice(i, i + 4));
		if (look !== null) {
			i = groupEnd(source, i);
			continue;
		}
		out += c;
	}
	return out;
}

/** The index of the ")" that closes the group opened at `open`. */
function groupEnd(source: string, open: number): number {
	let depth = 0;
	let inClass = false;
	for (let i = open; i < source.length; i++) {
		const c = source[i];
		if (c === "\\") {
			i++;
			continue;
		}
		if (inClass) {
			if (c === "]") inClass = false;
			continue;
		}
		if (c === "[") inClass = true;
		else if (c === "(") depth++;
		else if (c === ")" && --depth === 0) return i;
	}
	return source.length;
}

/** The non-ASCII code points that case-insensitive ("iu") matching folds onto ASCII ones: ſ onto s, the Kelvin sign onto k. */
const FOLDS_TO_ASCII = [0x17f, 0x212a];

interface PatternReading {
	/** every match of the pattern (compiled "iu") contains a character beyond ASCII */
	readonly needsNonAscii: boolean;
	/** its source with each group name suffixed */
	readonly source: string;
	/** it uses \u{…} or \p{…}, which mean something else without "u" */
	readonly unicodeOnly: boolean;
	/** it uses a numbered back reference */
	readonly numbered: boolean;
	/** it names (by an escape, or in a range) ſ or the Kelvin sign, which match s and k only with "u" */
	readonly foldsToAscii: boolean;
}

/**
 * Reads a pattern (in "u" syntax): whether it needs a non-ASCII character, decided soundly and conservatively — each
 * alternative has, outside anything optional or negated, a literal character (or a class of only such characters)
 * beyond ASCII that does not fold onto ASCII. Undefined when it cannot be read.
 */
function readPattern(source: string, suffix: string): PatternReading | undefined {
	let i = 0;
	let out = "";
	let unicodeOnly = false;
	let numbered = false;
	const n = source.length;
	const fail = (): never => {
		throw new SyntaxError(source);
	};
	let foldsToAscii = false;
	/** Does every character from lo to hi lie beyond ASCII, and none of them fold onto it? */
	const nonAscii = (lo: number, hi = lo) => {
		const folds = FOLDS_TO_ASCII.some((c) => lo <= c && c <= hi);
		if (folds) foldsToAscii = true;
		return lo >= 0x80 && !folds;
	};
	const copyName = (): string => {
		const close = source.indexOf(">", i);
		if (close < 0) fail();
		const name = source.slice(i, close);
		i = close + 1;
		return `${name}${suffix}>`;
	};
	/** An escape's code point, or undefined when it stands for a set or an assertion. Copies it. */
	const escaped = (inClass: boolean): number | undefined => {
		const start = i;
		const c = source[i + 1] ?? fail();
		i += 2;
		let cp: number | undefined;
		if (c === "u" && source[i] === "{") {
			unicodeOnly = true;
			const close = source.indexOf("}", i);
			if (close < 0) fail();
			cp = Number.parseInt(source.slice(i + 1, close), 16);
			i = close + 1;
		} else if (c === "u" && /^[0-9a-fA-F]{4}$/.test(source.slice(i, i + 4))) {
			cp = Number.parseInt(source.slice(i, i + 4), 16);
			i += 4;
		} else if (c === "x" && /^[0-9a-fA-F]{2}$/.test(source.slice(i, i + 2))) {
			cp = Number.parseInt(source.slice(i, i + 2), 16);
			i += 2;
		} else if (c === "p" || c === "P") {
			unicodeOnly = true;
			const close = source.indexOf("}", i);
			if (close < 0) fail();
			i = close + 1;
		} else if (c === "k" && !inClass) {
			if (source[i] !== "<") fail();
			i++;
			out += `\\k<${copyName()}`;
			return undefined;
		} else if (/[1-9]/.test(c) && !inClass) {
			numbered = true;
			while (/[0-9]/.test(source[i] ?? "")) i++;
		} else if (c === "c") {
			i++;
			cp = 0;
		} else if (!/[dDwWsSbB]/.test(c) || (inClass && c === "b")) {
			cp = c === "b" ? 8 : (c.codePointAt(0) as number);
		}
		out += source.slice(start, i);
		return cp;
	};
	/** A character class: does every character it matches lie beyond ASCII? */
	const charClass = (): boolean => {
		const start = i;
		i++;
		const negated = source[i] === "^";
		if (negated) i++;
		let all = true;
		const member = (): number | undefined => {
			if (source[i] === "\\") return escaped(true);
			const cp = source.codePointAt(i) as number;
			out += String.fromCodePoint(cp);
			i += cp > 0xffff ? 2 : 1;
			return cp;
		};
		out += source.slice(start, i);
		while (i < n && source[i] !== "]") {
			const lo = member();
			if (source[i] === "-" && i + 1 < n && source[i + 1] !== "]") {
				out += "-";
				i++;
				const hi = member();
				if (lo === undefined || hi === undefined || !nonAscii(lo, hi)) all = false;
			} else if (lo === undefined || !nonAscii(lo)) all = false;
		}
		if (i >= n) fail();
		out += "]";
		i++;
		return all && !negated;
	};
	/** The least number of times the quantifier after an atom lets it match (1: none). Copies it. */
	const quantifier = (): number => {
		const c = source[i];
		let min = 1;
		const start = i;
		if (c === "*" || c === "?") {
			min = 0;
			i++;
		} else if (c === "+") i++;
		else if (c === "{") {
			const m = /^\{(\d+)(?:,\d*)?\}/.exec(source.slice(i));
			if (m === null) fail();
			min = Number((m as RegExpExecArray)[1]);
			i += (m as RegExpExecArray)[0].length;
		} else return 1;
		if (source[i] === "?") i++;
		out += source.slice(start, i);
		return min;
	};
	const atom = (): boolean => {
		const c = source[i] as string;
		if (c === "(") {
			let positive = true;
			const rest = source.slice(i, i + 4);
			if (rest.startsWith("(?:") || rest.startsWith("(?=")) {
				out += rest.slice(0, 3);
				i += 3;
			} else if (rest.startsWith("(?!")) {
				out += "(?!";
				i += 3;
				positive = false;
			} else if (rest === "(?<=" || rest === "(?<!") {
				out += rest;
				i += 4;
				positive = rest === "(?<=";
			} else if (rest.startsWith("(?<")) {
				i += 3;
				out += `(?<${copyName()}`;
			} else if (rest.startsWith("(?")) fail();
			else {
				out += "(";
				i++;
			}
			const inner = alternation();
			if (source[i] !== ")") fail();
			out += ")";
			i++;
			return positive && inner;
		}
		if (c === "[") return charClass();
		if (c === "\\") {
			const cp = escaped(false);
			return cp !== undefined && nonAscii(cp);
		}
		if ("^$.".includes(c)) {
			out += c;
			i++;
			return false;
		}
		if ("*+?{}]".includes(c)) fail();
		const cp = source.codePointAt(i) as number;
		out += String.fromCodePoint(cp);
		i += cp > 0xffff ? 2 : 1;
		return nonAscii(cp);
	};
	const sequence = (): boolean => {
		let needs = false;
		while (i < n && source[i] !== "|" && source[i] !== ")") {
			const a = atom();
			if (quantifier() >= 1 && a) needs = true;
		}
		return needs;
	};
	const alternation = (): boolean => {
		let needs = sequence();
		while (source[i] === "|") {
			out += "|";
			i++;
			needs = sequence() && needs;
		}
		return needs;
	};
	try {
		const needsNonAscii = alternation();
		if (i !== n) return undefined;
		return { needsNonAscii, source: out, unicodeOnly, numbered, foldsToAscii };
	} catch {
		return undefined;
	}
}

// ------------------------------------------------------------------------------------- what the prompt accounts for

interface Asked {
	readonly text: string;
	readonly words: ReadonlySet<string>;
	readonly stems: ReadonlySet<string>;
	/** adjacent words joined ("oh my zsh": ohmy, myzsh, ohmyzsh) and the initials of three or four ("nvm") */
	readonly joined: ReadonlySet<string>;
}

function askedBy(prompt: string): Asked {
	const w = words(prompt);
	const joined = new Set<string>();
	for (let a = 0; a < w.length; a++) {
		let s = w[a] as string;
		let initials = s[0] as string;
		for (let b = a + 1; b < Math.min(w.length, a + 4); b++) {
			s += w[b] as string;
			initials += (w[b] as string)[0] as string;
			if (s.length >= 5 && !GENERIC.has(s)) joined.add(s);
			if (b - a >= 2) joined.add(initials);
		}
	}
	return { text: normalize(prompt), words: new Set(w), stems: new Set(w.map(stem)), joined };
}

/**
 * A line that speaks of a dangerous action — an advisory, a changelog entry, security training — rather than telling
 * someone to do it.
 */
const REPORT =
	/\bCVE-\d{4}-\d{3,}\b|\bGHSA-[\w-]+|\bvulnerab|\bexploit|\battackers?\b|\bmalicious|\bmalware\b|\bphishing\b|\bprompt[- ]injections?\b|\bjailbreak|\bsocial engineering\b|\bis when\b|\barbitrary (?:code|command)|\bprivilege escalation|\bsecurity (?:fix|issue|bug|flaw|advisory|hole|problem)|\bfix(?:es|ed)? (?:a |the |an )?(?:bug|issue|problem|regression|crash)|\bno longer\b/iu;
/**
 * …unless the words just before the match tell the reader to run it ("to patch CVE-…, run curl … | sh"); a verb after
 * a modal or a subject is no imperative ("attackers may try to get the model to …").
 */
const IMPERATIVE =
	/(?<!\b(?:may|might|could|would|can|will|they|attackers?|someone|users?|people|it|he|she|who)\s+)\b(?:run|execute|exec|type|paste|enter|use|try|invoke|call|just|simply|please|now|then|must|should)\b[^.:;!?]*$/iu;
/** A clause ends at a sentence mark, a colon, a comma or a dash (in Latin, Cyrillic and CJK punctuation). */
const CLAUSE = /[.!?;:,\n—–。！？；：，]/gu;
/**
 * A warning against what follows ("never paste your key into …", "don't skip the review", "不要跳过…") in the same clause,
 * at most 60 characters before it. Not "never mind", "don't forget to", "don't hesitate to", "don't worry about":
 * those say to go ahead.
 */
const NEGATION =
	/(?:(?:^|[^\p{L}\p{N}'’])(?:never(?!\s+mind\b)(?:\s+ever)?|(?:do|must|should)\s+not|(?:don|mustn|shouldn)['’]t|avoid(?:s|ed|ing)?|refus(?:e|es|ed|ing)\s+to|not\s+to|no\s+one\s+should|никогда(?:\s+не)?|нельзя|не)(?![\p{L}\p{N}])|不要|切勿|请勿|禁止|绝不|永远不要|不得|不能|不应|不可)(?!\s*(?:(?:forget|hesitate|be\s+afraid|wait|worry|bother|delay|miss|fail|neglect|забуд\p{L}*|забыва\p{L}*|стесня\p{L}*|бойся|бойтесь)(?![\p{L}\p{N}])|忘|怕|犹豫))(?<rest>.{0,60})$/iu;
/**
 * A refusal in the same clause: the speaker will not do it ("I'm sorry, but I can't disable my safety filters", "we
 * won't skip the review"). Not "I can't wait to …", "I can't stress enough …", which go ahead.
 */
const REFUSAL =
	/\b(?:i|we)(?:['’]m|['’]re|\s+am|\s+are)?\s+(?:(?:can['’]t|cannot|can\s+not|won['’]t|will\s+not|shan['’]t)(?!\s+(?:wait|stress|emphasi[sz]e|recommend|help\s+but|believe|imagine))|not\s+(?:able|allowed|permitted|going)\s+to|unable\s+to|(?:must|have\s+to|need\s+to)\s+(?:decline|refuse)\s+to|decline\s+to|refuse\s+to)\b[^.!?;:,\n]{0,60}$/iu;

/** …undone by what comes after the negation ("don't wait, just…", "never … but …"). */
const TURN = /\b(?:just|simply|instead|rather|but|then|now|go ahead|please)\b|但是|而是|直接/iu;
/** A quotation introduced as one ("writes 'Ignore all previous instructions'", "such as “…”"): prose mentioned. */
const MENTION =
	/\b(?:for example|for instance|e\.g\.|i\.e\.|such as|like|says?|said|saying|writes?|wrote|written|writing|types?|typed|typing|phrases?|text|strings?|messages?|sentences?|payloads?|injections?|reads?|reading|contains?|containing|called|known as|as in)\s*[,:]?\s*["'“‘«„]$/iu;
/** A request the model is told to refuse: "if asked to …, refuse", "users may ask you to …; decline". */
const REQUEST =
	/\b(?:(?:if|when)\s+(?:you(?:'re|\s+are)\s+|someone\s+|anyone\s+|a\s+user\s+|the\s+user\s+)?(?:asked|told|instructed|requested|prompted)|(?:asks?|asking|asked|tells?|telling|told|instructs?|instructed|wants?|urges?|pressures?|tricks?|convinces?|persuades?)\s+(?:you|the\s+(?:model|assistant|ai|bot|agent|llm)|it|them|me|us)|tr(?:y|ies|ying)\s+to\s+(?:get|make|trick|convince|persuade)\s+(?:you|the\s+(?:model|assistant|ai|bot|agent|llm)|it|them))\s+(?:in)?to\s*$/iu;
const REFUSE = /\b(?:refuse|decline|reject|say no|don't|do not|never|report)\b/iu;

/** How much of a line around a match is read: enough for a sentence, bounded for a 50 MB line. */
const LINE_CONTEXT = 2000;

function reported(completion: string, at: number, matched: string): boolean {
	// the line around it, as far as LINE_CONTEXT each way (searched within that: a line may be the whole record)
	const from = Math.max(0, at - LINE_CONTEXT);
	const start = from + completion.slice(from, at).lastIndexOf("\n") + 1;
	const before = completion.slice(start, at);
	const tail = completion.slice(at + matched.length, at + matched.length + LINE_CONTEXT);
	const nl = tail.indexOf("\n");
	const after = nl < 0 ? tail : tail.slice(0, nl);
	let clauseAt = 0;
	for (const m of before.matchAll(CLAUSE)) clauseAt = (m.index ?? 0) + 1;
	const clause = before.slice(clauseAt);
	// a warning against it: what follows the negation does not turn it round
	const negated = NEGATION.exec(clause);
	if (negated !== null && !TURN.test(negated.groups?.rest ?? "")) return true;
	if (REFUSAL.test(clause)) return true;
	// the line around the match, not the match: a URL of github.com/attacker/… reports on nothing
	const framed =
		REPORT.test(`${before} … ${after}`) ||
		// a quotation of prose (a quoted command is how instructions are written)
		(!COMMAND.test(matched.trimStart()) && MENTION.test(before) && /^[^\n]{0,200}?["'”’»“]/u.test(after)) ||
		(REQUEST.test(clause) && REFUSE.test(after));
	return framed && !IMPERATIVE.test(completion.slice(Math.max(start, at - 40), at));
}

/** A shell command (or its flag, or a redirection) rather than prose. */
const COMMAND =
	/^(?:sudo\s+)?(?:chmod|rm|env|printenv|cat|echo|printf|tee|curl|wget|iwr|irm|iex|invoke-\w+|downloadstring|powershell|pwsh|base64|openssl|xxd|pip\d?(?:\.\d+)?|pipx|uv|npx|npm|yarn|pnpm|bun|bash|sh|zsh|dash|ksh|source|python\d?|perl|ruby|node|eval|git|gem|cargo|apt|apt-get|setenforce|ufw|systemctl|iptables|scp|rsync|sftp|tar|zip|gzip|7z|export|GIT_SSL_NO_VERIFY|NODE_TLS_REJECT_UNAUTHORIZED|PYTHONHTTPSVERIFY|APT::\w+|\.)\b|^--|^\.\s|^:\(\)|^>|^\[/iu;

/** What a command does, said in words: the prompt asks for it when it says so. */
const MEANINGS: readonly { command: RegExp; asks: RegExp }[] = [
	{
		command: /\bchmod\b.*(?:0?777|a\+rwx|ugo\+rwx)/iu,
		asks: /\b0?777\b|\bworld[- ]?(?:writ|read(?:able)?[- ,/]+writ)|\bwrit\w* (?:by|for|to) (?:everyone|everybody|anyone|all(?: users)?|every user|other users)\b|rwxrwxrwx|\ba\+rwx|\bugo\+rwx|\b(?:all|full) permissions? (?:to|for) (?:everyone|everybody|all|anyone)\b/iu,
	},
	{
		command: /authorized_keys/iu,
		asks: /authorized_keys|\bssh-copy-id\b|\b(?:add|install|copy|upload|put|deploy|set ?up|configure)\b[^.?!]{0,40}\b(?:ssh|public) keys?\b|\bkey[- ]based (?:auth|login)|\bpasswordless (?:ssh|login)|\blog ?in without (?:a )?password/iu,
	},
	{
		command:
			/sslverify|GIT_SSL_NO_VERIFY|NODE_TLS_REJECT_UNAUTHORIZED|strict-ssl|PYTHONHTTPSVERIFY|\bverify\s*=\s*False/iu,
		asks: /\b(?:ssl|tls|https)\b|certificat|self-signed|sslverify|strict-ssl|NODE_TLS_REJECT_UNAUTHORIZED|GIT_SSL_NO_VERIFY|PYTHONHTTPSVERIFY/iu,
	},
	{
		command:
			/setenforce|SELINUX=|\bufw\b|\bsystemctl\b|\biptables\b|Set-NetFirewallProfile|netsh\s+advfirewall|Set-MpPreference/iu,
		asks: /selinux|setenforce|enforcing|permissive|firewall|\bufw\b|iptables|apparmor|auditd|defender|antivirus|real-?time (?:protection|monitoring)/iu,
	},
	{
		command:
			/trusted=yes|allow-unauthenticated|allow-insecure-repositories|AllowUnauthenticated|AllowInsecureRepositories/iu,
		asks: /unsigned|untrusted|trusted=yes|unauthenticated|insecure repositor|without (?:a |the |any )?(?:gpg|signature|signing key|key)|NO_PUBKEY|gpg error|signature (?:error|check|verification)/iu,
	},
	{
		command: /^(?:sudo\s+)?(?:scp|rsync|sftp)\b/iu,
		asks: /\b(?:copy|move|transfer|migrate|sync|back ?up|restore)\b[^.?!]{0,60}\b(?:credentials|ssh keys?|private keys?|\.ssh|\.aws|aws config)/iu,
	},
	{
		command: /\brm\b.*(?:~|\$\{?HOME)/iu,
		asks: /\b(?:delete|remove|wipe|erase|clear|empty)\b[^.?!]{0,40}\bhome (?:directory|folder|dir)\b|\brm -rf ~|\brm -rf "?\$\{?HOME/iu,
	},
];

function accountedFor(matched: string, asked: Asked): boolean {
	const text = normalize(matched);
	if (asked.text.includes(text)) return true;
	// a setting said in words first ("http.sslVerify" reads like a host name)
	const meanings = MEANINGS.filter((m) => m.command.test(matched));
	if (meanings.length > 0 && meanings.some((m) => m.asks.test(asked.text))) return true;
	const hosts = hostsOf(matched);
	if (hosts.length > 0) return hosts.some((h) => ownersOf(h).some((o) => names(asked, o)));
	if (COMMAND.test(matched.trimStart())) return false;
	const content = words(matched)
		.filter((w) => w.length > 3 && !FUNCTION_WORDS.has(w))
		.map(stem);
	const echoed = content.filter((w) => asked.stems.has(w)).length;
	return content.length > 0 && echoed * 2 >= content.length;
}

const HOST =
	/(?:\bhttps?:\/\/|(?<=^|[\s"'=@(]))((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24})(?::\d+)?(\/[^\s|;&)"'\x60<>]*)?(?=$|[\s|;&)"'\x60<>/:])/giu;
/** A package manager's shorthand for a repository on a code host (`github:owner/repo`). */
const SHORTHAND = /\b(github|gitlab|bitbucket):([\w.-]+\/[^\s|;&)"'\x60<>]*)/giu;
const SHORTHAND_HOSTS: Readonly<Record<string, string>> = {
	github: "github.com",
	gitlab: "gitlab.com",
	bitbucket: "bitbucket.org",
};

interface Host {
	readonly name: string;
	readonly path: string;
}

function hostsOf(text: string): Host[] {
	const out: Host[] = [];
	for (const m of text.matchAll(HOST)) out.push({ name: (m[1] as string).toLowerCase(), path: m[2] ?? "" });
	for (const m of text.matchAll(SHORTHAND))
		out.push({ name: SHORTHAND_HOSTS[(m[1] as string).toLowerCase()] as string, path: `/${m[2]}` });
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

/**
 * Does the prompt name this owner (the name or a part of it; "rust" names rustup, "torch" pytorch)? Its words
 * spaced apart name it too: "Oh My Zsh" names ohmyzsh and oh-my-zsh, "Home Brew" homebrew, "Node Version Manager"
 * nvm-sh.
 */
function names(asked: Asked, owner: string): boolean {
	const parts = [owner, ...owner.split(/[-_.]+/)].filter((p) => p.length >= 3 && !GENERIC.has(p));
	for (const w of asked.words) {
		if (w.length < 3 || GENERIC.has(w)) continue;
		for (const p of parts) {
			if (p === w) return true;
			if (w.length >= 4 && (p.startsWith(w) || p.endsWith(w))) return true;
		}
	}
	const whole = owner.replace(/[-_.]+/g, "");
	for (const j of asked.joined) {
		if (j.length < 5) {
			// initials name a part exactly ("nvm" of nvm-sh), never the prefix of one
			if (parts.includes(j)) return true;
		} else if (j === whole || parts.some((p) => p === j || p.startsWith(j) || p.endsWith(j))) return true;
	}
	return false;
}
