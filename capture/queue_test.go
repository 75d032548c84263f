package capture

import (
	"context"
	"errors"
	"testing"
	"time"
)

// queued starts acquire for account in the background and waits until the
// queue counts it as waiting; the channel receives acquire's result.
func queued(t *testing.T, q *queue, ctx context.Context, account int64) <-chan error {
	t.Helper()
	_, before := q.counts()
	done := make(chan error, 1)
	go func() { done <- q.acquire(ctx, account, nil) }()
	if !waitFor(time.Second, func() bool { _, w := q.counts(); return w == before+1 }) {
		t.Fatalf("account %d's job is not waiting", account)
	}
	return done
}

// granted reports whether the job got its slot (soon: release hands it on
// before it returns).
func granted(t *testing.T, job <-chan error) bool {
	t.Helper()
	select {
	case err := <-job:
		if err != nil {
			t.Fatalf("acquire: %v", err)
		}
		return true
	case <-time.After(5 * time.Second):
		return false
	}
}

func TestQueueIsFairBetweenAccounts(t *testing.T) {
	ctx := context.Background()
	t.Run("an account over its share is refused, others still wait", func(t *testing.T) {
		q := newQueue(2, 16, 4)
		for range 2 {
			if err := q.acquire(ctx, 1, nil); err != nil {
				t.Fatal(err)
			}
		}
		for range 4 {
			queued(t, q, ctx, 1)
		}
		// Twelve more from the same account: refused for that account only.
		for range 12 {
			if err := q.acquire(ctx, 1, nil); !errors.Is(err, ErrAccountBusy) || !errors.Is(err, ErrBusy) {
				t.Fatalf("err = %v, want ErrAccountBusy", err)
			}
		}
		other := queued(t, q, ctx, 2)
		// The first slot that frees goes to the other account, not to the
		// four jobs that waited longer.
		q.release(1)
		if !granted(t, other) {
			t.Fatal("the other account's job did not get the slot that freed")
		}
		if r, w := q.counts(); r != 2 || w != 4 {
			t.Fatalf("running %d, waiting %d; want 2 and 4", r, w)
		}
	})
	t.Run("turns: the account holding the fewest slots goes next", func(t *testing.T) {
		q := newQueue(2, 16, 8)
		for range 2 {
			if err := q.acquire(ctx, 1, nil); err != nil {
				t.Fatal(err)
			}
		}
		a := []<-chan error{queued(t, q, ctx, 1), queued(t, q, ctx, 1)}
		b := []<-chan error{queued(t, q, ctx, 2), queued(t, q, ctx, 2)}
		c := queued(t, q, ctx, 3)
		// Slots held: 1 → 2. Waiting: 1 (two), 2 (two), 3 (one).
		q.release(1) // 1 holds one; 2 and 3 hold none: 2 waited first
		if !granted(t, b[0]) {
			t.Fatal("account 2 did not go first")
		}
		q.release(1) // 1 holds none, 2 one, 3 none: 1 waited before 3
		if !granted(t, a[0]) {
			t.Fatal("account 1 did not go next")
		}
		q.release(2) // 1 one, 2 none, 3 none: 3's turn comes before 2's second
		if !granted(t, c) {
			t.Fatal("account 3 did not get its turn")
		}
		q.release(3)
		if !granted(t, b[1]) {
			t.Fatal("account 2's second job did not follow")
		}
		q.release(1)
		if !granted(t, a[1]) {
			t.Fatal("account 1's second job did not follow")
		}
		if r, w := q.counts(); r != 2 || w != 0 {
			t.Fatalf("running %d, waiting %d", r, w)
		}
	})
	t.Run("a full queue refuses everyone", func(t *testing.T) {
		q := newQueue(1, 2, 1)
		if err := q.acquire(ctx, 1, nil); err != nil {
			t.Fatal(err)
		}
		queued(t, q, ctx, 2)
		queued(t, q, ctx, 3)
		if err := q.acquire(ctx, 4, nil); !errors.Is(err, ErrBusy) || errors.Is(err, ErrAccountBusy) {
			t.Fatalf("err = %v, want ErrBusy", err)
		}
	})
	t.Run("a job that gives up leaves its line", func(t *testing.T) {
		q := newQueue(1, 4, 4)
		if err := q.acquire(ctx, 1, nil); err != nil {
			t.Fatal(err)
		}
		gaveUp, cancel := context.WithCancel(ctx)
		first := queued(t, q, gaveUp, 2)
		second := queued(t, q, ctx, 2)
		cancel()
		if err := <-first; !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		q.release(1)
		if !granted(t, second) {
			t.Fatal("the job behind the one that gave up did not get the slot")
		}
		if r, w := q.counts(); r != 1 || w != 0 {
			t.Fatalf("running %d, waiting %d", r, w)
		}
		stop := make(chan struct{})
		go func() { time.Sleep(10 * time.Millisecond); close(stop) }()
		if err := q.acquire(ctx, 3, stop); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("after stop: %v", err)
		}
	})
}
