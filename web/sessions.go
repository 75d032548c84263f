package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/store"
	"github.com/peekshot/peekshot/templates"
)

// sessionCookie names the cookie that carries the session.
const sessionCookie = "peekshot_session"

// Session value keys.
const (
	keyUserID = "uid"
	keyFlash  = "flash"
	keyReveal = "reveal"
	// keyAnon is a signed-out visitor's random id, which its CSRF token is
	// bound to; it lives only in the cookie.
	keyAnon = "anon"
	// keyEnded marks, for one request, that its cookie named a session that
	// has ended (signed out, expired or revoked elsewhere). Never saved.
	keyEnded = "ended"
)

// touchEvery limits last-seen writes to one a minute per session.
const touchEvery = time.Minute

// SessionStore is a gorilla/sessions Store in two halves. A signed-in
// session is a row of the sessions table and its cookie carries only a
// signed random id, so the server can revoke it and a replayed cookie of a
// revoked session is refused. A signed-out visitor's session (the CSRF id
// of the sign-in and sign-up forms, a flash message) lives only in its
// signed cookie: nobody writes to the database before signing in.
type SessionStore struct {
	st       store.Sessions
	codec    securecookie.Codec
	csrfKey  []byte
	idle     time.Duration
	lifetime time.Duration
	now      func() time.Time
}

func newSessionStore(st store.Sessions, cfg Config) *SessionStore {
	mac := func(label string) []byte {
		h := hmac.New(sha256.New, cfg.SessionSecret)
		h.Write([]byte(label))
		return h.Sum(nil)
	}
	codec := securecookie.New(mac("peekshot session cookie"), nil)
	codec.MaxAge(int(cfg.SessionLifetime / time.Second))
	codec.SetSerializer(securecookie.NopEncoder{})
	return &SessionStore{
		st: st, codec: codec, csrfKey: mac("peekshot csrf"),
		idle: cfg.SessionIdle, lifetime: cfg.SessionLifetime, now: cfg.Now,
	}
}

// Get returns the request's session, cached for the request by gorilla's registry.
func (ss *SessionStore) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(ss, name)
}

// New loads the session the request's cookie carries: a signed-in session
// from the database, or a signed-out one from the cookie itself. Without a
// cookie, or with one that names no live session, it starts a new, unsaved
// one. Only a database failure is an error.
func (ss *SessionStore) New(r *http.Request, name string) (*sessions.Session, error) {
	sess := ss.fresh(name)
	c, err := r.Cookie(name)
	if err != nil {
		return sess, nil
	}
	var raw []byte
	if err := ss.codec.Decode(name, c.Value, &raw); err != nil {
		return sess, nil
	}
	if len(raw) > 0 && raw[0] == '{' {
		// A signed-out visitor's values (session ids are base64url).
		var values map[string]any
		if err := json.Unmarshal(raw, &values); err != nil {
			return sess, nil
		}
		for k, v := range values {
			if k != keyUserID && k != keyEnded {
				sess.Values[k] = v
			}
		}
		sess.IsNew = false
		return sess, nil
	}
	id := account.SessionID(raw)
	row, err := ss.st.SessionByID(r.Context(), id)
	if errors.Is(err, account.ErrNotFound) || err == nil && row.UserID == 0 {
		sess.Values[keyEnded] = true
		return sess, nil
	}
	if err != nil {
		return sess, err
	}
	now := ss.now()
	if now.Sub(row.LastSeenAt) > ss.idle || now.Sub(row.CreatedAt) > ss.lifetime {
		if err := ss.st.DeleteSession(r.Context(), id); err != nil {
			return sess, err
		}
		sess.Values[keyEnded] = true
		return sess, nil
	}
	if len(row.Data) > 0 {
		var values map[string]any
		if err := json.Unmarshal(row.Data, &values); err != nil {
			return sess, fmt.Errorf("decode session: %w", err)
		}
		for k, v := range values {
			sess.Values[k] = v
		}
	}
	sess.Values[keyUserID] = row.UserID
	sess.ID, sess.IsNew = string(id), false
	if now.Sub(row.LastSeenAt) >= touchEvery {
		err := ss.st.UpdateSession(r.Context(), account.Session{ID: id, Data: row.Data, LastSeenAt: now})
		if errors.Is(err, account.ErrNotFound) {
			ended := ss.fresh(name) // revoked meanwhile
			ended.Values[keyEnded] = true
			return ended, nil
		}
		if err != nil {
			return sess, err
		}
	}
	return sess, nil
}

// fresh is a new, unsaved session with the cookie's attributes.
func (ss *SessionStore) fresh(name string) *sessions.Session {
	sess := sessions.NewSession(ss, name)
	sess.Options = &sessions.Options{
		Path: "/", MaxAge: int(ss.lifetime / time.Second),
		HttpOnly: true, SameSite: http.SameSiteLaxMode,
	}
	sess.IsNew = true
	return sess
}

