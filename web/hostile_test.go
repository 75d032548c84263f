package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/capture"
)

// hostilePayloads are what an attacker or a broken client types into any
// field.
var hostilePayloads = []struct{ name, value string }{
	{"SQLInjection", "' OR '1'='1' --"},
	{"SQLDropTable", "x'); DROP TABLE users; --"},
	{"ScriptTag", "<script>alert(1)</script>"},
	{"AttributeBreakout", `"><img src=x onerror=alert(1)>`},
	{"TemplateSyntax", "{{.}}${7*7}<%= 7*7 %>"},
	{"Overlong", strings.Repeat("A", 5000)},
	{"OverlongMultibyte", strings.Repeat("é", 3000)},
	{"InvalidUTF8", "\xff\xfe\xfd"},
	{"NUL", "abc\x00defghij"},
	{"ControlChars", "abc\x1b[31mdef\x07ghi"},
	{"CRLFInjection", "abc\r\nSet-Cookie: evil=1"},
	{"LineSeparator", "abc\u2028defghij"},
	{"BidiOverride", "abc\u202edcba-long"},
	{"HugeNumber", "99999999999999999999999999"},
	{"Negative", "-1"},
	{"Empty", ""},
	{"Whitespace", "   \t   "},
	{"Emoji", "🔑🔥"},
	{"PathTraversal", "../../../etc/passwd"},
}

// alwaysRefused are the payloads no single-line text field may store.
var alwaysRefused = map[string]bool{
	"Overlong": true, "OverlongMultibyte": true, "InvalidUTF8": true, "NUL": true,
	"ControlChars": true, "CRLFInjection": true, "LineSeparator": true,
}

// refusalMessage is the message a refused form shows: a field error, the
// form's callout, a toast or the error page.
func refusalMessage(t *testing.T, r response) string {
	t.Helper()
	d := r.doc(t)
	return strings.TrimSpace(d.Find(`.field-error, .callout-error, [data-testid="toast"], [data-testid="error-page"] p`).Text())
}

// formField is one field of one dashboard form.
type formField struct {
	name string
	// send submits the form with value in the field and valid values in
	// the others, as b (signed in as email). It returns the response and
	// the browser and account to check afterwards (a sign-up makes new ones).
	send func(b *browser, email, value string) (response, *browser, string)
	// accepts says whether the field must accept value; nil: it accepts
	// no hostile value (it takes one of a few values, or must match an
	// account, a key or a coupon).
	accepts func(value string) bool
	// stored is what the database holds for the field after an accepted
	// submission, for fields that store what was typed.
	stored func(t *testing.T, e *testEnv, email string) string
	// show is a page that displays the stored value.
	show string
	// ownUser gives every payload a fresh account (the field changes what
	// later payloads need).
	ownUser bool
}

const hostilePassword = "correct horse battery"

// textAccepts is the rule for one-line text (names, labels): valid UTF-8,
// no control characters, line breaks or text-direction controls, at most
// max characters once trimmed.
func textAccepts(max int) func(string) bool {
	return func(v string) bool {
		if !utf8.ValidString(v) {
			return false
		}
		v = strings.TrimSpace(v)
		for _, r := range v {
			if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || bidiControl(r) {
				return false
			}
		}
		return utf8.RuneCountInString(v) <= max
	}
}

// passwordAccepts is the rule for new passwords: valid UTF-8 without NUL,
// 8 characters to 1024 bytes.
func passwordAccepts(v string) bool {
	return utf8.ValidString(v) && !strings.ContainsRune(v, 0) && utf8.RuneCountInString(v) >= 8 && len(v) <= 1024
}

