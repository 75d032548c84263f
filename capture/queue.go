package capture

import (
	"context"
	"fmt"
	"sync"
)

// queue hands the render slots to jobs fairly between accounts (SPEC §4):
// one account's slow or hanging pages cannot keep another account's render
// waiting behind more than one of its own jobs.
//
//   - A job takes a free slot at once when nobody waits.
//   - Otherwise it waits in its account's own first-in, first-out line, and a
//     slot that frees goes to the waiting account that holds the fewest
//     slots, the accounts taking turns on a tie (round robin). So an account
//     that holds slots gets no more while another account waits, and the
//     other account's job is next as soon as one of its jobs ends.
//   - An account may have at most perAccount jobs waiting, and all accounts
//     together at most size: beyond its own share an account is refused
//     (ErrAccountBusy) while others still get in, and only a full queue
//     refuses everyone (ErrBusy).
type queue struct {
	slots, size, perAccount int

	mu      sync.Mutex
	running map[int64]int       // slots held, per account
	busy    int                 // slots held in all
	lines   map[int64][]*ticket // jobs waiting, per account, first come first
	turns   []int64             // accounts with jobs waiting, in the order they take turns
	waiting int                 // jobs waiting in all
}

// ticket is one waiting job; ready is closed when it holds a slot.
type ticket struct {
	account int64
	ready   chan struct{}
}

func newQueue(slots, size, perAccount int) *queue {
	return &queue{
		slots: slots, size: size, perAccount: perAccount,
		running: make(map[int64]int),
		lines:   make(map[int64][]*ticket),
	}
}

// acquire waits for a slot for account. It returns ErrAccountBusy or
// ErrBusy at once when the job may not wait, ctx's error when ctx ends
// first, and errShutDown when stop is closed first. After a nil error the
// caller must call release.
func (q *queue) acquire(ctx context.Context, account int64, stop <-chan struct{}) error {
	q.mu.Lock()
	if q.busy < q.slots && q.waiting == 0 {
		q.take(account)
		q.mu.Unlock()
		return nil
	}
	switch {
	case len(q.lines[account]) >= q.perAccount:
		q.mu.Unlock()
		return fmt.Errorf("%w: it has %d renders waiting already, the most one account may", ErrAccountBusy, q.perAccount)
	case q.waiting >= q.size:
		q.mu.Unlock()
		return fmt.Errorf("%w: %d renders running and %d waiting", ErrBusy, q.slots, q.size)
	}
	t := &ticket{account: account, ready: make(chan struct{})}
	if len(q.lines[account]) == 0 {
		q.turns = append(q.turns, account)
	}
	q.lines[account] = append(q.lines[account], t)
	q.waiting++
	q.mu.Unlock()

	var err error
	select {
	case <-t.ready:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-stop:
		err = errShutDown
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	select {
	case <-t.ready:
		// The slot came as the job gave up: hand it on.
		q.giveBack(account)
	default:
		q.leave(t)
	}
	return err
}

// release frees account's slot and hands it to the next job in turn.
func (q *queue) release(account int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.giveBack(account)
}

// counts returns the jobs holding a slot and the jobs waiting.
func (q *queue) counts() (running, waiting int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.busy, q.waiting
}

// take gives account a slot. q.mu must be held.
func (q *queue) take(account int64) {
	q.running[account]++
	q.busy++
}

// giveBack frees a slot of account and hands free slots to waiting jobs.
// q.mu must be held.
func (q *queue) giveBack(account int64) {
	if q.running[account]--; q.running[account] == 0 {
		delete(q.running, account)
	}
	q.busy--
	for q.busy < q.slots && len(q.turns) > 0 {
		// The account holding the fewest slots goes next; on a tie, the
		// one whose turn came first.
		next := 0
		for i, a := range q.turns {
			if q.running[a] < q.running[q.turns[next]] {
				next = i
			}
		}
		a := q.turns[next]
		q.turns = append(q.turns[:next], q.turns[next+1:]...)
		line := q.lines[a]
		t := line[0]
		if len(line) == 1 {
			delete(q.lines, a)
		} else {
			q.lines[a] = line[1:]
			q.turns = append(q.turns, a) // its next job waits for its next turn
		}
		q.waiting--
		q.take(a)
		close(t.ready)
	}
}

// leave removes a waiting ticket that gave up. q.mu must be held.
func (q *queue) leave(t *ticket) {
	line := q.lines[t.account]
	for i, w := range line {
		if w == t {
			line = append(line[:i], line[i+1:]...)
			break
		}
	}
	q.waiting--
	if len(line) > 0 {
		q.lines[t.account] = line
		return
	}
	delete(q.lines, t.account)
	for i, a := range q.turns {
		if a == t.account {
			q.turns = append(q.turns[:i], q.turns[i+1:]...)
			break
		}
	}
}
