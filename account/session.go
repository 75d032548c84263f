package account

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"
)

// SessionID is the random id a signed-in session's cookie carries (256
// bits). Only its SHA-256 is stored, so the database never holds a usable
// cookie value.
type SessionID string

// NewSessionID returns a fresh random session id.
func NewSessionID() (SessionID, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new session id: %w", err)
	}
	return SessionID(base64.RawURLEncoding.EncodeToString(b[:])), nil
}

// Hash is the form a session id is stored and looked up in.
func (id SessionID) Hash() []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

// Session is a signed-in session kept on the server.
type Session struct {
	ID         SessionID
	UserID     int64
	Data       []byte
	CreatedAt  time.Time
	LastSeenAt time.Time
}
