package web

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/account"
)

// revealTTL is how long a new key waits for the page that shows it, on the
// no-JavaScript path (POST, then 303, then GET, perhaps on another
// instance).
const revealTTL = 2 * time.Minute

// pendingReveal is a just-created key on its way to the page that shows it
// once.
type pendingReveal struct {
	KeyID      int64  `json:"k"`
	Key        string `json:"s"`
	ReplacedID int64  `json:"r,omitempty"`
	// Rotated marks a signing secret that replaced another.
	Rotated bool `json:"o,omitempty"`
}

// revealSealer seals a pending reveal (AES-256-GCM, with a key derived from
// the session secret, bound to its user) so that the store only ever holds
// it sealed, and every instance that shares the secret can open it.
type revealSealer struct{ aead cipher.AEAD }

func newRevealSealer(secret []byte) *revealSealer {
	return &revealSealer{aead: newAEAD(secret, "peekshot key reveal")}
}

// newAEAD is AES-256-GCM under a key derived from the session secret for
// one purpose (HMAC-SHA256 of the purpose under the secret), so that what
// is sealed for one use never opens for another.
func newAEAD(secret []byte, purpose string) cipher.AEAD {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(purpose))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		panic(err) // a 32-byte key always makes a cipher
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}

// sealWith seals plain under aead with a random nonce, bound to ad.
func sealWith(aead cipher.AEAD, plain, ad []byte) ([]byte, error) {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return aead.Seal(nonce, nonce, plain, ad), nil
}

var errBadSeal = errors.New("sealed data does not open")

// openWith opens what sealWith sealed with the same ad.
func openWith(aead cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	n := aead.NonceSize()
	if len(sealed) < n {
		return nil, errBadSeal
	}
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], ad)
	if err != nil {
		return nil, errBadSeal
	}
	return plain, nil
}

func userAD(userID int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(userID)) }

func (r *revealSealer) seal(p pendingReveal, userID int64) ([]byte, error) {
	plain, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return sealWith(r.aead, plain, userAD(userID))
}

func (r *revealSealer) open(sealed []byte, userID int64) (pendingReveal, error) {
	var p pendingReveal
	plain, err := openWith(r.aead, sealed, userAD(userID))
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(plain, &p); err != nil {
		return p, errBadSeal
	}
	return p, nil
}

// holdReveal keeps a new key, sealed, for the page the redirect leads to,
// under a random token that only this session knows.
func (s *Server) holdReveal(c echo.Context, p pendingReveal) error {
	return s.holdRevealAs(c, keyReveal, p)
}

// holdRevealAs is holdReveal under the session's field sessKey: a new key
// for the API Keys tab, a new signing secret for its key's page.
func (s *Server) holdRevealAs(c echo.Context, sessKey string, p pendingReveal) error {
	u := currentUser(c)
	sealed, err := s.reveals.seal(p, u.ID)
	if err != nil {
		return err
	}
	token := make([]byte, 18)
	if _, err := rand.Read(token); err != nil {
		return fmt.Errorf("reveal token: %w", err)
	}
	if err := s.store.PutReveal(c.Request().Context(), token, u.ID, sealed, s.cfg.Now().Add(revealTTL)); err != nil {
		return err
	}
	session(c).Values[sessKey] = base64.RawURLEncoding.EncodeToString(token)
	return nil
}

// takeReveal returns the key held for this session, once, or nil.
func (s *Server) takeReveal(c echo.Context) (*pendingReveal, error) {
	return s.takeRevealAs(c, keyReveal)
}

// takeRevealAs is takeReveal of what holdRevealAs kept under sessKey.
func (s *Server) takeRevealAs(c echo.Context, sessKey string) (*pendingReveal, error) {
	sess := session(c)
	raw, ok := sess.Values[sessKey].(string)
	if !ok {
		return nil, nil
	}
	delete(sess.Values, sessKey)
	if err := sess.Save(c.Request(), c.Response()); err != nil {
		return nil, err
	}
	token, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil {
		return nil, nil
	}
	u := currentUser(c)
	sealed, err := s.store.TakeReveal(c.Request().Context(), token, u.ID)
	if errors.Is(err, account.ErrNotFound) {
		return nil, nil // shown already, or expired
	}
	if err != nil {
		return nil, err
	}
	p, err := s.reveals.open(sealed, u.ID)
	if err != nil {
		return nil, nil // sealed under another secret
	}
	return &p, nil
}
