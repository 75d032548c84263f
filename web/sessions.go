package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"github.com/peekshot/peekshot/store"
	"github.com/peekshot/peekshot/templates"
)

// sessionCookie names the cookie that carries the session id.
const sessionCookie = "peekshot_session"

// Session value keys.
const (
	keyUserID = "uid"
	keyFlash  = "flash"
	keyReveal = "reveal"
)

// touchEvery limits last-seen writes to one a minute per session.
const touchEvery = time.Minute

// SessionStore is a gorilla/sessions Store backed by the sessions table: the
// cookie carries only a signed random id, so the server can revoke any
// session, and a replayed cookie of a revoked session is refused.
type SessionStore struct {
	st       *store.Store
	codec    securecookie.Codec
	csrfKey  []byte
	idle     time.Duration
	lifetime time.Duration
	now      func() time.Time
}

func newSessionStore(st *store.Store, cfg Config) *SessionStore {
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

// New loads the session named by the request's cookie, or starts a new,
// unsaved one when there is no cookie or it names no live session. Only a
// database failure is an error.
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
	id := store.SessionID(raw)
	row, err := ss.st.SessionByID(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
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
	if row.UserID != 0 {
		sess.Values[keyUserID] = row.UserID
	} else {
		delete(sess.Values, keyUserID)
	}
	sess.ID, sess.IsNew = string(id), false
	if now.Sub(row.LastSeenAt) >= touchEvery {
		err := ss.st.UpdateSession(r.Context(), store.Session{ID: id, Data: row.Data, LastSeenAt: now})
		if errors.Is(err, store.ErrNotFound) {
			return ss.fresh(name), nil // revoked meanwhile
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

// Save writes the session and sets its cookie; MaxAge < 0 revokes it.
// The user id lives in its own column, so sign-in must go through renew.
func (ss *SessionStore) Save(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	opts := *sess.Options
	opts.Secure = isHTTPS(r)
	if opts.MaxAge < 0 {
		if sess.ID != "" {
			if err := ss.st.DeleteSession(r.Context(), store.SessionID(sess.ID)); err != nil {
				return err
			}
		}
		http.SetCookie(w, sessions.NewCookie(sess.Name(), "", &opts))
		return nil
	}
	data, err := encodeValues(sess.Values)
	if err != nil {
		return err
	}
	now := ss.now()
	if sess.ID != "" {
		err := ss.st.UpdateSession(r.Context(), store.Session{ID: store.SessionID(sess.ID), Data: data, LastSeenAt: now})
		switch {
		case errors.Is(err, store.ErrNotFound):
			// The session was ended meanwhile (sign-out, password change or
			// account deletion elsewhere). It stays ended: what this request
			// wanted to keep goes into a new, signed-out session.
			delete(sess.Values, keyUserID)
			sess.ID = ""
		case err != nil:
			return err
		}
	}
	if sess.ID == "" {
		id, err := store.NewSessionID()
		if err != nil {
			return err
		}
		uid, _ := sess.Values[keyUserID].(int64)
		if err := ss.st.CreateSession(r.Context(), store.Session{ID: id, UserID: uid, Data: data, CreatedAt: now, LastSeenAt: now}); err != nil {
			return err
		}
		sess.ID, sess.IsNew = string(id), false
	}
	encoded, err := ss.codec.Encode(sess.Name(), []byte(sess.ID))
	if err != nil {
		return fmt.Errorf("encode session cookie: %w", err)
	}
	http.SetCookie(w, sessions.NewCookie(sess.Name(), encoded, &opts))
	return nil
}

// encodeValues stores everything but the user id, which has its own column.
func encodeValues(values map[any]any) ([]byte, error) {
	out := make(map[string]any, len(values))
	for k, v := range values {
		if ks, ok := k.(string); ok && ks != keyUserID {
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
		if err := ss.st.DeleteSession(r.Context(), store.SessionID(sess.ID)); err != nil {
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

// csrfToken is bound to the session: an HMAC of its id.
func (ss *SessionStore) csrfToken(sess *sessions.Session) string {
	if sess.ID == "" {
		return ""
	}
	h := hmac.New(sha256.New, ss.csrfKey)
	h.Write([]byte(sess.ID))
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
