package web

import (
	"container/list"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/capture"
	"github.com/peekshot/peekshot/signedlink"
)

// Signed links (SPEC §8): GET /api/v1/screenshots with the POST's fields as
// query parameters, key_id, expires and signature, for an <img src> that
// carries no key. The signature is checked first, then the key's own state
// and policy exactly as for x-api-key (asKey), then the render goes the
// POST's way (renderJob). A link names one image for its lifetime: each
// instance keeps what it rendered for a link in memory (bounded) and
// answers it again, and If-None-Match, free of charge.

// maxSignedQuery bounds a signed link's query string.
const maxSignedQuery = 16 << 10

// ctxSignedLink holds the request's verified link.
const ctxSignedLink = "signed_link"

var (
	errNoSignature = apiErr(http.StatusUnauthorized, "invalid_signature",
		"GET /api/v1/screenshots takes a signed link: key_id, expires and signature in the query, made with the key's signing secret "+
			"(Account → API Keys → the key's page → Signed links). With an API key, use POST /api/v1/screenshots and the x-api-key header.")
	errBadSignature = apiErr(http.StatusUnauthorized, "invalid_signature",
		"This link's signature doesn't match it: the link was changed after it was signed, or signed with another secret than the key's current one. "+
			"Sign it again with the key's signing secret.")
)

// signingSealer seals keys' signing secrets (AES-256-GCM under a key
// derived from the session secret, bound to the key's id), so that the
// store only holds them sealed and every instance that shares the session
// secret can open them to check a link.
type signingSealer struct{ aead cipher.AEAD }

func newSigningSealer(secret []byte) *signingSealer {
	return &signingSealer{aead: newAEAD(secret, "peekshot signing secret")}
}

func keyAD(keyID int64) []byte {
	return binary.BigEndian.AppendUint64([]byte("signing secret of key "), uint64(keyID))
}

func (s *signingSealer) seal(secret string, keyID int64) ([]byte, error) {
	return sealWith(s.aead, []byte(secret), keyAD(keyID))
}

func (s *signingSealer) open(sealed []byte, keyID int64) (string, error) {
	plain, err := openWith(s.aead, sealed, keyAD(keyID))
	if err != nil || !apikey.ValidSigningSecret(string(plain)) {
		return "", errBadSeal
	}
	return string(plain), nil
}

// linkID names a signed link: its key and its signature, which covers
// every parameter under the key's current secret.
type linkID [sha256.Size]byte

// signedLink is a link whose signature checked out.
type signedLink struct {
	id      linkID
	expires time.Time
	params  url.Values // the render's parameters: the query without key_id, expires, signature
}

// requireSignedLink authenticates a request by its link's signature; the
// request is then the key's, as with x-api-key. Until an image says
// otherwise, nothing it answers may be cached.
func (s *Server) requireSignedLink(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "no-store")
		link, k, err := s.verifySignedLink(c)
		if err != nil {
			return s.refuseKey(err)
		}
		c.Set(ctxSignedLink, link)
		return s.asKey(c, k, next)
	}
}

// oneParam is the value of a parameter given exactly once, or "".
func oneParam(q url.Values, name string) string {
	if v := q[name]; len(v) == 1 {
		return v[0]
	}
	return ""
}