// TestHostileFormInput sends every hostile payload to every form field of
// the dashboard, as a plain form and (where htmx posts it) as htmx: a value
// the field must refuse gets a clear 4xx message and changes nothing; a
// value it must accept (SQL, markup and emoji are text like any other) is
// stored exactly as typed, trimmed, and shown escaped. Nothing answers 5xx,
// and no response runs the payload.
func TestHostileFormInput(t *testing.T) {
	e := newTestEnv(t, withConfig(func(c *Config) { c.LoginFailureLimit = 1_000_000 }))
	e.coupon(account.NewCoupon{Code: "REAL", Credits: 5})
	nameOf := func(t *testing.T, e *testEnv, email string) string { return userOf(t, e, email).Name }
	newestLabel := func(t *testing.T, e *testEnv, email string) string {
		keys := userKeys(t, e, email)
		if len(keys) == 0 {
			t.Fatal("no key")
		}
		return keys[0].Label
	}
	keyPaths := map[*browser]string{}
	ownKey := func(b *browser) string {
		if keyPaths[b] == "" {
			_, id := createKeyHTMX(t, b, "target")
			keyPaths[b] = "/account/api-keys/" + strconv.Itoa(int(id))
		}
		return keyPaths[b]
	}
	signup := func(form url.Values) (response, *browser, string) {
		nb := e.browser()
		nb.get("/signup")
		return nb.post("/signup", form), nb, form.Get("email")
	}
	fresh := func() url.Values {
		return url.Values{"email": {uniqueEmail()}, "password": {hostilePassword}, "name": {"Fresh"}}
	}
	same := func(r response, b *browser, email string) (response, *browser, string) { return r, b, email }
	fields := []formField{
		{name: "signup/email", send: func(_ *browser, _, v string) (response, *browser, string) {
			f := fresh()
			f.Set("email", v)
			return signup(f)
		}},
		{name: "signup/name", accepts: textAccepts(maxNameLen), stored: nameOf, show: "/account/profile",
			send: func(_ *browser, _, v string) (response, *browser, string) {
				f := fresh()
				f.Set("name", v)
				return signup(f)
			}},
		{name: "signup/password", accepts: passwordAccepts, send: func(_ *browser, _, v string) (response, *browser, string) {
			f := fresh()
			f.Set("password", v)
			return signup(f)
		}},
		{name: "login/email", send: func(b *browser, email, v string) (response, *browser, string) {
			nb := e.browser()
			nb.get("/login")
			return same(nb.post("/login", url.Values{"email": {v}, "password": {hostilePassword}}), b, email)
		}},
		{name: "login/password", send: func(b *browser, email, v string) (response, *browser, string) {
			nb := e.browser()
			nb.get("/login")
			return same(nb.post("/login", url.Values{"email": {email}, "password": {v}}), b, email)
		}},
		{name: "api-keys/label", accepts: textAccepts(maxLabelLen), stored: newestLabel, show: "/account/api-keys",
			send: func(b *browser, email, v string) (response, *browser, string) {
				return same(b.post("/account/api-keys", url.Values{"label": {v}}), b, email)
			}},
		{name: "api-keys/label (htmx)", accepts: textAccepts(maxLabelLen), stored: newestLabel, show: "/account/api-keys",
			send: func(b *browser, email, v string) (response, *browser, string) {
				return same(b.htmx(http.MethodPost, "/account/api-keys", url.Values{"label": {v}}), b, email)
			}},
		{name: "rotate/grace", send: func(b *browser, email, v string) (response, *browser, string) {
			return same(b.post(ownKey(b)+"/rotate", url.Values{"grace": {v}}), b, email)
		}},
		{name: "api-keys/id", send: func(b *browser, email, v string) (response, *browser, string) {
			return same(b.post("/account/api-keys/"+url.PathEscape(v)+"/deactivate", nil), b, email)
		}},
		{name: "profile/name", accepts: textAccepts(maxNameLen), stored: nameOf, show: "/account/profile",
			send: func(b *browser, email, v string) (response, *browser, string) {
				return same(b.post("/account/profile", url.Values{"name": {v}}), b, email)
			}},
		{name: "profile/name (htmx)", accepts: textAccepts(maxNameLen), stored: nameOf, show: "/account/profile",
			send: func(b *browser, email, v string) (response, *browser, string) {
				return same(b.htmx(http.MethodPost, "/account/profile", url.Values{"name": {v}}), b, email)
			}},
		{name: "password/current_password", send: func(b *browser, email, v string) (response, *browser, string) {
			return same(b.post("/account/password", url.Values{"current_password": {v}, "new_password": {"a new long password"}}), b, email)
		}},
		{name: "password/new_password", accepts: passwordAccepts, ownUser: true, send: func(b *browser, email, v string) (response, *browser, string) {
			return same(b.post("/account/password", url.Values{"current_password": {hostilePassword}, "new_password": {v}}), b, email)
		}},
		{name: "delete/password", send: func(b *browser, email, v string) (response, *browser, string) {
			return same(b.post("/account/delete", url.Values{"password": {v}}), b, email)
		}},
		{name: "coupons/code", send: func(b *browser, email, v string) (response, *browser, string) {
			return same(b.post("/account/coupons/redeem", url.Values{"code": {v}}), b, email)
		}},
		{name: "coupons/code (htmx)", send: func(b *browser, email, v string) (response, *browser, string) {
			return same(b.htmx(http.MethodPost, "/account/coupons/redeem", url.Values{"code": {v}}), b, email)
		}},
		{name: "any form/_csrf", send: func(b *browser, email, v string) (response, *browser, string) {
			return same(b.post("/account/profile", url.Values{"_csrf": {v}, "name": {"Changed by a forged token"}}), b, email)
		}},
	}

	for _, f := range fields {
		t.Run(strings.ReplaceAll(f.name, "/", ":"), func(t *testing.T) {
			shared, sharedEmail := e.signUp()
			if f.name == "rotate/grace" {
				ownKey(shared)
			}
			for _, p := range hostilePayloads {
				t.Run(p.name, func(t *testing.T) {
					b, email := shared, sharedEmail
					if f.ownUser {
						b, email = e.signUp()
					}
					before := readState(t, e)
					r, b, email := f.send(b, email, p.value)
					if r.StatusCode >= 500 {
						t.Fatalf("%d for a hostile %s\n%.1500s", r.StatusCode, f.name, r.body)
					}
					if strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") && r.body != "" {
						checkNoInlineCode(t, "response", r)
					}
					accept := f.accepts != nil && f.accepts(p.value)
					switch {
					case r.StatusCode >= 400:
						if accept {
							t.Fatalf("refused (%d) a value it must accept\n%.1500s", r.StatusCode, r.body)
						}
						if msg := refusalMessage(t, r); msg == "" {
							t.Fatalf("refused with %d but no message\n%.1500s", r.StatusCode, r.body)
						}
						// Opening the form starts a visitor's session; nothing else may change.
						if after := readState(t, e); after.signedIn() != before.signedIn() {
							t.Fatalf("refused with %d but the database changed:\nbefore %+v\nafter  %+v", r.StatusCode, before, after)
						}
					case !accept:
						t.Fatalf("accepted (%d) a value it must refuse\n%.1500s", r.StatusCode, r.body)
					default:
						if f.stored != nil {
							if got, want := f.stored(t, e, email), strings.TrimSpace(p.value); got != want {
								t.Fatalf("stored %q, typed %q", got, want)
							}
						}
						if f.show != "" {
							page := b.get(f.show)
							expectStatus(t, page, http.StatusOK)
							checkNoInlineCode(t, f.show, page)
						}
					}
				})
			}
		})
	}
}

