/** Helpers for zod schemas shared across the core. */
import type { z } from "zod";

/** The first issue of a failed parse as one line: "path.to.field: message". */
export function zodMessage(error: z.ZodError): string {
	const issue = error.issues[0];
	if (issue === undefined) return "invalid";
	return `${issue.path.join(".") || "(root)"}: ${issue.message}`;
}