// verifySignedLink checks a link: its signature (hmac.Equal) under the
// secret of the key it names, then its expiry. An unknown key, a key
// without a secret and a wrong signature get the same answer.
func (s *Server) verifySignedLink(c echo.Context) (*signedLink, account.APIKey, error) {
	r := c.Request()
	if len(r.URL.RawQuery) > maxSignedQuery {
		return nil, account.APIKey{}, invalidRequest("The link's query string is longer than 16 KiB.")
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, account.APIKey{}, apiErr(http.StatusUnauthorized, "invalid_signature",
			"The link's query string can't be read (a stray % or ;): percent-encode every parameter as RFC 3986 says, then sign it.")
	}
	if keyInQuery(q) {
		return nil, account.APIKey{}, errKeyInURL
	}
	sig, idText, expText := oneParam(q, signedlink.ParamSignature), oneParam(q, signedlink.ParamKeyID), oneParam(q, signedlink.ParamExpires)
	if sig == "" || idText == "" || expText == "" {
		return nil, account.APIKey{}, errNoSignature
	}
	keyID, err1 := strconv.ParseInt(idText, 10, 64)
	exp, err2 := strconv.ParseInt(expText, 10, 64)
	if err1 != nil || err2 != nil || keyID <= 0 {
		return nil, account.APIKey{}, errBadSignature
	}
	sk, err := s.store.SignedLinkKey(r.Context(), keyID)
	if errors.Is(err, account.ErrNotFound) {
		return nil, account.APIKey{}, errBadSignature
	}
	if err != nil {
		return nil, account.APIKey{}, err
	}
	secret, err := s.signing.open(sk.Sealed, keyID)
	if err != nil {
		// Sealed under another session secret: only a new secret helps.
		s.log.Warn("a signing secret does not open (was PEEKSHOT_SESSION_SECRET changed?): its links fail until it is rotated",
			"api_key_id", keyID, "request_id", c.Get(ctxReqID))
		return nil, account.APIKey{}, errBadSignature
	}
	if !signedlink.Valid(secret, q, sig) {
		return nil, account.APIKey{}, errBadSignature
	}
	expires := time.Unix(exp, 0)
	if !s.cfg.Now().Before(expires) {
		return nil, account.APIKey{}, apiErr(http.StatusUnauthorized, "signature_expired", "This link expired on "+
			expires.UTC().Format("2 January 2006 at 15:04:05 UTC")+". Sign a new one with a later expires.")
	}
	link := &signedLink{expires: expires, params: url.Values{}}
	for name, values := range q {
		if name != signedlink.ParamSignature && name != signedlink.ParamKeyID && name != signedlink.ParamExpires {
			link.params[name] = values
		}
	}
	h := sha256.New()
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(keyID)))
	h.Write([]byte(strings.ToLower(sig)))
	h.Sum(link.id[:0])
	return link, sk.Key, nil
}

// signedParams are the render parameters a link may carry: the POST's
// fields for a URL.
var signedParams = []string{"url", "width", "height", "full_page", "format", "quality", "delay_ms", "device_scale_factor"}

// renderRequestFromQuery reads a link's parameters as the POST reads its
// body: strictly, each once, no unknown one.
func renderRequestFromQuery(q url.Values) (renderRequest, error) {
	var req renderRequest
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !slices.Contains(signedParams, name) {
			return req, invalidRequest(fmt.Sprintf("Unknown parameter %s. Valid parameters: %s, key_id, expires and signature.",
				quoteField(name), strings.Join(signedParams, ", ")))
		}
		if len(q[name]) > 1 {
			return req, invalidRequest(fmt.Sprintf("The parameter %s appears more than once.", name))
		}
		v := q[name][0]
		switch name {
		case "url":
			req.URL = &v
		case "format":
			req.Format = &v
		case "full_page":
			b, err := strconv.ParseBool(v)
			if err != nil || v != "true" && v != "false" {
				return req, invalidRequest("full_page must be true or false.")
			}
			req.FullPage = &b
		case "device_scale_factor":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return req, invalidRequest("device_scale_factor must be a number from 1 to 3.")
			}
			req.DeviceScaleFactor = &f
		default:
			n, err := strconv.Atoi(v)
			if err != nil {
				return req, invalidRequest(fmt.Sprintf("%s must be a whole number within its range.", name))
			}
			switch name {
			case "width":
				req.Width = &n
			case "height":
				req.Height = &n
			case "quality":
				req.Quality = &n
			case "delay_ms":
				req.DelayMS = &n
			}
		}
	}
	return req, nil
}

// handleSignedScreenshot answers GET /api/v1/screenshots: the image the
// link names. A second request for the link on this instance, whoever
// makes it, gets the same image from memory and costs nothing; requests
// made while it renders wait for that render rather than paying for
// their own; If-None-Match with the link's ETag answers 304, also free.
// Elsewhere (another instance, or once the image left memory) the link
// renders again, and the store charges it only once in its lifetime.
func (s *Server) handleSignedScreenshot(c echo.Context) error {
	link, _ := c.Get(ctxSignedLink).(*signedLink)
	req, err := renderRequestFromQuery(link.params)
	if err != nil {
		return err
	}
	job, err := req.job(true)
	if err != nil {
		return err
	}
	// The key's allowed sites hold for every answer, also from memory.
	if err := checkTarget(currentKey(c), job); err != nil {
		return err
	}
	if tag, ok := link.matches(c.Request().Header.Get("If-None-Match")); ok {
		link.cacheHeaders(c, tag, s.cfg.Now())
		return c.NoContent(http.StatusNotModified)
	}
	ctx := c.Request().Context()
	for {
		hit, wait := s.images.claim(link.id, s.cfg.Now())
		if hit != nil {
			link.cacheHeaders(c, hit.etag, s.cfg.Now())
			return writeImage(c, hit.img)
		}
		if wait == nil {
			break // this request renders it
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return renderError(ctx.Err())
		}
	}
	var kept *cachedImage
	defer func() { s.images.done(link.id, kept) }()
	r, err := s.renderJob(c, job, &account.PaidLink{ID: link.id, Expires: link.expires})
	if err != nil {
		return err
	}
	kept = &cachedImage{id: link.id, img: r.img, etag: link.etag(r.img.Data), expires: link.expires}
	link.cacheHeaders(c, kept.etag, s.cfg.Now())
	return r.write(c)
}

