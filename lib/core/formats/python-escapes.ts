/** The one-character backslash escapes of Python string literals (and of codecs.escape_decode, which pickle's STRING uses). */
export const PY_SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
	"\\": "\\",
	"'": "'",
	'"': '"',
	a: "\x07",
	b: "\b",
	f: "\f",
	n: "\n",
	r: "\r",
	t: "\t",
	v: "\v",
};