// signedIn is the state without visitors' sessions.
func (s dbState) signedIn() dbState { s.Sessions = 0; return s }

// boundsRenderer is a fake renderer that fails the test when a job that
// reaches it is out of SPEC §4's bounds: the web layer must refuse those.
type boundsRenderer struct{ t *testing.T }

func (b boundsRenderer) Render(_ context.Context, job capture.Job) (capture.Image, error) {
	if msg := outOfBounds(job); msg != "" {
		b.t.Errorf("an out-of-range job reached the renderer: %s (%+v)", msg, job.Options)
	}
	return capture.Image{Data: []byte("\x89PNG fake"), ContentType: "image/png", Width: job.Options.Width, Height: job.Options.Height}, nil
}

// outOfBounds says what is wrong with a job the API accepted, or "".
func outOfBounds(job capture.Job) string {
	o := job.Options
	switch {
	case (job.URL == "") == (job.HTML == ""):
		return "exactly one of url and html"
	case job.URL != "" && !strings.HasPrefix(strings.ToLower(job.URL), "http://") && !strings.HasPrefix(strings.ToLower(job.URL), "https://"):
		return "url scheme"
	case o.Width < capture.MinViewport || o.Width > capture.MaxViewport:
		return "width"
	case o.Height < capture.MinViewport || o.Height > capture.MaxViewport:
		return "height"
	case o.Quality < 1 || o.Quality > 100:
		return "quality"
	case o.DelayMS < 0 || o.DelayMS > capture.MaxDelayMS:
		return "delay_ms"
	case !(o.DeviceScaleFactor >= capture.MinDeviceScale && o.DeviceScaleFactor <= capture.MaxDeviceScale):
		return "device_scale_factor"
	case o.Format != capture.FormatPNG && o.Format != capture.FormatJPEG && o.Format != capture.FormatWebP:
		return "format"
	}
	return ""
}

