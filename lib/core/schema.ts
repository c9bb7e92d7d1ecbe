/** Helpers for zod schemas shared across the core. */
import { z } from "zod";

/** A policy's regular expression: one that compiles with the flags i and u (the scanners add them). */
export const regexSchema = z.string().refine(
	(s) => {
		try {
			new RegExp(s, "iu");
			return true;
		} catch {
			return false;
		}
	},
	{ message: "not a valid regular expression (flags i and u are added)" },
);

/** The first issue of a failed parse as one line: "path.to.field: message". */
export function zodMessage(error: z.ZodError): string {
	const issue = error.issues[0];
	if (issue === undefined) return "invalid";
	return `${issue.path.join(".") || "(root)"}: ${issue.message}`;
}
