package web

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// FuzzDecodeRenderRequest feeds arbitrary bodies to the API's JSON decoding
// and job building, as both endpoints: they never panic, every refusal is a
// 4xx with a short, valid-UTF-8 message, and every job they accept is within
// SPEC §4's bounds. Run longer with
// go test -run '^$' -fuzz FuzzDecodeRenderRequest ./web/
func FuzzDecodeRenderRequest(f *testing.F) {
	fields := []string{"url", "html", "width", "height", "full_page", "format", "quality", "delay_ms", "device_scale_factor"}
	for _, field := range fields {
		for _, v := range hostileJSON {
			if len(v.value) > 1000 {
				continue // the fuzzer grows its own
			}
			f.Add([]byte(fmt.Sprintf(`{"html": "x", %q: %s}`, field, v.value)), false)
			f.Add([]byte(fmt.Sprintf(`{"url": "https://example.com", %q: %s}`, field, v.value)), true)
		}
	}
	for _, body := range []string{
		`{"url": "https://example.com", "width": 1280, "height": 720, "full_page": false, "format": "png", "quality": 80, "delay_ms": 0, "device_scale_factor": 1}`,
		`{"html": "<h1>x</h1>", "format": "WEBP", "quality": 100, "device_scale_factor": 3, "delay_ms": 10000, "width": 3840, "height": 100}`,
		`{"url": "http://[::1]:8080/x?y#z"}`, `{"url": "https://a.example", "url": "https://b.example"}`,
		`{"html": "x", "format": "jpg"}`, `{"url": " https://example.com "}`, `{"url": "HTTPS://EXAMPLE.COM"}`,
		`{"html": "x", "device_scale_factor": 1.0000001}`, `{"html": "x", "device_scale_factor": 2.9999999999999999}`,
		`{"html": "x", "width": 100.0}`, `{"html": "x", "width": 3840e0}`, `{"html": "x", "quality": 0}`,
		`[]`, `null`, `{}`, ``, `{"html": "x"} {}`, "\ufeff{}", `{"html": null, "url": null}`,
	} {
		f.Add([]byte(body), true)
		f.Add([]byte(body), false)
	}
	e := echo.New()
	f.Fuzz(func(t *testing.T, body []byte, wantURL bool) {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/screenshots", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		c := e.NewContext(req, httptest.NewRecorder())
		rr, err := decodeRenderRequest(c)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		job, err := rr.job(wantURL)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if msg := outOfBounds(job); msg != "" {
			t.Fatalf("accepted an out-of-range job (%s): %+v from %q", msg, job.Options, body)
		}
		if wantURL && (job.URL == "" || job.HTML != "") || !wantURL && (job.HTML == "" || job.URL != "") {
			t.Fatalf("job for the wrong endpoint: url %q html %.40q", job.URL, job.HTML)
		}
		if wantURL && checkURLShape(job.URL) != nil {
			t.Fatalf("accepted a URL its own check refuses: %q", job.URL)
		}
	})
}

// checkRefusal asserts that err is one of the API's 4xx answers with a
// message fit for the client and the log.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	var he *httpError
	if !errors.As(err, &he) {
		t.Fatalf("refusal %v is not an httpError (it would answer 500)", err)
	}
	if he.Status < 400 || he.Status >= 500 || he.Code == "" {
		t.Fatalf("refusal %d %q", he.Status, he.Code)
	}
	if he.Message == "" || len(he.Message) > 300 || !utf8.ValidString(he.Message) {
		t.Fatalf("refusal message %.300q", he.Message)
	}
	for _, r := range he.Message {
		if unicode.IsControl(r) {
			t.Fatalf("control character in the message %q", he.Message)
		}
	}
}

// FuzzFormText checks the one-line text rule every dashboard field uses
// (names, labels, coupon codes): what it accepts is the trimmed input,
// valid UTF-8, free of control characters and line breaks, and within the
// limit; what it refuses comes with a message naming the field.
func FuzzFormText(f *testing.F) {
	for _, p := range hostilePayloads {
		f.Add(p.value, 64)
	}
	f.Add(" Ada Lovelace ", 100)
	f.Add("\u00a0x\u00a0", 3)
	f.Add("\u202eevil\u202c label", 64)
	f.Fuzz(func(t *testing.T, value string, max int) {
		if max < 0 || max > 1000 {
			return
		}
		got, msg := cleanText("Label", value, max)
		if msg != "" {
			if got != "" || !strings.Contains(msg, "Label") {
				t.Fatalf("refusal returned %q with message %q", got, msg)
			}
			return
		}
		if got != strings.TrimSpace(value) || !utf8.ValidString(got) || utf8.RuneCountInString(got) > max {
			t.Fatalf("accepted %q as %q (max %d)", value, got, max)
		}
		for _, r := range got {
			if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || bidiControl(r) {
				t.Fatalf("accepted a control character in %q", got)
			}
		}
	})
}
