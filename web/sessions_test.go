package web

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/templates"
)

// A session ended by another request while this one runs stays ended:
// saving it starts a signed-out session (in its cookie only) that keeps
// the data.
func TestSaveOfEndedSessionStartsSignedOutOne(t *testing.T) {
	e := newTestEnv(t)
	b, email := e.signUp()
	u, _ := e.store.UserByEmail(context.Background(), email)

	req := httptest.NewRequest(http.MethodGet, "/account/profile", nil)
	for _, c := range b.c.Jar.Cookies(mustURL(e.http.URL)) {
		req.AddCookie(c)
	}
	ss := e.srv.sessions
	sess, err := ss.Get(req, sessionCookie)
	if err != nil || sessionUserID(sess) != u.ID {
		t.Fatalf("load: uid %d, %v", sessionUserID(sess), err)
	}
	old := sess.ID
	if err := e.store.DeleteSession(context.Background(), account.SessionID(old)); err != nil {
		t.Fatal(err)
	}
	addFlash(sess, templates.Flash{Kind: templates.FlashInfo, Message: "kept"})
	w := httptest.NewRecorder()
	if err := sess.Save(req, w); err != nil {
		t.Fatalf("save of an ended session: %v", err)
	}
	if sess.ID != "" {
		t.Fatal("the ended session was saved as a signed-in one")
	}
	if _, err := e.store.SessionByID(context.Background(), account.SessionID(old)); !errors.Is(err, account.ErrNotFound) {
		t.Fatal("the ended session came back")
	}
	if n, _ := e.store.UserSessionCount(context.Background(), u.ID); n != 0 {
		t.Fatalf("%d sessions of the user after its session ended", n)
	}
	if len(w.Result().Cookies()) != 1 {
		t.Fatal("no cookie for the new session")
	}
	replay := httptest.NewRequest(http.MethodGet, "/", nil)
	replay.AddCookie(w.Result().Cookies()[0])
	again, err := ss.New(replay, sessionCookie)
	if err != nil || sessionUserID(again) != 0 || len(flashesOf(again)) != 1 {
		t.Fatalf("reloaded: uid %d flashes %v err %v", sessionUserID(again), flashesOf(again), err)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
