#!/usr/bin/env sh
# Takes a screenshot with PeekShot.
#
#   PEEKSHOT_API_KEY=psk_… examples/screenshot.sh https://example.com out.png
#
# PEEKSHOT_API_KEY  a key from Account → API Keys (required)
# PEEKSHOT_URL      where your server answers (default http://localhost:8080;
#                   set it for any other host or port, e.g. http://localhost:9000)
#
# On an error it prints PeekShot's message and exits 1; it writes the image
# only when there is one.
set -eu
url=${1:?usage: $0 URL [OUTPUT.png]   (PEEKSHOT_API_KEY=psk_… and, for another server, PEEKSHOT_URL=http://host:port)}
out=${2:-screenshot.png}
base=${PEEKSHOT_URL:-http://localhost:8080}
base=${base%/}
: "${PEEKSHOT_API_KEY:?set PEEKSHOT_API_KEY to a key from Account → API Keys}"

body=$(mktemp)
trap 'rm -f "$body" "$out.part"' EXIT

# say_error prints the API's JSON error ({"error": {"code", "message"}}) as a
# sentence, or the body itself when it is not PeekShot's JSON.
say_error() {
  message=$(sed -n 's/.*"message":"\(\([^"\\]\|\\.\)*\)".*/\1/p' "$1")
  code=$(sed -n 's/.*"code":"\([^"]*\)".*/\1/p' "$1")
  if [ -n "$message" ]; then
    printf '%s: %s (%s, HTTP %s)\n' "$2" "$message" "$code" "$3" >&2
  else
    printf '%s (HTTP %s): %s\n' "$2" "$3" "$(head -c 300 "$1")" >&2
  fi
}

# call METHOD PATH [DATA]: the HTTP status on stdout, the body in $1's file.
call() {
  if ! status=$(curl -sS -o "$2" -w '%{http_code}' -X "$1" "$base$3" \
      -H "x-api-key: $PEEKSHOT_API_KEY" -H "Content-Type: application/json" ${4:+-d "$4"}); then
    printf "Can't reach PeekShot at %s. Is the server running? Set PEEKSHOT_URL if it listens elsewhere.\n" "$base" >&2
    exit 1
  fi
  printf '%s' "$status"
}

# Check the key first: free, and a clear message if it is wrong.
status=$(call GET "$body" /api/v1/me) || exit 1
if [ "$status" != 200 ]; then
  say_error "$body" "PeekShot refused the key" "$status"
  exit 1
fi

# JSON-escape the URL (backslashes and quotes) for the request body.
json_url=$(printf '%s' "$url" | sed 's/\\/\\\\/g; s/"/\\"/g')
status=$(call POST "$out.part" /api/v1/screenshots "{\"url\": \"$json_url\", \"width\": 1280, \"height\": 720}") || exit 1
if [ "$status" != 200 ]; then
  say_error "$out.part" "The screenshot failed" "$status"
  exit 1
fi
mv "$out.part" "$out"
echo "Saved $out"
