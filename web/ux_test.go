package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestSignupRefusesTextDirectionControls: a name with U+202E would show
// reversed wherever it appears; sign-up refuses it with a message, as the
// label and profile name forms do.
func TestSignupRefusesTextDirectionControls(t *testing.T) {
	e := newTestEnv(t)
	b := e.browser()
	b.get("/signup")
	r := b.post("/signup", url.Values{"email": {"rtl@example.com"}, "password": {"longenough"}, "name": {"\u202eecarG"}})
	expectStatus(t, r, http.StatusUnprocessableEntity)
	if msg := r.doc(t).Find(`[data-testid="error-name"]`).Text(); !strings.Contains(msg, "text-direction") {
		t.Fatalf("name error %q", msg)
	}
	if _, err := e.store.UserByEmail(context.Background(), "rtl@example.com"); err == nil {
		t.Fatal("account created despite the error")
	}
}
