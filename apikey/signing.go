package apikey

// A signing secret signs a key's links for <img src> (SPEC §8): "pss_"
// followed by 32 random base62 characters and the same 6-character CRC-32
// checksum as a key, so a scanner can tell one from noise too. It is not a
// key: the API never accepts it in x-api-key, and it is never sent in a
// request, only used to compute a link's HMAC.
const (
	// SigningPrefix starts every signing secret.
	SigningPrefix = "pss_"
)

// GenerateSigningSecret returns a new random signing secret.
func GenerateSigningSecret() (string, error) { return generate(SigningPrefix) }

// ValidSigningSecret reports whether s is a well-formed signing secret
// with a correct checksum.
func ValidSigningSecret(s string) bool { return valid(s, SigningPrefix) }
