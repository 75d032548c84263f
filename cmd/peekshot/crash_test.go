package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peekshot/peekshot/account"
	"github.com/peekshot/peekshot/apikey"
	"github.com/peekshot/peekshot/store/sqlite"
)

// crashRounds is how many times TestCrashSafety kills the server: 20 in
// `make test`, PEEKSHOT_CRASH_ROUNDS (100) in `make soak`.
func crashRounds(t *testing.T) int {
	if v := os.Getenv("PEEKSHOT_CRASH_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("PEEKSHOT_CRASH_ROUNDS must be a positive number: %q", v)
		}
		return n
	}
	return 20
}

// crashBook records every request the server answered with success, which
// must all survive any crash, and the requests whose answer the crash cut
// off, which may or may not have happened.
type crashBook struct {
	mu         sync.Mutex
	redeemed   map[string][]string // email → coupon codes redeemed
	keys       map[int64]crashKey  // created keys by id
	renders    map[string]int      // email → renders answered 200
	remaining  map[string][]int64  // email → X-Credits-Remaining of each
	unanswered map[string]int      // email → renders cut off by the kill
	answered   int                 // requests answered, any status
	serverErrs []string            // 5xx answers: there must be none
}

func (b *crashBook) answeredNow() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.answered
}

type crashKey struct {
	email, key string
	deleted    bool
	// deleting: a deletion was sent and the kill cut off its answer, so
	// the key may or may not be gone; the next check settles it.
	deleting bool
	// gone: a restarted server refused it once; no need to ask again.
	gone bool
}

// crashWorkload drives one account against one server until stop closes or
// the server dies: coupon redemptions, key creations (and deletions, to
// stay under the key limit) and real renders that debit credits.
type crashWorkload struct {
	base    string
	acct    *webUser
	client  *http.Client
	book    *crashBook
	coupons chan string // this account's next codes to redeem
}

func (w *crashWorkload) send(method, path string, form url.Values, headers map[string]string) (*http.Response, string, bool) {
	res, body, err := do(w.client, method, w.base+path, form, headers)
	if err != nil {
		return nil, "", false // the server died under the request: its outcome is unknown
	}
	w.book.mu.Lock()
	defer w.book.mu.Unlock()
	w.book.answered++
	if res.StatusCode >= 500 {
		w.book.serverErrs = append(w.book.serverErrs, fmt.Sprintf("%s %s: %d %.200s", method, path, res.StatusCode, body))
	}
	return res, body, true
}

func (w *crashWorkload) htmx(method, path string, form url.Values) (*http.Response, string, bool) {
	return w.send(method, path, form, map[string]string{"HX-Request": "true", "X-CSRF-Token": w.acct.csrf})
}

func (w *crashWorkload) redeemLoop(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case code := <-w.coupons:
			res, _, ok := w.send("POST", "/account/coupons/redeem", url.Values{"_csrf": {w.acct.csrf}, "code": {code}}, nil)
			if !ok {
				return
			}
			if res.StatusCode == http.StatusSeeOther {
				w.book.mu.Lock()
				w.book.redeemed[w.acct.email] = append(w.book.redeemed[w.acct.email], code)
				w.book.mu.Unlock()
			}
		}
	}
}

func (w *crashWorkload) keyLoop(stop <-chan struct{}) {
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		// Keep the account under the key limit: delete its oldest key
		// when it holds 20.
		w.book.mu.Lock()
		var live []int64
		for id, k := range w.book.keys {
			if k.email == w.acct.email && !k.deleted {
				live = append(live, id)
			}
		}
		w.book.mu.Unlock()
		if len(live) >= 20 {
			oldest := live[0]
			for _, id := range live {
				oldest = min(oldest, id)
			}
			w.book.mu.Lock()
			k := w.book.keys[oldest]
			k.deleting = true
			w.book.keys[oldest] = k
			w.book.mu.Unlock()
			res, _, ok := w.htmx("DELETE", "/account/api-keys/"+strconv.FormatInt(oldest, 10), nil)
			if !ok {
				return
			}
			w.book.mu.Lock()
			k.deleting, k.deleted = false, res.StatusCode == http.StatusOK
			w.book.keys[oldest] = k
			w.book.mu.Unlock()
			continue
		}
		res, body, ok := w.htmx("POST", "/account/api-keys", url.Values{"label": {fmt.Sprintf("crash %d", n)}})
		if !ok {
			return
		}
		if res.StatusCode == http.StatusOK {
			key, id, found := parseReveal(body)
			if !found {
				w.book.mu.Lock()
				w.book.serverErrs = append(w.book.serverErrs, "key creation answered 200 without a key")
				w.book.mu.Unlock()
				continue
			}
			w.book.mu.Lock()
			w.book.keys[id] = crashKey{email: w.acct.email, key: key}
			w.book.mu.Unlock()
		}
	}
}