// hostileJSON are hostile values for any JSON field.
var hostileJSON = []struct{ name, value string }{
	{"SQLInjection", `"' OR '1'='1' --"`},
	{"ScriptTag", `"<script>alert(1)</script>"`},
	{"Overlong", `"` + strings.Repeat("A", 100_000) + `"`},
	{"EscapedNUL", `"a\u0000b"`},
	{"RawNUL", "\"a\x00b\""},
	{"InvalidUTF8", "\"\xff\xfe\""},
	{"LoneSurrogate", `"\ud800"`},
	{"HugeInteger", `99999999999999999999999`},
	{"HugeFloat", `1e400`},
	{"Negative", `-1`},
	{"NegativeZero", `-0`},
	{"Zero", `0`},
	{"Fraction", `1.5`},
	{"Exponent", `1e2`},
	{"NaN", `NaN`},
	{"Infinity", `Infinity`},
	{"NumberAsString", `"800"`},
	{"Bool", `true`},
	{"Null", `null`},
	{"Object", `{"a": 1}`},
	{"Array", `[1, 2]`},
	{"EmptyString", `""`},
	{"Whitespace", `"   "`},
	{"DeepNesting", strings.Repeat("[", 20_000) + strings.Repeat("]", 20_000)},
}

// TestHostileAPIInput sends every hostile value in every field of the
// render API, and hostile bodies: each is refused with 400 (or 413/415)
// and a message that names what is wrong, costing nothing, or is a valid
// request rendered within bounds for one credit. Nothing answers 5xx.
func TestHostileAPIInput(t *testing.T) {
	e := newTestEnv(t, withRenderer(boundsRenderer{t}), withConfig(func(c *Config) { c.RateLimit = 1_000_000 }))
	b, email := e.signUp()
	key, _ := createKeyHTMX(t, b, "hostile")
	u := userOf(t, e, email)
	e.coupon(account.NewCoupon{Code: "LOTS", Credits: 100_000})
	if _, _, err := e.store.RedeemCoupon(context.Background(), u.ID, "LOTS"); err != nil {
		t.Fatal(err)
	}
	balance := func() int64 { return userOf(t, e, email).Credits }
	ledger := func() int {
		l, _ := e.store.Ledger(context.Background(), u.ID)
		return len(l)
	}
	call := func(t *testing.T, path, body, field string, nameField bool) {
		t.Helper()
		credits, rows := balance(), ledger()
		r := e.apiCall("POST", path, key, body)
		switch {
		case r.StatusCode == http.StatusOK:
			if balance() != credits-1 || ledger() != rows+1 {
				t.Fatalf("a render cost %d credits and %d ledger rows", credits-balance(), ledger()-rows)
			}
		case r.StatusCode >= 500:
			t.Fatalf("%d\n%.500s", r.StatusCode, r.body)
		default:
			res := expectAPIError(t, r, r.StatusCode, map[int]string{400: "invalid_request", 413: "payload_too_large", 415: "unsupported_media_type"}[r.StatusCode])
			if nameField && !strings.Contains(res.Error.Message, field) {
				t.Fatalf("message %q does not name %s", res.Error.Message, field)
			}
			// Messages are logged: they never echo a flood of the body.
			if len(res.Error.Message) > 300 {
				t.Fatalf("a %d-byte error message: %.100q…", len(res.Error.Message), res.Error.Message)
			}
			if balance() != credits || ledger() != rows {
				t.Fatal("a refused request cost credits")
			}
		}
	}
	fields := []string{"url", "html", "width", "height", "full_page", "format", "quality", "delay_ms", "device_scale_factor"}
	for _, field := range fields {
		t.Run(field, func(t *testing.T) {
			for _, v := range hostileJSON {
				t.Run(v.name, func(t *testing.T) {
					path, base := "/api/v1/html-to-image", `"html": "<p>x</p>"`
					switch field {
					case "url":
						path, base = "/api/v1/screenshots", ""
					case "html":
						base = ""
					}
					body := "{" + base
					if base != "" {
						body += ", "
					}
					body += fmt.Sprintf("%q: %s}", field, v.value)
					call(t, path, body, field, true)
				})
			}
		})
	}
	t.Run("Bodies", func(t *testing.T) {
		for _, tc := range []struct{ name, body string }{
			{"DuplicateURL", `{"url": "https://a.example", "url": "https://b.example"}`},
			{"DuplicateWidth", `{"html": "x", "width": 500, "width": 99999}`},
			{"DuplicateEscaped", `{"html": "x", "width": 500, "w\u0069dth": 600}`},
			{"CaseVariant", `{"html": "x", "HTML": "y"}`},
			{"UnknownField", `{"html": "x", "callback": "evil"}`},
			{"NestedUnknown", `{"html": "x", "extra": {"deep": [1, 2, {"x": null}]}}`},
			{"TopLevelArray", `[{"html": "x"}]`},
			{"TopLevelString", `"html"`},
			{"TopLevelNumber", `42`},
			{"TopLevelNull", `null`},
			{"EmptyObject", `{}`},
			{"TwoObjects", `{"html": "x"}{"html": "y"}`},
			{"TrailingGarbage", `{"html": "x"} trailing`},
			{"ByteOrderMark", "\ufeff{\"html\": \"x\"}"},
			{"Truncated", `{"html": "x`},
			{"OnlyWhitespace", "   \n\t  "},
			{"LongKey", `{"` + strings.Repeat("k", 100_000) + `": 1}`},
			{"ManyKeys", "{" + strings.Repeat(`"html": "x", `, 10_000) + `"html": "y"}`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				call(t, "/api/v1/html-to-image", tc.body, "", false)
			})
		}
		t.Run("TooLarge", func(t *testing.T) {
			r := e.apiCall("POST", "/api/v1/html-to-image", key, `{"html": "`+strings.Repeat("x", maxAPIBody)+`"}`)
			expectAPIError(t, r, http.StatusRequestEntityTooLarge, "payload_too_large")
		})
		t.Run("NotJSON", func(t *testing.T) {
			r := e.apiCall("POST", "/api/v1/html-to-image", key, `{"html": "x"}`, "Content-Type", "text/html")
			expectAPIError(t, r, http.StatusUnsupportedMediaType, "unsupported_media_type")
		})
	})
	if bad, _ := e.store.LedgerMismatches(context.Background()); len(bad) > 0 {
		t.Fatalf("ledger mismatches %v", bad)
	}
}
