#!/bin/sh
# A custom runtime in plain shell: polls the Runtime API with curl and echoes each event back.
set -eu
API="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
HEADERS="$(mktemp)"
while true; do
  EVENT="$(curl -sS -D "$HEADERS" "$API/invocation/next")"
  REQUEST_ID="$(grep -i '^Lambda-Runtime-Aws-Request-Id:' "$HEADERS" | cut -d' ' -f2 | tr -d '\r\n')"
  echo "bootstrap handling $REQUEST_ID"
  curl -sS -o /dev/null -X POST -H 'Content-Type: application/json' \
    -d "{\"echo\": $EVENT, \"requestId\": \"$REQUEST_ID\", \"handler\": \"$_HANDLER\"}" \
    "$API/invocation/$REQUEST_ID/response"
done
