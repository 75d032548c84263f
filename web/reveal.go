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
}

// revealSealer seals a pending reveal (AES-256-GCM, with a key derived from
// the session secret, bound to its user) so that the store only ever holds
// it sealed, and every instance that shares the secret can open it.
type revealSealer struct{ aead cipher.AEAD }

func newRevealSealer(secret []byte) *revealSealer {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("peekshot key reveal"))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		panic(err) // a 32-byte key always makes a cipher
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &revealSealer{aead: aead}
}

func userAD(userID int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(userID)) }

func (r *revealSealer) seal(p pendingReveal, userID int64) ([]byte, error) {
	plain, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, r.aead.NonceSize(), r.aead.NonceSize()+len(plain)+r.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal reveal: %w", err)
	}
	return r.aead.Seal(nonce, nonce, plain, userAD(userID)), nil
}

var errBadSeal = errors.New("sealed reveal does not open")

func (r *revealSealer) open(sealed []byte, userID int64) (pendingReveal, error) {
	var p pendingReveal
	n := r.aead.NonceSize()
	if len(sealed) < n {
		return p, errBadSeal
	}
	plain, err := r.aead.Open(nil, sealed[:n], sealed[n:], userAD(userID))
	if err != nil {
		return p, errBadSeal
	}
	if err := json.Unmarshal(plain, &p); err != nil {
		return p, errBadSeal
	}
	return p, nil
}

// holdReveal keeps a new key, sealed, for the page the redirect leads to,
// under a random token that only this session knows.
func (s *Server) holdReveal(c echo.Context, p pendingReveal) error {
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
	session(c).Values[keyReveal] = base64.RawURLEncoding.EncodeToString(token)
	return nil
}

// takeReveal returns the key held for this session, once, or nil.
func (s *Server) takeReveal(c echo.Context) (*pendingReveal, error) {
	sess := session(c)
	raw, ok := sess.Values[keyReveal].(string)
	if !ok {
		return nil, nil
	}
	delete(sess.Values, keyReveal)
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