// etag is a strong entity tag of one image of the link: the link, then
// the image's bytes, so two renders of a link never share one.
func (l *signedLink) etag(data []byte) string {
	sum := sha256.Sum256(data)
	return `"` + hex.EncodeToString(l.id[:8]) + "-" + hex.EncodeToString(sum[:8]) + `"`
}

// matches reports whether If-None-Match names an image of this link (or
// is *): whichever render the client holds, it is what the link shows
// for its lifetime, so it need not be sent again.
func (l *signedLink) matches(header string) (string, bool) {
	prefix := `"` + hex.EncodeToString(l.id[:8]) + "-"
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || strings.HasPrefix(tag, prefix) && len(tag) == len(prefix)+17 && strings.HasSuffix(tag, `"`) {
			return tag, true
		}
	}
	return "", false
}

// cacheHeaders let browsers and shared caches keep the image until the
// link expires (a year at most): anyone with the link may see it anyway.
func (l *signedLink) cacheHeaders(c echo.Context, etag string, now time.Time) {
	age := min(int64(l.expires.Sub(now)/time.Second), 365*24*3600)
	h := c.Response().Header()
	h.Set("Cache-Control", "public, max-age="+strconv.FormatInt(max(age, 0), 10)+", immutable")
	if etag != "*" {
		h.Set("ETag", etag)
	}
}

// imageCache keeps, on one instance, the images rendered for signed links
// until their links expire, in at most max bytes (least recently used go
// first), and lets one request render a link while the others wait for
// it. It is only a cache: another instance renders a link again, and so
// does this one once the image has been pushed out (free: see
// account.PaidLink).
type imageCache struct {
	max, entryMax int64

	mu      sync.Mutex
	used    int64
	entries map[linkID]*list.Element // of *cachedImage
	lru     *list.List               // most recently used first
	flights map[linkID]chan struct{} // links being rendered, closed when done
}

type cachedImage struct {
	id      linkID
	img     capture.Image
	etag    string
	expires time.Time
}

func newImageCache(max int64) *imageCache {
	return &imageCache{max: max, entryMax: max / 4, entries: map[linkID]*list.Element{}, lru: list.New(), flights: map[linkID]chan struct{}{}}
}

// claim returns the link's image if kept; else a channel closed when the
// request rendering it is done; else neither, and the caller renders it
// and must call done.
func (ic *imageCache) claim(id linkID, now time.Time) (*cachedImage, <-chan struct{}) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if el, ok := ic.entries[id]; ok {
		e := el.Value.(*cachedImage)
		if now.Before(e.expires) {
			ic.lru.MoveToFront(el)
			return e, nil
		}
		ic.remove(el)
	}
	if wait, ok := ic.flights[id]; ok {
		return nil, wait
	}
	ic.flights[id] = make(chan struct{})
	return nil, nil
}

// done ends the render claimed for id, keeping its image (nil: it failed)
// when it fits, and wakes the requests waiting for it.
func (ic *imageCache) done(id linkID, img *cachedImage) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if wait, ok := ic.flights[id]; ok {
		close(wait)
		delete(ic.flights, id)
	}
	if img == nil || int64(len(img.img.Data)) > ic.entryMax {
		return
	}
	size := int64(len(img.img.Data))
	if el, ok := ic.entries[id]; ok {
		ic.remove(el)
	}
	for ic.used+size > ic.max && ic.lru.Len() > 0 {
		ic.remove(ic.lru.Back())
	}
	ic.entries[id] = ic.lru.PushFront(img)
	ic.used += size
}

func (ic *imageCache) remove(el *list.Element) {
	e := ic.lru.Remove(el).(*cachedImage)
	delete(ic.entries, e.id)
	ic.used -= int64(len(e.img.Data))
}
