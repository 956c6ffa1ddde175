#!/bin/sh
# twofa delivery script, example: send the code as an SMS through an HTTP SMS gateway with curl.
#
# Use it with, in /etc/twofa/twofa.toml, a `script` delivery whose settings name this file:
#     program = "/usr/local/lib/twofa/sms.sh"
# twofa-deliver runs it (exec, as the unprivileged delivery user, cwd /, stdin /dev/null) with
# only TWOFA_USER, TWOFA_SENDTO, TWOFA_CODE, TWOFA_TTL, TWOFA_METHOD and
# PATH=/usr/sbin:/usr/bin:/sbin:/bin in its environment. Exit 0 = sent; anything else = not sent,
# with one line on stderr saying why (it goes to syslog). See README.md in this directory.
#
# Rules this script follows, and yours should too:
# - The code is never in a command's argv (any local user can read argv in /proc): it reaches
#   curl on stdin, through printf, a shell builtin (no exec, no argv).
# - The gateway's credentials are not in this script: they live in a curl config file readable
#   by the delivery user only, e.g. /etc/twofa/sms-gateway.curl (root:<delivery group> 0640):
#       header = "Authorization: Bearer <api key>"
# - Nothing echoes the code, the credentials or the gateway's answer (which may quote them).
# - It finishes well within the runner's deadline (curl --max-time), which SIGKILLs.
set -eu

# Adapt these three to your gateway.
GATEWAY_URL="https://sms.example.com/api/v1/messages"
CREDENTIALS="/etc/twofa/sms-gateway.curl"
SENDER="twofa"

fail() {
    echo "sms: $*" >&2
    exit 1
}

# The destination is set by admins (twofa-enroll), but check it anyway: an international number
# (E.164), nothing that could break the request below.
printf '%s\n' "${TWOFA_SENDTO:-}" | grep -Eqx '\+[1-9][0-9]{6,14}' \
    || fail "TWOFA_SENDTO is not a phone number in international format (+41791234567)"
printf '%s\n' "${TWOFA_CODE:-}" | grep -Eqx '[0-9]{4,12}' \
    || fail "TWOFA_CODE is missing or not digits"
case "${TWOFA_TTL:-}" in
    '' | *[!0-9]*) fail "TWOFA_TTL is missing or not a number" ;;
esac
[ -r "$CREDENTIALS" ] || fail "cannot read $CREDENTIALS"

minutes=$((TWOFA_TTL / 60))
[ "$minutes" -ge 1 ] || minutes=1
text="Your login code is ${TWOFA_CODE}. It is valid for ${minutes} minutes."

# The request fields go to curl as a config file on stdin (--config -). Everything in them is
# digits, '+' and plain words, so no quoting can break out of the "...".
status=0
printf 'data-urlencode = "from=%s"\ndata-urlencode = "to=%s"\ndata-urlencode = "text=%s"\n' \
    "$SENDER" "$TWOFA_SENDTO" "$text" |
    curl --silent --fail --max-time 7 --proto '=https' --tlsv1.2 \
        --config "$CREDENTIALS" --config - \
        --output /dev/null \
        "$GATEWAY_URL" || status=$?

case "$status" in
    0) exit 0 ;;
    22) fail "the gateway refused the message (HTTP error; check the key and the number)" ;;
    28) fail "the gateway did not answer in time" ;;
    6 | 7) fail "cannot connect to the gateway" ;;
    35 | 60) fail "TLS with the gateway failed (certificate?)" ;;
    *) fail "curl failed with exit status $status" ;;
esac
