#!/usr/bin/env sh
# Takes a screenshot with PeekShot.
#   PEEKSHOT_API_KEY=psk_… examples/screenshot.sh https://example.com out.png
# PEEKSHOT_URL points at your server (default http://localhost:8080).
set -eu
url=${1:?usage: $0 URL [OUTPUT.png]}
out=${2:-screenshot.png}
base=${PEEKSHOT_URL:-http://localhost:8080}
: "${PEEKSHOT_API_KEY:?set PEEKSHOT_API_KEY to a key from Account → API Keys}"

# Check the key first: free, and a clear message if it is wrong.
me=$(curl -sS -w '\n%{http_code}' "$base/api/v1/me" -H "x-api-key: $PEEKSHOT_API_KEY")
code=$(printf '%s' "$me" | tail -n 1)
if [ "$code" != 200 ]; then
  printf 'PeekShot refused the key (%s): %s\n' "$code" "$(printf '%s' "$me" | head -n -1)" >&2
  exit 1
fi

# JSON-escape the URL (quotes and backslashes) for the request body.
json_url=$(printf '%s' "$url" | sed 's/\\/\\\\/g; s/"/\\"/g')
code=$(curl -sS -o "$out.part" -w '%{http_code}' "$base/api/v1/screenshots" \
  -H "x-api-key: $PEEKSHOT_API_KEY" -H "Content-Type: application/json" \
  -d "{\"url\": \"$json_url\", \"width\": 1280, \"height\": 720}")
if [ "$code" != 200 ]; then
  printf 'Render failed (%s): %s\n' "$code" "$(cat "$out.part")" >&2
  rm -f "$out.part"
  exit 1
fi
mv "$out.part" "$out"
echo "Saved $out"
