package web

import (
	"net/mail"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on what people type.
const (
	maxEmailLen    = 254
	minPasswordLen = 8
	maxPasswordLen = 1024
	maxNameLen     = 100
	maxLabelLen    = 64
)

// cleanText trims a single-line text field and checks it: valid UTF-8, no
// control characters, no invisible text-direction controls, at most max
// characters. It returns the cleaned value or a message naming the field.
func cleanText(what, value string, max int) (string, string) {
	if !utf8.ValidString(value) {
		return "", what + " contains characters that aren't valid text."
	}
	value = strings.TrimSpace(value)
	for _, r := range value {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return "", what + " can't contain control characters or line breaks."
		}
		if bidiControl(r) {
			return "", what + " can't contain invisible text-direction characters (such as U+202E), which make text show in a different order than it was typed."
		}
	}
	if n := utf8.RuneCountInString(value); n > max {
		return "", what + " must be at most " + strconv.Itoa(max) + " characters (this one has " + strconv.Itoa(n) + ")."
	}
	return value, ""
}

// bidiControl reports whether r is an invisible character that changes the
// direction of the text around it: the embeddings, overrides and isolates
// (U+202A–U+202E, U+2066–U+2069) and the marks (U+200E, U+200F, U+061C).
// In a label they can make "‮evil‬ label" show reversed, or a key's name
// look like another's.
func bidiControl(r rune) bool { return unicode.Is(unicode.Bidi_Control, r) }

// normalizeEmail trims and lower-cases an email, as accounts are keyed.
func normalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// checkEmail returns a message when email (already normalised) can't be an
// address.
func checkEmail(email string) string {
	switch {
	case email == "":
		return "Enter your email address."
	case !utf8.ValidString(email):
		return "Email contains characters that aren't valid text."
	case len(email) > maxEmailLen:
		return "Email must be at most 254 characters."
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" {
		return "Enter a valid email address, like name@example.com."
	}
	at := strings.LastIndexByte(email, '@')
	if at < 1 || !strings.Contains(email[at+1:], ".") || strings.ContainsAny(email, " \t\r\n\x00") {
		return "Enter a valid email address, like name@example.com."
	}
	return ""
}

// checkNewPassword returns a message when a password is too weak or
// unusable.
func checkNewPassword(pw string) string {
	switch {
	case pw == "":
		return "Choose a password."
	case !utf8.ValidString(pw):
		return "Password contains characters that aren't valid text."
	case strings.ContainsRune(pw, 0):
		return "Password can't contain NUL characters."
	case utf8.RuneCountInString(pw) < minPasswordLen:
		return "Use at least 8 characters."
	case len(pw) > maxPasswordLen:
		return "Use at most 1024 characters."
	}
	return ""
}