func (w *crashWorkload) renderLoop(stop <-chan struct{}) {
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		body := fmt.Sprintf(`{"html": "<body style='background:#%06x'>%d</body>", "width": 160, "height": 100}`, rand.IntN(1<<24), n)
		req, _ := http.NewRequest("POST", w.base+"/api/v1/html-to-image", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-api-key", w.acct.renderKey)
		res, err := w.client.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		if err != nil {
			w.book.mu.Lock()
			w.book.unanswered[w.acct.email]++
			w.book.mu.Unlock()
			return
		}
		w.book.mu.Lock()
		w.book.answered++
		switch {
		case res.StatusCode == http.StatusOK:
			left, _ := strconv.ParseInt(res.Header.Get("X-Credits-Remaining"), 10, 64)
			w.book.renders[w.acct.email]++
			w.book.remaining[w.acct.email] = append(w.book.remaining[w.acct.email], left)
		case res.StatusCode >= 500:
			w.book.serverErrs = append(w.book.serverErrs, fmt.Sprintf("render: %d", res.StatusCode))
		}
		w.book.mu.Unlock()
	}
}

// TestCrashSafety starts the real binary, drives concurrent coupon
// redemptions, key creations and deletions, and real renders that debit
// credits, and kills it with SIGKILL at varied moments (while it starts,
// when it has just started, and under load), round after round. After each
// kill: the database passes integrity_check and foreign_key_check; every
// request answered with success is there (each redemption with its ledger
// row, each created key by its hash, each deleted key gone); every render
// answered 200 has its debit and ledger row, and the balance it reported is
// one the ledger went through; no render was debited that was not asked
// for; every balance equals its ledger sum; Chromium died with the server.
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	rounds := crashRounds(t)
	t.Run("SQLite", func(t *testing.T) { crashSafety(t, sqliteDB(t), rounds) })
	// PostgreSQL keeps its own data safe; what is tested is that PeekShot's
	// transactions, reservations and caches are, in fewer rounds.
	t.Run("PostgreSQL", func(t *testing.T) { crashSafety(t, postgresDB(t), max(rounds/2, 1)) })
}

