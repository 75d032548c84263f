package account

import (
	"time"

	"github.com/peekshot/peekshot/apikey"
)

// SigningSecret is a key's secret for signed links (SPEC §8), as stored:
// sealed by the web layer under a key derived from the server's secret,
// so the database never holds it in clear, and recognised by its display
// prefix and last four characters like a key.
type SigningSecret struct {
	KeyID     int64
	Prefix    string // "pss_" + first four characters
	Last4     string
	Sealed    []byte
	CreatedAt time.Time
}

// Masked is the secret as the key's page shows it, e.g. "pss_7Gq2…x9Lb".
func (s SigningSecret) Masked() string { return apikey.Mask(s.Prefix, s.Last4) }

// NewSigningSecret is a freshly generated secret to store, sealed.
type NewSigningSecret struct {
	Prefix string
	Last4  string
	Sealed []byte
}

// SignedLinkKey is what a signed link is checked with: its key, as API
// authentication reads it, and the key's sealed signing secret.
type SignedLinkKey struct {
	Key    APIKey
	Sealed []byte
}