// Save writes the session and sets its cookie; MaxAge < 0 revokes it. A
// signed-in session is written to the database; a signed-out one only to
// its cookie. Sign-in must go through renew, which issues a new id.
func (ss *SessionStore) Save(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	opts := *sess.Options
	opts.Secure = isHTTPS(r)
	if opts.MaxAge < 0 {
		if sess.ID != "" {
			if err := ss.st.DeleteSession(r.Context(), account.SessionID(sess.ID)); err != nil {
				return err
			}
		}
		setCookie(w, sessions.NewCookie(sess.Name(), "", &opts))
		return nil
	}
	data, err := encodeValues(sess.Values)
	if err != nil {
		return err
	}
	now := ss.now()
	if sess.ID != "" {
		err := ss.st.UpdateSession(r.Context(), account.Session{ID: account.SessionID(sess.ID), Data: data, LastSeenAt: now})
		switch {
		case errors.Is(err, account.ErrNotFound):
			// The session was ended meanwhile (sign-out, password change or
			// account deletion elsewhere). It stays ended: what this request
			// wanted to keep goes into a signed-out session.
			delete(sess.Values, keyUserID)
			sess.ID = ""
		case err != nil:
			return err
		}
	}
	payload := []byte(sess.ID)
	if sess.ID == "" {
		if uid := sessionUserID(sess); uid != 0 {
			id, err := account.NewSessionID()
			if err != nil {
				return err
			}
			if err := ss.st.CreateSession(r.Context(), account.Session{ID: id, UserID: uid, Data: data, CreatedAt: now, LastSeenAt: now}); err != nil {
				return err
			}
			sess.ID = string(id)
			payload = []byte(id)
		} else {
			if payload, err = ss.anonymousPayload(sess); err != nil {
				return err
			}
		}
	}
	sess.IsNew = false
	encoded, err := ss.codec.Encode(sess.Name(), payload)
	if err != nil {
		return fmt.Errorf("encode session cookie: %w", err)
	}
	setCookie(w, sessions.NewCookie(sess.Name(), encoded, &opts))
	return nil
}

// setCookie sets c, replacing a cookie of the same name that this response
// already set (a request may save its session more than once).
func setCookie(w http.ResponseWriter, c *http.Cookie) {
	h := w.Header()
	kept := h.Values("Set-Cookie")[:0:0]
	for _, v := range h.Values("Set-Cookie") {
		if !strings.HasPrefix(v, c.Name+"=") {
			kept = append(kept, v)
		}
	}
	h.Del("Set-Cookie")
	for _, v := range kept {
		h.Add("Set-Cookie", v)
	}
	http.SetCookie(w, c)
}

// anonymousPayload is what a signed-out session's cookie carries: its
// values as JSON, with a random id for its CSRF token.
func (ss *SessionStore) anonymousPayload(sess *sessions.Session) ([]byte, error) {
	if anon, _ := sess.Values[keyAnon].(string); anon == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("new visitor id: %w", err)
		}
		sess.Values[keyAnon] = base64.RawURLEncoding.EncodeToString(b[:])
	}
	data, err := encodeValues(sess.Values)
	if err != nil {
		return nil, err
	}
	return data, nil
}

// encodeValues stores everything but the user id, which has its own
// column, and the per-request marker of an ended session.
func encodeValues(values map[any]any) ([]byte, error) {
	out := make(map[string]any, len(values))
	for k, v := range values {
		if ks, ok := k.(string); ok && ks != keyUserID && ks != keyEnded {
			out[ks] = v
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode session: %w", err)
	}
	return b, nil
}

// renew replaces the session with a fresh one for userID (0 for signed
// out): the old id is revoked and a new id issued, so an id planted before
// sign-in is worthless after it.
func (ss *SessionStore) renew(r *http.Request, w http.ResponseWriter, sess *sessions.Session, userID int64) error {
	if sess.ID != "" {
		if err := ss.st.DeleteSession(r.Context(), account.SessionID(sess.ID)); err != nil {
			return err
		}
	}
	sess.ID, sess.IsNew = "", true
	sess.Values = map[any]any{}
	if userID != 0 {
		sess.Values[keyUserID] = userID
	}
	return ss.Save(r, w, sess)
}

// csrfToken is bound to the session: an HMAC of a signed-in session's id,
// or of a signed-out visitor's random id.
func (ss *SessionStore) csrfToken(sess *sessions.Session) string {
	subject := sess.ID
	if subject == "" {
		anon, _ := sess.Values[keyAnon].(string)
		if anon == "" {
			return ""
		}
		subject = "anon:" + anon
	}
	h := hmac.New(sha256.New, ss.csrfKey)
	h.Write([]byte(subject))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

func (ss *SessionStore) validCSRF(sess *sessions.Session, token string) bool {
	want := ss.csrfToken(sess)
	return want != "" && hmac.Equal([]byte(want), []byte(token))
}

func isHTTPS(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
}

// sessionUserID is the signed-in user's id, or 0.
func sessionUserID(sess *sessions.Session) int64 {
	switch v := sess.Values[keyUserID].(type) {
	case int64:
		return v
	case float64:
		return int64(v)
	}
	return 0
}

// addFlash queues a message for the next page the session sees.
func addFlash(sess *sessions.Session, f templates.Flash) {
	list := flashesOf(sess)
	sess.Values[keyFlash] = append(list, string(f.Kind)+"\x1f"+f.Message)
}

func flashesOf(sess *sessions.Session) []string {
	switch v := sess.Values[keyFlash].(type) {
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