func crashSafety(t *testing.T, db testDB, rounds int) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, "tmp")
	const accounts = 3
	perRound := 40

	// The coupons every round may redeem, created as the operator would.
	st := db.open(t)
	credits := map[string]int64{}
	for i := range rounds * perRound {
		code := fmt.Sprintf("CRASH-%d", i)
		credits[code] = int64(i%7 + 1)
		if _, err := st.CreateCoupon(context.Background(), account.NewCoupon{Code: code, Credits: credits[code]}); err != nil {
			t.Fatal(err)
		}
	}

	book := &crashBook{redeemed: map[string][]string{}, keys: map[int64]crashKey{}, renders: map[string]int{},
		remaining: map[string][]int64{}, unanswered: map[string]int{}}
	var accts []*webUser
	var logs strings.Builder
	p := startProcess(t, db, tmp)
	for i := range accounts {
		a := signUpAccount(t, p.base, fmt.Sprintf("crash%d@example.com", i))
		c := a.client(http.DefaultTransport)
		res, body := mustDo(t, c, "POST", p.base+"/account/api-keys", url.Values{"label": {"renders"}}, map[string]string{"HX-Request": "true", "X-CSRF-Token": a.csrf})
		key, id, ok := parseReveal(body)
		if res.StatusCode != http.StatusOK || !ok {
			t.Fatalf("render key: %d", res.StatusCode)
		}
		a.renderKey, a.renderKeyID = key, id
		accts = append(accts, a)
	}
	nextCoupon := map[string]int{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	seed := rng.Uint64()
	t.Logf("kill moments seeded with %d", seed)
	moments := rand.New(rand.NewPCG(seed, 9))
	killedWhileStarting := 0

	for round := range rounds {
		if round > 0 {
			if round%7 == 3 {
				// Kill it while it starts: opening the database, starting Chromium.
				q := launchProcess(t, db, tmp)
				time.Sleep(time.Duration(moments.IntN(400)) * time.Millisecond)
				q.kill9()
				logs.WriteString(q.out.String())
				noChromiumLeft(t, tmp)
				verifyAfterCrash(t, db, book, credits, accts)
				killedWhileStarting++
			}
			p = startProcess(t, db, tmp)
		}
		tr := &http.Transport{MaxIdleConnsPerHost: 16}
		// What survived the last kill still works: keys authenticate,
		// deleted keys do not.
		checkKeysAfterRestart(t, p.base, tr, book)

		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, a := range accts {
			codes := make(chan string, perRound)
			for range perRound / accounts {
				codes <- fmt.Sprintf("CRASH-%d", nextCoupon[a.email]*accounts+indexOf(accts, a))
				nextCoupon[a.email]++
			}
			w := &crashWorkload{base: p.base, acct: a, client: a.client(tr), book: book, coupons: codes}
			wg.Go(func() { w.redeemLoop(stop) })
			wg.Go(func() { w.keyLoop(stop) })
			wg.Go(func() { w.renderLoop(stop) })
			wg.Go(func() { w.renderLoop(stop) })
		}
		// Kill at a varied moment: one round in five right after the start,
		// the others after up to 1.5 s of load.
		killAfter := time.Duration(300+moments.IntN(1200)) * time.Millisecond
		if moments.IntN(5) == 0 {
			killAfter = time.Duration(moments.IntN(150)) * time.Millisecond
		}
		time.Sleep(killAfter)
		p.kill9()
		close(stop)
		wg.Wait()
		tr.CloseIdleConnections()
		logs.WriteString(p.out.String())
		noChromiumLeft(t, tmp)
		verifyAfterCrash(t, db, book, credits, accts)
		t.Logf("round %d: killed after %v of load; %d requests answered so far", round, killAfter, book.answeredNow())
	}

	book.mu.Lock()
	defer book.mu.Unlock()
	renders, cut, redeemed, live := 0, 0, 0, 0
	for _, a := range accts {
		renders += book.renders[a.email]
		cut += book.unanswered[a.email]
		redeemed += len(book.redeemed[a.email])
	}
	for _, k := range book.keys {
		if !k.deleted {
			live++
		}
	}
	t.Logf("crash safety: %d rounds survived (%d killed while starting), %d requests answered, %d renders paid, %d renders cut off by a kill, %d coupons redeemed, %d keys created (%d live), 5xx: %d",
		rounds, killedWhileStarting, book.answered, renders, cut, redeemed, len(book.keys), live, len(book.serverErrs))
	for _, e := range book.serverErrs {
		t.Errorf("5xx while it ran: %s", e)
	}
	if book.answered < rounds*10 || renders < 3 || redeemed < rounds || len(book.keys) < rounds {
		t.Errorf("too little work was answered to prove anything")
	}
	// Secrets never reach the log, whatever happens.
	all := logs.String()
	if strings.Contains(all, "database is locked") {
		t.Error(`the log says "database is locked"`)
	}
	for _, k := range book.keys {
		if strings.Contains(all, k.key[4:36]) {
			t.Fatal("an API key is in the server's log")
		}
	}
	for _, a := range accts {
		if strings.Contains(all, a.password) || strings.Contains(all, a.csrf) {
			t.Fatal("a password or CSRF token is in the server's log")
		}
	}
	// Killed servers leave their Chromium files behind only until the next
	// start sweeps them: after every round, only the last server's remain.
	if leftover, _ := filepath.Glob(filepath.Join(tmp, "chromedp-runner*")); len(leftover) > 0 {
		t.Errorf("%d Chromium profile folders outside PeekShot's own folder", len(leftover))
	}
	if leftover, _ := filepath.Glob(filepath.Join(tmp, "org.chromium.*")); len(leftover) > 1 {
		t.Errorf("the Chromium socket folders of %d killed servers were not swept", len(leftover))
	}
	if kept, _ := filepath.Glob(filepath.Join(tmp, "peekshot-chromium", "*")); len(kept) > 1 {
		t.Errorf("the Chromium folders of %d killed servers were not swept: %v", len(kept), kept)
	}
}

func indexOf(list []*webUser, a *webUser) int {
	for i, x := range list {
		if x == a {
			return i
		}
	}
	return -1
}

