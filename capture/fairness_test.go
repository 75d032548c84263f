package capture

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestOneAccountCannotStarveAnother is issue 9's attack: one account sends
// 18 pages that spin for ever at once. It fills both slots and its own share
// of the queue and is refused beyond that (ErrAccountBusy, for itself only);
// another account's render gets the first slot that frees, before the
// spinning jobs that waited longer, and renders; and the spinning pages are
// stopped when their main thread stops answering, before their deadline.
func TestOneAccountCannotStarveAnother(t *testing.T) {
	const spinner, other = 1, 2
	var (
		mu    sync.Mutex
		pages []string // the pages in the order their jobs first asked for them
	)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if !slices.Contains(pages, r.URL.Path) { // a page may be asked for twice
			pages = append(pages, r.URL.Path)
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html")
		if strings.HasPrefix(r.URL.Path, "/spin") {
			fmt.Fprint(w, `<!doctype html><body><script>while(true){}</script></body>`)
			return
		}
		fmt.Fprint(w, colourPage)
	})
	c, base := newRenderer(t, Config{Concurrency: 2, QueueSize: 16, AccountQueueSize: 4, Timeout: 20 * time.Second, UnresponsiveAfter: time.Second}, mux)

	spun := make(chan error, 18)
	for i := range 18 {
		go func() {
			_, err := c.Render(context.Background(), Job{Account: spinner, URL: fmt.Sprintf("%s/spin-%d", base, i)})
			spun <- err
		}()
	}
	// Two run, four wait, twelve are refused at once.
	var refused []error
	for range 12 {
		refused = append(refused, <-spun)
	}
	for _, err := range refused {
		if !errors.Is(err, ErrAccountBusy) {
			t.Fatalf("a job beyond the account's share: err = %v, want ErrAccountBusy", err)
		}
	}
	// The two running jobs have their pages.
	if !waitFor(5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		s := c.Stats()
		return s.Running == 2 && s.Waiting == 4 && len(pages) == 2
	}) {
		t.Fatalf("stats %+v, %d pages asked for; want 2 running, 4 waiting, 2 pages", c.Stats(), len(pages))
	}

	mu.Lock()
	before := len(pages)
	mu.Unlock()
	otherDone := make(chan error, 1)
	go func() {
		img, err := c.Render(context.Background(), Job{Account: other, URL: base + "/other", Options: Options{Width: 100, Height: 100}})
		if err == nil {
			wantColor(t, decode(t, img), 10, 10, blue, 0)
		}
		otherDone <- err
	}()
	if err := <-otherDone; err != nil {
		t.Fatalf("the other account's render: %v", err)
	}
	mu.Lock()
	next := pages[before:]
	mu.Unlock()
	// The two spinning jobs may end at the same moment, and then one slot
	// goes to the other account and one to the next spinning job: at most
	// one of them may start first (SPEC §4).
	if i := slices.Index(next, "/other"); i < 0 || i > 1 {
		t.Fatalf("pages asked for after the other account's job arrived: %v; want its own among the first two", next)
	}

	for range 6 {
		if err := <-spun; !errors.Is(err, ErrPageUnresponsive) || !errors.Is(err, ErrTimeout) {
			t.Fatalf("a spinning page: err = %v, want ErrPageUnresponsive", err)
		}
	}
}

// TestUnresponsivePagesStoppedEarly: pages whose scripts never yield, before
// or after their load event, in URL and HTML jobs, are stopped when their
// main thread has not answered for UnresponsiveAfter, long before their
// deadline; a page that is only slow (its server never answers) is not, and
// runs to its deadline.
func TestUnresponsivePagesStoppedEarly(t *testing.T) {
	mux := http.NewServeMux()
	servePage(mux, "/spin", `<!doctype html><body><script>for (;;) {}</script></body>`)
	servePage(mux, "/spin-after-load", `<!doctype html><body><script>onload = () => setTimeout(() => { for (;;) {} })</script></body>`)
	mux.HandleFunc("/slow", blockingHandler(t, nil))
	c, base := newRenderer(t, Config{Timeout: 4 * time.Second, UnresponsiveAfter: time.Second}, mux)
	baseline, err := c.OpenTabs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Run("spinning", func(t *testing.T) {
		for name, job := range map[string]Job{
			"url":             {URL: base + "/spin"},
			"url after load":  {URL: base + "/spin-after-load"},
			"html":            {HTML: `<script>while(true){}</script>`},
			"html after load": {HTML: `<body onload="setTimeout(() => { while(true){} })">`},
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				_, err := c.Render(context.Background(), job)
				if !errors.Is(err, ErrPageUnresponsive) {
					t.Fatalf("err = %v, want ErrPageUnresponsive", err)
				}
			})
		}
	})
	t.Run("slow but alive", func(t *testing.T) {
		_, err := c.Render(context.Background(), Job{URL: base + "/slow"})
		if !errors.Is(err, ErrTimeout) || errors.Is(err, ErrPageUnresponsive) {
			t.Fatalf("err = %v, want the deadline's ErrTimeout", err)
		}
	})
	tabsSettleAt(t, c, baseline)
}
