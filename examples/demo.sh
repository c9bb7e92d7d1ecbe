#!/usr/bin/env bash
# `npm start`: ftguard on the bundled examples. Each step prints the command, its
# output and its exit code; the script fails if any outcome is not the expected one.
set -u
cd "$(dirname "$0")/.."
ftguard() { node bin/ftguard.mjs "$@"; }
failed=0

step() { # step <expected exit code> <title> -- <ftguard args...>
	local want=$1 title=$2
	shift 3
	printf '\n\033[1m▶ %s\033[0m\n$ ftguard %s\n' "$title" "$*"
	ftguard "$@"
	local got=$?
	if [ "$got" -eq "$want" ]; then
		printf '  → exit %s, as expected\n' "$got"
	else
		printf '  → exit %s, expected %s\n' "$got" "$want"
		failed=1
	fi
}

E=examples
step 0 "the signed checkpoint verifies" -- verify $E/checkpoint --signature $E/checkpoint/model.sig --public-key $E/keys/signer.pub.pem
step 1 "one flipped bit in the weights is caught" -- verify $E/checkpoint-tampered --signature $E/checkpoint-tampered/model.sig --public-key $E/keys/signer.pub.pem
step 1 "an unsigned file dropped beside the weights is caught" -- verify $E/checkpoint-extra-file --signature $E/checkpoint-extra-file/model.sig --public-key $E/keys/signer.pub.pem
step 1 "a checkpoint signed by an untrusted key is refused" -- verify $E/checkpoint-other-signer --signature $E/checkpoint-other-signer/model.sig --public-key $E/keys/signer.pub.pem
step 0 "every file of the signed checkpoint is safe to load" -- files $E/checkpoint
step 1 "a pickle payload in pytorch_model.bin is caught, even when pickles are allowed" -- files $E/checkpoint-pickle --allow-pickle
step 0 "the base model is in the signed registry" -- base-model check $E/base-model --id example-org/tiny-base@v1.0 --registry $E/registry.json --registry-bundle $E/registry.json.sigstore.json --public-key $E/keys/signer.pub.pem
step 1 "pickle weights beside an approved safetensors model are refused" -- base-model check $E/base-model-pickle --id example-org/tiny-base@v1.0 --registry $E/registry.json --registry-bundle $E/registry.json.sigstore.json --public-key $E/keys/signer.pub.pem
step 2 "a registry signed by someone else is untrusted (could not check)" -- base-model check $E/base-model --id example-org/tiny-base@v1.0 --registry $E/registry.json --registry-bundle $E/registry.json.sigstore.json --public-key $E/keys/untrusted.pub.pem

echo
if [ "$failed" -eq 0 ]; then echo "demo: every outcome as expected"; else echo "demo: UNEXPECTED OUTCOME above"; fi
exit "$failed"