// checkKeysAfterRestart asks the restarted server about every key a
// request created or deleted.
func checkKeysAfterRestart(t *testing.T, base string, tr http.RoundTripper, book *crashBook) {
	t.Helper()
	book.mu.Lock()
	keys := map[int64]crashKey{}
	for id, k := range book.keys {
		if !k.gone {
			keys[id] = k
		}
	}
	book.mu.Unlock()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for id, k := range keys {
		res, body, err := do(c, "GET", base+"/api/v1/me", nil, map[string]string{"x-api-key": k.key})
		if err != nil {
			t.Fatal(err)
		}
		want := http.StatusOK
		if k.deleted {
			want = http.StatusUnauthorized
		}
		if res.StatusCode != want {
			t.Fatalf("after the restart a key created (deleted=%v) before the crash answers %d: %s", k.deleted, res.StatusCode, body)
		}
		if k.deleted {
			book.mu.Lock()
			k.gone = true
			book.keys[id] = k
			book.mu.Unlock()
		}
	}
}

// verifyAfterCrash checks the database a killed server left.
func verifyAfterCrash(t *testing.T, db testDB, book *crashBook, credits map[string]int64, accts []*webUser) {
	t.Helper()
	ctx := context.Background()
	if db.path != "" {
		raw, err := sql.Open("sqlite3", sqlite.DSN(db.path, "_busy_timeout=5000"))
		if err != nil {
			t.Fatal(err)
		}
		var check string
		if err := raw.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
			t.Fatalf("integrity_check after the crash: %q %v", check, err)
		}
		rows, err := raw.Query(`PRAGMA foreign_key_check`)
		if err != nil {
			t.Fatal(err)
		}
		if rows.Next() {
			t.Fatal("foreign_key_check found rows pointing nowhere")
		}
		rows.Close()
		raw.Close()
	}
	st := db.open(t)
	defer st.Close()
	if bad, err := st.LedgerMismatches(ctx); err != nil || len(bad) > 0 {
		t.Fatalf("balances differ from their ledger sums after the crash: %v %v", bad, err)
	}
	book.mu.Lock()
	defer book.mu.Unlock()
	for _, a := range accts {
		u, err := st.UserByEmail(ctx, a.email)
		if err != nil {
			t.Fatal(err)
		}
		hist, err := st.Redemptions(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, r := range hist {
			have[r.Code] = true
		}
		for _, code := range book.redeemed[a.email] {
			if !have[code] {
				t.Fatalf("%s redeemed %s (answered 303) but the crash lost it", a.email, code)
			}
		}
		ledger, err := st.Ledger(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		var balance int64
		coupons, renders := 0, 0
		seen := map[int64]int{} // balances right after a render's debit
		for _, e := range ledger {
			balance += e.Delta
			switch e.Reason {
			case "coupon":
				coupons++
			case "render":
				renders++
				seen[balance]++
			}
			if balance < 0 {
				t.Fatalf("%s's running balance went negative", a.email)
			}
		}
		if coupons != len(hist) {
			t.Fatalf("%s: %d coupon ledger rows for %d redemptions", a.email, coupons, len(hist))
		}
		if ok, cut := book.renders[a.email], book.unanswered[a.email]; renders < ok || renders > ok+cut {
			t.Fatalf("%s: %d render debits; %d renders were answered 200 and %d cut off", a.email, renders, ok, cut)
		}
		for _, left := range book.remaining[a.email] {
			if seen[left] == 0 {
				t.Fatalf("%s: a render reported %d credits left, a balance its ledger never had after a render", a.email, left)
			}
		}
	}
	for id, k := range book.keys {
		got, err := st.APIKeyByHash(ctx, apikey.HashOf(k.key))
		if k.deleting {
			// Cut off: either outcome is right; remember which it was.
			k.deleting, k.deleted = false, errors.Is(err, account.ErrNotFound)
			book.keys[id] = k
			continue
		}
		switch {
		case k.deleted && !errors.Is(err, account.ErrNotFound):
			t.Fatalf("key %d was deleted (answered 200) but the crash brought it back", id)
		case !k.deleted && err != nil:
			t.Fatalf("key %d was created (answered 200) but the crash lost it: %v", id, err)
		case !k.deleted && got.ID != id:
			t.Fatalf("key %d is stored as %d", id, got.ID)
		}
	}
}
